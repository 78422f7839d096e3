"""Reading checkpoints safely and rebuilding a PipelineModule from them.

Two layouts are supported:
- the authors' PyTorch-Lightning 1.x ``.ckpt`` (``state_dict``, ``epoch``, ``global_step``,
  ``pytorch-lightning_version``, ``optimizer_states``, ``callbacks`` keyed by callback *classes*, ...), whose
  state_dict also holds ``loss_vgg.*`` and ``metric_lpips.*``;
- our Lightning 2.x checkpoints, which add the options under ``varitex_opt``.

Files are read with ``torch.load(weights_only=True)``: no code from the file runs. Lightning 1.x pickles
callback classes as dict keys, which weights-only loading refuses; those references (and other classes of
pytorch_lightning, lightning or the authors' varitex package) are replaced by inert stand-ins.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from varitex.modules.configs import ARCHITECTURE_OPTIONS, as_dict, merge_saved_options
from varitex.modules.generator import GeneratorConfig
from varitex.modules.pipeline import PipelineModule
from varitex.options import varitex_default_options

# Modules whose classes a checkpoint may reference by name only (callback keys, enums): replaced by stand-ins.
STAND_IN_MODULES = ("pytorch_lightning.", "lightning.", "lightning_fabric.", "varitex.")
CHECKED_PREFIXES = ("generator.", "discriminator.")
MAX_LISTED_KEYS = 30


class CheckpointMismatchError(ValueError):
    """The checkpoint's generator/discriminator weights do not fit the architecture built from the options."""


class CheckpointStandIn:
    """Inert placeholder for a class a checkpoint references (e.g. Lightning 1.x ``ModelCheckpoint`` as the key
    of ``checkpoint["callbacks"]``). Instances keep their pickled arguments and state; nothing is executed."""

    qualified_name = None

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<stand-in for {self.qualified_name}>"


def _stand_in(qualified_name):
    return type(qualified_name.rsplit(".", 1)[-1], (CheckpointStandIn,), {"qualified_name": qualified_name})


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", weights_only: bool = True) -> Any:
    """The raw checkpoint dictionary.

    Args:
        path: a ``.ckpt`` file (ours or the authors').
        map_location: passed to torch.load.
        weights_only: True (default): safe loading, see the module docstring. False runs the full unpickler:
            only for files you trust.
    Raises:
        FileNotFoundError: no such file.
        ValueError: the file references other classes, which safe loading refuses (they are listed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not weights_only:
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:
            names = []
        foreign = [name for name in names if not name.startswith(STAND_IN_MODULES)]
        if not names or foreign:
            refused = foreign or f"objects it does not allow ({str(error).splitlines()[0]})"
            raise ValueError(
                f"checkpoint {path} cannot be loaded safely (weights_only=True): it references {refused}. "
                f"If you trust the file, use read_checkpoint(path, weights_only=False)") from None
    with torch.serialization.safe_globals([(_stand_in(name), name) for name in names]):
        return torch.load(path, map_location=map_location, weights_only=True)


def checkpoint_options(stored: dict | None, opt: Any = None) -> dict:
    """Options to rebuild a checkpoint's architecture: defaults < stored options < ``opt``, except that the
    stored architecture options win (see ``merge_saved_options``).

    Args:
        stored: ``checkpoint["varitex_opt"]`` or None (the authors' checkpoints carry no options).
        opt: namespace or mapping from the caller, or None.
    """
    given = as_dict(opt) if opt is not None else {}
    return merge_saved_options({**varitex_default_options(), **given}, stored or {}, explicit=set(given))


def _listed(items):
    shown = ", ".join(items[:MAX_LISTED_KEYS])
    more = len(items) - MAX_LISTED_KEYS
    return shown + (f", ... and {more} more" if more > 0 else "")


def check_state_dict(pipeline: PipelineModule, state_dict: dict, source: str = "checkpoint") -> None:
    """Raise CheckpointMismatchError unless every generator/discriminator entry of ``pipeline`` is in
    ``state_dict`` with the same shape and ``state_dict`` has no other such entry. Other entries
    (``loss_vgg.*``, ``metric_lpips.*``, a discriminator the options switched off) are ignored."""
    prefixes = CHECKED_PREFIXES if hasattr(pipeline, "discriminator") else ("generator.",)
    expected = {key: tuple(value.shape) for key, value in pipeline.state_dict().items() if key.startswith(prefixes)}
    given = {key: tuple(value.shape) for key, value in state_dict.items() if key.startswith(prefixes)}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    reshaped = sorted(f"{key} (checkpoint {given[key]}, model {expected[key]})"
                      for key in set(expected) & set(given) if given[key] != expected[key])
    if not (missing or unexpected or reshaped):
        return
    architecture = ", ".join(f"{name}={getattr(pipeline.opt, name)}" for name in ARCHITECTURE_OPTIONS)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {_listed(missing)}")
    if reshaped:
        problems.append(f"{len(reshaped)} with another shape: {_listed(reshaped)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {_listed(unexpected)}")
    raise CheckpointMismatchError(
        f"{source} does not fit the architecture built from the options ({architecture}); generator/"
        f"discriminator keys " + "; ".join(problems))


def load_pipeline(path: str | os.PathLike, opt: Any = None, map_location: Any = "cpu", weights_only: bool = True,
                  checkpoint: Any = None) -> PipelineModule:
    """Build a PipelineModule for the checkpoint ``path`` and load its weights; returned in eval mode.

    The architecture comes from the checkpoint's stored options and generator arguments (ours) or from
    ``opt`` / the defaults (the authors', which store none). ``loss_vgg.*`` in the file provide the VGG-19
    weights, ``metric_lpips.*`` the LPIPS weights; no pretrained weights are needed otherwise.

    Args:
        checkpoint: the content of ``path`` when the caller has read it already (it is not read again).
    Raises:
        FileNotFoundError, ValueError: see read_checkpoint; CheckpointMismatchError: keys listed.
    """
    if checkpoint is None:
        checkpoint = read_checkpoint(path, map_location=map_location, weights_only=weights_only)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{path} is not a Lightning checkpoint: no 'state_dict' entry (found {found})")
    state_dict = checkpoint["state_dict"]
    stored_generator = checkpoint.get("varitex_generator")
    generator_config = None
    if stored_generator:
        generator_config = GeneratorConfig(**{name: tuple(value) if isinstance(value, list) else value
                                              for name, value in stored_generator.items()})
    pipeline = PipelineModule(checkpoint_options(checkpoint.get("varitex_opt"), opt),
                              generator_config=generator_config)
    check_state_dict(pipeline, state_dict, source=f"checkpoint {path}")
    pipeline.load_state_dict(state_dict, strict=False)
    lpips_state = {key[len("metric_lpips."):]: value for key, value in state_dict.items()
                   if key.startswith("metric_lpips.")}
    if lpips_state and pipeline.metric_lpips is not None:
        pipeline.metric_lpips.load_state_dict(lpips_state)
    return pipeline.eval()

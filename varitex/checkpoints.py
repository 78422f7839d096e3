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
from lightning.pytorch.plugins.io import TorchCheckpointIO

from varitex.modules.configs import ARCHITECTURE_OPTIONS, as_dict, merge_saved_options
from varitex.modules.generator import GeneratorConfig
from varitex.modules.pipeline import PipelineModule
from varitex.options import varitex_default_options
from varitex.safe_io import ZIP_MAGICS, DataFileError, atomic_write

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
        weights_only: True (default): safe loading, see the module docstring. False runs the full unpickler.
    Raises:
        FileNotFoundError: no such file.
        DataFileError (a ValueError): the file is empty, truncated or not a PyTorch checkpoint, holds
            something other than a checkpoint dictionary (e.g. a bare tensor), or references classes that
            safe loading refuses (they are listed; nothing in the file was run).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if _first_bytes(path) not in ZIP_MAGICS:
        size = path.stat().st_size
        what = "is empty (0 bytes)" if size == 0 else f"is not a PyTorch checkpoint ({size} bytes that are not " \
                                                       f"the zip archive torch.save writes): corrupted or another file"
        raise DataFileError(f"checkpoint {path} {what}")
    if not weights_only:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    else:
        checkpoint = _load_weights_only(path, map_location)
    if not isinstance(checkpoint, dict):
        raise DataFileError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not a checkpoint dictionary "
                            f"(expected a Lightning checkpoint with 'state_dict')")
    return checkpoint


def _first_bytes(path, n=4):
    with open(path, "rb") as file:
        return file.read(n)


def _load_weights_only(path, map_location):
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # a file too broken to list; the first error says what is wrong
            names = []
        foreign = [name for name in names if not name.startswith(STAND_IN_MODULES)]
        if not names:
            raise DataFileError(f"checkpoint {path} is corrupted: its pickled content cannot be read "
                                f"({str(error).splitlines()[0]})") from None
        if foreign:
            raise DataFileError(f"checkpoint {path} references {', '.join(foreign)}, which a checkpoint of this "
                                f"project never contains; it was not loaded (nothing in it was run)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise DataFileError(f"checkpoint {path} is truncated or corrupted ({str(error).splitlines()[0]})") from None
    with torch.serialization.safe_globals([(_stand_in(name), name) for name in names]):
        return torch.load(path, map_location=map_location, weights_only=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing each local file atomically (safe_io.atomic_write): an interrupted
    or disk-full save leaves the previous file, never a truncated one under the checkpoint's name."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        if "://" in str(path):  # remote file systems: Lightning's own writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as file:
            torch.save(checkpoint, file)


def stored_options(checkpoint, path):
    """The options a checkpoint of ours stores (``varitex_opt``), {} for the authors' (which store none)."""
    saved = checkpoint.get("varitex_opt") or {}
    if not isinstance(saved, dict):
        raise DataFileError(f"checkpoint {path}: 'varitex_opt' is a {type(saved).__name__}, expected the "
                            f"dictionary of options")
    return saved


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


def check_finite_weights(state_dict, source):
    """Raise DataFileError naming the first entry of ``state_dict`` that is not a tensor or holds NaN/infinity
    (such weights render black or garbage pictures without any other error)."""
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise DataFileError(f"{source}: state_dict entry '{key}' is a {type(value).__name__}, not a tensor")
        if value.is_floating_point() and not torch.isfinite(value).all():
            bad = int((~torch.isfinite(value)).sum())
            raise DataFileError(f"{source}: weight '{key}' holds {bad} non-finite values (NaN or infinity); "
                                f"the training that wrote it diverged or the file is corrupted")


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
    if "state_dict" not in checkpoint or not isinstance(checkpoint["state_dict"], dict):
        found = _listed(sorted(map(str, checkpoint)))
        raise DataFileError(f"{path} is not a Lightning checkpoint: no 'state_dict' dictionary (found {found})")
    state_dict = checkpoint["state_dict"]
    check_finite_weights(state_dict, f"checkpoint {path}")
    stored_generator = checkpoint.get("varitex_generator")
    generator_config = None
    if stored_generator:
        try:
            generator_config = GeneratorConfig(**{name: tuple(value) if isinstance(value, list) else value
                                                  for name, value in dict(stored_generator).items()})
        except (TypeError, ValueError) as error:
            raise DataFileError(f"checkpoint {path}: 'varitex_generator' does not describe a generator "
                                f"({error})") from None
    pipeline = PipelineModule(checkpoint_options(stored_options(checkpoint, path), opt),
                              generator_config=generator_config)
    check_state_dict(pipeline, state_dict, source=f"checkpoint {path}")
    pipeline.load_state_dict(state_dict, strict=False)
    lpips_state = {key[len("metric_lpips."):]: value for key, value in state_dict.items()
                   if key.startswith("metric_lpips.")}
    if lpips_state and pipeline.metric_lpips is not None:
        pipeline.metric_lpips.load_state_dict(lpips_state)
    return pipeline.eval()


def save_weights(pipeline: PipelineModule, path: str | os.PathLike) -> str | os.PathLike:
    """Write ``pipeline``'s weights with its options and generator arguments, as varitex-train's checkpoints
    store them (no optimizer state: it loads for inference, the notebook and the explorer, not to resume
    training). Returns ``path``."""
    checkpoint = {"state_dict": pipeline.state_dict()}
    pipeline.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path

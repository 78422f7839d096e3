"""From the command line (or a notebook's dict, or a checkpoint) to the settings of one run, read once.

    resolve("train", argv)                  -> RunSettings(opt, checkpoint): every option of the run and the
    resolve("inference", argv)                 checkpoint file's content (None for a fresh run), read once
    resolve("demo", overrides={...})        -> the same for the notebook's Demo (options as a dict)
    resolve("invert", argv), resolve("edit", argv)   -> varitex-invert, varitex-edit (own photos)
    user_errors("varitex-train")            -> the error boundary: one line and exit code 2, no traceback

Precedence, lowest first: the authors' defaults (with $DP, $FP, $OP, $CP), the --demo preset, the options
stored in the checkpoint (or --path_opt), the flags the user typed. The checkpoint's architecture options
win over everything (a trained model's shapes cannot change); see docs/architecture.md.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

from varitex.data.paths import require_path
from varitex.modules.configs import merge_saved_options
from varitex.options.eval_options import EditOptions, EvalOptions, EvaluateOptions, InvertOptions
from varitex.options.train_options import TrainOptions
from varitex.safe_io import load_json, load_npz, stem_problem

# --demo: sized so that the world, training and all three inference modes take about 9 minutes on a 2-core CPU.
# "top-1" below is benchmarks/demo_learning_curve.py's identity retrieval over the 20 val people. With 20
# people it is coarse: two runs whose expected top-1 (over 40 unseen people) is the same 0.48 gave 0.50 and 0.35.
DEMO_OPTIONS = dict(
    experiment_name="demo",
    image_h=64, image_w=64,     # demo world is rendered at 256 and resized like FFHQ
    texture_dim=128,            # smallest texture the decoder supports
    nc_feature2image=16,        # U-Net width at the top level
    network_width=0.25,         # encoder and decoders at 1/4 of the authors' widths: 0.83 s per step of batch 8
                                # on 2 CPU cores, a 60 MB checkpoint instead of 540 MB. Identity retrieval after
                                # 460 steps, as the expected top-1 among 20 of 40 unseen people of another demo
                                # world: 0.48 at 1/4, 0.34 at 1/8 (0.57 s per step); KL 1e-3 at 1/4: 0.48 too
    lambda_vgg=0.0,             # VGG-19 ImageNet weights cannot be downloaded offline
    no_lpips=True,              # neither can LPIPS' AlexNet weights (the module says so once)
    lambda_gan=0.0,             # no discriminator: its step recomputes the generator, a third of the time
    lr=1e-2,                    # 10x the authors' (meant for 44 epochs of FFHQ): Adam moves each weight by about
                                # lr per step. Batch 2 at 5e-3 (the previous demo's) gives top-1 0.20, val L2 0.212
                                # after 360 steps; batch 8 at 1e-2 gives 0.30, 0.201 after 230 steps (same time);
                                # at 2e-2, 0.25 after 230 steps
    lambda_kl=0.01,             # the authors' 0.1 pulls the short run's latents together (KL collapse: every
                                # person the same average head; top-1 0.10 against 0.20 at 0.01 after 50 steps of
                                # batch 8 at full width); 1e-4 is no better than 0.01 (0.25 vs 0.30, 230 steps)
    lambda_rgb_texture=1.0,     # the authors' optional loss tying the texture's first 3 channels to the photo's
                                # colours: top-1 0.30 instead of 0.25 after 230 steps (10 is no better)
    transform_mode="f",         # flips only: the full affine augmentation slows down so short a run
    batch_size=8,
    max_epochs=20,              # 460 steps over the 180 training people, 7.4 min on a 2-core CPU: top-1 0.50,
                                # val L2 0.171. At width 1/8, a learning rate decaying with a cosine gave the same
                                # expected top-1 as a constant one (0.34), and 0.31 over 30 epochs
    display_freq=460,           # pictures once, at the end
    num_workers=1,
    keep_checkpoints=1,
    precise_bn=64,              # images; the running statistics of so short a run lag its weights
    n=4,                        # inference: 4 val images, 3 x 7 poses each in modes posed and random
)
# The options of DEMO_OPTIONS that shape the demo network (the benchmarks build "the demo model" from them).
DEMO_ARCHITECTURE = ("image_h", "image_w", "texture_dim", "nc_feature2image", "network_width")
DEMO_CHECKPOINT = os.path.join("demo", "checkpoints", "last.ckpt")  # below path_out

TRACEBACK_ENV = "VARITEX_TRACEBACK"


def explicit_flags(options_class, argv):
    """Names of the options given on the command line ``argv`` (abbreviations resolved by argparse).

    Args:
        options_class: TrainOptions or EvalOptions.
        argv: list of strings; None reads sys.argv.
    Returns:
        set of option names (argparse dests).
    """
    parser = options_class().parser
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def apply_demo_options(opt, explicit):
    """Point ``opt`` at the embedded demo world (generated on first use) and apply DEMO_OPTIONS.

    Explicit command-line flags win over the demo settings; environment variables do not (--demo always
    uses the demo world). Outputs go to ``./outputs`` unless --path_out is given.
    """
    from varitex.demo_world.world import ensure_demo_world

    root = str(ensure_demo_world())
    demo_paths = dict(
        dataroot_npy=os.path.join(root, "FFHQ", "preprocessed_dataset"),
        image_folder=os.path.join(root, "FFHQ", "images"),
        path_bfm=os.path.join(root, "basel_facemodel", "model2017-1_face12_nomouth.h5"),
        path_uv=os.path.join(root, "basel_facemodel", "face12.json"),
        path_out="outputs",
    )
    for name, value in {**demo_paths, **DEMO_OPTIONS}.items():
        if name not in explicit and hasattr(opt, name):
            setattr(opt, name, value)
    if "checkpoint" not in explicit:
        opt.checkpoint = None
    return opt


def demo_checkpoint_path(opt):
    """Where `varitex-train --demo` leaves its final checkpoint for this ``opt.path_out``."""
    return os.path.join(opt.path_out, DEMO_CHECKPOINT)


def require_file(path, option):
    """Return ``path`` if it is an existing file, else raise FileNotFoundError naming the option."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--{option}: file not found: {path}")
    return path


def require_dir(path, option):
    """Return ``path`` if it is an existing folder, else raise FileNotFoundError naming the option."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--{option}: folder not found: {path}")
    return path


def ensure_writable_dir(path, option="path_out"):
    """Create ``path`` if needed and check that files can be written there.

    Raises:
        PermissionError: naming the option, the folder and the reason.
    """
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".varitex_write_test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as error:
        raise PermissionError(f"--{option}: cannot write to the output folder {path} "
                              f"({error.strerror or error})") from None
    return path


def check_writable_dir(path, option="path_out"):
    """Raise PermissionError as ensure_writable_dir would when ``path`` cannot be created or written to,
    without creating anything (the nearest existing folder above it must be a writable folder)."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        reason = "Not a directory" if not os.path.isdir(existing) else "Permission denied"
        raise PermissionError(f"--{option}: cannot write to the output folder {path} ({reason}: {existing})")


def check_split(opt):
    """Raise ValueError unless ``opt.dataset_split`` is 'all' or a key of dataset_splits.npz."""
    if opt.dataset_split == "all":
        return
    path = os.path.join(opt.dataroot_npy, "dataset_splits.npz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--dataroot_npy: {path} is missing")
    available = sorted(load_npz(path, what="dataset file"))
    if opt.dataset_split not in available:
        raise ValueError(f"--dataset_split {opt.dataset_split!r} does not exist: {path} has "
                         f"{', '.join(available)} (or use 'all')")


def resolve_device(opt):
    """Check ``--device`` and fall back from ``cuda`` to the CPU (with a note) when no GPU is available; returns
    opt.

    Raises:
        ValueError: one line naming the value, for anything that is not cpu, cuda, cuda:N (an existing GPU)
            or mps (when available).
    """
    value = str(opt.device)
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps") or (device.type != "cuda" and device.index):
        raise ValueError(f"--device {value!r} is not a device: use cpu, cuda, cuda:N (N a GPU index) or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("note: no CUDA device available, running on the CPU (--device cpu)", file=sys.stderr)
        opt.device = "cpu"
    elif device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {value}: there is no GPU {device.index} (this machine has "
                         f"{torch.cuda.device_count()}: cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: Apple's Metal backend is not available on this machine; use cpu")
    return opt


class RunSettings(NamedTuple):
    """What ``resolve`` hands to an entry point."""
    opt: argparse.Namespace        # every option of the run (the authors' names)
    checkpoint: dict | None        # the content of --checkpoint, read once; None for a fresh run


PROGRAMS = {"train": TrainOptions, "inference": EvalOptions, "evaluate": EvaluateOptions, "demo": EvalOptions,
            "invert": InvertOptions, "edit": EditOptions}
# Paths each program needs, checked after all sources are merged (invert and edit need --path_out only
# when --output is not given).
REQUIRED_PATHS = {
    "train": ("dataroot_npy", "image_folder", "path_bfm", "path_uv", "path_out"),
    "inference": ("dataroot_npy", "image_folder", "path_bfm", "path_uv", "path_out"),
    "evaluate": ("dataroot_npy", "image_folder", "path_bfm", "path_uv"),
    "demo": ("path_bfm", "path_uv"),
    "invert": ("dataroot_npy", "image_folder"),
    "edit": ("dataroot_npy", "path_bfm", "path_uv"),
}
# --dataset_split when not given: the authors' inference ran on val; one's own photos are inverted and
# edited all together.
DEFAULT_SPLIT = {"inference": "val", "evaluate": "val", "demo": "val", "invert": "all", "edit": "all"}


def resolve(program: str, argv: list[str] | None = None, overrides: Mapping[str, Any] | None = None) -> RunSettings:
    """The one place where options become a run's settings: defaults, --demo preset, checkpoint, flags.

    Args:
        program: "train", "inference", "evaluate", "demo" (the notebook's Demo class), "invert" or "edit".
        argv: command-line flags (None: sys.argv for train/inference, none for the demo).
        overrides: option values that count as typed by the user (the notebook's dict, keyword arguments).
    Returns:
        RunSettings(opt, checkpoint).
    Raises:
        MissingPathError, FileNotFoundError, ValueError: with a message naming the option at fault.
    """
    options_class = PROGRAMS[program]
    if program == "demo" and argv is None:
        argv = []
    overrides = dict(overrides or {})
    opt = options_class().parse(argv)
    explicit = explicit_flags(options_class, argv) | set(overrides)
    for name, value in overrides.items():
        setattr(opt, name, value)
    if program != "train":
        if "dataset_split" not in explicit:
            opt.dataset_split = DEFAULT_SPLIT[program]
        explicit = explicit | {"batch_size"}  # inference's batch size is this machine's, not the training run's
    if opt.demo:
        apply_demo_options(opt, explicit)
        if program != "train" and not opt.checkpoint:
            opt.checkpoint = demo_checkpoint_path(opt)
            if not os.path.isfile(opt.checkpoint):
                raise FileNotFoundError(f"no demo checkpoint at {opt.checkpoint}: train it first with "
                                        f"`varitex-train --demo` (or pass --checkpoint)")
    checkpoint = None
    if program != "train":
        require_path(opt, "checkpoint")
    if opt.checkpoint:
        from varitex.checkpoints import read_checkpoint

        from varitex.checkpoints import stored_options

        checkpoint = read_checkpoint(require_file(opt.checkpoint, "checkpoint"))
        saved = stored_options(checkpoint, opt.checkpoint)
        if getattr(opt, "path_opt", None):
            saved = load_json(require_file(opt.path_opt, "path_opt"), what="--path_opt file")
            if not isinstance(saved, dict):
                raise ValueError(f"--path_opt {opt.path_opt} holds a JSON {type(saved).__name__}, not the object "
                                 f"of options a training run writes to opt.json")
        if saved:
            merge_saved_options(opt, saved, explicit)
    for option in REQUIRED_PATHS[program]:
        require_path(opt, option)
    if program in ("invert", "edit"):
        if not opt.output:
            require_path(opt, "path_out")
        require_dir(opt.dataroot_npy, "dataroot_npy")
        if program == "invert":
            require_dir(opt.image_folder, "image_folder")
    check_plain_names(program, opt)
    if program == "train" and opt.dataset_split not in ("train", "all"):
        raise ValueError(f"--dataset_split {opt.dataset_split!r} cannot be used for training: use 'train' "
                         f"(train on the train split, validate on val) or 'all' (everything, no validation)")
    if program in ("inference", "evaluate", "invert", "edit"):
        check_split(opt)
    return RunSettings(resolve_device(opt), checkpoint)


def check_plain_names(program, opt):
    """Refuse option values that would lead outside --path_out (they name folders inside it) and, for
    inference, a sample count that is neither positive nor -1."""
    if program == "train":
        problem = stem_problem(opt.experiment_name)
        if problem:
            raise ValueError(f"--experiment_name {opt.experiment_name!r} {problem}: it names a folder inside "
                             f"--path_out")
        return
    if opt.n == 0 or opt.n < -1:
        raise ValueError(f"--n {opt.n}: give a positive number of samples, or -1 for the whole split")
    problem = stem_problem(f"inference_{opt.dataset_split}")
    if problem:
        raise ValueError(f"--dataset_split {opt.dataset_split!r}: the output folder name inference_"
                         f"{opt.dataset_split} {problem}")


def _user_error_types():
    """Exceptions that report a bad input (file, option, checkpoint, data) rather than a bug."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from varitex.modules.pretrained import MissingPretrainedWeightsError
    return ValueError, OSError, MissingPretrainedWeightsError, MisconfigurationException


@contextlib.contextmanager
def user_errors(program):
    """Turn the project's own errors (bad paths, options, checkpoints, data, missing pretrained weights,
    Lightning's configuration errors) into one line and exit code 2.

    Set the environment variable VARITEX_TRACEBACK=1 to see the full traceback instead.
    """
    try:
        yield
    except _user_error_types() as error:
        if os.environ.get(TRACEBACK_ENV):
            raise
        message = " ".join(str(error).split()) or type(error).__name__  # one line, whatever the error holds
        print(f"{program}: error: {message}", file=sys.stderr)
        sys.exit(2)

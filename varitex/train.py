"""Train VariTex (losses and schedule: docs/architecture.md).

    python varitex/train.py [options]        # the authors' command line; paths default to $DP, $FP, $OP
    python -m varitex.train --demo           # the embedded synthetic demo, about 6 minutes on a 2-core CPU
    varitex-train --checkpoint RUN/checkpoints/last.ckpt   # resume: weights, optimizers, epoch and step

A run writes into ``path_out/experiment_name/``: ``opt.json``, ``checkpoints/`` (one per epoch and
``last.ckpt``) and the logger's files (tensorboard events, or wandb). A folder that already holds a run is
never reused silently: resume it (--checkpoint RUN/checkpoints/last.ckpt), pick another --experiment_name, or
replace it with --overwrite. Checkpoints and opt.json are written atomically; resuming is exact
(varitex.resume).
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import warnings
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a script (`python varitex/train.py`): import the package from this checkout.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerStatus
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch.utils.data import DataLoader

from varitex import SEED, performance
from varitex.callbacks import ImageLogCallback, LossProgressBar, PreciseBatchNorm
from varitex.modules.generator import GeneratorConfig
from varitex.options import settings
from varitex.options.settings import RunSettings
from varitex.resume import EpochShuffle, ResumableTraining
from varitex.safe_io import save_json

RUN_CONTENT = ("opt.json", "checkpoints", "logs", "wandb")  # what a training run writes into its folder
VALIDATION_FRACTION = 0.25  # the authors validate on 25% of the val split


def make_dataloaders(opt):
    """(train_loader, val_loader or None) over NPYDataset; augmentation only for training.

    The training order and augmentation come from an EpochShuffle sampler (``train_loader.sampler``), which
    makes them a function of (SEED, epoch) so that resuming is exact.
    """
    from varitex.data.npy_dataset import NPYDataset

    workers = dict(num_workers=opt.num_workers, persistent_workers=opt.num_workers > 0,
                   pin_memory=torch.cuda.is_available() and opt.device != "cpu")
    if opt.dataset_split == "all":
        train_set, val_set = NPYDataset(opt, split="all", augmentation=True), None
    else:
        train_set = NPYDataset(opt, split="train", augmentation=True)
        val_set = NPYDataset(opt, split="val", augmentation=False)
    train_set.check_not_empty("training")
    sampler = EpochShuffle(len(train_set), opt.batch_size, SEED)
    train_loader = DataLoader(train_set, batch_size=opt.batch_size, sampler=sampler, **workers)
    val_loader = None
    if val_set is not None and len(val_set) > 0:
        val_loader = DataLoader(val_set, batch_size=opt.batch_size, shuffle=False, **workers)
    return train_loader, val_loader


def validation_batches(n_items, batch_size, world_size):
    """Lightning's ``limit_val_batches`` for 25% of the val split, at least one batch per device."""
    batches_per_device = math.ceil(n_items / (batch_size * world_size))
    return VALIDATION_FRACTION if VALIDATION_FRACTION * batches_per_device >= 1 else 1


def make_model(run: RunSettings, generator_config: GeneratorConfig | None = None):
    """PipelineModule for the run; weights from its checkpoint if given.

    Returns:
        (model, ckpt_path): ckpt_path is what ``Trainer.fit`` resumes from (our own checkpoints: weights,
        optimizer states, epoch and step); None for a fresh run or the authors' Lightning-1.x checkpoint,
        whose weights are loaded and whose training schedule starts again at epoch 0.
    """
    from varitex.checkpoints import load_pipeline
    from varitex.modules.pipeline import PipelineModule

    opt = run.opt
    if run.checkpoint is None:
        return PipelineModule(opt, generator_config=generator_config), None
    # Clear errors for a checkpoint of another architecture.
    model = load_pipeline(opt.checkpoint, opt, checkpoint=run.checkpoint)
    model.train()
    if "varitex_opt" in run.checkpoint:
        return model, opt.checkpoint
    print(f"Loaded the weights of the authors' checkpoint {opt.checkpoint}; training starts at epoch 0.")
    return model, None


def make_logger(opt, run_dir):
    """TensorBoard logger in ``run_dir`` (default) or Weights & Biases (``--logger wandb``)."""
    if opt.logger == "wandb":
        try:
            import wandb  # noqa: F401  (only needed when asked for)
        except ImportError:
            raise ValueError("--logger wandb needs the wandb package: pip install wandb") from None
        from lightning.pytorch.loggers import WandbLogger
        return WandbLogger(save_dir=run_dir, name=opt.experiment_name, project=opt.project)
    from lightning.pytorch.loggers import TensorBoardLogger
    return TensorBoardLogger(save_dir=opt.path_out, name=opt.experiment_name, version="logs")


def _devices(value):
    """--devices as Lightning wants it: an int for a count, else the string (e.g. "auto", "0,1").

    Raises:
        ValueError: naming the value, for anything else (Lightning would raise a TypeError).
    """
    text = str(value).strip()
    if text.lstrip("-").isdigit() and int(text) >= -1 and int(text) != 0:
        return int(text)
    if text == "auto" or ("," in text and all(part.strip().isdigit() for part in text.rstrip(",").split(","))):
        return text
    raise ValueError(f"--devices {value!r}: use a number of devices (e.g. 4, or -1 for all), a comma-separated "
                     f"list of GPU indices (e.g. 0,1) or auto")


def make_trainer(opt, run_dir, train_loader, extra_callbacks=()):
    from varitex.checkpoints import AtomicCheckpointIO

    checkpoints = ModelCheckpoint(
        dirpath=os.path.join(run_dir, "checkpoints"),
        filename="epoch{epoch:03d}-step{step}", auto_insert_metric_name=False,
        save_top_k=opt.keep_checkpoints, every_n_epochs=1,
        save_last="link",              # last.ckpt is a link to the newest epoch file (a copy where links fail)
        save_on_exception=True,        # Ctrl-C or a crash leaves last.ckpt to resume from
        enable_version_counter=False)  # one run per folder (check_run_folder), so no -v1 suffixes
    # ResumableTraining first: it counts a batch as done before any later callback may interrupt the run.
    callbacks = [ResumableTraining(train_loader.sampler, SEED), checkpoints, LossProgressBar(), ImageLogCallback(opt),
                 *extra_callbacks]
    if opt.precise_bn > 0:
        callbacks.append(PreciseBatchNorm(opt.precise_bn, opt.batch_size))
    return L.Trainer(
        accelerator="cpu" if opt.device == "cpu" else "auto",
        devices=_devices(opt.devices), num_nodes=opt.num_nodes, strategy=performance.training_strategy(opt),
        precision=opt.precision, max_epochs=opt.max_epochs,
        logger=make_logger(opt, run_dir),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        fast_dev_run=opt.debug,
        log_every_n_steps=max(1, min(50, len(train_loader) // 4)),
        default_root_dir=run_dir,
    )


def write_options(opt, run_dir):
    """Write every option of this run to ``run_dir/opt.json`` (readable by inference and by the authors' code),
    atomically."""
    return str(save_json(os.path.join(run_dir, "opt.json"), vars(opt), indent=2, sort_keys=True))


def check_run_folder(opt, run_dir):
    """The overwrite policy: a folder that already holds a run (opt.json, checkpoints/, logs/) is only written
    to when resuming from one of its own checkpoints, or, with --overwrite, after removing that run.

    Returns:
        The names in RUN_CONTENT that --overwrite must remove before training (nothing is removed here).
    Raises:
        ValueError: naming the folder and the flags to continue, train elsewhere or overwrite.
    """
    run_dir = Path(run_dir)
    existing = [name for name in RUN_CONTENT if (run_dir / name).is_file()
                or ((run_dir / name).is_dir() and any((run_dir / name).iterdir()))]
    # The other processes of a multi-GPU run start after rank 0 has written opt.json: rank 0 decides alone.
    if not existing or opt.debug or rank_zero_only.rank != 0:
        return []
    if opt.checkpoint and Path(opt.checkpoint).absolute().parent.resolve() == (run_dir / "checkpoints").resolve():
        return []  # resuming this run
    if opt.overwrite:
        return existing
    last = run_dir / "checkpoints" / "last.ckpt"
    resume = f"resume it with --checkpoint {last}, " if last.exists() else ""
    raise ValueError(f"--experiment_name {opt.experiment_name}: {run_dir} already holds a training run "
                     f"({', '.join(existing)}), which is kept: {resume}train under another --experiment_name, or "
                     f"pass --overwrite to delete that run and start again")


def train(run: RunSettings, extra_callbacks=(), generator_config: GeneratorConfig | None = None) -> L.Trainer:
    """Train the run ``settings.resolve("train", argv)``; returns the finished Lightning Trainer.

    Args:
        run: the options and the checkpoint (read once) of the run.
        extra_callbacks: more Lightning callbacks.
        generator_config: the generator's constructor arguments for a fresh run (default: from the options).
    Exits with status 1 after Ctrl-C, once ``checkpoints/last.ckpt`` has been written.
    """
    opt = run.opt
    run_dir = os.path.join(opt.path_out, opt.experiment_name)
    _devices(opt.devices)  # a typo in --devices stops here, before anything is read or written
    to_remove = check_run_folder(opt, run_dir)
    settings.check_writable_dir(run_dir)
    L.seed_everything(SEED, workers=True, verbose=False)
    train_loader, val_loader = make_dataloaders(opt)
    model, ckpt_path = make_model(run, generator_config)
    # Missing VGG-19 / AlexNet weights stop the run here, before anything is written.
    model.require_pretrained_weights(validation=val_loader is not None)
    performance.prepare_networks(model, opt)  # --channels_last, --compile
    settings.ensure_writable_dir(run_dir)
    trainer = make_trainer(opt, run_dir, train_loader, extra_callbacks)
    if val_loader is not None:
        trainer.limit_val_batches = validation_batches(len(val_loader.dataset), opt.batch_size,
                                                       trainer.world_size)
    if trainer.is_global_zero:
        for name in to_remove:  # --overwrite
            path = os.path.join(run_dir, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    if not opt.debug and trainer.is_global_zero:
        write_options(opt, run_dir)
    # Lightning cannot see that the training DataLoader resumes mid-epoch (ResumableTraining restores it).
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
    try:
        trainer.fit(model, train_loader, val_loader, ckpt_path=ckpt_path)
    except SystemExit:
        if trainer.state.status == TrainerStatus.INTERRUPTED and trainer.is_global_zero:
            last = os.path.join(run_dir, "checkpoints", "last.ckpt")
            print(f"Interrupted at step {trainer.global_step}. Resume with: --checkpoint {last}", file=sys.stderr)
        raise
    return trainer


def main(argv=None):
    """Console entry point ``varitex-train``."""
    with settings.user_errors("varitex-train"):
        run = settings.resolve("train", argv)
        trainer = train(run)
    opt = run.opt
    if not opt.debug:
        print(f"Done: {trainer.global_step} steps, {trainer.current_epoch} epochs. "
              f"Checkpoints in {os.path.join(opt.path_out, opt.experiment_name, 'checkpoints')}")


if __name__ == "__main__":
    main()

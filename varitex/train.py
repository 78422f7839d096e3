"""Train VariTex (losses and schedule: docs/architecture.md).

    python varitex/train.py [options]        # the authors' command line; paths default to $DP, $FP, $OP
    python -m varitex.train --demo           # the embedded synthetic demo, about 6 minutes on a 2-core CPU
    varitex-train --checkpoint RUN/checkpoints/last.ckpt   # resume: weights, optimizers, epoch and step

A run writes into ``path_out/experiment_name/``: ``opt.json``, ``checkpoints/`` (one per epoch and
``last.ckpt``) and the logger's files (tensorboard events, or wandb).
"""
from __future__ import annotations

import json
import math
import os
import sys

if __name__ == "__main__" and not __package__:
    # Run as a script (`python varitex/train.py`): import the package from this checkout.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerStatus
from torch.utils.data import DataLoader

from varitex import SEED, performance
from varitex.callbacks import ImageLogCallback, LossProgressBar, PreciseBatchNorm
from varitex.modules.generator import GeneratorConfig
from varitex.options import settings
from varitex.options.settings import RunSettings

VALIDATION_FRACTION = 0.25  # the authors validate on 25% of the val split


def make_dataloaders(opt):
    """(train_loader, val_loader or None) over NPYDataset; augmentation only for training."""
    from varitex.data.npy_dataset import NPYDataset

    workers = dict(num_workers=opt.num_workers, persistent_workers=opt.num_workers > 0,
                   pin_memory=torch.cuda.is_available() and opt.device != "cpu")
    if opt.dataset_split == "all":
        train_set, val_set = NPYDataset(opt, split="all", augmentation=True), None
    else:
        train_set = NPYDataset(opt, split="train", augmentation=True)
        val_set = NPYDataset(opt, split="val", augmentation=False)
    train_loader = DataLoader(train_set, batch_size=opt.batch_size, shuffle=True, **workers)
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
    """--devices as Lightning wants it: an int for a count, else the string (e.g. "auto", "0,1")."""
    return int(value) if str(value).lstrip("-").isdigit() else value


def make_trainer(opt, run_dir, train_loader, extra_callbacks=()):
    checkpoints = ModelCheckpoint(
        dirpath=os.path.join(run_dir, "checkpoints"),
        filename="epoch{epoch:03d}-step{step}", auto_insert_metric_name=False,
        save_top_k=opt.keep_checkpoints, every_n_epochs=1,
        save_last="link",              # last.ckpt is a link to the newest epoch file (a copy where links fail)
        save_on_exception=True,        # Ctrl-C or a crash leaves last.ckpt to resume from
        enable_version_counter=False)  # re-running a command overwrites its own run's files
    callbacks = [checkpoints, LossProgressBar(), ImageLogCallback(opt), *extra_callbacks]
    if opt.precise_bn > 0:
        callbacks.append(PreciseBatchNorm(opt.precise_bn, opt.batch_size))
    return L.Trainer(
        accelerator="cpu" if opt.device == "cpu" else "auto",
        devices=_devices(opt.devices), num_nodes=opt.num_nodes, strategy=performance.training_strategy(opt),
        precision=opt.precision, max_epochs=opt.max_epochs,
        logger=make_logger(opt, run_dir),
        callbacks=callbacks,
        fast_dev_run=opt.debug,
        log_every_n_steps=max(1, min(50, len(train_loader) // 4)),
        default_root_dir=run_dir,
    )


def write_options(opt, run_dir):
    """Write every option of this run to ``run_dir/opt.json`` (readable by inference and by the authors' code)."""
    path = os.path.join(run_dir, "opt.json")
    with open(path, "w") as file:
        json.dump(vars(opt), file, indent=2, sort_keys=True)
    return path


def train(run: RunSettings, extra_callbacks=(), generator_config: GeneratorConfig | None = None) -> L.Trainer:
    """Train the run ``settings.resolve("train", argv)``; returns the finished Lightning Trainer.

    Args:
        run: the options and the checkpoint (read once) of the run.
        extra_callbacks: more Lightning callbacks.
        generator_config: the generator's constructor arguments for a fresh run (default: from the options).
    Exits with status 1 after Ctrl-C, once ``checkpoints/last.ckpt`` has been written.
    """
    opt = run.opt
    run_dir = settings.ensure_writable_dir(os.path.join(opt.path_out, opt.experiment_name))
    L.seed_everything(SEED, workers=True, verbose=False)
    train_loader, val_loader = make_dataloaders(opt)
    model, ckpt_path = make_model(run, generator_config)
    performance.prepare_networks(model, opt)  # --channels_last, --compile
    trainer = make_trainer(opt, run_dir, train_loader, extra_callbacks)
    if val_loader is not None:
        trainer.limit_val_batches = validation_batches(len(val_loader.dataset), opt.batch_size,
                                                       trainer.world_size)
    if not opt.debug and trainer.is_global_zero:
        write_options(opt, run_dir)
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

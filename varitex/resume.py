"""Exact resume: a training run resumed from any of its checkpoints computes what the uninterrupted run computes.

What a training step depends on, and how it is made reproducible from a checkpoint:
- weights, BatchNorm buffers, spectral-norm vectors, optimizer states, Lightning's progress counters: stored
  in every checkpoint by Lightning;
- the data order: `EpochShuffle` draws the permutation of epoch ``e`` from (seed, e) alone, not from a global
  generator whose state depends on what else ran before;
- the augmentation of each item: drawn from a seed the sampler hands out with the index, so it depends neither
  on the DataLoader worker that loads the item nor on what that worker loaded before (persistent workers);
- where in the epoch the run stopped: `ResumableTraining` stores the epoch and the batches done in the
  checkpoint, and the sampler skips those batches after a mid-epoch resume;
- every other random draw (the latent sample, the discriminator step's recomputed sample, anything a callback
  draws: image logging, precise BatchNorm, validation): torch's, numpy's and Python's global generators are
  reseeded from (seed, rank, epoch, batch) before each training batch, and from (seed, rank, epoch) before
  each validation and at the end of each epoch.

A Ctrl-C is honoured at the end of the running batch (the checkpoint then holds a consistent state); a second
Ctrl-C stops at once.

After a Ctrl-C in the middle of an epoch, the checkpoint is written at the end of a training batch; Lightning
counts that batch as done when it restores such a checkpoint, and the sampler skips the same number of batches.
"""
import math
import random
import signal
import sys
import threading

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


def mix_seed(*numbers):
    """A 62-bit seed from integers (seed, epoch, ...), well spread even for neighbouring inputs."""
    state = 0x9E3779B97F4A7C15
    for number in numbers:
        state = (state ^ (int(number) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 31
    return state >> 2


class EpochShuffle(torch.utils.data.Sampler):
    """A random order of ``n_items`` per epoch that depends only on (seed, epoch), yielding ``(index, seed)``
    pairs: NPYDataset draws the item's augmentation from that seed.

    Args:
        n_items: dataset length. batch_size: items per batch (to skip whole batches after a resume).
        seed: base seed of the run.
    """

    def __init__(self, n_items, batch_size, seed):
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.epoch = 0
        self.skip_batches = 0  # batches of self.epoch already trained (set when resuming mid-epoch)

    def __len__(self):
        return self.n_items

    def batches_per_epoch(self):
        return math.ceil(self.n_items / self.batch_size)

    def set_epoch(self, epoch):
        """Called by Lightning (and ResumableTraining) at the start of each epoch."""
        if epoch != self.epoch:
            self.epoch, self.skip_batches = epoch, 0

    def resume_at(self, epoch, batches_done):
        """Continue after ``batches_done`` batches of ``epoch`` (the next epoch when that one was complete)."""
        if batches_done >= self.batches_per_epoch():
            epoch, batches_done = epoch + 1, 0
        self.epoch, self.skip_batches = epoch, batches_done

    def __iter__(self):
        generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        order = torch.randperm(self.n_items, generator=generator).tolist()
        item_seeds = torch.randint(2 ** 62, (self.n_items,), generator=generator).tolist()
        start, self.skip_batches = self.skip_batches * self.batch_size, 0
        for position in range(start, self.n_items):
            yield order[position], item_seeds[position]


class ResumableTraining(Callback):
    """Reseeds the global generators before each training batch, records where the epoch stands in every
    checkpoint and restores it on resume, and defers Ctrl-C to the end of the running batch.

    Args:
        sampler: the EpochShuffle of the training DataLoader. seed: base seed of the run.
    """

    def __init__(self, sampler, seed):
        self.sampler, self.seed = sampler, seed
        self.batches_done = 0
        self._interrupt_requested = False
        self._previous_handler = None

    # ---- state in the checkpoint ---------------------------------------------------------------------------

    def state_dict(self):
        return {"epoch": self.sampler.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state_dict):
        """Called when Lightning restores a checkpoint, before the training DataLoader is iterated."""
        self.sampler.resume_at(state_dict["epoch"], state_dict["batches_done"])
        self.batches_done = self.sampler.skip_batches

    # ---- randomness ----------------------------------------------------------------------------------------

    def on_train_epoch_start(self, trainer, pl_module):
        self.sampler.set_epoch(trainer.current_epoch)  # also reaches a sampler wrapped for DDP
        if self.sampler.skip_batches == 0:
            self.batches_done = 0
        self._raise_if_interrupted()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        _reseed(mix_seed(self.seed, trainer.global_rank, trainer.current_epoch, batch_idx))

    def on_validation_start(self, trainer, pl_module):
        # Before precise BatchNorm (a later callback) draws its batches, and before validation samples latents.
        if not trainer.sanity_checking:
            _reseed(mix_seed(self.seed, trainer.global_rank, trainer.current_epoch, -1))

    def on_train_epoch_end(self, trainer, pl_module):
        _reseed(mix_seed(self.seed, trainer.global_rank, trainer.current_epoch, -2))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches_done = batch_idx + 1
        self._raise_if_interrupted()

    # ---- Ctrl-C at a batch boundary ------------------------------------------------------------------------

    def on_train_start(self, trainer, pl_module):
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)

    def on_train_end(self, trainer, pl_module):
        self._restore_handler()

    def on_exception(self, trainer, pl_module, exception):
        self._restore_handler()

    def _on_sigint(self, signum, frame):
        if self._interrupt_requested:
            self._restore_handler()
            raise KeyboardInterrupt
        self._interrupt_requested = True
        print("\nCtrl-C: stopping after this batch and saving checkpoints/last.ckpt (Ctrl-C again to stop now, "
              "without a consistent checkpoint)", file=sys.stderr)

    def _raise_if_interrupted(self):
        if self._interrupt_requested:
            self._interrupt_requested = False
            raise KeyboardInterrupt

    def _restore_handler(self):
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None


def _reseed(seed):
    """Seed torch's (CPU and every CUDA device), numpy's and Python's global generators."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)

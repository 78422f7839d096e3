"""Exact resume (varitex.resume): training resumed from last.ckpt, after a whole epoch or after a Ctrl-C in the
middle of one, ends bit for bit where the uninterrupted run ends: weights, BatchNorm buffers, spectral-norm
vectors, both optimizers' states and the step count.

Runs with augmentation (all transforms), the discriminator, precise BatchNorm and image logging, i.e. every
source of randomness training has; the resumed runs load their data in a worker process, the uninterrupted
one in the main process (the augmentation must not depend on it).
"""
import os
import shutil
import signal

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from test_e2e_train_inference import TINY, light_pictures, world_flags  # noqa: F401 (a fixture)
from varitex import train
from varitex.options import settings
from varitex.checkpoints import read_checkpoint
from varitex.demo_world.world import ensure_demo_world
from varitex.resume import EpochShuffle

EPOCHS = 2
pytestmark = pytest.mark.usefixtures("light_pictures")  # smaller logged pictures, same code paths


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three people, one image each: train 2, val 1; batch size 1 gives two batches per epoch."""
    return ensure_demo_world(tmp_path_factory.mktemp("resume_world"), n_images=3, image_size=64, array_size=64,
                             images_per_identity=1)


def options(world, path_out, *extra):
    argv = world_flags(world, path_out) + TINY + [
        "--batch_size", "1", "--experiment_name", "run", "--max_epochs", str(EPOCHS), "--display_freq", "3",
        "--precise_bn", "2", "--transform_mode", "all"] + list(extra)
    return settings.resolve("train", argv)


def last_checkpoint(path_out):
    return path_out / "run" / "checkpoints" / "last.ckpt"


class SigintAt(Callback):
    """Sends the process a real SIGINT (what Ctrl-C does) at the start of training batch ``batch`` of ``epoch``,
    i.e. while that batch runs."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture(scope="module")
def uninterrupted(world, tmp_path_factory):
    path_out = tmp_path_factory.mktemp("uninterrupted")
    train.train(options(world, path_out, "--num_workers", "0"))
    return read_checkpoint(last_checkpoint(path_out))


def assert_same_training_state(resumed, reference):
    assert (resumed["epoch"], resumed["global_step"]) == (reference["epoch"], reference["global_step"])
    assert resumed["state_dict"].keys() == reference["state_dict"].keys()
    assert any("running_mean" in key for key in reference["state_dict"])  # BatchNorm buffers are compared
    assert any("weight_u" in key for key in reference["state_dict"])      # spectral-norm vectors too
    different = [key for key, value in reference["state_dict"].items()
                 if not torch.equal(resumed["state_dict"][key], value)]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    assert len(reference["optimizer_states"]) == 2  # generator and discriminator
    for got, want in zip(resumed["optimizer_states"], reference["optimizer_states"]):
        assert got["state"].keys() == want["state"].keys()
        for index, state in want["state"].items():
            for name, value in state.items():
                assert torch.equal(got["state"][index][name], value), (index, name)


@pytest.fixture(scope="module")
def after_one_epoch(world, tmp_path_factory):
    """A run stopped after epoch 1 of 2 (``--max_epochs 1``), data loaded in a worker process."""
    path_out = tmp_path_factory.mktemp("one_epoch")
    train.train(options(world, path_out, "--num_workers", "1", "--max_epochs", "1"))
    assert read_checkpoint(last_checkpoint(path_out))["epoch"] == 0
    return path_out


def resume(world, after_one_epoch, tmp_path, workers):
    shutil.copytree(after_one_epoch, tmp_path, dirs_exist_ok=True, symlinks=True)
    train.train(options(world, tmp_path, "--num_workers", workers, "--checkpoint", str(last_checkpoint(tmp_path))))
    return read_checkpoint(last_checkpoint(tmp_path))


def test_resume_after_one_of_two_epochs_is_bit_identical(world, after_one_epoch, tmp_path, uninterrupted):
    assert_same_training_state(resume(world, after_one_epoch, tmp_path, "1"), uninterrupted)


@pytest.mark.parametrize("epoch, batch", [(0, 0), (0, 1), (1, 0)])  # 2 batches per epoch: (0, 1) ends epoch 0
def test_resume_after_ctrl_c_is_bit_identical(world, tmp_path, uninterrupted, capsys, epoch, batch):
    with pytest.raises(SystemExit):
        train.train(options(world, tmp_path, "--num_workers", "1"), extra_callbacks=[SigintAt(epoch, batch)])
    interrupted = read_checkpoint(last_checkpoint(tmp_path))
    # The Ctrl-C came during that batch: the batch was finished, then the run stopped.
    batches_done = 2 * epoch + batch + 1
    assert interrupted["global_step"] == 2 * batches_done  # a generator and a discriminator step per batch
    assert "stopping after this batch" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler was put back
    train.train(options(world, tmp_path, "--num_workers", "1", "--checkpoint", str(last_checkpoint(tmp_path))))
    assert_same_training_state(read_checkpoint(last_checkpoint(tmp_path)), uninterrupted)


def test_without_the_resume_state_the_runs_differ(world, after_one_epoch, tmp_path, uninterrupted, monkeypatch):
    """The comparison above can fail: resuming with the sampler's epoch not restored gives other weights."""
    monkeypatch.setattr(EpochShuffle, "resume_at", lambda self, epoch, batches_done: None)
    monkeypatch.setattr(EpochShuffle, "set_epoch", lambda self, epoch: None)
    resumed = resume(world, after_one_epoch, tmp_path, "0")
    assert not torch.equal(resumed["state_dict"]["generator.fc_mu.weight"],
                           uninterrupted["state_dict"]["generator.fc_mu.weight"])


def test_epoch_shuffle_depends_on_seed_and_epoch_only_and_skips_done_batches():
    sampler = EpochShuffle(10, batch_size=3, seed=7)
    epoch0 = list(sampler)
    assert sorted(index for index, _ in epoch0) == list(range(10))
    assert list(EpochShuffle(10, 3, seed=7)) == epoch0
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert [i for i, _ in epoch1] != [i for i, _ in epoch0]
    sampler.resume_at(1, batches_done=2)
    assert list(sampler) == epoch1[6:]
    assert list(sampler) == epoch1  # the skip applies once
    sampler.resume_at(1, batches_done=4)  # a finished epoch: continue with the next one
    assert (sampler.epoch, sampler.skip_batches) == (2, 0)

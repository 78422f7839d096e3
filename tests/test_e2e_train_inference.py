"""End to end through the command-line entry points:
train -> checkpoint, opt.json, logged images -> resume continues the step count -> inference writes the three
modes -> the demo notebook runs against the checkpoint; and Ctrl-C leaves a checkpoint to resume from.

A generator forward costs about 25 GMAC per image even with the smallest options (the two texture decoders
have fixed widths), so these tests run on a synthetic world of 3 people with one image each (train 2, val 1),
made by the same generator as the `tiny_world` fixture.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from PIL import Image

from varitex import callbacks, inference, train
from varitex.demo_world.world import ensure_demo_world
from varitex.checkpoints import load_pipeline, read_checkpoint
from varitex.options import settings

from helpers import world_flags

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# --network_width 0.125: a 17 MB checkpoint instead of 280 MB (the suite writes dozens; CI's disk is small).
TINY = ["--image_h", "64", "--image_w", "64", "--texture_dim", "128", "--nc_feature2image", "8", "--network_width",
        "0.125", "--lambda_vgg", "0", "--no_lpips", "--num_workers", "0", "--device", "cpu", "--display_freq", "1"]


@pytest.fixture(scope="module")
def micro_world(tmp_path_factory):
    return ensure_demo_world(tmp_path_factory.mktemp("micro_world"), n_images=3, image_size=64, array_size=64,
                             images_per_identity=1)


@pytest.fixture(scope="module")
def light_pictures():
    """Smaller logged pictures (same code paths): a 2x2 pose grid, 2 interpolation steps, one item."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(callbacks, "POSE_GRID_DEG", (-30, 30))
        patch.setattr(callbacks, "N_INTERPOLATION", 2)
        patch.setattr(callbacks, "N_SHOWN", 1)
        yield


@pytest.fixture(scope="module")
def run(micro_world, tmp_path_factory, light_pictures):
    """One epoch (one batch) of training with the discriminator on, then one more epoch resumed from last.ckpt."""
    path_out = tmp_path_factory.mktemp("runs")
    argv = world_flags(micro_world, path_out) + TINY + ["--batch_size", "2", "--experiment_name", "tiny",
                                                        "--max_epochs", "1"]
    train.main(argv)
    run_dir = path_out / "tiny"
    first = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    train.main(argv[:-1] + ["2", "--checkpoint", str(run_dir / "checkpoints" / "last.ckpt"), "--display_freq", "9"])
    return dict(world=micro_world, path_out=path_out, run_dir=run_dir, first=first,
                second=read_checkpoint(run_dir / "checkpoints" / "last.ckpt"))


def test_training_writes_checkpoint_and_options(run):
    checkpoints = run["run_dir"] / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch000-step2.ckpt", "epoch001-step4.ckpt", "last.ckpt"]
    assert (checkpoints / "last.ckpt").resolve() == (checkpoints / "epoch001-step4.ckpt").resolve()
    options = json.loads((run["run_dir"] / "opt.json").read_text())
    assert (options["image_h"], options["texture_dim"], options["experiment_name"]) == (64, 128, "tiny")
    stored = run["first"]["varitex_opt"]
    assert (stored["nc_feature2image"], stored["lambda_vgg"], stored["lambda_gan"]) == (8, 0.0, 1.0)
    assert len(run["first"]["optimizer_states"]) == 2  # generator and discriminator


def test_resume_continues_epoch_and_step_count(run):
    # Manual optimization counts every optimizer step: G and D, one batch per epoch.
    steps_per_epoch = 2
    assert (run["first"]["epoch"], run["first"]["global_step"]) == (0, steps_per_epoch)
    assert (run["second"]["epoch"], run["second"]["global_step"]) == (1, 2 * steps_per_epoch)
    for before, after in zip(run["first"]["optimizer_states"], run["second"]["optimizer_states"]):
        step_before = next(iter(before["state"].values()))["step"]
        assert next(iter(after["state"].values()))["step"] == 2 * step_before


def test_training_logs_losses_and_pictures(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run["run_dir"] / "logs"), size_guidance={"images": 0}).Reload()
    expected = {f"{stage}/{name}" for stage in ("train", "val") for name in
                ("combined", "posterior_std3", "prior_std2", "posed", "interpolation", "neural_texture")}
    assert expected <= set(events.Tags()["images"])
    assert {"train/reconstruction_l2", "train/kl", "train/discriminator", "val/psnr"} <= set(events.Tags()["scalars"])
    posed = events.Images("train/posed")[0]
    assert (posed.width, posed.height) == (2 * 64 + 3 * 2, 2 * 64 + 3 * 2)  # 2x2 grid with 2-pixel borders


@pytest.fixture(scope="module")
def authors_inference(run, tmp_path_factory):
    """The authors' command ``python varitex/inference.py --checkpoint $CP --dataset_split val`` with DP, FP, OP
    and CP set (its default --n 30 takes the whole val split, one image)."""
    world = run["world"]
    path_out = tmp_path_factory.mktemp("inference_out")
    env = dict(os.environ, DP=str(world), FP=str(world), OP=str(path_out),
               CP=str(run["run_dir"] / "checkpoints" / "last.ckpt"))
    result = subprocess.run([sys.executable, "varitex/inference.py", "--checkpoint", env["CP"], "--dataset_split",
                             "val"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    split = np.load(world / "FFHQ" / "preprocessed_dataset" / "dataset_splits.npz")["val"]
    stem = str(np.load(world / "FFHQ" / "preprocessed_dataset" / "filename.npy")[split[0]])
    return dict(root=path_out / "inference_val", stdout=result.stdout, stem=stem, world=world, env=env)


def test_authors_inference_command_writes_the_three_modes(authors_inference):
    root, stem = authors_inference["root"], authors_inference["stem"]
    assert f"Results in {root}" in authors_inference["stdout"]
    assert sorted(os.listdir(root / "reconstruction")) == sorted(["latents.npy", f"{stem}.png"])
    latents = np.load(root / "reconstruction" / "latents.npy")
    assert latents.shape == (1, 2, 256) and (latents[:, 1] > 0).all()
    poses = [f"{axis}_{angle}" for axis in ("pitch", "yaw", "pitch_yaw") for angle in range(-45, 46, 15)]
    for mode, name in (("posed", f"{stem}.png"), ("random", "00000.png")):
        assert sorted(os.listdir(root / mode)) == sorted(poses)
        assert all(os.listdir(root / mode / pose) == [name] for pose in poses)
        assert np.asarray(Image.open(root / mode / "yaw_45" / name)).shape == (64, 64, 3)
    # Outputs are masked with SEGMENTATION_PREDICTED > 0.7: the corners are background, exactly black.
    corners = np.asarray(Image.open(root / "reconstruction" / f"{stem}.png"))[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 0).all()


def test_inference_mode_random_alone_reuses_latents(authors_inference, monkeypatch, capsys):
    root = authors_inference["root"]
    for name in ("DP", "FP", "OP", "CP"):
        monkeypatch.setenv(name, authors_inference["env"][name])
    written = root / "random" / "pitch_-45" / "00000.png"
    written.unlink()
    inference.main(["--dataset_split", "val", "--mode", "random", "--device", "cpu", "--num_workers", "0"])
    assert written.is_file()
    assert "reconstruction" not in capsys.readouterr().err  # mode 1 did not run again


def test_notebook_runs_against_the_checkpoint(run, monkeypatch, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("CP", str(run["run_dir"] / "checkpoints" / "last.ckpt"))
    monkeypatch.setenv("DP", str(run["world"]))
    monkeypatch.setenv("FP", str(run["world"]))
    notebook = nbformat.read(PROJECT_ROOT / "demo.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [out for cell in notebook.cells for out in cell.get("outputs", []) if out.output_type == "error"]
    assert not errors
    images = [out for cell in notebook.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert len(images) >= 11
    assert list(tmp_path.glob("outputs/demo_yaw.*"))
    # "Your photo": the astronaut preprocessed, inverted (the refinement lowers its error), re-posed, in a video.
    assert (tmp_path / "outputs" / "your_photo" / "images" / "astronaut.png").is_file()
    printed = "".join(out.get("text", "") for cell in notebook.cells for out in cell.get("outputs", []))
    before, after = (float(x) for x in re.search(r"encoder only ([\d.]+), after \d+ steps ([\d.]+)", printed).groups())
    assert after < before
    assert list(tmp_path.glob("outputs/your_photo_yaw.*"))


class InterruptAt(Callback):
    """Raises KeyboardInterrupt (what Ctrl-C does) after training batch ``batch``."""

    def __init__(self, batch):
        self.batch = batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == self.batch:
            raise KeyboardInterrupt


def test_ctrl_c_leaves_a_checkpoint_to_resume_from(micro_world, tmp_path, capsys, light_pictures):
    argv = world_flags(micro_world, tmp_path) + TINY + ["--batch_size", "1", "--lambda_gan", "0", "--max_epochs", "1",
                                                     "--display_freq", "9"]
    with pytest.raises(SystemExit) as exit_info:
        train.train(settings.resolve("train", argv), extra_callbacks=[InterruptAt(batch=0)])
    last = tmp_path / "default" / "checkpoints" / "last.ckpt"
    assert exit_info.value.code == 1
    assert f"Interrupted at step 1. Resume with: --checkpoint {last}" in capsys.readouterr().err
    assert read_checkpoint(last)["global_step"] == 1
    assert load_pipeline(last).generator.fc_mu.weight.shape == (256, 64)  # 512 encoder features at width 1/8
    train.main(argv + ["--checkpoint", str(last)])
    assert read_checkpoint(last)["global_step"] == 2  # the resumed run trains the rest of the epoch: batch 1
    assert torch.isfinite(read_checkpoint(last)["state_dict"]["generator.fc_mu.weight"]).all()

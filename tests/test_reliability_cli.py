"""Hostile use of the command lines (docs/reliability.md, classes 2, 4, 6): nothing escapes the output folder,
an existing run is never replaced or mixed unless asked, inference results are replaced whole, and bad options
stop in one line (exit code 2, no traceback) before anything is written.
"""
import shutil

import numpy as np
import pytest
import torch

from test_e2e_train_inference import TINY, world_flags
from varitex import inference, train
from varitex.demo_world.world import ensure_demo_world
from varitex.checkpoints import save_weights
from varitex.modules.pipeline import PipelineModule

TINY_MODEL = dict(image_h=64, image_w=64, texture_dim=128, nc_feature2image=8, lambda_vgg=0.0, no_lpips=True,
                  lambda_gan=0.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three people, one image each: train 2, val 1."""
    return ensure_demo_world(tmp_path_factory.mktemp("cli_world"), n_images=3, image_size=64, array_size=64,
                             images_per_identity=1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained checkpoint of a tiny model in our format (inference only needs the weights and options)."""
    model = PipelineModule(TINY_MODEL)
    path = tmp_path_factory.mktemp("checkpoint") / "tiny.ckpt"
    return save_weights(model, path)


def copied_world(world, tmp_path):
    root = tmp_path / "world"
    shutil.copytree(world, root)
    return root


def one_line_error(capsys, program):
    """The stderr of a command that stopped: exactly one line, ``<program>: error: ...``; returns it."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{program}: error: "), lines
    assert "Traceback" not in lines[0]
    return lines[0]


def run_main(main, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


def inference_argv(world, path_out, checkpoint, *extra):
    return world_flags(world, path_out) + ["--checkpoint", str(checkpoint), "--num_workers", "0", *extra]


# ---- 2. a `../` stem writes nothing outside the output folder ---------------------------------------------

def test_dotdot_stem_is_refused_and_nothing_is_written_outside_path_out(world, checkpoint, tmp_path, capsys):
    root = copied_world(world, tmp_path)
    pre = root / "FFHQ" / "preprocessed_dataset"
    stems = np.load(pre / "filename.npy")
    val = int(np.load(pre / "dataset_splits.npz")["val"][0])
    stems = stems.astype(object)
    stems[val] = "../../escape"
    np.save(pre / "filename.npy", stems, allow_pickle=True)  # the authors' object-array format
    shutil.copy(root / "FFHQ" / "images" / f"{val:05d}.png", tmp_path / "escape.png")  # what a read would find
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    path_out = tmp_path / "out" / "inner"
    run_main(inference.main, inference_argv(root, path_out, checkpoint, "--n", "-1"))
    line = one_line_error(capsys, "varitex-inference")
    assert f"row {val}: image name '../../escape' contains a path separator" in line
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written anywhere


@pytest.mark.parametrize("name", ["../elsewhere", "/tmp/abs", ""])
def test_experiment_name_cannot_leave_path_out(world, tmp_path, capsys, name):
    run_main(train.main, world_flags(world, tmp_path / "out") + TINY + ["--experiment_name", name])
    assert "--experiment_name" in one_line_error(capsys, "varitex-train")
    assert not (tmp_path / "out").exists() and not (tmp_path / "elsewhere").exists()


# ---- 4. runs and results are never silently mixed or replaced --------------------------------------------

def fake_finished_run(run_dir, checkpoint):
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(checkpoint, run_dir / "checkpoints" / "epoch000-step2.ckpt")
    (run_dir / "checkpoints" / "last.ckpt").symlink_to("epoch000-step2.ckpt")
    (run_dir / "opt.json").write_text('{"experiment_name": "exp"}')
    (run_dir / "logs").mkdir()
    (run_dir / "logs" / "events.out.tfevents.1").write_bytes(b"first run's log")
    return {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}


def test_training_again_under_an_existing_name_keeps_the_first_run_byte_for_byte(world, checkpoint, tmp_path,
                                                                                  capsys):
    run_dir = tmp_path / "out" / "exp"
    first = fake_finished_run(run_dir, checkpoint)
    argv = world_flags(world, tmp_path / "out") + TINY + ["--experiment_name", "exp", "--batch_size", "2",
                                                          "--max_epochs", "1", "--lambda_gan", "0"]
    run_main(train.main, argv)
    line = one_line_error(capsys, "varitex-train")
    assert f"{run_dir} already holds a training run (opt.json, checkpoints, logs), which is kept" in line
    assert f"--checkpoint {run_dir / 'checkpoints' / 'last.ckpt'}" in line and "--overwrite" in line
    assert {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == first

    train.main(argv + ["--overwrite"])  # the user said so: a new run replaces the old one
    assert not (run_dir / "checkpoints" / "epoch000-step2.ckpt").exists()
    assert (run_dir / "checkpoints" / "epoch000-step1.ckpt").is_file()  # 2 train images, batch 2: one G step
    assert b"first run's log" not in b"".join(p.read_bytes() for p in (run_dir / "logs").rglob("*") if p.is_file())
    assert '"overwrite": true' in (run_dir / "opt.json").read_text()


def test_inference_replaces_a_mode_folder_as_a_whole(tiny_world, checkpoint, tmp_path, monkeypatch):
    path_out = tmp_path / "out"
    argv = inference_argv(tiny_world, path_out, checkpoint, "--mode", "reconstruction")
    inference.main(argv + ["--n", "3"])
    folder = path_out / "inference_val" / "reconstruction"
    assert len(list(folder.glob("*.png"))) == 3
    first = {p.name: p.read_bytes() for p in folder.iterdir()}

    from varitex import visualization
    original = visualization.save_png

    def fail_on_second(image, path):
        if len(list(path_parent(path).glob("*.png"))) == 1:
            raise OSError(28, "No space left on device")
        original(image, path)

    def path_parent(path):
        from pathlib import Path
        return Path(path).parent

    monkeypatch.setattr(visualization, "save_png", fail_on_second)
    run_main(inference.main, argv + ["--n", "3"])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first  # the interrupted run changed nothing
    assert sorted(p.name for p in (path_out / "inference_val").iterdir()) == ["reconstruction"]
    monkeypatch.undo()

    inference.main(argv + ["--n", "1"])
    assert sorted(p.name for p in folder.iterdir()) == ["00008.png", "latents.npy"]  # no stale images
    assert np.load(folder / "latents.npy").shape[0] == 1


# ---- 6. bad options stop in one line before anything is written ------------------------------------------

def test_missing_vgg_weights_fail_in_one_line_before_anything_is_written(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    at = TINY.index("--lambda_vgg")
    argv = world_flags(world, tmp_path / "out") + TINY[:at] + TINY[at + 2:]
    assert "--lambda_vgg" not in argv  # the authors' default perceptual loss
    run_main(train.main, argv)
    line = one_line_error(capsys, "varitex-train")
    assert "--lambda_vgg 2.0 needs the ImageNet weights of VGG-19" in line and "--path_vgg" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["-2", "0", "-30"])
def test_inference_n_below_minus_one_or_zero_is_refused(world, checkpoint, tmp_path, capsys, value):
    run_main(inference.main, inference_argv(world, tmp_path / "out", checkpoint, "--n", value))
    assert f"--n {value}: give a positive number of samples, or -1" in one_line_error(capsys, "varitex-inference")
    assert not (tmp_path / "out").exists()


def with_device(argv, device):
    """``argv`` with every --device value replaced (the shared flag lists each carry one)."""
    return [device if i and argv[i - 1] == "--device" else flag for i, flag in enumerate(argv)]


@pytest.mark.parametrize("device", ["cdua", "gpu", "cuda:x", "cpu:1", "", "cuda:99"])
def test_device_typos_are_one_line(world, checkpoint, tmp_path, capsys, device):
    argv = with_device(inference_argv(world, tmp_path / "out", checkpoint), device)
    if device == "cuda:99" and not torch.cuda.is_available():
        pytest.skip("without CUDA, cuda devices fall back to the CPU with a note")
    run_main(inference.main, argv)
    assert "--device" in one_line_error(capsys, "varitex-inference")
    run_main(train.main, with_device(world_flags(world, tmp_path / "out") + TINY, device))
    assert "--device" in one_line_error(capsys, "varitex-train")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("devices", ["abc", "0", "1,a", "-2"])
def test_devices_typos_are_one_line_before_anything_is_written(world, tmp_path, capsys, devices):
    run_main(train.main, world_flags(world, tmp_path / "out") + TINY + ["--devices", devices])
    assert f"--devices '{devices}': use a number of devices" in one_line_error(capsys, "varitex-train")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, expected", [
    ("[1, 2]", "holds a JSON list, not the object of options"),
    ('{"image_h": 64', "is not valid JSON"),
    ("", "is empty"),
])
def test_bad_path_opt_files_are_one_line(world, checkpoint, tmp_path, capsys, content, expected):
    path = tmp_path / "opt.json"
    path.write_text(content)
    run_main(inference.main, inference_argv(world, tmp_path / "out", checkpoint, "--path_opt", str(path)))
    assert expected in one_line_error(capsys, "varitex-inference")


def test_a_split_name_cannot_leave_path_out(world, checkpoint, tmp_path, capsys):
    root = copied_world(world, tmp_path)
    splits = dict(np.load(root / "FFHQ" / "preprocessed_dataset" / "dataset_splits.npz"))
    np.savez(root / "FFHQ" / "preprocessed_dataset" / "dataset_splits.npz", **{"x/../../up": splits["val"]}, **splits)
    run_main(inference.main, inference_argv(root, tmp_path / "out", checkpoint, "--dataset_split", "x/../../up"))
    assert "the output folder name inference_x/../../up contains a path separator" in \
        one_line_error(capsys, "varitex-inference")

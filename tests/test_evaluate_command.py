"""varitex-evaluate end to end on the tiny demo world with a small random checkpoint: the report files and their
keys, undetected faces counted, FID through a weights file, and one line per missing optional model."""
import argparse
import json

import numpy as np
import pytest
import torch

from varitex import evaluate
from varitex.evaluation import identity, pose_consistency
from varitex.checkpoints import save_weights
from varitex.modules.pipeline import PipelineModule
from varitex.options import TrainOptions
from varitex.preprocess.fitting import Stage

from helpers import narrow_generator, world_flags

TINY = ["--image_h", "64", "--image_w", "64", "--texture_dim", "128", "--nc_feature2image", "8", "--network_width",
        "0.125", "--lambda_vgg", "0", "--no_lpips", "--lambda_gan", "0"]
SHORT_FIT = (Stage("rigid", 40, ("pose",)), Stage("all", 40, ("pose", "shape", "expression")))


def random_checkpoint(world, path):
    """A checkpoint of an untrained narrow model in our layout (what varitex-train writes)."""
    opt = TrainOptions().parse(world_flags(world, path.parent) + TINY)
    torch.manual_seed(0)
    config = narrow_generator(opt)
    pipeline = PipelineModule(opt, generator_config=config)
    return save_weights(pipeline, path)


@pytest.fixture(scope="module")
def evaluated(tiny_world, tmp_path_factory, random_inception_file, face_landmarker):
    folder = tmp_path_factory.mktemp("evaluate")
    checkpoint = random_checkpoint(tiny_world, folder / "tiny.ckpt")
    argv = world_flags(tiny_world, folder) + ["--checkpoint", str(checkpoint), "--n", "2", "--n_floor", "1",
                                              "--pose_step", "45", "--num_workers", "0", "--batch_size", "8",
                                              "--path_inception", str(random_inception_file),
                                              "--path_lpips", str(folder / "missing_alexnet.pth"),
                                              "--output", str(folder / "report")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pose_consistency, "FIT_SCHEDULE", SHORT_FIT)
        patch.setattr(evaluate.Evaluation, "identity_model", requiring_identity_model())
        evaluate.main(argv)
    return folder / "report"


def requiring_identity_model():
    original = evaluate.Evaluation.identity_model

    def identity_model(self):
        model = original(self)
        assert model is not None, "dlib's face descriptor must be installed for this test (pip install -e '.[evaluate]')"
        return model

    return identity_model


def test_report_files_hold_every_part(evaluated):
    report = json.loads((evaluated / "evaluation.json").read_text())
    assert set(report) >= {"checkpoint", "dataset_split", "reconstruction", "geometry", "identity", "fid", "notes",
                           "seconds", "n_identities"}
    assert report["dataset_split"] == "val" and report["n_identities"] == 1  # the tiny world's val: one person
    metrics = report["reconstruction"]["metrics"]
    assert set(metrics) == {"z_mu", "posterior_sample"}
    for latent in metrics.values():
        assert set(latent) == {"unmasked", "masked"}
        assert set(latent["masked"]) == {"psnr", "ssim"}  # no LPIPS weights here
        assert 0 < latent["unmasked"]["psnr"] < 60 and -1 <= latent["masked"]["ssim"] <= 1
    assert report["reconstruction"]["n_images"] == 2
    geometry = report["geometry"]
    names = [row["name"] for row in geometry["generated"]["per_condition"]]
    assert len(names) == 3 * 3 + 2 and "pitch -45 yaw +45" in names
    assert all(row["n"] == 1 for row in geometry["generated"]["per_condition"])
    # Every image is accounted for, detected or not.
    assert geometry["generated"]["overall"]["n"] == 11 and geometry["ground_truth"]["overall"]["n"] == 11
    assert geometry["ground_truth"]["overall"]["detected"] >= 7
    assert set(report["identity"]) == {"generated", "ground_truth"}
    frontal = [r for r in report["identity"]["ground_truth"]["per_condition"] if r["name"] == "pitch +0 yaw +0"][0]
    assert frontal["cosine_similarity"] == pytest.approx(1.0, abs=1e-6)
    assert np.isfinite(report["fid"]["value"]) and report["fid"]["n_real"] == report["fid"]["n_generated"] == 2


def test_missing_lpips_weights_are_one_line(evaluated):
    report = json.loads((evaluated / "evaluation.json").read_text())
    assert report["notes"] == [f"LPIPS: skipped: no AlexNet ImageNet weights (the file {evaluated.parent / 'missing_alexnet.pth'} "
                               f"does not exist); pass --path_lpips alexnet-owt-7be5be79.pth"]
    markdown = (evaluated / "evaluation.md").read_text()
    for heading in ("## Reconstruction", "## Geometric consistency", "## Identity consistency", "## FID"):
        assert heading in markdown
    assert "pose_sweep_generated.png" in markdown and (evaluated / "pose_sweep_ground_truth.png").is_file()


def test_missing_dlib_models_and_inception_weights_are_one_line_each(monkeypatch, capsys):
    evaluation = object.__new__(evaluate.Evaluation)
    evaluation.notes, evaluation.device = [], torch.device("cpu")
    evaluation.opt = argparse.Namespace(path_inception=None)

    def no_models():
        raise identity.IdentityModelUnavailable("the dlib face-recognition model files are not installed")

    monkeypatch.setattr(identity, "model_folder", no_models)
    assert evaluation.identity_model() is None and evaluation.fid() is None
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("varitex-evaluate: identity consistency: skipped:")
    assert lines[1].startswith("varitex-evaluate: FID: skipped: no Inception weights (--path_inception")


def test_bad_options_are_one_error_line(tiny_world, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(world_flags(tiny_world, tmp_path) + ["--checkpoint", str(tmp_path / "missing.ckpt")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == f"varitex-evaluate: error: --checkpoint: file not found: " \
                                              f"{tmp_path / 'missing.ckpt'}"


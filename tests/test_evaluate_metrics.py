"""varitex-evaluate's measurements on known cases: image metrics, rotation errors, the condition grid, identity
statistics, FID plumbing (random Inception weights from a file) and the report's JSON."""
import json
import math

import numpy as np
import pytest
import torch

from varitex.data.image_ops import IMAGENET_MEAN, IMAGENET_STD
from varitex.evaluation import pose_consistency as pc
from varitex.evaluation.fid import FIDUnavailable, FrechetInceptionDistance
from varitex.evaluation.identity import FaceDescriptor, IdentityModelUnavailable, identity_consistency
from varitex.evaluation.report import json_safe, write_json
from varitex.geometry import euler_to_rotation, rotation_angle_deg, rotation_to_euler
from varitex.modules.metrics import LPIPSMetric, psnr_per_image, ssim_per_image

from helpers import unavailable


def normalized(images):
    """(B, 3, H, W) in [0, 1] -> ImageNet-normalized."""
    mean, std = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    return (images - mean) / std


def random_images(n=2, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_identical_images_give_psnr_inf_ssim_one_lpips_zero():
    real = normalized(random_images())
    assert torch.isinf(psnr_per_image(real, real)).all()
    assert torch.allclose(ssim_per_image(real, real), torch.ones(2), atol=1e-5)
    # LPIPS of identical images is 0 whatever the trunk's weights (here random).
    assert torch.allclose(LPIPSMetric().per_image(real, real), torch.zeros(2), atol=1e-6)


def test_psnr_of_a_known_error_and_only_over_the_mask():
    real = random_images().clamp(0.1, 0.8)
    fake = real + 10 / 255  # 10 gray levels everywhere
    assert torch.allclose(psnr_per_image(normalized(fake), normalized(real)),
                          torch.full((2,), 20 * math.log10(255 / 10)), atol=1e-3)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    spoiled = torch.where(mask > 0, fake, 1 - real)  # large errors outside the mask
    masked = psnr_per_image(normalized(spoiled), normalized(real), mask)
    assert torch.allclose(masked, torch.full((2,), 20 * math.log10(255 / 10)), atol=1e-3)
    assert (psnr_per_image(normalized(spoiled), normalized(real)) < masked - 5).all()


def test_masked_ssim_averages_the_ssim_map_over_the_head_only():
    real = random_images(size=48)
    mask = torch.zeros(2, 1, 48, 48)
    mask[:, :, :, :24] = 1
    fake = real.clone()
    fake[:, :, :, 30:] = 1 - fake[:, :, :, 30:]  # changed only far right of the mask (window 11 reaches 5 px)
    assert torch.allclose(ssim_per_image(normalized(fake), normalized(real), mask), torch.ones(2), atol=1e-4)
    assert (ssim_per_image(normalized(fake), normalized(real)) < 0.8).all()


def test_a_known_pose_offset_is_that_rotation_error():
    theta = torch.tensor([[0.0, 0.0, 0.0], [15.0, -30.0, 0.0], [-45.0, 45.0, 5.0]])
    offset = theta + torch.tensor([0.0, 7.0, 0.0])
    assert torch.allclose(rotation_angle_deg(euler_to_rotation(offset), euler_to_rotation(theta)),
                          torch.full((3,), 7.0), atol=1e-3)
    pitch_offset = theta.clone()
    pitch_offset[0, 0] = -12.0
    assert rotation_angle_deg(euler_to_rotation(pitch_offset[:1]), euler_to_rotation(theta[:1])).item() == \
        pytest.approx(12.0, abs=1e-3)
    assert torch.allclose(rotation_to_euler(euler_to_rotation(theta)), theta, atol=1e-4)


def test_condition_grid_is_a_pitch_yaw_grid_plus_two_expressions():
    conditions = pc.condition_grid()
    assert len(conditions) == 7 * 7 + 2
    grid = [c for c in conditions if c.expression == "own"]
    assert sorted({c.yaw for c in grid}) == [-45, -30, -15, 0, 15, 30, 45]
    assert sorted({c.pitch for c in grid}) == [-45, -30, -15, 0, 15, 30, 45]
    assert [c.expression for c in conditions[-2:]] == ["neutral", "other"]
    assert conditions[pc.frontal_index(conditions)].name == "pitch +0 yaw +0"
    assert len(pc.condition_grid(30, 30)) == 3 * 3 + 2
    with pytest.raises(ValueError, match="--pose_step"):
        pc.condition_grid(45, 0)


def test_requests_carry_each_identitys_shape_and_the_conditions_expression():
    conditions = pc.condition_grid(15, 15)
    sp = torch.arange(3 * 4, dtype=torch.float32).reshape(3, 4)
    ep = torch.arange(3 * 2, dtype=torch.float32).reshape(3, 2) + 1
    requests = pc.build_requests(sp, ep, conditions)
    n_conditions = len(conditions)
    assert len(requests.identity) == 3 * n_conditions
    row = lambda identity, name: identity * n_conditions + [c.name for c in conditions].index(name)  # noqa: E731
    assert torch.equal(requests.sp[row(1, "pitch -15 yaw +15")], sp[1])
    assert requests.theta[row(1, "pitch -15 yaw +15")].tolist() == [-15.0, 15.0, 0.0]
    assert torch.equal(requests.ep[row(1, "pitch +0 yaw +0")], ep[1])
    assert torch.equal(requests.ep[row(1, "frontal, neutral expression")], torch.zeros(2))
    assert torch.equal(requests.ep[row(2, "frontal, another identity's expression")], ep[0])
    assert requests.t[0].tolist() == [0.0, -2.0, -57.0] and requests.s[0].item() == pytest.approx(0.1)


def test_error_statistics_count_undetected_images_and_ignore_their_errors():
    measured = {"detected": np.array([1, 1, 0, 1], np.float32),
                "rotation_error_deg": np.array([1.0, 3.0, np.nan, 2.0], np.float32),
                "pitch_error_deg": np.array([1.0, -1.0, np.nan, 3.0], np.float32),
                "yaw_error_deg": np.array([0.0, 0.0, np.nan, 3.0], np.float32),
                "landmark_nme": np.array([0.1, 0.2, np.nan, 0.3], np.float32),
                "fit_error_px": np.array([1.0, 1.0, np.nan, 1.0], np.float32)}
    stats = pc.error_statistics(measured)
    assert (stats["n"], stats["detected"], stats["detection_rate"]) == (4, 3, 0.75)
    assert stats["rotation_error_deg_median"] == pytest.approx(2.0)
    assert stats["pitch_bias_deg"] == pytest.approx(1.0) and stats["yaw_bias_deg"] == pytest.approx(1.0)
    rows = pc.summarize(measured, np.array([0, 0, 1, 1]), ["a", "b"])
    assert [(r["name"], r["detected"], r["n"]) for r in rows] == [("a", 2, 2), ("b", 1, 2)]
    none_found = pc.error_statistics({k: v[2:3] for k, v in measured.items()})
    assert none_found["detection_rate"] == 0 and none_found["rotation_error_deg_median"] is None


def test_identity_statistics_against_the_frontal_reference():
    rng = np.random.default_rng(0)
    people = rng.standard_normal((2, 8)).astype(np.float32)
    # identity, condition 0 = reference; condition 1: same person; condition 2: not found for person 1.
    embeddings = np.stack([people[0], people[0], people[0] * 2, people[1], people[1] + 0.1, np.full(8, np.nan)])
    identity = np.array([0, 0, 0, 1, 1, 1])
    condition = np.array([0, 1, 2, 0, 1, 2])
    result = identity_consistency(embeddings.astype(np.float32), identity, condition, ["ref", "same", "scaled"], 0)
    same = result["per_condition"][1]
    assert same["pairs"] == 2 and same["cosine_similarity"] == pytest.approx(
        (1 + np.dot(people[1], people[1] + 0.1) / np.linalg.norm(people[1]) / np.linalg.norm(people[1] + 0.1)) / 2)
    scaled = result["per_condition"][2]
    assert scaled["pairs"] == 1 and scaled["cosine_similarity"] == pytest.approx(1.0)
    other = result["different_identities"]
    assert other["pairs"] == 1 and other["cosine_similarity"] < 0.9


def test_report_json_writes_infinite_values_as_text(tmp_path):
    write_json({"psnr": float("inf"), "values": [np.float32(1.5), None], "n": np.int64(3)}, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == {"psnr": "inf", "values": [1.5, None], "n": 3}
    assert json_safe({"x": float("nan")}) == {"x": "nan"}


def test_missing_optional_models_raise_one_clear_line(tmp_path):
    with pytest.raises(FIDUnavailable, match="--path_inception"):
        FrechetInceptionDistance(None)
    with pytest.raises(FIDUnavailable, match="--path_inception: file not found"):
        FrechetInceptionDistance(str(tmp_path / "missing.pth"))
    try:
        import dlib  # noqa: F401
    except ImportError:
        unavailable("dlib is not installed (pip install -e '.[evaluate]')")
    with pytest.raises(IdentityModelUnavailable, match="dlib_face_recognition_resnet_model_v1.dat is missing") as error:
        FaceDescriptor(folder=tmp_path)
    assert "\n" not in str(error.value) and "[evaluate]" in str(error.value)


def test_fid_from_a_weights_file_is_zero_for_the_same_images_and_positive_for_others(random_inception_file):
    images = random_images(n=3, size=40, seed=1)
    same = FrechetInceptionDistance(str(random_inception_file))
    same.update(images, real=True)
    same.update(images, real=False)
    assert abs(same.compute()) < 1e-2
    other = FrechetInceptionDistance(str(random_inception_file))
    other.update(images, real=True)
    other.update(random_images(n=3, size=40, seed=2) * 0.3, real=False)
    assert other.compute() > 10 * max(abs(same.compute()), 1e-3)


def test_reconstruction_is_seeded_and_z_mu_is_the_noise_free_output():
    from varitex.data.keys_enum import DataItemKey as DIK
    from varitex.evaluation.reconstruction import evaluate_reconstruction

    def pipeline(batch, std_multiplier):
        """A stand-in whose output is the input plus std_multiplier times noise from torch's generator."""
        noise = torch.randn(batch[DIK.IMAGE_IN].shape)
        return {DIK.IMAGE_OUT: batch[DIK.IMAGE_IN] + 0.1 * std_multiplier * noise}

    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 4:28, 4:28] = 1
    loader = [{DIK.IMAGE_IN: normalized(random_images()), DIK.MASK_FULL: mask, DIK.FILENAME: ["a", "b"]}] * 2
    first, n = evaluate_reconstruction(pipeline, loader, "cpu", seed=3)
    assert n == 4
    assert first["z_mu"]["unmasked"]["psnr"] == float("inf") and first["z_mu"]["masked"]["ssim"] == pytest.approx(1.0)
    assert first == evaluate_reconstruction(pipeline, loader, "cpu", seed=3)[0]
    other = evaluate_reconstruction(pipeline, loader, "cpu", seed=4)[0]
    assert other["posterior_sample"]["masked"]["psnr"] != first["posterior_sample"]["masked"]["psnr"]
    assert 20 < first["posterior_sample"]["unmasked"]["psnr"] < 60

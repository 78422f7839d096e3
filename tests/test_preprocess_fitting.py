"""The landmark fitter alone: exact landmark posing, recovery of known parameters from noisy projections."""
import numpy as np
import pytest
import torch

from varitex.demo_world.face_model import build_face_model
from varitex.demo_world.world import save_demo_face_model
from varitex.geometry import BFM2017, euler_to_rotation, pose_vertices, project_to_ndc
from varitex.preprocess.fitting import (FIT_SCHEDULE, LandmarkFaceModel, Stage, fit_landmarks, ndc_to_pixels,
                                        pixels_to_ndc, project_landmarks)

IMAGE_SIZE = 512


@pytest.fixture(scope="module")
def face_model(tmp_path_factory):
    """The demo world's face model as a BFM file, and 200 landmark points: vertices and in-triangle points."""
    model = build_face_model()
    path = save_demo_face_model(tmp_path_factory.mktemp("face_model") / "model.h5", model)
    bfm = BFM2017(path)
    rng = np.random.default_rng(0)
    front = (np.abs(model.front[:, 0]) < 55) & (model.front[:, 1] > -75) & (model.front[:, 1] < 60)
    faces = model.faces[front[model.faces].all(axis=1)]
    vertex_ids = faces[rng.choice(len(faces), 200, replace=False)]
    barycentrics = rng.dirichlet(np.ones(3), 200)
    barycentrics[:100] = [1.0, 0.0, 0.0]
    return bfm, vertex_ids, barycentrics


def landmark_points(bfm, vertex_ids, barycentrics, sp, ep, theta, t, s):
    """(B, L, 2) pixels of the landmark points through the full mesh: generate, pose, interpolate, project."""
    posed = pose_vertices(bfm.generate_vertices(sp, ep), euler_to_rotation(theta), t, s)
    weights = torch.as_tensor(barycentrics, dtype=torch.float32)
    points = (posed[:, torch.as_tensor(vertex_ids)] * weights[None, :, :, None]).sum(2)
    return ndc_to_pixels(project_to_ndc(points)[..., :2], IMAGE_SIZE)


def random_faces(bfm, n, seed):
    g = torch.Generator().manual_seed(seed)
    sp = bfm.sample_shape(n, generator=g)
    ep = bfm.sample_expression(n, 0.7, generator=g)
    theta = (torch.rand(n, 3, generator=g) * 2 - 1) * torch.tensor([15.0, 35.0, 10.0])
    t = torch.tensor([0.0, -2.0, -57.0]) + torch.randn(n, 3, generator=g) * torch.tensor([0.5, 0.5, 1.5])
    s = 0.1 * (1 + 0.03 * torch.randn(n, 1, generator=g))
    return sp, ep, theta, t, s


def rotation_error_deg(R, R_true):
    cos = ((R * R_true).sum(dim=(1, 2)) - 1) / 2
    return torch.rad2deg(torch.acos(cos.clamp(-1, 1)))


def test_pixel_ndc_conversion_matches_the_rasterizer_pixel_centres():
    # Pixel column c of an S-wide image has its centre at x = c + 0.5 and NDC 1 - (2c + 1) / S.
    assert ndc_to_pixels(torch.tensor([1 - 1 / 4, 1.0, -1.0]), 4).tolist() == [0.5, 0.0, 4.0]
    assert pixels_to_ndc(torch.tensor([0.5, 2.0]), 4).tolist() == [0.75, 0.0]


def test_landmark_model_projects_like_the_full_mesh_through_pose_vertices(face_model):
    bfm, vertex_ids, barycentrics = face_model
    sp, ep, theta, t, s = random_faces(bfm, 3, seed=1)
    model = LandmarkFaceModel(bfm, vertex_ids, barycentrics)
    alpha, beta = sp / bfm.shape_variance.sqrt(), ep / bfm.expression_variance.sqrt()
    fast = project_landmarks(model, theta, t, s, alpha, beta, IMAGE_SIZE)
    full = landmark_points(bfm, vertex_ids, barycentrics, sp, ep, theta, t, s)
    assert fast.shape == (3, 200, 2)
    assert torch.allclose(fast, full, atol=2e-3)


def test_fit_recovers_pose_and_shape_from_noisy_landmarks(face_model):
    bfm, vertex_ids, barycentrics = face_model
    sp, ep, theta, t, s = random_faces(bfm, 8, seed=2)
    clean = landmark_points(bfm, vertex_ids, barycentrics, sp, ep, theta, t, s)
    noisy = clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))  # 1 px at 512
    fit = fit_landmarks(LandmarkFaceModel(bfm, vertex_ids, barycentrics), noisy, IMAGE_SIZE)

    assert fit.R.shape == (8, 3, 3) and fit.t.shape == (8, 3) and fit.s.shape == (8, 1)
    assert fit.sp.shape == (8, bfm.n_shape) and fit.ep.shape == (8, bfm.n_expression)
    assert fit.R.dtype == fit.sp.dtype == torch.float32
    assert torch.allclose(fit.R, euler_to_rotation(fit.theta), atol=1e-6)
    rotation_error = rotation_error_deg(fit.R, euler_to_rotation(theta))
    assert rotation_error.median() < 1.5 and rotation_error.max() < 3.0
    # The image-plane position is well determined; depth and scale trade off (the framing prior decides).
    assert (fit.t[:, :2] - t[:, :2]).abs().max() < 0.3
    assert ((fit.s / s - 1).abs() < 0.12).all() and ((fit.t[:, 2] - t[:, 2]).abs() < 5).all()
    # Mean distance of 2-D unit Gaussian noise from its centre is sqrt(pi / 2) = 1.25 px.
    assert ((fit.error_px > 0.9) & (fit.error_px < 1.6)).all()
    # The fitted face is much closer to the true one than the mean face is.
    mean_face = bfm.generate_vertices(torch.zeros(1, bfm.n_shape), torch.zeros(1, bfm.n_expression))
    true_faces = bfm.generate_vertices(sp, ep)
    used = torch.as_tensor(np.unique(vertex_ids))
    fit_error = (bfm.generate_vertices(fit.sp, fit.ep) - true_faces)[:, used].norm(dim=-1).mean(1)
    mean_error = (mean_face - true_faces)[:, used].norm(dim=-1).mean(1)
    assert (fit_error / mean_error).median() < 0.5
    assert list(fit.losses) == [stage.name for stage in FIT_SCHEDULE]
    assert fit.losses["shape_expression"]["landmarks"] < fit.losses["rigid"]["landmarks"]


def test_an_image_fits_the_same_alone_and_in_a_batch(face_model):
    bfm, vertex_ids, barycentrics = face_model
    sp, ep, theta, t, s = random_faces(bfm, 3, seed=4)
    landmarks = landmark_points(bfm, vertex_ids, barycentrics, sp, ep, theta, t, s)
    model = LandmarkFaceModel(bfm, vertex_ids, barycentrics)
    short = (Stage("rigid", 30, ("pose",)), Stage("all", 30, ("pose", "shape", "expression")))
    batch = fit_landmarks(model, landmarks, IMAGE_SIZE, schedule=short)
    alone = fit_landmarks(model, landmarks[1:2], IMAGE_SIZE, schedule=short)
    assert torch.allclose(batch.theta[1], alone.theta[0], atol=1e-3)
    assert torch.allclose(batch.sp[1], alone.sp[0], atol=1e-3)


def test_zero_weight_landmarks_are_ignored(face_model):
    bfm, vertex_ids, barycentrics = face_model
    sp, ep, theta, t, s = random_faces(bfm, 1, seed=5)
    landmarks = landmark_points(bfm, vertex_ids, barycentrics, sp, ep, theta, t, s)
    weights = torch.ones(200)
    weights[:20] = 0
    corrupted = landmarks.clone()
    corrupted[:, :20] += 80.0
    model = LandmarkFaceModel(bfm, vertex_ids, barycentrics)
    short = (Stage("rigid", 40, ("pose",)), Stage("all", 40, ("pose", "shape", "expression")))
    clean_fit = fit_landmarks(model, landmarks, IMAGE_SIZE, weights=weights, schedule=short)
    corrupted_fit = fit_landmarks(model, corrupted, IMAGE_SIZE, weights=weights, schedule=short)
    assert torch.allclose(clean_fit.theta, corrupted_fit.theta, atol=1e-5)
    assert torch.allclose(clean_fit.sp, corrupted_fit.sp, atol=1e-5)
    assert clean_fit.error_px.item() == pytest.approx(corrupted_fit.error_px.item(), abs=1e-5)
    assert rotation_error_deg(corrupted_fit.R, euler_to_rotation(theta)).item() < 3.0


def test_bad_landmark_input_is_refused(face_model):
    bfm, vertex_ids, barycentrics = face_model
    model = LandmarkFaceModel(bfm, vertex_ids, barycentrics)
    with pytest.raises(ValueError, match=r"landmarks must have shape \(B, 200, 2\)"):
        fit_landmarks(model, torch.zeros(1, 199, 2), IMAGE_SIZE)
    with pytest.raises(ValueError, match="at least one landmark with a positive weight"):
        fit_landmarks(model, torch.zeros(1, 200, 2), IMAGE_SIZE, weights=torch.zeros(200))
    with pytest.raises(ValueError, match="unknown loss terms"):
        fit_landmarks(model, torch.zeros(1, 200, 2), IMAGE_SIZE, loss_weights={"landmark": 1.0})
    with pytest.raises(ValueError, match=r"\(L, 3\)"):
        LandmarkFaceModel(bfm, vertex_ids[:, :2], barycentrics)

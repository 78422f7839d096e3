"""Landmark-to-surface correspondence derived from a face-model file: renders, lifting, aggregation, cache."""
import numpy as np
import pytest
import torch

from varitex.demo_world.face_model import MOUTH_Y, build_face_model
from varitex.demo_world.world import save_demo_face_model
from varitex.geometry import BFM2017, save_bfm2017
from varitex.preprocess import correspondence as corr
from varitex.preprocess.landmarks import FACE_OVAL, FaceLandmarker


@pytest.fixture(scope="module")
def demo_bfm(tmp_path_factory):
    model = build_face_model()
    return BFM2017(save_demo_face_model(tmp_path_factory.mktemp("face_model") / "model.h5", model))


@pytest.fixture(scope="module")
def derived(demo_bfm, tmp_path_factory):
    calls = []

    def factory():
        calls.append(1)
        return FaceLandmarker()

    cache = tmp_path_factory.mktemp("cache")
    return corr.load_correspondence(demo_bfm, factory, cache_dir=cache), cache, calls


def surface_points(bfm, correspondence):
    mean = bfm.generate_vertices(torch.zeros(1, bfm.n_shape), torch.zeros(1, bfm.n_expression))[0].numpy()
    return (mean[correspondence.vertex_ids] * correspondence.barycentrics[..., None]).sum(1)


def test_renders_are_coloured_with_the_files_mean_colour(tmp_path):
    model = build_face_model()
    green = np.tile([0.1, 0.8, 0.2], (model.n_vertices, 1))
    colored = BFM2017(save_bfm2017(tmp_path / "green.h5", model.mean, model.shape_basis, model.shape_variance,
                                   model.expression_basis, model.expression_variance, model.faces, mean_color=green))
    plain = BFM2017(save_bfm2017(tmp_path / "plain.h5", model.mean, model.shape_basis, model.shape_variance,
                                 model.expression_basis, model.expression_variance, model.faces))
    face = lambda bfm: corr.render_views(bfm, views=((0, 0, 0),), size=64)[0][0][24:40, 24:40]  # noqa: E731
    red, green_channel, _ = face(colored).reshape(-1, 3).mean(0)
    assert green_channel > 2 * red
    red, green_channel, blue = face(plain).reshape(-1, 3).mean(0)
    assert red > green_channel > blue  # corr.ALBEDO, skin


def test_the_landmarker_finds_the_demo_model_in_every_render(derived):
    correspondence, _, _ = derived
    assert correspondence.n_views == len(corr.VIEWS_DEG) == 11
    assert correspondence.vertex_ids.shape == (468, 3) and correspondence.barycentrics.shape == (468, 3)
    assert np.allclose(correspondence.barycentrics.sum(1), 1, atol=1e-5)
    assert (correspondence.weights > 0).sum() >= 300


def test_landmarks_land_on_the_matching_features_of_the_demo_face(demo_bfm, derived):
    correspondence, _, _ = derived
    points = surface_points(demo_bfm, correspondence)
    mean = demo_bfm.generate_vertices(torch.zeros(1, demo_bfm.n_shape), torch.zeros(1, demo_bfm.n_expression))[0]
    nose_tip = mean[mean[:, 2].argmax()].numpy()
    assert np.linalg.norm(points[4] - nose_tip) < 5.0  # MediaPipe 4: the tip of the nose
    # Outer eye corners (33 right, 263 left) and mouth corners (61, 291) mirror each other across x = 0.
    for right, left in ((33, 263), (61, 291)):
        assert abs(points[right, 0] + points[left, 0]) < 4.0 and abs(points[right, 1] - points[left, 1]) < 3.0
        assert points[right, 0] < -20 < 20 < points[left, 0]
    assert abs(points[61, 1] - MOUTH_Y) < 5.0


def test_silhouette_landmarks_get_lower_weight_than_inner_ones(derived):
    correspondence, _, _ = derived
    inner = np.setdiff1d(np.arange(468), FACE_OVAL)
    # Measured on the demo model: 0.44 on the face oval against 0.82 inside.
    assert correspondence.weights[list(FACE_OVAL)].mean() < 0.6 * correspondence.weights[inner].mean()
    assert (correspondence.weights[~(correspondence.spread_mm <= corr.MAX_SPREAD_MM)] == 0).all()
    assert 40 <= (correspondence.weights == 0).sum() <= 170


def test_correspondence_is_cached_per_model_file(demo_bfm, derived, tmp_path):
    correspondence, cache, calls = derived
    assert len(calls) == 1
    again = corr.load_correspondence(demo_bfm, lambda: pytest.fail("the cache was not used"), cache_dir=cache)
    assert np.array_equal(again.vertex_ids, correspondence.vertex_ids)
    assert np.array_equal(again.weights, correspondence.weights)
    (entry,) = cache.iterdir()
    assert entry.name == f"{corr.file_digest(demo_bfm.path)}-v{corr.CORRESPONDENCE_VERSION}.npz"


def test_aggregation_keeps_the_medoid_and_drops_unstable_landmarks():
    # One triangle per vertex of a unit square, landmark 0 on a stable point, landmark 1 sliding, landmark 2
    # mostly off the surface.
    vertices = np.array([[0, 0, 0], [30, 0, 0], [0, 30, 0], [30, 30, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    bary_stable = np.array([0.2, 0.3, 0.5], dtype=np.float32)
    faces_per_view = np.array([[0, 0, -1], [0, 1, -1], [0, 0, -1], [0, 1, 0]])
    bary = np.zeros((4, 3, 3), dtype=np.float32)
    bary[:, 0] = bary_stable
    bary[:, 1] = [[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0], [0, 0, 1]]
    bary[:, 2] = [0, 0, 1]
    result = corr.aggregate(faces_per_view, bary, faces, vertices)
    assert result.vertex_ids[0].tolist() == [0, 1, 2] and np.allclose(result.barycentrics[0], bary_stable)
    assert result.spread_mm[0] == 0 and result.weights[0] == 1
    assert result.spread_mm[1] > corr.MAX_SPREAD_MM and result.weights[1] == 0
    assert result.weights[2] == 0  # on the surface in 1 of 4 views < MIN_HIT_FRACTION

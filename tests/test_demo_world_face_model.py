"""The synthetic face model: BFM 2017 layout and scale, an open face mask with a mouth slit, bases."""
from collections import defaultdict

import numpy as np
import pytest
import torch

from varitex.demo_world import face_model as fm
from varitex.demo_world.world import save_demo_face_model
from varitex.geometry import BFM2017, load_uv_parameterization, save_bfm2017, save_uv_parameterization


@pytest.fixture(scope="module")
def model():
    return fm.build_face_model()


def _displacement(model, index, std=1.0):
    """(V,) displacement length (mm) of expression component ``index`` at ``std`` standard deviations."""
    column = model.expression_basis[:, index] * np.sqrt(model.expression_variance[index]) * std
    return np.linalg.norm(column.reshape(-1, 3), axis=1)


def test_model_has_bfm_component_counts_and_a_face_sized_millimetre_extent(model):
    assert model.shape_basis.shape == (3 * model.n_vertices, 199)
    assert model.expression_basis.shape == (3 * model.n_vertices, 100)
    assert 3000 <= model.n_vertices <= 8000
    width, height = np.ptp(model.mean[:, 0]), np.ptp(model.mean[:, 1])
    assert 145.0 <= width <= 165.0
    assert 170.0 <= height <= 200.0
    # Nose tip in front, the mask's sides wrapping back towards the ears.
    assert model.mean[:, 2].argmax() == np.argmin(np.hypot(model.front[:, 0], model.front[:, 1] - fm.NOSE_TIP_Y))
    assert np.ptp(model.mean[:, 2]) > 90.0


def test_bases_are_orthonormal_with_decreasing_variances(model):
    np.testing.assert_allclose(model.shape_basis.T @ model.shape_basis, np.eye(199), atol=1e-9)
    np.testing.assert_allclose(model.expression_basis.T @ model.expression_basis, np.eye(100), atol=1e-9)
    assert np.all(np.diff(model.shape_variance) <= 0)
    assert np.all(np.diff(model.expression_variance) <= 0)
    assert model.shape_variance.min() > 0 and model.expression_variance.min() > 0


def test_mesh_is_an_open_surface_with_an_outer_rim_and_a_mouth_slit(model):
    edges = defaultdict(int)
    for a, b, c in model.faces:
        for edge in ((a, b), (b, c), (c, a)):
            edges[tuple(sorted(edge))] += 1
    assert max(edges.values()) == 2
    boundary = [edge for edge, count in edges.items() if count == 1]
    # Boundary edges form exactly two loops: the outline of the mask and the lips' slit.
    parent = {}

    def find(v):
        while parent.setdefault(v, v) != v:
            v = parent[v]
        return v

    for a, b in boundary:
        parent[find(a)] = find(b)
    loops = defaultdict(list)
    for a, _ in boundary:
        loops[find(a)].append(a)
    sizes = sorted(len(vertices) for vertices in loops.values())
    assert len(sizes) == 2
    mouth_loop = min(loops.values(), key=len)
    mouth_front = model.front[mouth_loop]
    assert np.abs(mouth_front[:, 1] - fm.MOUTH_Y).max() < 1.0
    assert 45.0 < np.ptp(mouth_front[:, 0]) < 65.0


def test_uvs_are_in_the_unit_square_and_every_face_has_positive_uv_area(model):
    assert model.verts_uvs.min() >= 0.0 and model.verts_uvs.max() <= 1.0
    corners = model.verts_uvs[model.faces]
    first, second = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area = first[:, 0] * second[:, 1] - first[:, 1] * second[:, 0]
    # Seen from the front u grows to the right and v downwards, so counter-clockwise faces have area < 0.
    assert np.all(area < 0)


def test_named_expressions_move_their_own_region_far_more_than_the_rest(model):
    x, y = model.front[:, 0], model.front[:, 1]
    ax = np.abs(x)
    lower_face = (y < fm.MOUTH_Y) & (ax < 25.0)
    upper_face = y > 10.0
    corners = (ax > 20.0) & (ax < 35.0) & (np.abs(y - fm.MOUTH_Y) < 8.0)
    brows = (np.abs(y - fm.BROW_Y) < 6.0) & (ax < 50.0)
    below_nose = y < -20.0
    names = fm.EXPRESSION_NAMES
    cases = [("jaw_open", lower_face, upper_face), ("smile", corners, upper_face),
             ("brow_raise", brows, below_nose), ("brow_frown", brows, below_nose)]
    for name, region, elsewhere in cases:
        moved = _displacement(model, names.index(name))
        ratio = moved[region].mean() / max(moved[elsewhere].mean(), 1e-12)
        assert moved[region].mean() > 1.0, name
        assert ratio > 10.0, (name, ratio)


def test_opening_the_jaw_parts_the_lips(model):
    x, y = model.front[:, 0], model.front[:, 1]
    upper = np.argmin(np.hypot(x, y - (fm.MOUTH_Y + fm.MOUTH_GAP / 2)))
    lower = np.argmin(np.hypot(x, y - (fm.MOUTH_Y - fm.MOUTH_GAP / 2)))
    jaw = fm.EXPRESSION_NAMES.index("jaw_open")
    ep = np.zeros(100)
    ep[jaw] = 2.0 * np.sqrt(model.expression_variance[jaw])
    closed, opened = model.vertices(), model.vertices(ep=ep)
    assert closed[upper, 1] - closed[lower, 1] == pytest.approx(fm.MOUTH_GAP, abs=0.3)
    assert opened[upper, 1] - opened[lower, 1] > 8.0


def test_files_round_trip_through_the_geometry_readers(model, tmp_path):
    save_bfm2017(tmp_path / "m.h5", model.mean, model.shape_basis, model.shape_variance, model.expression_basis,
                 model.expression_variance, model.faces)
    save_uv_parameterization(tmp_path / "uv.json", model.verts_uvs, model.faces)
    bfm = BFM2017(tmp_path / "m.h5")
    verts_uvs, faces_uvs = load_uv_parameterization(tmp_path / "uv.json")
    assert (bfm.n_shape, bfm.n_expression) == (199, 100)
    assert (bfm.n_vertices, bfm.n_faces) == (model.n_vertices, len(model.faces))
    np.testing.assert_array_equal(faces_uvs.numpy(), model.faces)
    np.testing.assert_allclose(verts_uvs.numpy(), model.verts_uvs, atol=1e-7)
    rng = np.random.default_rng(0)
    sp = rng.standard_normal(199) * np.sqrt(model.shape_variance)
    ep = rng.standard_normal(100) * np.sqrt(model.expression_variance)
    vertices = bfm.generate_vertices(torch.tensor(sp[None]), torch.tensor(ep[None]))[0].numpy()
    np.testing.assert_allclose(vertices, model.vertices(sp, ep), atol=1e-3)


def test_the_model_file_carries_the_average_persons_albedo_as_its_mean_colour(model, tmp_path):
    color = BFM2017(save_demo_face_model(tmp_path / "m.h5", model)).mean_color.numpy()
    assert color.shape == (model.n_vertices, 3) and color.min() >= 0 and color.max() <= 1

    def near(x, y):  # the vertex closest to front coordinates (x, y) mm
        return np.hypot(model.front[:, 0] - x, model.front[:, 1] - y).argmin()

    cheek = color[near(45.0, -5.0)]
    pupils = color[[near(side * fm.EYE_CENTER[0], fm.EYE_CENTER[1] + 0.4) for side in (-1, 1)]]
    lips = color[near(0.0, fm.MOUTH_Y - 5.0)]
    assert cheek[0] > cheek[1] > cheek[2]  # skin
    assert (pupils.sum(1) < 0.5 * cheek.sum()).all()
    assert lips[0] / lips[1] > 1.2 * cheek[0] / cheek[1]  # redder than the skin

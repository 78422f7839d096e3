"""Basel Face Model 2017 reader/writer, face12.json reader/writer and BFMUVFactory on tiny files."""
import argparse

import h5py
import pytest
import torch

from varitex.geometry import (BFM2017, DEFAULT_S, DEFAULT_T, BFMUVFactory, euler_to_rotation,
                              load_uv_parameterization, save_bfm2017, save_uv_parameterization)
from varitex.geometry.bfm import REQUIRED_KEYS
from varitex.generation import uv_factory_from_options
from varitex.options import MissingPathError


def write_triangle_model(path, **optional):
    """One triangle (V=3), 2 shape and 1 expression components, with a non-zero expression mean; ``optional``:
    further save_bfm2017 arguments (mean_color)."""
    mean = torch.arange(9.0)                                   # v0=(0,1,2), v1=(3,4,5), v2=(6,7,8)
    shape_basis = torch.stack([torch.ones(9), torch.eye(3).reshape(9)], dim=1)  # (9, 2)
    expression_basis = torch.tensor([0.0, 0, 1] * 3)[:, None]  # moves every vertex along z
    return save_bfm2017(path, mean, shape_basis, torch.tensor([4.0, 1.0]), expression_basis, torch.tensor([9.0]),
                        torch.tensor([[0, 1, 2]]), expression_mean=torch.full((9,), 100.0), **optional)


def grid_face(rows=9, cols=9):
    """A face-sized bumpy patch (millimetres, facing +z): (V, 3) vertices, (F, 3) faces, (V, 2) UVs."""
    v, u = torch.meshgrid(torch.linspace(0, 1, rows), torch.linspace(0, 1, cols), indexing="ij")
    x, y = (u - 0.5) * 160, (v - 0.5) * 180
    z = 40 * (1 - (x / 100) ** 2 - (y / 110) ** 2)
    vertices = torch.stack([x, y, z], dim=-1).reshape(-1, 3)
    index = torch.arange(rows * cols).reshape(rows, cols)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    faces = torch.cat([torch.stack([a, b, d], -1).reshape(-1, 3), torch.stack([a, d, c], -1).reshape(-1, 3)])
    return vertices, faces, torch.stack([u, v], dim=-1).reshape(-1, 2)


@pytest.fixture(scope="module")
def face_files(tmp_path_factory):
    """(h5 path, json path) of a tiny face model with 4 shape and 3 expression components."""
    folder = tmp_path_factory.mktemp("bfm")
    vertices, faces, uvs = grid_face()
    generator = torch.Generator().manual_seed(0)
    n = 3 * len(vertices)
    h5 = save_bfm2017(folder / "model.h5", vertices.reshape(-1), torch.randn(n, 4, generator=generator),
                      torch.tensor([4.0, 3.0, 2.0, 1.0]), torch.randn(n, 3, generator=generator),
                      torch.tensor([1.0, 0.5, 0.25]), faces)
    return h5, save_uv_parameterization(folder / "face12.json", uvs, faces)


def options(face_files, **overrides):
    h5, uv = face_files
    values = dict(path_bfm=str(h5), path_uv=str(uv), image_h=48, image_w=48, device="cpu")
    values.update(overrides)
    return argparse.Namespace(**values)


def test_save_bfm2017_writes_the_exact_hdf5_layout(tmp_path):
    path = write_triangle_model(tmp_path / "tiny.h5")
    with h5py.File(path, "r") as h5:
        shapes = {key: h5[key].shape for key in REQUIRED_KEYS}
        assert h5["shape/representer/cells"][()].tolist() == [[0], [1], [2]]
        assert "expression/model/mean" in h5
    assert shapes == {"shape/model/mean": (9,), "shape/model/pcaBasis": (9, 2), "shape/model/pcaVariance": (2,),
                      "shape/representer/cells": (3, 1), "expression/model/pcaBasis": (9, 1),
                      "expression/model/pcaVariance": (1,)}


def test_bfm_counts_and_faces_come_from_the_file(tmp_path):
    model = BFM2017(write_triangle_model(tmp_path / "tiny.h5"))
    assert (model.n_vertices, model.n_faces, model.n_shape, model.n_expression) == (3, 1, 2, 1)
    assert model.faces.dtype == torch.int64 and model.faces.tolist() == [[0, 1, 2]]


def test_generate_vertices_matches_hand_computation(tmp_path):
    """Interleaved xyz; mean + shape basis @ sp + expression basis @ ep; expression mean (100) not added."""
    model = BFM2017(write_triangle_model(tmp_path / "tiny.h5"))
    sp = torch.tensor([[2.0, 3.0], [0.0, 0.0]])
    ep = torch.tensor([[4.0], [0.0]])
    vertices = model.generate_vertices(sp, ep)
    # Row 0: v0 = (0,1,2) + 2*(1,1,1) + 3*(1,0,0) + 4*(0,0,1) = (5,3,8);
    #        v1 = (3,4,5) + 2 + 3*(0,1,0) + 4*(0,0,1) = (5,9,11); v2 = (6,7,8) + 2 + 3*(0,0,1) + 4*(0,0,1) = (8,9,17).
    assert vertices.tolist() == [[[5, 3, 8], [5, 9, 11], [8, 9, 17]], [[0, 1, 2], [3, 4, 5], [6, 7, 8]]]
    assert model.generate_vertices(sp.double(), ep.double()).dtype == torch.float64


def test_generate_vertices_rejects_wrong_coefficient_lengths(tmp_path):
    model = BFM2017(write_triangle_model(tmp_path / "tiny.h5"))
    with pytest.raises(ValueError, match=r"shape coefficients must have shape \(B, 2\) for tiny.h5, got \(1, 3\)"):
        model.generate_vertices(torch.zeros(1, 3), torch.zeros(1, 1))
    with pytest.raises(ValueError, match=r"expression coefficients must have shape \(B, 1\)"):
        model.generate_vertices(torch.zeros(1, 2), torch.zeros(1, 100))
    with pytest.raises(ValueError, match=r"shape coefficients must have shape \(B, 2\)"):
        model.generate_vertices(torch.zeros(2), torch.zeros(1))


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_bfm_file_missing_a_required_key_names_key_and_file(tmp_path, key):
    path = write_triangle_model(tmp_path / "broken.h5")
    with h5py.File(path, "a") as h5:
        del h5[key]
    with pytest.raises(ValueError, match=f"broken.h5: .*lacks the required dataset '{key}'"):
        BFM2017(path)


def test_the_mean_colour_is_read_when_the_file_has_one(tmp_path):
    assert BFM2017(write_triangle_model(tmp_path / "plain.h5")).mean_color is None
    colors = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [1.04, 0.0, -0.02]]  # a PCA mean may overshoot a little
    path = write_triangle_model(tmp_path / "colored.h5", mean_color=colors)
    with h5py.File(path, "r") as h5:
        assert h5["color/model/mean"][()].tolist() == pytest.approx([v for rgb in colors for v in rgb])
    torch.testing.assert_close(BFM2017(path).mean_color,
                               torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="mean_color must have 3 x 3 entries, got 6"):
        write_triangle_model(tmp_path / "short.h5", mean_color=colors[:2])


@pytest.mark.parametrize("values, problem", [
    ([0.5] * 6, "has 6 entries, expected 9"),
    ([200.0] * 9, r"ranges over \[200, 200\]; expected colours in \[0, 1\]"),
    ([float("nan")] * 9, "non-finite"),
])
def test_a_bad_mean_colour_names_the_file_the_dataset_and_the_problem(tmp_path, values, problem):
    path = write_triangle_model(tmp_path / "broken.h5")
    with h5py.File(path, "a") as h5:
        h5.create_dataset("color/model/mean", data=values)
    with pytest.raises(ValueError, match=f"broken.h5: .*'color/model/mean'.*{problem}"):
        BFM2017(path)


def test_bfm_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.h5"):
        BFM2017(tmp_path / "nowhere.h5")


def test_sampled_coefficients_have_variance_times_multiplier_squared(tmp_path):
    model = BFM2017(write_triangle_model(tmp_path / "tiny.h5"))
    generator = torch.Generator().manual_seed(1)
    shape = model.sample_shape(20000, std_multiplier=2.0, generator=generator)
    expression = model.sample_expression(20000, std_multiplier=0.5, generator=generator)
    assert shape.shape == (20000, 2) and expression.shape == (20000, 1)
    assert torch.allclose(shape.var(dim=0), torch.tensor([16.0, 4.0]), rtol=0.05)
    assert torch.allclose(expression.var(dim=0), torch.tensor([2.25]), rtol=0.05)
    assert shape.mean(dim=0).abs().max() < 0.1


def test_uv_parameterization_round_trips(tmp_path):
    verts_uvs = torch.tensor([[0.0, 0.0], [1.0, 0.25], [0.5, 1.0], [0.125, 0.75]])
    faces_uvs = torch.tensor([[0, 1, 2], [0, 2, 3]])
    loaded_uvs, loaded_faces = load_uv_parameterization(save_uv_parameterization(tmp_path / "uv.json", verts_uvs,
                                                                                  faces_uvs))
    assert torch.equal(loaded_uvs, verts_uvs) and loaded_uvs.dtype == torch.float32
    assert torch.equal(loaded_faces, faces_uvs) and loaded_faces.dtype == torch.int64


def test_uv_json_errors_name_the_file_and_the_problem(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"pointData": [[0, 0]]}')
    with pytest.raises(ValueError, match="bad.json: UV json has no 'textureMapping'"):
        load_uv_parameterization(path)
    path.write_text('{"textureMapping": {"pointData": [[0, 0], [1, 0], [0, 1]]}}')
    with pytest.raises(ValueError, match="lacks 'textureMapping.triangles'"):
        load_uv_parameterization(path)
    path.write_text('{"textureMapping": {"pointData": [[0, 0], [1, 0], [0, 1]], "triangles": [[0, 1, 3]]}}')
    with pytest.raises(ValueError, match=r"index out of range: indices span \[0, 3\] but pointData has 3"):
        load_uv_parameterization(path)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_uv_parameterization(tmp_path / "missing.json")


def test_factory_get_uv_renders_batched_square_uv_maps(face_files):
    factory = BFMUVFactory(*face_files, image_size=48)
    rotation = euler_to_rotation(torch.tensor([[0.0, 0, 0], [0, 30, 0]]))
    t = torch.tensor([DEFAULT_T] * 2)
    s = torch.full((2, 1), DEFAULT_S)
    uv = factory.getUV(rotation, t, s, torch.zeros(2, 4), torch.zeros(2, 3))
    assert uv.shape == (2, 48, 48, 2) and uv.dtype == torch.float32
    covered = (uv[..., 0] > -1).float().mean(dim=(1, 2))
    assert torch.all(covered > 0.1) and torch.all(covered < 0.6)
    assert not torch.equal(uv[0], uv[1])
    single = factory.getUV(rotation[1], t[1], s[1], torch.zeros(4), torch.zeros(3))
    assert torch.equal(single[0], uv[1])


def test_factory_pose_grid_and_coefficient_rows_match_individual_renders(face_files):
    factory = BFMUVFactory(*face_files, image_size=48)
    generator = torch.Generator().manual_seed(2)
    sp = factory.bfm.sample_shape(2, generator=generator)
    ep = factory.bfm.sample_expression(3, generator=generator)
    thetas = torch.tensor([[0.0, 0, 0], [0, -35, 0], [30, 45, 0]])
    grid = factory.render_pose_grid(sp, ep[:2], thetas)
    assert grid.shape == (2, 3, 48, 48, 2)
    t, s = torch.tensor([DEFAULT_T]), torch.tensor([[DEFAULT_S]])
    for b in range(2):
        for p in range(3):
            expected = factory.getUV(euler_to_rotation(thetas[p:p + 1]), t, s, sp[b:b + 1], ep[b:b + 1])
            assert (grid[b, p] - expected[0]).abs().max() < 1e-5  # batch-size dependent BLAS rounding
    rows = factory.render_coefficient_rows(sp[:, None], ep[None])
    assert rows.shape == (2, 3, 48, 48, 2)
    expected = factory.getUV(euler_to_rotation(torch.zeros(1, 3)), t, s, sp[1:2], ep[2:3])
    assert (rows[1, 2] - expected[0]).abs().max() < 1e-5


def test_factory_from_options_renders_like_the_explicit_one_and_rejects_bad_options(face_files):
    explicit = BFMUVFactory(*face_files, image_size=48)
    from_options = uv_factory_from_options(options(face_files))
    assert (from_options.image_size, from_options.device.type) == (48, "cpu")
    sp, ep = torch.zeros(1, 4), torch.zeros(1, 3)
    pose = (euler_to_rotation(torch.zeros(1, 3)), torch.tensor([DEFAULT_T]), torch.tensor([[DEFAULT_S]]))
    assert torch.equal(from_options.getUV(*pose, sp, ep), explicit.getUV(*pose, sp, ep))
    with pytest.raises(ValueError, match="--image_h 48 and --image_w 64 differ"):
        uv_factory_from_options(options(face_files, image_w=64))
    with pytest.raises(MissingPathError, match="--path_bfm"):
        uv_factory_from_options(options(face_files, path_bfm=None))


def test_factory_rejects_a_uv_parameterization_of_another_model(face_files, tmp_path):
    vertices, faces, uvs = grid_face()
    short = save_uv_parameterization(tmp_path / "short.json", uvs, faces[:10])
    with pytest.raises(ValueError, match="short.json has 10 UV triangles but .*model.h5 has 128 faces"):
        BFMUVFactory(face_files[0], short, image_size=48)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_factory_names_the_device_when_cuda_is_absent(face_files):
    with pytest.raises(ValueError, match="device 'cuda' was requested but CUDA is not available"):
        BFMUVFactory(*face_files, image_size=48, device="cuda")

"""Posing, camera and rasterizer behaviour on small hand-made scenes (no reference data needed)."""
import math

import pytest
import torch

from varitex.geometry import (euler_to_rotation, focal_length, pixel_centers, pose_vertices, project_to_ndc,
                              rasterize, render_uv)
from varitex.geometry import rasterizer as rasterizer_module


def square(z=-30.0, half=5.0, x=0.0, y=0.0):
    """Two triangles forming a camera-facing square at depth z: (4, 3) vertices, (2, 3) faces."""
    vertices = torch.tensor([[x - half, y - half, z], [x + half, y - half, z], [x + half, y + half, z],
                             [x - half, y + half, z]])
    return vertices, torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_euler_to_rotation_composes_rz_ry_rx():
    pitch, yaw, roll = 10.0, -20.0, 30.0
    rotation = euler_to_rotation(torch.tensor([pitch, yaw, roll], dtype=torch.float64))
    single = [euler_to_rotation(torch.tensor(angles, dtype=torch.float64))
              for angles in ([pitch, 0, 0], [0, yaw, 0], [0, 0, roll])]
    assert torch.allclose(rotation, single[2] @ single[1] @ single[0], atol=1e-12)
    yaw_90 = euler_to_rotation(torch.tensor([0.0, 90.0, 0.0]))
    assert torch.allclose(yaw_90, torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]]), atol=1e-7)


def test_euler_to_rotation_is_batched_orthonormal_and_keeps_dtype():
    angles = torch.tensor([[0.0, 0, 0], [45, -45, 10], [30, 45, 0]])
    rotation = euler_to_rotation(angles)
    assert rotation.shape == (3, 3, 3) and rotation.dtype == torch.float32
    assert torch.allclose(rotation @ rotation.transpose(1, 2), torch.eye(3).expand(3, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(rotation), torch.ones(3), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        euler_to_rotation(torch.zeros(2, 4))


def test_pose_vertices_rotates_about_the_centroid_then_scales_and_translates():
    vertices = torch.tensor([[[10.0, 0, 0], [12, 0, 0]]])
    rotation = euler_to_rotation(torch.tensor([[0.0, 0, 90]]))  # roll 90: v @ R maps +x to -y
    t, s = torch.tensor([[1.0, 2, 3]]), torch.tensor([[0.5]])
    posed = pose_vertices(vertices, rotation, t, s)
    assert torch.allclose(posed, torch.tensor([[[6.5, 2.5, 3], [6.5, 1.5, 3]]]), atol=1e-5)
    about_origin = pose_vertices(vertices, rotation, t, s, correct_translation=False)
    assert torch.allclose(about_origin, torch.tensor([[[1.0, -3, 3], [1, -4, 3]]]), atol=1e-5)
    with pytest.raises(ValueError, match="t of shape"):
        pose_vertices(vertices, rotation, torch.zeros(1, 2), s)


def test_camera_focal_length_and_pixel_centres_follow_pytorch3d():
    assert focal_length(30.0) == pytest.approx(1 / math.tan(math.radians(15)), rel=1e-7)
    assert pixel_centers(4).tolist() == [-0.75, -0.25, 0.25, 0.75]
    ndc = project_to_ndc(torch.tensor([[[1.0, 2.0, -10.0]]]))
    f = focal_length(30.0)
    assert torch.allclose(ndc, torch.tensor([[[-f * 0.1, f * 0.2, 10.0]]]))


def test_world_plus_x_is_image_right_and_plus_y_is_image_top():
    vertices, faces = square(z=-30.0, half=2.0, x=4.0, y=4.0)  # upper right quadrant of the view
    pix_to_face = rasterize(vertices[None], faces, 32).pix_to_face[0]
    rows, cols = (pix_to_face >= 0).nonzero().unbind(1)
    assert rows.max() < 16 and cols.min() >= 16


def test_square_covers_the_expected_pixels_and_background_is_minus_one():
    vertices, faces = square(z=-30.0, half=5.0)
    fragments = rasterize(vertices[None], faces, 64)
    # Half-width in NDC is f * 5 / 30 = 0.622, so centres |x| < 0.622, i.e. |1 - (2c + 1) / 64| < 0.622, are covered: columns 12..51.
    covered = fragments.pix_to_face[0] >= 0
    columns = covered.any(dim=0).nonzero()[:, 0]
    assert (columns.min().item(), columns.max().item()) == (12, 51)
    assert (fragments.zbuf[0][covered] - 30.0).abs().max() < 1e-4
    assert torch.allclose(fragments.bary_coords[0][covered].sum(-1), torch.ones(int(covered.sum())), atol=1e-5)
    assert torch.all(fragments.pix_to_face[0][~covered] == -1)
    assert torch.all(fragments.zbuf[0][~covered] == -1) and torch.all(fragments.bary_coords[0][~covered] == -1)


def test_nearest_face_wins_regardless_of_face_order():
    far, far_faces = square(z=-40.0, half=8.0)
    near, near_faces = square(z=-20.0, half=2.0)
    vertices = torch.cat([near, far])[None]
    faces = torch.cat([far_faces + 4, near_faces])  # far square first in face order
    pix_to_face = rasterize(vertices, faces, 32).pix_to_face[0]
    assert pix_to_face[16, 16].item() in (2, 3)
    assert pix_to_face[2, 16].item() == -1 and pix_to_face[5, 16].item() in (0, 1)


def test_exact_depth_tie_goes_to_the_lower_face_index():
    vertices, faces = square(z=-30.0, half=5.0)
    duplicated = torch.cat([faces[[1]], faces[[0]], faces[[0]], faces[[1]]])  # faces 0/3 and 1/2 coincide
    pix_to_face = rasterize(vertices[None], duplicated, 32).pix_to_face[0]
    assert set(pix_to_face.unique().tolist()) == {-1, 0, 1}


def test_batch_renders_equal_single_renders_and_chunking_changes_nothing(monkeypatch):
    vertices, faces = square(z=-25.0, half=6.0)
    rotations = euler_to_rotation(torch.tensor([[0.0, 0, 0], [20, 30, 0], [-30, -40, 15]]))
    posed = pose_vertices(vertices[None].expand(3, -1, -1), rotations, torch.tensor([[0.0, 0, -25]] * 3),
                          torch.ones(3, 1))
    batch = rasterize(posed, faces, 48, perspective_correct=True)
    for index in range(3):
        single = rasterize(posed[index:index + 1], faces, 48, perspective_correct=True)
        assert torch.equal(single.pix_to_face[0], batch.pix_to_face[index])
        assert torch.equal(single.bary_coords[0], batch.bary_coords[index])
    monkeypatch.setattr(rasterizer_module, "MAX_PAIRS_PER_CHUNK", 7)
    chunked = rasterize(posed, faces, 48, perspective_correct=True)
    assert all(torch.equal(a, b) for a, b in zip(chunked, batch))


def test_faces_behind_the_camera_are_skipped():
    vertices, faces = square(z=+30.0, half=5.0)
    assert torch.all(rasterize(vertices[None], faces, 16).pix_to_face == -1)


def test_render_uv_interpolates_and_maps_to_minus_one_one():
    vertices, faces = square(z=-30.0, half=5.0)
    verts_uvs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    uv = render_uv(vertices[None], faces, verts_uvs, faces, 64)
    covered = uv[0, :, :, 0] > -1
    assert uv.shape == (1, 64, 64, 2)
    # u grows with world x (image right), v with world y (image top).
    assert uv[0, 32, 20, 0] < uv[0, 32, 44, 0] and uv[0, 20, 32, 1] > uv[0, 44, 32, 1]
    assert uv[0][covered].abs().max() <= 1
    assert torch.equal(uv[0][~covered], torch.full_like(uv[0][~covered], -1.0))


def test_rasterize_rejects_non_square_images_and_bad_indices():
    vertices, faces = square()
    with pytest.raises(ValueError, match="only square images"):
        rasterize(vertices[None], faces, (64, 32))
    with pytest.raises(ValueError, match=r"faces index out of range: indices span \[0, 4\] but there are 4"):
        rasterize(vertices[None], torch.tensor([[0, 1, 4]]), 16)
    with pytest.raises(ValueError, match=r"vertices must have shape \(B, V, 3\)"):
        rasterize(vertices, faces, 16)


def test_render_uv_rejects_uv_face_count_mismatch_and_bad_uv_indices():
    vertices, faces = square()
    verts_uvs = torch.rand(4, 2)
    with pytest.raises(ValueError, match="faces_uvs has 1 faces but faces has 2"):
        render_uv(vertices[None], faces, verts_uvs, faces[:1], 16)
    with pytest.raises(ValueError, match=r"faces_uvs index out of range"):
        render_uv(vertices[None], faces, verts_uvs[:3], faces, 16)

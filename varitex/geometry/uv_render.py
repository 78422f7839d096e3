"""Per-pixel UV maps: rasterize posed meshes and interpolate their per-corner UVs (docs/conventions.md)."""
from __future__ import annotations

import torch

from varitex.geometry.rasterizer import Fragments, check_faces, rasterize


def interpolate_uv(fragments: Fragments, verts_uvs: torch.Tensor, faces_uvs: torch.Tensor) -> torch.Tensor:
    """Barycentric interpolation of per-corner UVs, mapped from [0, 1] to [-1, 1].

    Args:
        fragments: Fragments of a render of meshes with F faces.
        verts_uvs: (T, 2) float UV coordinates in [0, 1].
        faces_uvs: (F, 3) int indices into verts_uvs, one triple per face (not the vertex indices).

    Returns:
        (B, S, S, 2) float32 in [-1, 1]; pixels hit by no face are exactly (-1, -1).
    """
    pix_to_face, bary = fragments.pix_to_face, fragments.bary_coords
    corner_uvs = verts_uvs.to(device=bary.device, dtype=torch.float32)[faces_uvs.to(bary.device)]  # (F, 3, 2)
    uv = torch.full((*pix_to_face.shape, 2), -1.0, dtype=torch.float32, device=bary.device)
    hit = pix_to_face >= 0
    weights = bary[hit]
    corners = corner_uvs[pix_to_face[hit]]
    uv[hit] = (weights[:, :, None] * corners).sum(dim=1) * 2 - 1
    return uv


def render_uv(vertices: torch.Tensor, faces: torch.Tensor, verts_uvs: torch.Tensor, faces_uvs: torch.Tensor,
              image_size: int, perspective_correct: bool = False, fov: float = 30.0) -> torch.Tensor:
    """Render UV maps of posed meshes with the fixed VariTex camera (PyTorch3D-compatible).

    Args:
        vertices: (B, V, 3) float world-space (posed) vertices.
        faces: (F, 3) int vertex indices shared by the batch.
        verts_uvs: (T, 2) float per-UV-vertex coordinates in [0, 1].
        faces_uvs: (F, 3) int indices into verts_uvs.
        image_size: S or (S, S).
        perspective_correct: False (default) reproduces the authors' 2021 renders; True PyTorch3D >= 0.4.
        fov: vertical field of view in degrees.

    Returns:
        (B, S, S, 2) float32 UVs in [-1, 1], background exactly -1.
    """
    if verts_uvs.dim() != 2 or verts_uvs.shape[1] != 2:
        raise ValueError(f"verts_uvs must have shape (T, 2), got {tuple(verts_uvs.shape)}")
    if faces_uvs.shape[0] != faces.shape[0]:
        raise ValueError(f"faces_uvs has {faces_uvs.shape[0]} faces but faces has {faces.shape[0]}; "
                         "the UV parameterization does not belong to this mesh")
    faces_uvs = check_faces(faces_uvs, verts_uvs.shape[0], name="faces_uvs")
    fragments = rasterize(vertices, faces, image_size, fov=fov, perspective_correct=perspective_correct)
    return interpolate_uv(fragments, verts_uvs, faces_uvs)

"""Per-vertex attributes of triangle meshes: normals, and their barycentric interpolation over rasterized pixels.

Shared by the demo world's shading and the own-photos correspondence renders.
"""
import torch
import torch.nn.functional as F


def vertex_normals(vertices, faces):
    """(B, V, 3) unit area-weighted vertex normals of (B, V, 3) vertices with (F, 3) faces."""
    normals = torch.zeros_like(vertices)
    normals.index_add_(1, faces.reshape(-1), face_normals(vertices, faces).repeat_interleave(3, dim=1))
    return F.normalize(normals, dim=-1, eps=1e-12)


def face_normals(vertices, faces):
    """(B, F, 3) unnormalized winding normals (cross products) of (B, V, 3) vertices with (F, 3) faces."""
    corners = vertices[:, faces]
    return torch.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0], dim=-1)


def interpolate_vertex_attributes(fragments, faces, attributes):
    """Barycentric interpolation of per-vertex attributes (B, V, C) -> (B, S, S, C); 0 on background."""
    hit = fragments.pix_to_face >= 0
    batch_index = torch.arange(attributes.shape[0], device=attributes.device)[:, None, None].expand_as(hit)
    corner_values = attributes[batch_index[hit][:, None], faces[fragments.pix_to_face[hit]]]   # (N, 3, C)
    out = attributes.new_zeros((*hit.shape, attributes.shape[-1]))
    out[hit] = (fragments.bary_coords[hit][:, :, None] * corner_values).sum(dim=1)
    return out

"""Euler angles to rotation matrices, and the authors' rigid posing of face-model vertices (docs/conventions.md)."""
from __future__ import annotations

import torch

# Pose used when re-posing a face (pose grids, the demo): the mesh centred 57 units in front of the
# camera, slightly below the optical axis, at one tenth of the model's millimetre scale.
DEFAULT_T = (0.0, -2.0, -57.0)
DEFAULT_S = 0.1


def euler_to_rotation(theta: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from Euler angles in degrees.

    Args:
        theta: (..., 3) float tensor (or array-like), (pitch about x, yaw about y, roll about z) in degrees.

    Returns:
        (..., 3, 3) tensor ``R = Rz @ Ry @ Rx`` built from the standard right-handed matrices, computed in
        float64 and returned in theta's floating dtype (float32 for other inputs). Used as ``verts @ R``.
    """
    theta = torch.as_tensor(theta)
    if theta.shape[-1:] != (3,):
        raise ValueError(f"euler_to_rotation expects angles of shape (..., 3), got {tuple(theta.shape)}")
    dtype = theta.dtype if theta.is_floating_point() else torch.float32
    radians = torch.deg2rad(theta.to(torch.float64))
    cos, sin = torch.cos(radians), torch.sin(radians)
    one, zero = torch.ones_like(cos[..., 0]), torch.zeros_like(cos[..., 0])

    def matrix(*rows):
        return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)

    cx, cy, cz = cos.unbind(-1)
    sx, sy, sz = sin.unbind(-1)
    rx = matrix((one, zero, zero), (zero, cx, -sx), (zero, sx, cx))
    ry = matrix((cy, zero, sy), (zero, one, zero), (-sy, zero, cy))
    rz = matrix((cz, -sz, zero), (sz, cz, zero), (zero, zero, one))
    return (rz @ ry @ rx).to(dtype)


def rotation_to_euler(R: torch.Tensor) -> torch.Tensor:
    """Euler angles of rotation matrices: the inverse of `euler_to_rotation` (pitch and roll in (-180, 180],
    yaw in [-90, 90]).

    Args:
        R: (..., 3, 3) rotation matrices ``Rz @ Ry @ Rx`` (as stored in R.npy).
    Returns:
        (..., 3) tensor (pitch, yaw, roll) in degrees, in R's floating dtype (float32 for other inputs).
    """
    R = torch.as_tensor(R)
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"rotation_to_euler expects matrices of shape (..., 3, 3), got {tuple(R.shape)}")
    dtype = R.dtype if R.is_floating_point() else torch.float32
    R = R.to(torch.float64)
    # Rz Ry Rx = [[cz cy, ., .], [sz cy, ., .], [-sy, cy sx, cy cx]]
    pitch = torch.atan2(R[..., 2, 1], R[..., 2, 2])
    yaw = torch.atan2(-R[..., 2, 0], torch.hypot(R[..., 0, 0], R[..., 1, 0]))
    roll = torch.atan2(R[..., 1, 0], R[..., 0, 0])
    return torch.rad2deg(torch.stack([pitch, yaw, roll], dim=-1)).to(dtype)


def rotation_angle_deg(R_a: torch.Tensor, R_b: torch.Tensor) -> torch.Tensor:
    """Geodesic distance between rotations: the angle of ``R_a^T R_b``, in degrees.

    Args:
        R_a, R_b: (..., 3, 3) rotations.
    Returns:
        (...) float in [0, 180].
    """
    R_a, R_b = torch.as_tensor(R_a, dtype=torch.float64), torch.as_tensor(R_b, dtype=torch.float64)
    cosine = ((R_a * R_b).sum(dim=(-2, -1)) - 1) / 2
    return torch.rad2deg(torch.acos(cosine.clamp(-1.0, 1.0))).float()


def pose_vertices(vertices: torch.Tensor, R: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                  correct_translation: bool = True) -> torch.Tensor:
    """Rigidly pose vertices with the authors' row-vector convention (their ``apply_Rts``).

    ``v' = s * ((v - c) @ R + c) + t`` with ``c`` the per-mesh vertex centroid, so that the mesh rotates
    about its own centre; with ``correct_translation=False`` it is ``s * (v @ R) + t``.

    Args:
        vertices: (B, V, 3) float, model space (BFM: millimetres). (1, V, 3) broadcasts over the batch.
        R: (B, 3, 3) rotation, applied as ``v @ R``.
        t: (B, 3) translation.
        s: (B, 1) scale.
        correct_translation: rotate about the centroid (True, as the authors) or about the origin.

    Returns:
        (B, V, 3) posed (world-space) vertices.
    """
    if vertices.dim() != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"pose_vertices expects vertices of shape (B, V, 3), got {tuple(vertices.shape)}")
    if R.dim() != 3 or R.shape[-2:] != (3, 3):
        raise ValueError(f"pose_vertices expects R of shape (B, 3, 3), got {tuple(R.shape)}")
    if t.shape[-1:] != (3,) or t.numel() != 3 * R.shape[0]:
        raise ValueError(f"pose_vertices expects t of shape (B, 3) with B={R.shape[0]}, got {tuple(t.shape)}")
    if s.numel() != R.shape[0]:
        raise ValueError(f"pose_vertices expects s of shape (B, 1) with B={R.shape[0]}, got {tuple(s.shape)}")
    t = t.reshape(-1, 1, 3)
    s = s.reshape(-1, 1, 1)
    if not correct_translation:
        return s * (vertices @ R) + t
    centroid = vertices.mean(dim=-2, keepdim=True)
    return s * ((vertices - centroid) @ R + centroid) + t

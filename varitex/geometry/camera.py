"""The fixed VariTex camera: at the origin, looking down -z, up +y, square image (docs/conventions.md).

It reproduces PyTorch3D's ``FoVPerspectiveCameras`` with ``look_at_view_transform(eye=(0,0,0),
at=(0,0,-1), up=(0,1,0))`` in the float32 operation order PyTorch3D uses, so that projected vertices and
pixel centres are bit-identical to what its rasterizer consumes.
"""
from __future__ import annotations

import math

import torch


def focal_length(fov: float = 30.0) -> float:
    """NDC focal length ``1 / tan(fov / 2)`` as float32, rounded as PyTorch3D computes it.

    Args:
        fov: vertical field of view in degrees, in (0, 180).

    Returns:
        Python float holding a float32 value (3.7320509 for 30 degrees).
    """
    if not 0.0 < fov < 180.0:
        raise ValueError(f"fov must be in (0, 180) degrees, got {fov}")
    half = torch.tensor([math.pi / 180.0], dtype=torch.float32) * fov / 2
    max_x = torch.tan(half)
    return (2.0 / (max_x - (-max_x))).item()


def project_to_ndc(vertices: torch.Tensor, fov: float = 30.0) -> torch.Tensor:
    """World space -> what the rasterizer consumes: (x_ndc, y_ndc, z_view).

    View space is PyTorch3D's (+x left, +y up, +z into the scene): ``(x_v, y_v, z_v) = (-x, y, -z)``.
    NDC is ``(f * x_v / z_v, f * y_v / z_v)``; the NDC depth is discarded in favour of ``z_v`` (positive
    distance in front of the camera), which drives the depth test and the perspective correction.

    Args:
        vertices: (B, V, 3) float32 world-space vertices.
        fov: vertical field of view in degrees.

    Returns:
        (B, V, 3) float32 ``(x_ndc, y_ndc, z_view)``; +x_ndc is the image's left, +y_ndc its top.
    """
    f = focal_length(fov)
    x_view = -vertices[..., 0]
    y_view = vertices[..., 1]
    z_view = -vertices[..., 2]
    return torch.stack([(x_view * f) / z_view, (y_view * f) / z_view, z_view], dim=-1)


def pixel_centers(image_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """NDC coordinates of the pixel centres along one image axis, ascending.

    Entry ``i`` is ``(2 i + 1) / S - 1`` in float32 (PyTorch3D's formula). Column ``c`` of the image has
    x_ndc = entry ``S - 1 - c`` and row ``r`` has y_ndc = entry ``S - 1 - r``, since NDC +x points left
    and +y up.

    Args:
        image_size: S, the side of the square image.
        device: torch device of the result.

    Returns:
        (S,) float32, strictly increasing, inside (-1, 1).
    """
    index = torch.arange(image_size, device=device, dtype=torch.float32)
    return (2.0 * index + 1.0) / image_size - 1.0

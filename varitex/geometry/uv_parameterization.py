"""The face model's UV parameterization in the ``face12.json`` layout.

``{"textureMapping": {"pointData": [[u, v], ...], "triangles": [[i, j, k], ...]}}``: per-UV-vertex
coordinates in [0, 1] (T, 2) and one triple of UV-vertex indices per mesh face (F, 3).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from varitex.safe_io import load_json, save_json

UV_TOLERANCE = 1e-3  # UVs a little outside [0, 1] (float round-off in exported files) are accepted

def load_uv_parameterization(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a face12.json-style UV parameterization.

    Args:
        path: the json file.

    Returns:
        verts_uvs (T, 2) float32 in [0, 1] and faces_uvs (F, 3) int64 indices into verts_uvs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"UV parameterization file not found: {path}")
    content = load_json(path, what="UV parameterization file")
    mapping = content.get("textureMapping") if isinstance(content, dict) else None
    if not isinstance(mapping, dict):
        raise ValueError(f"{path}: UV json has no 'textureMapping' object (expected the face12.json layout "
                         "with textureMapping.pointData and textureMapping.triangles)")
    for key in ("pointData", "triangles"):
        if key not in mapping:
            raise ValueError(f"{path}: UV json lacks 'textureMapping.{key}'")
    try:
        verts_uvs = np.asarray(mapping["pointData"], dtype=np.float32)
        triangles = np.asarray(mapping["triangles"])
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: 'textureMapping.pointData' / 'triangles' are not arrays of numbers ({error})") from None
    if triangles.size and (triangles.dtype.kind not in "iu"):
        raise ValueError(f"{path}: 'textureMapping.triangles' holds {triangles.dtype} values; expected integer "
                         f"indices")
    faces_uvs = triangles.astype(np.int64).reshape(triangles.shape if triangles.size else (0, 3))
    if not np.isfinite(verts_uvs).all():
        raise ValueError(f"{path}: 'textureMapping.pointData' holds non-finite UVs (NaN or infinity)")
    if verts_uvs.size and (verts_uvs.min() < -UV_TOLERANCE or verts_uvs.max() > 1 + UV_TOLERANCE):
        raise ValueError(f"{path}: 'textureMapping.pointData' holds UVs outside [0, 1] (min {verts_uvs.min()}, "
                         f"max {verts_uvs.max()})")
    if verts_uvs.ndim != 2 or verts_uvs.shape[1] != 2:
        raise ValueError(f"{path}: 'textureMapping.pointData' must have shape (T, 2), got {verts_uvs.shape}")
    if faces_uvs.ndim != 2 or faces_uvs.shape[1] != 3:
        raise ValueError(f"{path}: 'textureMapping.triangles' must have shape (F, 3), got {faces_uvs.shape}")
    if faces_uvs.size and (faces_uvs.min() < 0 or faces_uvs.max() >= len(verts_uvs)):
        raise ValueError(f"{path}: 'textureMapping.triangles' index out of range: indices span "
                         f"[{faces_uvs.min()}, {faces_uvs.max()}] but pointData has {len(verts_uvs)} entries")
    return torch.from_numpy(verts_uvs), torch.from_numpy(faces_uvs)


def save_uv_parameterization(path, verts_uvs, faces_uvs):
    """Write a UV parameterization in the face12.json layout (read back by load_uv_parameterization).

    Args:
        path: output json file (parent folders are created).
        verts_uvs: (T, 2) float UVs in [0, 1].
        faces_uvs: (F, 3) int indices into verts_uvs.

    Returns:
        The path written, as a Path.
    """
    verts_uvs = torch.as_tensor(verts_uvs).detach().cpu()
    faces_uvs = torch.as_tensor(faces_uvs).detach().cpu()
    if verts_uvs.dim() != 2 or verts_uvs.shape[1] != 2:
        raise ValueError(f"verts_uvs must have shape (T, 2), got {tuple(verts_uvs.shape)}")
    if faces_uvs.dim() != 2 or faces_uvs.shape[1] != 3:
        raise ValueError(f"faces_uvs must have shape (F, 3), got {tuple(faces_uvs.shape)}")
    if faces_uvs.numel() and (faces_uvs.min() < 0 or faces_uvs.max() >= len(verts_uvs)):
        raise ValueError(f"faces_uvs index out of range [0, {len(verts_uvs)})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"textureMapping": {"pointData": verts_uvs.float().tolist(),
                                  "triangles": faces_uvs.long().tolist()}}
    save_json(path, content)
    return path

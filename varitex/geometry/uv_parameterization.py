"""The face model's UV parameterization in the ``face12.json`` layout.

``{"textureMapping": {"pointData": [[u, v], ...], "triangles": [[i, j, k], ...]}}``: per-UV-vertex
coordinates in [0, 1] (T, 2) and one triple of UV-vertex indices per mesh face (F, 3).
"""
import json
from pathlib import Path

import numpy as np
import torch


def load_uv_parameterization(path):
    """Read a face12.json-style UV parameterization.

    Args:
        path: the json file.

    Returns:
        verts_uvs (T, 2) float32 in [0, 1] and faces_uvs (F, 3) int64 indices into verts_uvs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"UV parameterization file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        content = json.load(handle)
    mapping = content.get("textureMapping") if isinstance(content, dict) else None
    if not isinstance(mapping, dict):
        raise ValueError(f"{path}: UV json has no 'textureMapping' object (expected the face12.json layout "
                         "with textureMapping.pointData and textureMapping.triangles)")
    for key in ("pointData", "triangles"):
        if key not in mapping:
            raise ValueError(f"{path}: UV json lacks 'textureMapping.{key}'")
    verts_uvs = np.asarray(mapping["pointData"], dtype=np.float32)
    faces_uvs = np.asarray(mapping["triangles"], dtype=np.int64)
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
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(content, handle)
    return path

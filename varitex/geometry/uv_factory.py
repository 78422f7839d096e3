"""UV maps of the Basel Face Model for given shape, expression and pose (the authors' ``BFMUVFactory``)."""
from __future__ import annotations

import os

import torch

from varitex.geometry.bfm import BFM2017
from varitex.geometry.posing import DEFAULT_S, DEFAULT_T, euler_to_rotation, pose_vertices
from varitex.geometry.uv_parameterization import load_uv_parameterization
from varitex.geometry.uv_render import render_uv


def available_device(name: str | torch.device) -> torch.device:
    """torch.device ``name``; raises ValueError when CUDA is asked for but absent (no silent fallback here)."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available; use 'cpu'")
    return device


class BFMUVFactory:
    """Renders (B, S, S, 2) UV maps of posed face-model meshes (the authors' name).

    Args:
        path_bfm: Basel Face Model 2017 HDF5 file (model2017-1_face12_nomouth.h5 layout).
        path_uv: its UV parameterization (face12.json layout).
        image_size: side S of the square renders in pixels.
        device: where the face model lives and the renders are made.
        perspective_correct: False (default) reproduces the authors' 2021 renders (PyTorch3D 0.3), which
            the released uv.npy and the pretrained model were made with; True is PyTorch3D >= 0.4.

    ``varitex.generation.uv_factory_from_options(opt)`` builds one from the authors' options.
    """

    def __init__(self, path_bfm: str | os.PathLike, path_uv: str | os.PathLike, image_size: int,
                 device: str | torch.device = "cpu", perspective_correct: bool = False):
        self.image_size = int(image_size)
        self.device = available_device(device)
        self.perspective_correct = perspective_correct
        self.bfm = BFM2017(path_bfm)
        verts_uvs, faces_uvs = load_uv_parameterization(path_uv)
        if faces_uvs.shape[0] != self.bfm.n_faces:
            raise ValueError(f"{path_uv} has {faces_uvs.shape[0]} UV triangles but {path_bfm} has "
                             f"{self.bfm.n_faces} faces; the UV parameterization does not belong to this model")
        self.faces = self.bfm.faces.to(self.device)
        self.verts_uvs = verts_uvs.to(self.device)
        self.faces_uvs = faces_uvs.to(self.device)

    def _tensor(self, x):
        return torch.as_tensor(x, dtype=torch.float32).to(self.device)

    def getUV(self, R: torch.Tensor, t: torch.Tensor, s: torch.Tensor, sp: torch.Tensor, ep: torch.Tensor,  # noqa: N802
              correct_translation: bool = True) -> torch.Tensor:  # (the authors' name)
        """UV maps of the model with coefficients (sp, ep) posed by (R, t, s).

        Args:
            R: (B, 3, 3) rotation applied as ``verts @ R``; t: (B, 3); s: (B, 1).
            sp: (B, K_shape) shape coefficients; ep: (B, K_expr) expression coefficients.
            correct_translation: rotate about the mesh centroid (the authors' default).
            A single unbatched sample ((3, 3), (3,), (1,), (K_shape,), (K_expr,)) is rendered as a batch of one.

        Returns:
            (B, H, W, 2) float32 UVs in [-1, 1], background exactly -1, on ``device``.
        """
        R, t, s, sp, ep = (self._tensor(x) for x in (R, t, s, sp, ep))
        if sp.dim() == 1:
            R, t, s, sp, ep = R[None], t[None], s.reshape(1, 1), sp[None], ep[None]
        vertices = self.bfm.generate_vertices(sp, ep)
        posed = pose_vertices(vertices, R, t, s, correct_translation=correct_translation)
        return render_uv(posed, self.faces, self.verts_uvs, self.faces_uvs, self.image_size,
                         perspective_correct=self.perspective_correct)

    def _default_pose(self, n, t, s):
        t = self._tensor(DEFAULT_T if t is None else t).reshape(-1, 3).expand(n, 3)
        s = self._tensor(DEFAULT_S if s is None else s).reshape(-1, 1).expand(n, 1)
        return t, s

    def render_pose_grid(self, sp, ep, thetas_deg, t=None, s=None):
        """Every identity in every pose, in one batched render.

        Args:
            sp: (B, K_shape) shape coefficients; ep: (B, K_expr) expression coefficients.
            thetas_deg: (P, 3) Euler angles in degrees (pitch, yaw, roll).
            t: (3,) translation for all renders (default DEFAULT_T); s: scalar scale (default DEFAULT_S).

        Returns:
            (B, P, H, W, 2) float32 UVs; entry [b, p] is identity b in pose p.
        """
        sp, ep = self._tensor(sp), self._tensor(ep)
        rotations = euler_to_rotation(self._tensor(thetas_deg).reshape(-1, 3))
        n_identities, n_poses = sp.shape[0], rotations.shape[0]
        vertices = self.bfm.generate_vertices(sp, ep)
        vertices = vertices[:, None].expand(-1, n_poses, -1, -1).reshape(n_identities * n_poses, -1, 3)
        rotations = rotations[None].expand(n_identities, -1, -1, -1).reshape(-1, 3, 3)
        t, s = self._default_pose(len(rotations), t, s)
        uv = render_uv(pose_vertices(vertices, rotations, t, s), self.faces, self.verts_uvs, self.faces_uvs,
                       self.image_size, perspective_correct=self.perspective_correct)
        return uv.view(n_identities, n_poses, *uv.shape[1:])

    def render_coefficient_rows(self, sp, ep, theta_deg=(0.0, 0.0, 0.0), t=None, s=None):
        """A grid of shape/expression variations in one pose, in one batched render.

        The leading dimensions of sp and ep broadcast against each other, e.g. sp (rows, 1, K_shape) and
        ep (1, cols, K_expr) give every shape (rows) with every expression (columns).

        Args:
            sp: (..., K_shape) shape coefficients; ep: (..., K_expr) expression coefficients.
            theta_deg: (3,) Euler angles in degrees for all renders.
            t: (3,) translation (default DEFAULT_T); s: scalar scale (default DEFAULT_S).

        Returns:
            (*grid, H, W, 2) float32 UVs, ``grid`` the broadcast leading shape of sp and ep.
        """
        sp, ep = self._tensor(sp), self._tensor(ep)
        grid = torch.broadcast_shapes(sp.shape[:-1], ep.shape[:-1])
        sp = sp.expand(*grid, sp.shape[-1]).reshape(-1, sp.shape[-1])
        ep = ep.expand(*grid, ep.shape[-1]).reshape(-1, ep.shape[-1])
        rotations = euler_to_rotation(self._tensor(theta_deg).reshape(1, 3)).expand(len(sp), 3, 3)
        t, s = self._default_pose(len(sp), t, s)
        posed = pose_vertices(self.bfm.generate_vertices(sp, ep), rotations, t, s)
        uv = render_uv(posed, self.faces, self.verts_uvs, self.faces_uvs, self.image_size,
                       perspective_correct=self.perspective_correct)
        return uv.view(*grid, *uv.shape[1:])

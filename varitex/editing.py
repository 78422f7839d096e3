"""Edits of an identity, every one rendered by the one generator ``varitex.generation.generate``.

An identity is a `Codes` tuple (z, sp, ep, theta, t, s) with a batch dimension. Each edit is a pure function
from the codes of one identity to a batch of variants that differ from it in the edited field(s) only; the
other fields are copies, bit for bit:

    codes = dataset_codes(dataroot_npy, rows=[3], z=z)   # a photo's geometry (preprocessed arrays) and its code
    pose_sweep(codes, "yaw", angles)            theta on one axis        (z, sp, ep, t, s kept)
    transfer_expression(codes, ep)              ep of other photos       (z, sp, theta, t, s kept)
    swap_shape(codes, sp)                       sp of other photos       (z, ep, theta, t, s kept)
    interpolate_identities(codes, z_to, n)      z towards another code   (geometry kept)
    sample_around(codes, std, n, multiplier)    z = mu + multiplier * std * eps
    out = render(pipeline, uv_factory, variants, batch_size)   # IMAGE_OUT, SEGMENTATION_PREDICTED, UV_RENDERED
"""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import torch

from varitex import visualization as vis
from varitex.generation import generate
from varitex.geometry import rotation_to_euler
from varitex.safe_io import load_npy

AXES = {"pitch": 0, "yaw": 1, "roll": 2}  # columns of theta


class Codes(NamedTuple):
    """Inputs of G(z, sp, ep, theta, t, s) for B images; float32 tensors on one device."""
    z: torch.Tensor       # (B, latent_dim) identity code
    sp: torch.Tensor      # (B, K_shape) face-model shape
    ep: torch.Tensor      # (B, K_expr) face-model expression
    theta: torch.Tensor   # (B, 3) pitch, yaw, roll in degrees
    t: torch.Tensor       # (B, 3) translation
    s: torch.Tensor       # (B, 1) scale

    @property
    def batch_size(self) -> int:
        return self.z.shape[0]

    def select(self, rows) -> Codes:
        """The codes of ``rows`` (an index, a list or a tensor of indices), keeping a batch dimension."""
        rows = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
        return Codes(*(field[rows.to(field.device)] for field in self))

    def repeat(self, n: int) -> Codes:
        """n copies of a single identity's codes: (1, ...) -> (n, ...)."""
        _single(self)
        return Codes(*(field.expand(n, -1).clone() for field in self))


def _single(codes: Codes) -> Codes:
    if codes.batch_size != 1:
        raise ValueError(f"an edit starts from one identity; got codes of {codes.batch_size} (use codes.select(i))")
    return codes


def dataset_codes(dataroot_npy: str | os.PathLike, rows, z) -> Codes:
    """The fitted geometry of rows of a preprocessed dataset, with identity codes.

    Args:
        dataroot_npy: folder with sp.npy, ep.npy, R.npy, t.npy, s.npy (the authors' layout, memory-mapped).
        rows: (B,) row indices of those arrays.
        z: (B, latent_dim) codes for these rows (latents.npy of varitex-invert, or the encoder's mu).
    Returns:
        Codes on z's device; theta from R (`varitex.geometry.rotation_to_euler`).
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    arrays = {name: torch.as_tensor(np.asarray(load_npy(os.path.join(dataroot_npy, f"{name}.npy"), mmap=True,
                                                        what="dataset file")[rows], dtype=np.float32))
              for name in ("sp", "ep", "R", "t", "s")}
    z = torch.as_tensor(z, dtype=torch.float32).reshape(len(rows), -1)
    fields = dict(sp=arrays["sp"], ep=arrays["ep"], theta=rotation_to_euler(arrays["R"]), t=arrays["t"], s=arrays["s"])
    return Codes(z=z, **{name: value.to(z.device) for name, value in fields.items()})


def pose_sweep(codes: Codes, axis: str, angles) -> Codes:
    """The identity with its ``axis`` angle ("pitch", "yaw" or "roll") set to each of ``angles`` (degrees)."""
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}; expected one of {', '.join(AXES)}")
    angles = torch.as_tensor(angles, dtype=torch.float32).reshape(-1)
    variants = codes.repeat(len(angles))
    variants.theta[:, AXES[axis]] = angles.to(variants.theta.device)
    return variants


def transfer_expression(codes: Codes, ep) -> Codes:
    """The identity with each expression of ``ep`` ((n, K_expr), e.g. other photos' ep)."""
    ep = torch.as_tensor(ep, dtype=torch.float32).reshape(-1, codes.ep.shape[1])
    return codes.repeat(len(ep))._replace(ep=ep.to(codes.ep.device))


def swap_shape(codes: Codes, sp) -> Codes:
    """The identity with each face-model shape of ``sp`` ((n, K_shape), e.g. other photos' sp)."""
    sp = torch.as_tensor(sp, dtype=torch.float32).reshape(-1, codes.sp.shape[1])
    return codes.repeat(len(sp))._replace(sp=sp.to(codes.sp.device))


def interpolate_identities(codes: Codes, z_to, n: int) -> Codes:
    """n codes from the identity's z to ``z_to`` (both ends included), with the authors' Gaussian weight
    correction (`varitex.visualization.interpolate_latents`); the geometry stays the identity's."""
    z_to = torch.as_tensor(z_to, dtype=torch.float32).reshape(-1).to(codes.z.device)
    return codes.repeat(n)._replace(z=vis.interpolate_latents(_single(codes).z[0], z_to, n))


def sample_around(codes: Codes, std, n: int, std_multiplier: float = 1.0,
                  generator: torch.Generator | None = None) -> Codes:
    """n codes drawn from the identity's distribution, z = mu + std_multiplier * std * eps, eps ~ N(0, I).

    Args:
        codes: one identity; its z is the mean. std: (latent_dim,) or (1, latent_dim) the encoder's std.
        generator: a CPU torch.Generator for reproducible draws.
    """
    std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1).to(codes.z.device)
    eps = torch.randn(n, codes.z.shape[1], generator=generator).to(codes.z.device)
    return codes.repeat(n)._replace(z=_single(codes).z + std_multiplier * std * eps)


def render(pipeline: torch.nn.Module, uv_factory, codes: Codes, batch_size: int = 16) -> dict:
    """G(codes) in chunks of ``batch_size`` through ``varitex.generation.generate``; outputs on the CPU.

    Returns:
        dict with IMAGE_OUT (B, 3, H, W), SEGMENTATION_PREDICTED (B, 1, H, W), UV_RENDERED (B, H, W, 2).
    """
    chunks = [generate(pipeline, uv_factory, *codes.select(range(start, min(start + batch_size, codes.batch_size))))
              for start in range(0, codes.batch_size, batch_size)]
    return {key: torch.cat([chunk[key].cpu() for chunk in chunks]) for key in chunks[0]}

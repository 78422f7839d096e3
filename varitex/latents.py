"""latents.npy: the authors' file of latent distributions, one row per image of a split.

    save_latents(path, mu, std)              -> writes (N, 2, latent_dim) float32: [:, 0] mu, [:, 1] std
    mu, std = load_latents(path, latent_dim) -> (N, latent_dim) tensors, shape checked

Inference mode reconstruction writes the encoder's mu; varitex-invert writes its refined code in place of
mu (std stays the encoder's). The authors ship theirs beside the preprocessed dataset.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from varitex.safe_io import load_npy, save_npy

LATENTS_FILE = "latents.npy"


def latents_array(mu, std) -> np.ndarray:
    """(N, D) mu and std (tensors or arrays) -> (N, 2, D) float32 numpy array in the authors' order."""
    mu, std = (torch.as_tensor(x).detach().float().cpu() for x in (mu, std))
    if mu.shape != std.shape or mu.dim() != 2:
        raise ValueError(f"mu and std must both be (N, latent_dim); got {tuple(mu.shape)} and {tuple(std.shape)}")
    return torch.stack([mu, std], dim=1).numpy()


def save_latents(path, mu, std) -> str:
    """Write ``latents_array(mu, std)`` to ``path`` atomically (folders created); returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_npy(path, latents_array(mu, std))
    return os.fspath(path)


def load_latents(path, latent_dim: int | None = None, rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a latents.npy: mu (N, D) and std (N, D) float32 tensors.

    Args:
        path: the file.
        latent_dim: expected D (the model's --latent_dim); None accepts any.
        rows: expected N (the images of the split it belongs to); None accepts any.
    Raises:
        FileNotFoundError, ValueError: naming the file and the expected layout.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"latents file not found: {path}")
    latents = load_npy(path, what="latents file")
    expected = f"({rows if rows is not None else 'N'}, 2, {latent_dim if latent_dim is not None else 'latent_dim'})"
    if (latents.ndim != 3 or latents.shape[1] != 2 or (latent_dim is not None and latents.shape[2] != latent_dim)
            or (rows is not None and latents.shape[0] != rows)):
        raise ValueError(f"{path} has shape {latents.shape}; expected {expected}: mu and std per image "
                         f"(the layout of varitex-invert and inference's latents.npy)")
    if not np.issubdtype(latents.dtype, np.floating):
        raise ValueError(f"{path} has dtype {latents.dtype}; expected float32")
    if not len(latents):
        raise ValueError(f"latents file {path} holds no samples")
    if not np.isfinite(latents).all():
        raise ValueError(f"latents file {path} holds non-finite values (NaN or infinity)")
    latents = torch.as_tensor(np.asarray(latents, dtype=np.float32))
    return latents[:, 0], latents[:, 1]

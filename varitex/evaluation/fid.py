"""Frechet Inception Distance (Heusel et al. 2017) through torchmetrics' implementation (torch-fidelity's
Inception-v3 port), with the Inception weights read from a file, never downloaded.

The weights file is torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` (the TensorFlow FID network
converted to PyTorch); fetch it once on a machine with internet access (torch-fidelity's release page) and pass
it with ``--path_inception``.
"""
from __future__ import annotations

import os

import torch

FIDELITY_INSTALL = 'pip install -e ".[evaluate]"  (torch-fidelity)'


class FIDUnavailable(RuntimeError):
    """FID cannot be computed here: no weights file or no torch-fidelity; the message says why."""


class FrechetInceptionDistance:
    """Accumulates Inception pool features of real and generated images; ``compute()`` gives the FID.

    Args:
        path_inception: torch-fidelity's Inception-v3 state_dict file.
        device: where Inception runs.
    Raises:
        FIDUnavailable: the file is not given or missing, or torch-fidelity is not installed.
    """

    def __init__(self, path_inception, device="cpu"):
        if not path_inception:
            raise FIDUnavailable("no Inception weights (--path_inception FILE, torch-fidelity's "
                                 "weights-inception-2015-12-05-6726825d.pth; never downloaded)")
        if not os.path.isfile(path_inception):
            raise FIDUnavailable(f"--path_inception: file not found: {path_inception}")
        try:
            from torchmetrics.image.fid import FrechetInceptionDistance as Metric

            self.metric = Metric(feature=2048, normalize=True, feature_extractor_weights_path=str(path_inception))
        except ModuleNotFoundError as error:
            raise FIDUnavailable(f"FID needs torch-fidelity, which is not installed: {FIDELITY_INSTALL}") from error
        self.metric = self.metric.to(device)
        self.device = device

    @torch.no_grad()
    def update(self, images, real):
        """images: (B, 3, H, W) float in [0, 1]; real: True for real images, False for generated ones."""
        self.metric.update(images.to(self.device).float().clamp(0, 1), real=real)

    def compute(self):
        """The FID (float) of everything seen; needs at least two images of each kind."""
        return float(self.metric.compute())

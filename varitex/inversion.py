"""A photo's identity code: the encoder's mean, refined by gradient descent on the masked reconstruction.

    inversion = invert_batch(pipeline, batch, steps=60)   # batch of NPYDataset items (any device)
    inversion.mu, inversion.std        (B, latent_dim)     the encoder's distribution (z = mu: the authors' way)
    inversion.z                        (B, latent_dim)     the refined code
    inversion.curve                    (steps + 1, B)      masked L2 before each step and after the last

The refinement keeps the fitted geometry (the item's UV_RENDERED) and every network weight fixed and
optimizes z alone with Adam on the reconstruction loss inside the head mask (SEGMENTATION_MASK): the mean
squared error, plus the VGG-19 perceptual loss when its ImageNet weights are available (`perceptual_loss`).
Items of a batch are independent: Adam's steps are per coordinate and the networks run in eval mode.
"""
from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch

from varitex.data.keys_enum import DataItemKey as DIK


class Inversion(NamedTuple):
    """Result of `invert_batch`; every tensor on the CPU, float32."""
    mu: torch.Tensor        # (B, latent_dim) encoder mean
    std: torch.Tensor       # (B, latent_dim) encoder std (> 0)
    z: torch.Tensor         # (B, latent_dim) refined code (equal to mu for steps = 0)
    curve: torch.Tensor     # (steps + 1, B) masked L2 of z before step i; the last row: of the returned z


def masked_l2(fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per item inside a (soft) mask.

    Args:
        fake, real: (B, 3, H, W) ImageNet-normalized images.
        mask: (B, 1, H, W) weights in [0, 1] (SEGMENTATION_MASK).
    Returns:
        (B,) sum(mask * (fake - real)^2) / (3 * sum(mask)); 0 for an empty mask.
    """
    squared = (mask * (fake - real) ** 2).flatten(1).sum(1)
    return squared / (3 * mask.flatten(1).sum(1)).clamp_min(1e-8)


def perceptual_loss(pipeline: torch.nn.Module, path_vgg: str | None = None):
    """The VGG-19 perceptual loss of training, found the way training finds it, or why it is unavailable.

    Uses the pipeline's own ``loss_vgg`` when its weights are pretrained (the authors' checkpoints carry
    them), else ``VGG19Loss(path_vgg)`` (an explicit file, else torchvision's cache; never downloaded).

    Returns:
        (VGG19Loss on the pipeline's device, None) or (None, a sentence saying where it looked).
    """
    from varitex.modules.loss import VGG19Loss

    loss = getattr(pipeline, "loss_vgg", None)
    if loss is None or loss.pretrained_source is None:
        loss = VGG19Loss(path_vgg)
    if loss.pretrained_source is None:
        return None, loss.missing_reason
    device = next(pipeline.parameters()).device
    return loss.to(device).eval(), None


@contextlib.contextmanager
def frozen(module: torch.nn.Module):
    """``module`` in eval mode with requires_grad off inside the block; both restored afterwards."""
    training = module.training
    flags = [p.requires_grad for p in module.parameters()]
    module.eval().requires_grad_(False)
    try:
        yield module
    finally:
        module.train(training)
        for parameter, flag in zip(module.parameters(), flags):
            parameter.requires_grad_(flag)


def render_latents(pipeline: torch.nn.Module, z: torch.Tensor, uv: torch.Tensor) -> dict:
    """G(z, uv) for a fixed geometry: IMAGE_OUT (B, 3, H, W) and SEGMENTATION_PREDICTED (B, 1, H, W).

    Differentiable in z; call it under torch.no_grad() for pictures.
    """
    out = pipeline.generator.forward_latent2image({DIK.STYLE_LATENT: z, DIK.UV_RENDERED: uv})
    return {DIK.IMAGE_OUT: out[DIK.IMAGE_OUT], DIK.SEGMENTATION_PREDICTED: out[DIK.SEGMENTATION_PREDICTED]}


def refine_latents(pipeline: torch.nn.Module, z: torch.Tensor, uv: torch.Tensor, target: torch.Tensor,
                   mask: torch.Tensor, steps: int, lr: float = 0.05, perceptual=None,
                   lambda_perceptual: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on z alone: loss = masked_l2 (+ lambda_perceptual * VGG-19 loss inside the mask).

    Args:
        pipeline: PipelineModule (or anything with ``.generator``); its weights are not changed.
        z: (B, D) initial codes; uv: (B, H, W, 2) the fixed geometry; target: (B, 3, H, W) ImageNet-normalized
            image; mask: (B, 1, H, W) head mask in [0, 1]; all on the pipeline's device.
        steps: number of Adam steps (0 returns z unchanged).
        perceptual: a VGG19Loss (see `perceptual_loss`) or None for L2 alone.
    Returns:
        (z (B, D) detached, curve (steps + 1, B) masked L2 before each step and of the returned z, on the CPU).
    """
    z = z.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    curve = []
    with frozen(pipeline.generator):
        for _ in range(steps):
            fake = render_latents(pipeline, z, uv)[DIK.IMAGE_OUT]
            l2 = masked_l2(fake, target, mask)
            loss = l2.sum()  # a sum: each item's gradient does not depend on the batch
            if perceptual is not None and lambda_perceptual > 0:
                # The VGG loss sees the head only: outside the mask, the fake is replaced by the photo.
                inside = mask * fake + (1 - mask) * target
                loss = loss + lambda_perceptual * len(z) * perceptual(inside, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            curve.append(l2.detach().cpu())
        with torch.no_grad():
            curve.append(masked_l2(render_latents(pipeline, z, uv)[DIK.IMAGE_OUT], target, mask).cpu())
    return z.detach(), torch.stack(curve)


@torch.no_grad()
def encode(pipeline: torch.nn.Module, image_encode: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's latent distribution of masked, aligned images (IMAGE_IN_ENCODE (B, 3, H, W)): mu, std."""
    generator = pipeline.generator
    with frozen(generator):
        batch = generator.forward_encode({DIK.IMAGE_IN_ENCODE: image_encode})
        batch = generator.forward_encoded2latent_distribution(batch)
    return batch[DIK.STYLE_LATENT_MU], batch[DIK.STYLE_LATENT_STD]


def invert_batch(pipeline: torch.nn.Module, batch: dict, steps: int, lr: float = 0.05, perceptual=None,
                 lambda_perceptual: float = 2.0) -> Inversion:
    """Invert a batch of NPYDataset items (collated, on the pipeline's device).

    z starts at the encoder's mu of IMAGE_IN_ENCODE and is refined towards IMAGE_IN (the un-augmented item)
    inside SEGMENTATION_MASK, on the item's UV_RENDERED.
    """
    mu, std = encode(pipeline, batch[DIK.IMAGE_IN_ENCODE])
    z, curve = refine_latents(pipeline, mu, batch[DIK.UV_RENDERED], batch[DIK.IMAGE_IN], batch[DIK.SEGMENTATION_MASK],
                              steps, lr, perceptual, lambda_perceptual)
    return Inversion(mu.cpu(), std.cpu(), z.cpu(), curve)

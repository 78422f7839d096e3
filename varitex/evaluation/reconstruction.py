"""Reconstruction of the split's images: PSNR, SSIM and LPIPS of IMAGE_OUT against IMAGE_IN.

Two latents per image: z = mu (the encoder's mean, ``std_multiplier`` 0) and a posterior sample
(``std_multiplier`` 1, as the authors' validation; seeded, so runs repeat exactly). Each on the whole image
("unmasked", as the authors' validation) and on the head ("masked": PSNR and SSIM averaged over the
MASK_FULL pixels; LPIPS of the output pasted into the real image outside MASK_FULL). Values are means over
images of per-image metrics.
"""
from __future__ import annotations

import torch
from tqdm import tqdm

from varitex.data.keys_enum import DataItemKey as DIK
from varitex.data.batches import batch_to_device
from varitex.modules.metrics import psnr_per_image, ssim_per_image

LATENTS = {"z_mu": 0.0, "posterior_sample": 1.0}  # name -> std_multiplier


def image_metrics(fake, real, mask, lpips=None):
    """Per-image metrics of one batch.

    Args:
        fake, real: (B, 3, H, W) ImageNet-normalized; mask: (B, 1, H, W) head mask (0/1).
        lpips: LPIPSMetric with pretrained weights, or None.
    Returns:
        {"unmasked": {metric: (B,) tensor}, "masked": {...}}; metrics psnr, ssim (and lpips).
    """
    result = {"unmasked": {"psnr": psnr_per_image(fake, real), "ssim": ssim_per_image(fake, real)},
              "masked": {"psnr": psnr_per_image(fake, real, mask), "ssim": ssim_per_image(fake, real, mask)}}
    if lpips is not None:
        result["unmasked"]["lpips"] = lpips.per_image(fake, real)
        result["masked"]["lpips"] = lpips.per_image(torch.where(mask > 0, fake, real), real)
    return result


@torch.no_grad()
def evaluate_reconstruction(pipeline, loader, device, lpips=None, seed=0):
    """Mean per-image metrics over ``loader`` for each latent of LATENTS.

    Args:
        pipeline: PipelineModule in eval mode on ``device``; loader: batches of NPYDataset (no augmentation).
        lpips: LPIPSMetric on ``device`` or None; seed: seed of the posterior samples.
    Returns:
        {latent: {"unmasked"|"masked": {metric: mean}}} and the number of images, as (dict, int).
    """
    torch.manual_seed(seed)
    values = {latent: {} for latent in LATENTS}
    n = 0
    for batch in tqdm(loader, desc="reconstruction", unit="batch", leave=False):
        batch = batch_to_device(batch, device)
        n += batch[DIK.IMAGE_IN].shape[0]
        for latent, std_multiplier in LATENTS.items():
            out = pipeline(batch, std_multiplier=std_multiplier)
            metrics = image_metrics(out[DIK.IMAGE_OUT], batch[DIK.IMAGE_IN], batch[DIK.MASK_FULL], lpips)
            for region, per_metric in metrics.items():
                for metric, per_image in per_metric.items():
                    values[latent].setdefault(region, {}).setdefault(metric, []).append(per_image.cpu())
    means = {latent: {region: {metric: float(torch.cat(parts).double().mean()) for metric, parts in per_metric.items()}
                      for region, per_metric in regions.items()} for latent, regions in values.items()}
    return means, n


"""Validation metrics as the authors log them: PSNR and SSIM on 0..255 images, LPIPS (AlexNet) on 0..1 images.

Inputs are ImageNet-normalized (B, 3, H, W) tensors, as produced by the renderer and the dataset.
"""
import math
import warnings

import lpips
import torch
import torchvision
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure

from varitex.data.image_ops import IMAGENET_MEAN, IMAGENET_STD, denormalize  # noqa: F401 (re-exported)
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules.pretrained import load_torchvision_features


def psnr(fake, real):
    """PSNR in dB over the whole batch of 0..255 images (one MSE over all elements, as Lightning 1.x' psnr)."""
    fake, real = denormalize(fake.float(), 255.0), denormalize(real.float(), 255.0)
    return 10 * torch.log10(255.0 ** 2 / torch.mean((fake - real) ** 2))


def ssim(fake, real):
    """Mean SSIM (Gaussian window 11, sigma 1.5) of 0..255 images."""
    fake, real = denormalize(fake.float(), 255.0), denormalize(real.float(), 255.0)
    return structural_similarity_index_measure(fake, real, data_range=255.0)


def _mask_mean(values, mask):
    """(B,) mean of (B, C, H, W) values over the pixels where ``mask`` (B, 1, H, W) is true (all when None)."""
    weight = torch.ones_like(values[:, :1]) if mask is None else mask.to(values.dtype)
    return (values * weight).sum((1, 2, 3)) / (weight.sum((1, 2, 3)) * values.shape[1]).clamp(min=1e-12)


def psnr_per_image(fake, real, mask=None):
    """PSNR in dB of each image (0..255 scale), over the head pixels when ``mask`` is given.

    Args:
        fake, real: (B, 3, H, W) ImageNet-normalized; mask: (B, 1, H, W) bool/0-1 or None.
    Returns:
        (B,) float; inf for identical images.
    """
    fake, real = denormalize(fake.float(), 255.0), denormalize(real.float(), 255.0)
    return 10 * torch.log10(255.0 ** 2 / _mask_mean((fake - real) ** 2, mask))


def ssim_per_image(fake, real, mask=None):
    """SSIM of each image (0..255 scale, Gaussian window 11, sigma 1.5): the mean of the SSIM map, over the
    head pixels when ``mask`` is given.

    Args:
        fake, real: (B, 3, H, W) ImageNet-normalized; mask: (B, 1, H, W) bool/0-1 or None.
    Returns:
        (B,) float in [-1, 1]; 1 for identical images.
    """
    fake, real = denormalize(fake.float(), 255.0), denormalize(real.float(), 255.0)
    _, full = structural_similarity_index_measure(fake, real, data_range=255.0, reduction="none",
                                                  return_full_image=True)
    return _mask_mean(full, mask)


class LPIPSMetric(nn.Module):
    """LPIPS distance (Zhang et al. 2018, ``lpips`` package, AlexNet trunk) averaged over the batch.

    The linear calibration weights ship with the lpips package; the AlexNet trunk needs torchvision's ImageNet
    weights, taken from torchvision's cache (never downloaded) or from a state_dict that carries them (the
    authors' checkpoints have ``metric_lpips.metric.*``). ``pretrained_source`` is None while the trunk is
    random; PipelineModule then refuses to validate unless told otherwise.
    """

    def __init__(self, weights_path=None):
        """weights_path: torchvision's AlexNet IMAGENET1K_V1 state_dict file (default: torchvision's cache)."""
        super().__init__()
        with warnings.catch_warnings():
            # lpips builds torchvision's AlexNet with the deprecated ``pretrained=False`` argument.
            warnings.simplefilter("ignore", UserWarning)
            self.metric = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
        self.pretrained_source, self.missing_reason = load_torchvision_features(
            self.metric.net.children(), torchvision.models.AlexNet_Weights.IMAGENET1K_V1, weights_path)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if any(key.startswith(prefix + "metric.net.") for key in state_dict):
            self.pretrained_source = "state_dict"
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, fake, real):
        """fake, real: (B, 3, H, W) ImageNet-normalized -> 0-dim tensor (mean LPIPS over the batch)."""
        return self.per_image(fake, real).mean()

    def per_image(self, fake, real):
        """fake, real: (B, 3, H, W) ImageNet-normalized -> (B,) LPIPS distances (0 for identical images)."""
        fake, real = denormalize(fake.float()), denormalize(real.float())
        return self.metric(fake, real, normalize=True).flatten()


@torch.no_grad()
def identity_errors(generator, latents, uv, image, mask, chunk=64):
    """Cross-rendering errors for identity retrieval: every latent rendered with every image's own UVs.

    Args:
        generator: a Generator (its current mode is used; call eval() first for inference numerics).
        latents: (N, latent_dim) identity codes, e.g. STYLE_LATENT_MU of the N images.
        uv: (N, H, W, 2) UV_RENDERED of the N images.
        image: (N, 3, H, W) IMAGE_IN of the N images, ImageNet-normalized.
        mask: (N, 1, H, W) the region compared (e.g. MASK_FULL, the head), bool or float in [0, 1].
        chunk: renders per generator call.

    Returns:
        (N, N) float tensor: ``errors[j, i]`` is the mean squared error inside ``mask[j]`` between ``image[j]``
        and G(latents[i], uv[j]).
    """
    n = latents.shape[0]
    mask = mask.float()
    errors = latents.new_empty(n, n)
    pairs = torch.cartesian_prod(torch.arange(n), torch.arange(n))  # (j, i), j-major
    for start in range(0, n * n, chunk):
        j, i = pairs[start:start + chunk].unbind(1)
        rendered = generator.forward_latent2image({DIK.STYLE_LATENT: latents[i], DIK.UV_RENDERED: uv[j]})
        squared = (rendered[DIK.IMAGE_OUT] - image[j]) ** 2 * mask[j]
        errors[j, i] = squared.sum((1, 2, 3)) / (mask[j].sum((1, 2, 3)) * image.shape[1]).clamp(min=1)
    return errors


def expected_top1(errors, k):
    """Expected top-1 retrieval in a random gallery of ``k`` of the N images (one image per person).

    Image j is retrieved when its own latent beats the k - 1 others drawn with it. With r_j the number of
    other latents that reconstruct j better than its own, that happens with probability
    C(N - 1 - r_j, k - 1) / C(N - 1, k - 1); the mean over j is exact, no sampling. Over N > k people it is
    a steadier estimate of the top-1 of a k-person split than ``identity_retrieval`` on one such split.

    Args:
        errors: (N, N) errors[j, i] of image j rendered with latent i (``identity_errors``).
        k: gallery size, 1 <= k <= N.

    Returns:
        float in [0, 1]; chance is 1 / k.
    """
    n = errors.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"gallery size k={k} must be between 1 and the number of images {n}")
    own = errors.diagonal()
    better = (errors < own[:, None]).sum(1).tolist()  # r_j: other latents strictly better than the own one
    return sum(math.comb(n - 1 - r, k - 1) for r in better) / (n * math.comb(n - 1, k - 1))


def identity_retrieval(errors, person=None):
    """Top-1 identity retrieval from ``identity_errors``.

    Args:
        errors: (N, N) errors[j, i] of image j rendered with latent i.
        person: optional (N,) int tensor, the person shown in each image.

    Returns:
        dict with ``top1``: fraction of images j whose own latent reconstructs them best (chance ``chance``
        = 1/N); with ``person`` and a person shown more than once, also ``person_top1``: leave-one-out, the
        fraction of images j for which the best of the *other* images' latents shows the same person (a
        person's identity, not the image's pose, light or expression; chance ``person_chance``, the mean
        share of same-person candidates). With one image per person, ``top1`` is the person retrieval.
    """
    n = errors.shape[0]
    own = torch.arange(n, device=errors.device)
    result = {"top1": (errors.argmin(1) == own).float().mean().item(), "chance": 1.0 / n}
    if person is not None and len(torch.as_tensor(person).unique()) < n:  # some person has several images
        person = torch.as_tensor(person, device=errors.device)
        others = errors.clone()
        others[own, own] = float("inf")
        same = person[:, None] == person[None, :]
        result["person_top1"] = same[own, others.argmin(1)].float().mean().item()
        result["person_chance"] = ((same.sum(1) - 1).float() / max(n - 1, 1)).mean().item()
    return result

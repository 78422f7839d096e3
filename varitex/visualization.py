"""Turning batch tensors into pictures: shared by image logging, inference and the demo.

All functions are batched and stay on the tensors' device until `to_uint8`.
"""
import importlib.util
import os

import torch

from varitex.data.image_ops import IMAGENET_MEAN, IMAGENET_STD, denormalize  # noqa: F401 (re-exported)

MASK_THRESHOLD = 0.7  # SEGMENTATION_PREDICTED above this counts as head (the authors' inference)


def unnormalize(images):
    """ImageNet-normalized images -> displayable images.

    Args:
        images: (B, 3, H, W) float, ImageNet-normalized (IMAGE_IN, IMAGE_OUT, ...).
    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    return denormalize(images).clamp(0, 1)


def uv_to_rgb(uv):
    """Rendered UVs as colours: u -> red, v -> green, blue 0; background (-1, -1) is black.

    Args:
        uv: (B, H, W, 2) float in [-1, 1].
    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    uv = uv.permute(0, 3, 1, 2)
    rgb = torch.cat([uv, -torch.ones_like(uv[:, :1])], dim=1)
    return ((rgb + 1) / 2).clamp(0, 1)


def gray_to_rgb(maps):
    """(B, 1, H, W) values in [0, 1] (masks, segmentation) -> (B, 3, H, W)."""
    return maps.clamp(0, 1).expand(-1, 3, -1, -1)


def mask_output(images, segmentation, threshold=MASK_THRESHOLD):
    """Black out everything the generator does not call head.

    The authors multiply by the soft segmentation after zeroing values below the threshold; we use the
    binary mask (the authors' inference thresholds SEGMENTATION_PREDICTED at 0.7).

    Args:
        images: (B, 3, H, W) float in [0, 1].
        segmentation: (B, 1, H, W) float in [0, 1] (SEGMENTATION_PREDICTED).
    Returns:
        (B, 3, H, W) float in [0, 1], background exactly 0.
    """
    return images * (segmentation > threshold).to(images.dtype)


def displayed_output(outputs, mask=True):
    """The generator's images as shown everywhere: IMAGE_OUT in [0, 1], masked like inference's outputs.

    Args:
        outputs: dict with IMAGE_OUT (B, 3, H, W) and SEGMENTATION_PREDICTED (B, 1, H, W).
        mask: black out pixels with SEGMENTATION_PREDICTED <= MASK_THRESHOLD.
    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    from varitex.data.keys_enum import DataItemKey as DIK

    images = unnormalize(outputs[DIK.IMAGE_OUT])
    return mask_output(images, outputs[DIK.SEGMENTATION_PREDICTED]) if mask else images


def normalize_channels(maps):
    """Stretch every channel of every item to [0, 1] independently (for neural-texture channels).

    Args:
        maps: (B, C, H, W) float, any range.
    Returns:
        (B, C, H, W) float in [0, 1]; constant channels become 0.
    """
    flat = maps.flatten(2)
    low = flat.min(dim=2, keepdim=True).values
    high = flat.max(dim=2, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-8)).view_as(maps)


def to_uint8(images):
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8 numpy array on the CPU."""
    array = (images.detach().clamp(0, 1) * 255).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()


def gaussian_corrected_weight(weights):
    """The authors' Gaussian variance correction of interpolation weights: ``w' = w / sqrt(w^2 + (1 - w)^2)``.

    The interpolant is ``(1 - w') * z_from + w' * z_to``. Authors' formula, kept as is: only the weight of
    ``z_to`` is corrected, so the midpoint leans towards ``z_to`` (w'(0.5) = 0.707).

    Args:
        weights: float tensor (any shape) of weights in [0, 1].
    Returns:
        tensor of the same shape in [0, 1]; 0 -> 0, 1 -> 1.
    """
    return weights / torch.sqrt(weights ** 2 + (1 - weights) ** 2)


def gaussian_interpolation_weights(n):
    """Corrected weights (`gaussian_corrected_weight`) of ``w = linspace(0, 1, n)``.

    Returns:
        (n,) float32 tensor in [0, 1], first 0 and last 1.
    """
    return gaussian_corrected_weight(torch.linspace(0, 1, n))


def interpolate_latents(z_from, z_to, n=None, weights=None):
    """Latent codes between two identities (authors' corrected linear interpolation).

    Args:
        z_from, z_to: (D,) or (B, D) latent codes.
        n: number of evenly spaced steps, both ends included; or
        weights: (n,) uncorrected weights in [0, 1] (0 gives z_from, 1 gives z_to).
    Returns:
        (n, D) or (n, B, D) tensor on the device of ``z_from``.
    """
    if (n is None) == (weights is None):
        raise ValueError("interpolate_latents: give either n or weights")
    weights = gaussian_interpolation_weights(n) if weights is None else gaussian_corrected_weight(
        torch.as_tensor(weights, dtype=torch.float32).reshape(-1))
    n = len(weights)
    weights = weights.to(z_from.device, z_from.dtype)
    weights = weights.view(n, *([1] * z_from.dim()))
    return (1 - weights) * z_from.unsqueeze(0) + weights * z_to.unsqueeze(0)


def image_grid(images, nrow):
    """Tile (B, 3, H, W) images into one (3, H', W') picture with a 2-pixel white border."""
    from torchvision.utils import make_grid
    return make_grid(images.detach().float().cpu(), nrow=nrow, padding=2, pad_value=1.0)


def save_png(image, path):
    """Write one (3, H, W) float image in [0, 1] as an 8-bit PNG."""
    from PIL import Image
    Image.fromarray(to_uint8(image.unsqueeze(0))[0]).save(path)


def write_video(frames, path, fps=15):
    """Write (N, H, W, 3) uint8 frames as a video; returns the path written.

    An .mp4 needs the imageio-ffmpeg package; without it (or for any other extension) the video is written
    as a GIF next to ``path`` (same name, .gif) that loops forever.
    """
    frames = list(frames)
    if not frames:
        raise ValueError(f"no frames to write to {path}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    root, extension = os.path.splitext(path)
    if extension.lower() == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is not None:
        import imageio
        imageio.mimwrite(path, frames, fps=fps, macro_block_size=1)
        return path
    from PIL import Image
    path = root + ".gif"
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path

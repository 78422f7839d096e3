"""The authors' training augmentation: flip, then a random affine, one draw
per item shared by the image, the uv map and the segmentation.

The authors drew torchvision ``RandomAffine`` parameters and applied flip + affine with PIL (nearest
neighbour) to each array separately, the uv map twice. Here one draw becomes one sampling map: PIL applies
the same transform to an image of pixel indices, so every output pixel knows the exact source pixel PIL
would have picked (its fixed-point rounding included), and each array is then gathered through that map.
Same pixels as the authors' path, one transform instead of four.
"""
import functools
import math
from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch
from PIL import Image


class AffineParams(NamedTuple):
    """Ranges of the random draw (torchvision ``RandomAffine`` arguments plus a flip probability)."""
    degrees: float                                   # rotation uniform in [-degrees, degrees]
    translate: Optional[Tuple[float, float]] = None  # max shift as a fraction of (width, height)
    scale: Optional[Tuple[float, float]] = None      # zoom uniform in [min, max]
    flip_p: float = 0.0                              # probability of a horizontal flip (before the affine)


class AffineDraw(NamedTuple):
    """One random draw, in torchvision's conventions."""
    angle: float                  # degrees, counter-clockwise
    translate: Tuple[int, int]    # (x, y) shift in pixels
    scale: float
    flip: bool


FFHQ_PARAMS = AffineParams(degrees=15.0, translate=(0.2, 0.2), scale=(1.0, 1.2), flip_p=0.5)
TRANSFORM_LETTERS = {"d": "degrees", "t": "translate", "s": "scale", "f": "flip_p"}


def transform_params(transform_mode):
    """--transform_mode -> AffineParams: 'all', or any of the letters d (rotation), t (translation),
    s (scale), f (flip); the FFHQ ranges of the authors for the chosen ones, no-ops for the rest."""
    if transform_mode == "all":
        return FFHQ_PARAMS
    unknown = sorted(set(transform_mode) - set(TRANSFORM_LETTERS))
    if unknown:
        raise ValueError(f"--transform_mode '{transform_mode}' has unknown letters {unknown}; use 'all' or "
                         f"letters from d (rotation), t (translation), s (scale), f (flip)")
    chosen = {TRANSFORM_LETTERS[letter] for letter in transform_mode}
    disabled = AffineParams(degrees=0.0)
    return AffineParams(**{field: getattr(FFHQ_PARAMS if field in chosen else disabled, field)
                           for field in AffineParams._fields})


def draw_affine(params, size, generator=None):
    """Draw one AffineDraw for a (size x size) image like ``RandomAffine.get_params`` (same order of draws
    from torch's generator, integer pixel shifts), then the flip.

    The authors drew the flip from numpy's global generator, which older PyTorch duplicated across
    DataLoader workers; drawing it from torch's generator keeps the workers' flips independent.
    """
    def uniform(low, high):
        return float(torch.empty(1).uniform_(low, high, generator=generator).item())

    angle = uniform(-params.degrees, params.degrees)
    translate = (0, 0)
    if params.translate is not None:
        max_dx, max_dy = params.translate[0] * size, params.translate[1] * size
        translate = (int(round(uniform(-max_dx, max_dx))), int(round(uniform(-max_dy, max_dy))))
    scale = 1.0 if params.scale is None else uniform(*params.scale)
    flip = bool(torch.rand(1, generator=generator).item() < params.flip_p)
    return AffineDraw(angle, translate, scale, flip)


def inverse_affine_matrix(draw, size):
    """PIL's AFFINE coefficients (a, b, c, d, e, f), output pixel -> source pixel, for a rotation about the
    image centre (size/2, size/2), the zoom and the shift; torchvision's formula with no shear and its
    order of float operations, so PIL rounds to the same source pixels."""
    center = size * 0.5
    tx, ty = float(draw.translate[0]), float(draw.translate[1])
    rotation = math.radians(draw.angle)
    cos, sin = math.cos(rotation), math.sin(rotation)
    matrix = [x / draw.scale for x in (cos, sin, 0.0, -sin, cos, 0.0)]
    matrix[2] += matrix[0] * (-center - tx) + matrix[1] * (-center - ty)
    matrix[5] += matrix[3] * (-center - tx) + matrix[4] * (-center - ty)
    matrix[2] += center
    matrix[5] += center
    return tuple(matrix)


@functools.lru_cache(maxsize=4)
def _index_image(size, flip):
    """PIL int32 image holding 1 + the row-major index of each pixel (of the flipped image when flip)."""
    indices = np.arange(1, size * size + 1, dtype=np.int32).reshape(size, size)
    if flip:
        indices = np.ascontiguousarray(indices[:, ::-1])
    return Image.fromarray(indices)


def sampling_map(draw, size):
    """Nearest-neighbour sampling map of ``draw`` on a (size x size) image.

    Returns:
        (size, size) int32: 0 where the output is fill, else 1 + the row-major index of the source pixel.
    """
    transformed = _index_image(size, draw.flip).transform(
        (size, size), Image.AFFINE, inverse_affine_matrix(draw, size), resample=Image.NEAREST, fillcolor=0)
    return np.asarray(transformed)


def apply_sampling_map(array, sampling, fill):
    """Gather ``array`` (S, S, ...) through ``sampling`` (S, S) from sampling_map; fill where it is 0.

    Returns:
        A new array of the same shape and dtype as ``array``.
    """
    pixels = array.reshape(sampling.size, -1)
    padded = np.empty((sampling.size + 1, pixels.shape[1]), dtype=array.dtype)
    padded[0] = fill
    padded[1:] = pixels
    return np.take(padded, sampling.reshape(-1), axis=0).reshape(array.shape)

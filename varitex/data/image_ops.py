"""Array-level image operations of a dataset item: resizing, hole filling and ImageNet normalization.

Everything here works on numpy arrays in (H, W) or (H, W, C) layout and follows OpenCV's conventions where
the authors used OpenCV, so that the results equal theirs without depending on OpenCV.
"""
import numpy as np
import torch
from PIL import Image
from scipy import ndimage

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def resize_bilinear(array, size):
    """Resize like ``cv2.resize(array, (width, height), interpolation=cv2.INTER_LINEAR)``.

    OpenCV's bilinear filter has half-pixel centres, clamps at the borders and does not antialias: a
    downscale by 2 averages 2x2 blocks (OpenCV then switches to its area filter, which gives the same
    numbers), a downscale by 4 averages the two middle pixels of each 4-pixel span.

    Args:
        array: (H, W) or (H, W, C), uint8 or float; or a PIL image (uint8), resized without first being
            copied into a large numpy array.
        size: (height, width) of the result.
    Returns:
        A new array (height, width[, C]); uint8 input gives uint8 rounded half up as OpenCV does (exact for the
        2x case; other ratios may differ from OpenCV's 11-bit fixed-point weights by one gray level),
        float input gives float32.
    """
    height, width = size
    if isinstance(array, Image.Image):
        if array.size == (2 * width, 2 * height):
            return np.array(array.reduce(2))
        array = np.asarray(array)
    in_height, in_width = array.shape[:2]
    is_uint8 = array.dtype == np.uint8
    if (in_height, in_width) == (height, width):
        return np.array(array, dtype=np.uint8 if is_uint8 else np.float32)
    if (in_height, in_width) == (2 * height, 2 * width):
        if is_uint8:
            # PIL's reduce computes (a + b + c + d + 2) >> 2 in C, OpenCV's 2x result, several times faster.
            return np.array(Image.fromarray(array).reduce(2))
        # torch's strided in-place adds are about three times faster than numpy's here. Summed in the order
        # top-left, top-right, bottom-left, bottom-right, then scaled (exact for sums of quarters).
        source = np.require(array, np.float32, "W")  # torch wants writable memory (no copy when it is)
        blocks = torch.from_numpy(source).unflatten(0, (height, 2)).unflatten(2, (width, 2))
        total = blocks[:, 0, :, 0] + blocks[:, 0, :, 1]
        total += blocks[:, 1, :, 0]
        total += blocks[:, 1, :, 1]
        return total.mul_(0.25).numpy()
    rows0, rows1, row_weight = _linear_taps(in_height, height)
    cols0, cols1, col_weight = _linear_taps(in_width, width)
    channel_axes = (1,) * (array.ndim - 2)
    col_weight = col_weight.reshape((1, width) + channel_axes)
    row_weight = row_weight.reshape((height, 1) + channel_axes)
    source = array.astype(np.float32, copy=False)
    horizontal = source[:, cols0] * (1 - col_weight) + source[:, cols1] * col_weight
    result = horizontal[rows0] * (1 - row_weight) + horizontal[rows1] * row_weight
    if is_uint8:
        return np.clip(np.floor(result + 0.5), 0, 255).astype(np.uint8)
    return result


def _linear_taps(in_size, out_size):
    """Source indices i0, i1 (out_size,) int and weights of i1 (out_size,) float32 of OpenCV's bilinear filter."""
    position = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    first = np.floor(position)
    weight = (position - first).astype(np.float32)
    weight[first < 0] = 0
    first = np.clip(first, 0, in_size - 1).astype(np.int64)
    second = np.minimum(first + 1, in_size - 1)
    return first, second, weight


def fill_holes(mask):
    """``scipy.ndimage.binary_fill_holes(mask)``, about three times faster.

    A background pixel stays background only when a 4-connected background path links it to the image
    border; every other pixel becomes foreground.

    Args:
        mask: (H, W) bool.
    Returns:
        (H, W) bool.
    """
    labels, _ = ndimage.label(~mask)
    reaches_border = np.zeros(labels.max() + 1, dtype=bool)
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        reaches_border[edge] = True
    reaches_border[0] = False  # label 0 is the foreground itself
    return ~reaches_border[labels]


def normalize_image(image):
    """uint8 (H, W, 3) RGB -> float32 tensor (3, H, W), ImageNet-normalized (about -2.1 to 2.6).

    The same operations as torchvision's ToTensor followed by Normalize, hence the same float32 values.
    """
    tensor = torch.from_numpy(image).permute(2, 0, 1).contiguous().float().div(255)
    return tensor.sub_(_MEAN).div_(_STD)


def uv_mask(uv, both_valid):
    """The pixels of a UV render the face covers: (..., 2) UVs, background exactly -1 -> bool (...).

    Authors' quirk, kept because the pretrained model was trained with it: MASK_UV has two rules. The
    dataset requires both coordinates valid (``both_valid=True``: u != -1 and v != -1); the generator, which
    overwrites the dataset's MASK_UV in the batch, only one (``both_valid=False``: u != -1 or v != -1).
    Works on numpy arrays and torch tensors alike.
    """
    u_valid, v_valid = uv[..., 0] != -1, uv[..., 1] != -1
    return u_valid & v_valid if both_valid else u_valid | v_valid


def denormalize(image, scale=1.0):
    """(B, 3, H, W) ImageNet-normalized -> the image in [0, scale] (not clamped)."""
    mean = image.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = image.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (image * std + mean) * scale

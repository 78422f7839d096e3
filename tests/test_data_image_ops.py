"""Resizing (OpenCV's bilinear convention), hole filling and ImageNet normalization of dataset items."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from torchvision import transforms

from varitex.data.image_ops import fill_holes, normalize_image, resize_bilinear


def test_uint8_2x_downscale_averages_2x2_blocks_rounding_half_up():
    # Each 2x2 block sums to 0+0+1+1=2 (0.5 -> 1), 1+1+1+2=5 (1.25 -> 1), 1+2+2+2=7 (1.75 -> 2), 4*255.
    image = np.array([[0, 0, 1, 1],
                      [1, 1, 1, 2],
                      [1, 2, 255, 255],
                      [2, 2, 255, 255]], dtype=np.uint8)
    result = resize_bilinear(image, (2, 2))
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, [[1, 1], [2, 255]])


def test_uint8_2x_downscale_of_rgb_equals_block_formula():
    image = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    blocks = image.astype(np.int64).reshape(32, 2, 24, 2, 3).sum((1, 3))
    np.testing.assert_array_equal(resize_bilinear(image, (32, 24)), (blocks + 2) // 4)


def test_float_2x_downscale_is_the_exact_block_mean():
    mask = np.zeros((4, 4), dtype=np.float32)
    mask[1:, 1:] = 1  # blocks hold 1, 2, 2 and 4 ones
    result = resize_bilinear(mask, (2, 2))
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, [[0.25, 0.5], [0.5, 1.0]])


def test_4x_downscale_averages_the_two_middle_pixels_of_each_span():
    # Output pixel centres fall at source positions 1.5 and 5.5 (half-pixel centres, no antialiasing).
    ramp = np.tile(np.arange(8, dtype=np.float32), (8, 1))
    np.testing.assert_allclose(resize_bilinear(ramp, (2, 2)), [[1.5, 5.5], [1.5, 5.5]])


def test_uint8_3x_downscale_picks_the_centre_pixel_of_each_3x3_block():
    image = np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_bilinear(image, (32, 32)), image[1::3, 1::3])


def test_upscale_clamps_at_the_borders():
    # Source positions -0.25, 0.25, 0.75, 1.25 -> clamped to 0, blends 3:1 and 1:3, clamped to 1.
    row = np.array([[0.0, 4.0]] * 2, dtype=np.float32)
    np.testing.assert_allclose(resize_bilinear(row, (2, 4)), [[0.0, 1.0, 3.0, 4.0]] * 2)


def test_same_size_resize_returns_a_writable_copy():
    array = np.arange(12, dtype=np.float64).reshape(2, 2, 3)
    result = resize_bilinear(array, (2, 2))
    assert result.dtype == np.float32 and result.flags.writeable and not np.shares_memory(result, array)
    np.testing.assert_array_equal(result, array)


def test_fill_holes_fills_an_enclosed_region_and_a_diagonally_open_one():
    mask = np.zeros((7, 7), dtype=bool)
    mask[1:6, 1:6] = True
    mask[2:5, 2:5] = False       # a 3x3 hole
    mask[0, 0] = False
    filled = fill_holes(mask)
    assert filled[2:5, 2:5].all() and filled.sum() == 25
    # Background touching the border only diagonally is a hole (4-connectivity, as scipy).
    diagonal = np.ones((3, 3), dtype=bool)
    diagonal[1, 1] = False
    diagonal[0, 0] = False
    np.testing.assert_array_equal(fill_holes(diagonal), ndimage.binary_fill_holes(diagonal))
    assert fill_holes(diagonal)[1, 1]


@pytest.mark.parametrize("density", [0.3, 0.5, 0.7])
def test_fill_holes_equals_scipy_on_random_masks(density):
    rng = np.random.default_rng(int(density * 10))
    for _ in range(20):
        mask = rng.random((40, 33)) < density
        np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_normalize_image_equals_torchvision_to_tensor_and_normalize():
    image = np.random.default_rng(2).integers(0, 256, (16, 12, 3), dtype=np.uint8)
    reference = transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(transforms.ToTensor()(image))
    result = normalize_image(image)
    assert result.shape == (3, 16, 12) and result.dtype == torch.float32 and result.is_contiguous()
    assert torch.equal(result, reference)
    assert normalize_image(np.zeros((1, 1, 3), np.uint8)).flatten().tolist() == pytest.approx(
        [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225])


@pytest.mark.parametrize("size", [(32, 24), (20, 20), (64, 48)])
def test_pil_image_input_resizes_like_its_array(size):
    image = np.random.default_rng(3).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_bilinear(Image.fromarray(image), size), resize_bilinear(image, size))

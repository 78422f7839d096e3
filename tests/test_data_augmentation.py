"""The authors' flip + RandomAffine augmentation as one sampling map: draws, modes and equality with
torchvision's PIL path (the one the authors used)."""
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode, RandomAffine

from varitex.data.augmentation import (FFHQ_PARAMS, AffineDraw, AffineParams, apply_sampling_map, draw_affine,
                                       sampling_map, transform_params)


def test_transform_mode_all_is_the_authors_ffhq_ranges():
    assert transform_params("all") == AffineParams(degrees=15.0, translate=(0.2, 0.2), scale=(1.0, 1.2), flip_p=0.5)
    assert transform_params("dtsf") == FFHQ_PARAMS


def test_transform_mode_letters_select_a_subset():
    assert transform_params("f") == AffineParams(degrees=0.0, translate=None, scale=None, flip_p=0.5)
    assert transform_params("ds") == AffineParams(degrees=15.0, translate=None, scale=(1.0, 1.2), flip_p=0.0)
    assert transform_params("t") == AffineParams(degrees=0.0, translate=(0.2, 0.2), scale=None, flip_p=0.0)
    assert transform_params("") == AffineParams(degrees=0.0)


def test_transform_mode_with_an_unknown_letter_is_an_error_naming_the_option():
    with pytest.raises(ValueError, match=r"--transform_mode 'dx' has unknown letters \['x'\]"):
        transform_params("dx")


def test_draws_stay_in_the_authors_ranges_and_flip_half_the_time():
    generator = torch.Generator().manual_seed(0)
    draws = [draw_affine(FFHQ_PARAMS, 512, generator) for _ in range(400)]
    angles = np.array([d.angle for d in draws])
    shifts = np.array([d.translate for d in draws])
    scales = np.array([d.scale for d in draws])
    assert -15 <= angles.min() < -13 and 13 < angles.max() <= 15
    assert np.abs(shifts).max() <= round(0.2 * 512) and np.abs(shifts).max() > 95
    assert shifts.dtype.kind == "i"
    assert 1.0 <= scales.min() < 1.02 and 1.18 < scales.max() <= 1.2
    assert 0.42 < np.mean([d.flip for d in draws]) < 0.58


def test_draws_without_letters_are_identities():
    generator = torch.Generator().manual_seed(1)
    for mode, check in [("f", lambda d: d.angle == 0 and d.translate == (0, 0) and d.scale == 1.0),
                        ("d", lambda d: d.translate == (0, 0) and d.scale == 1.0 and not d.flip),
                        ("t", lambda d: d.angle == 0 and d.scale == 1.0 and not d.flip),
                        ("s", lambda d: d.angle == 0 and d.translate == (0, 0) and not d.flip)]:
        assert all(check(draw_affine(transform_params(mode), 64, generator)) for _ in range(20)), mode


def test_draw_follows_random_affine_get_params_under_the_same_seed():
    torch.manual_seed(3)
    expected = RandomAffine.get_params([-15.0, 15.0], [0.2, 0.2], [1.0, 1.2], None, [256, 256])
    torch.manual_seed(3)
    draw = draw_affine(FFHQ_PARAMS, 256)
    assert (draw.angle, draw.translate, draw.scale) == (expected[0], expected[1], expected[2])


def _torchvision_flip_then_affine(pil_image, draw):
    """The authors' path: PIL hflip, then torchvision's affine on the PIL image, nearest, fill 0."""
    if draw.flip:
        pil_image = TF.hflip(pil_image)
    return np.asarray(TF.affine(pil_image, angle=draw.angle, translate=list(draw.translate), scale=draw.scale,
                                shear=[0.0, 0.0], interpolation=InterpolationMode.NEAREST, fill=0))


@pytest.mark.parametrize("size", [32, 48])
def test_sampling_map_reproduces_torchvision_pil_affine_exactly(size):
    rng = np.random.default_rng(size)
    image = rng.integers(1, 256, (size, size, 3), dtype=np.uint8)
    labels = rng.random((size, size)).astype(np.float32) + 1  # PIL mode F, as the authors' float masks
    generator = torch.Generator().manual_seed(size)
    draws = [draw_affine(FFHQ_PARAMS, size, generator) for _ in range(30)]
    draws.append(AffineDraw(angle=90.0, translate=(3, -2), scale=1.0, flip=True))
    for draw in draws:
        sampling = sampling_map(draw, size)
        np.testing.assert_array_equal(apply_sampling_map(image, sampling, 0),
                                      _torchvision_flip_then_affine(Image.fromarray(image), draw), err_msg=str(draw))
        np.testing.assert_array_equal(apply_sampling_map(labels, sampling, 0),
                                      _torchvision_flip_then_affine(Image.fromarray(labels), draw), err_msg=str(draw))


def test_identity_draw_keeps_every_pixel_and_flip_mirrors():
    array = np.arange(5 * 5 * 2, dtype=np.float32).reshape(5, 5, 2)
    identity = AffineDraw(angle=0.0, translate=(0, 0), scale=1.0, flip=False)
    np.testing.assert_array_equal(apply_sampling_map(array, sampling_map(identity, 5), -1), array)
    mirrored = identity._replace(flip=True)
    np.testing.assert_array_equal(apply_sampling_map(array, sampling_map(mirrored, 5), -1), array[:, ::-1])


def test_pixels_shifted_in_from_outside_get_the_fill_value():
    array = np.ones((6, 6, 2), dtype=np.float32)
    shifted = AffineDraw(angle=0.0, translate=(2, 0), scale=1.0, flip=False)
    result = apply_sampling_map(array, sampling_map(shifted, 6), -1)
    assert (result[:, :2] == -1).all() and (result[:, 2:] == 1).all()

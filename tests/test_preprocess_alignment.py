"""FFHQ alignment (varitex.preprocess.alignment): the recipe's geometry in numbers, and the pixels follow it."""
import numpy as np
import pytest

from varitex.preprocess.alignment import align_ffhq, ffhq_quad
from varitex.preprocess.landmarks import eye_mouth_points

# An upright face with eyes d = 100 px apart and the mouth m = d below: at 1024 the recipe puts the eyes at
# (384 and 640, 512 - 25.6) and the mouth midpoint 256 px below them.
FRONTAL_POINTS = np.array([[350.0, 300.0], [250.0, 300.0], [330.0, 400.0], [270.0, 400.0]])
FRONTAL_ALIGNED_1024 = np.array([[640.0, 486.4], [384.0, 486.4], [588.8, 742.4], [435.2, 742.4]])


def _apply(transform, points):
    return (np.c_[points, np.ones(len(points))] @ transform.T)[:, :2]


def _rotate(points, degrees, centre, scale=1.0):
    angle = np.deg2rad(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points - centre) @ rotation.T * scale + centre


def _dots_image(points, shape=(600, 600), background=100):
    """A grey image with a 3 x 3 bright dot of a different colour centred on each point."""
    image = np.full(shape + (3,), background, np.uint8)
    for channel, (x, y) in zip((0, 1, 2, 0), points):
        col, row = int(x), int(y)
        image[row - 1:row + 2, col - 1:col + 2] = 0
        image[row - 1:row + 2, col - 1:col + 2, channel] = 255
    return image


def _dot_centre(aligned, channel, near, radius=12):
    """Intensity-weighted centre (continuous pixels) of one dot's colour near the expected spot."""
    x0, y0 = (np.round(near) - radius).astype(int)
    window = aligned[y0:y0 + 2 * radius, x0:x0 + 2 * radius].astype(np.float64)
    weight = np.clip(window[..., channel] - window.sum(axis=-1) / 3 - 20, 0, None)
    rows, cols = np.mgrid[:2 * radius, :2 * radius]
    return np.array([(weight * cols).sum() / weight.sum() + x0 + 0.5, (weight * rows).sum() / weight.sum() + y0 + 0.5])


def test_frontal_points_land_on_the_ffhq_template():
    image = np.zeros((600, 600, 3), np.uint8)
    aligned, transform = align_ffhq(image, *FRONTAL_POINTS)
    assert aligned.shape == (1024, 1024, 3) and aligned.dtype == np.uint8
    assert transform.shape == (3, 3) and transform.dtype == np.float64
    np.testing.assert_allclose(_apply(transform, FRONTAL_POINTS), FRONTAL_ALIGNED_1024, atol=1e-9)
    # The quad: side 4 d = 400 px centred 0.1 m below the eye midpoint.
    np.testing.assert_allclose(ffhq_quad(*FRONTAL_POINTS), [[100, 110], [100, 510], [500, 510], [500, 110]])


@pytest.mark.parametrize("degrees, scale", [(30.0, 1.0), (-50.0, 0.7), (180.0, 1.3)])
def test_rotated_and_scaled_faces_land_on_the_same_template(degrees, scale):
    points = _rotate(FRONTAL_POINTS, degrees, centre=np.array([300.0, 330.0]), scale=scale)
    _, transform = align_ffhq(np.zeros((600, 600, 3), np.uint8), *points)
    np.testing.assert_allclose(_apply(transform, points), FRONTAL_ALIGNED_1024, atol=1e-9)


def test_output_size_scales_the_template():
    _, transform = align_ffhq(np.zeros((600, 600, 3), np.uint8), *FRONTAL_POINTS, size=256)
    np.testing.assert_allclose(_apply(transform, FRONTAL_POINTS), FRONTAL_ALIGNED_1024 / 4, atol=1e-9)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (-240.0, -190.0)])
def test_image_content_follows_the_transform(shift):
    """Dots drawn at the points appear where the transform sends them, inside the photo and in its padding."""
    points = _rotate(FRONTAL_POINTS, 20.0, centre=np.array([300.0, 330.0])) + np.array(shift)
    aligned, transform = align_ffhq(_dots_image(points), *points, size=512)
    expected = _apply(transform, points)
    for channel, (point, target) in enumerate(zip(points, expected)):
        found = _dot_centre(aligned, (0, 1, 2, 0)[channel], target)
        assert np.linalg.norm(found - target) < 1.0, (channel, found, target)


@pytest.mark.parametrize("size", [512, 128, 48])   # resampled once; supersampled 4 x; shrunk 4 x first
def test_every_aligned_pixel_comes_from_where_the_transform_says(size):
    """On colour ramps each aligned pixel has the colour of its source point, without a sub-pixel shift.

    Red rises with x, green with y, blue falls with both: a shift of the sampling moves the mean errors of
    red and green one way and blue the other, while PIL's truncating 8-bit resampling moves all three down
    alike (by up to 0.5 levels), so the two separate.
    """
    ramp = np.arange(600) * (255 / 600)                          # 0.425 levels per pixel
    x, y = np.meshgrid(ramp, ramp)
    image = np.rint(np.stack([x, y, 255 - (x + y) / 2], axis=-1)).astype(np.uint8)
    points = _rotate(FRONTAL_POINTS, 20.0, centre=np.array([300.0, 330.0]))
    aligned, transform = align_ffhq(image, *points, size=size)
    rows, cols = np.mgrid[2:size - 2, 2:size - 2]
    source = _apply(np.linalg.inv(transform), np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1))
    sx, sy = ((source - 0.5) * (255 / 600)).T                   # ramp values at the source points
    expected = np.stack([sx, sy, 255 - (sx + sy) / 2], axis=1)
    error = aligned[2:size - 2, 2:size - 2].reshape(-1, 3) - expected
    assert np.abs(error).max() < 2.0
    bias = error.mean(axis=0)
    rounding = (bias[0] + bias[1] + 2 * bias[2]) / 4
    assert -0.6 < rounding <= 0.05
    np.testing.assert_allclose(bias[:2] - rounding, 0.0, atol=0.06)   # shift < 0.15 source pixels


def test_padding_fills_outside_the_photo_with_its_blurred_colours():
    """A face at the photo's corner: the part of the square outside the photo is padded, never black."""
    points = FRONTAL_POINTS - np.array([240.0, 190.0])        # eyes at y = 110: the square leaves the photo
    aligned, transform = align_ffhq(np.full((600, 600, 3), 100, np.uint8), *points, size=256)
    outside = _apply(np.linalg.inv(transform), np.array([[5.0, 5.0]]))[0]
    assert outside.min() < 0                                   # that aligned pixel comes from the padding
    assert abs(int(aligned[5, 5, 0]) - 100) <= 2
    assert aligned.min() >= 95


def test_astronaut_aligned_face_is_found_at_the_template(face_landmarker, astronaut_photo):
    photo = astronaut_photo
    points = eye_mouth_points(face_landmarker.detect(photo)[0].landmarks)
    aligned, transform = align_ffhq(photo, *points)
    (face,) = face_landmarker.detect(aligned)
    found = eye_mouth_points(face.landmarks)
    np.testing.assert_allclose(found, _apply(transform, points), atol=6.0)
    np.testing.assert_allclose(found[:2, 0], [640, 384], atol=6.0)           # eyes 256 px apart, centred
    assert abs(found[0, 1] - found[1, 1]) < 4.0                                # and level


@pytest.mark.parametrize("image, points, message", [
    (np.zeros((60, 60), np.uint8), FRONTAL_POINTS, r"\(H, W, 3\) uint8 RGB"),
    (np.zeros((60, 60, 3), np.uint8), np.zeros((4, 2)), "degenerate alignment points"),
    (np.zeros((60, 60, 3), np.uint8), FRONTAL_POINTS + 5000, "outside the image"),
])
def test_bad_alignment_inputs_are_rejected(image, points, message):
    with pytest.raises(ValueError, match=message):
        align_ffhq(image, *points)


def test_bad_size_is_rejected():
    with pytest.raises(ValueError, match="size must be an integer >= 8"):
        align_ffhq(np.zeros((60, 60, 3), np.uint8), *FRONTAL_POINTS, size=4)

"""FFHQ alignment: the oriented square crop of the ffhq-dataset recipe (Karras et al., StyleGAN, 2019).

From the eye centres and mouth corners (``landmarks.eye_mouth_points``) the recipe builds a square
``quad`` in the photo:

    eye_to_eye   = right-on-screen eye - left-on-screen eye     eye_avg   = mean of the eye centres
    eye_to_mouth = mouth_avg - eye_avg                          mouth_avg = mean of the mouth corners
    x = eye_to_eye - rot90(eye_to_mouth), scaled to max(2.0 |eye_to_eye|, 1.8 |eye_to_mouth|)
    y = x turned 90 degrees (pointing down the face)
    c = eye_avg + 0.1 eye_to_mouth
    quad = (c - x - y, c - x + y, c + x + y, c + x - y)    side 2 |x|

and resamples it to ``size`` x ``size``. The recipe's steps, kept: a box-filtered shrink when the quad is
more than twice the output size; a crop to the quad plus a border of 10% of its size; where the quad leaves
the photo, reflect padding (at least 30% of the quad size) whose padded part is blurred (Gaussian, 2% of
the quad size) and faded to the photo's median colour towards the outside; bilinear resampling at 4 x the
output size (4096 for 1024) and an antialiased (Lanczos) downsize. One simplification, for speed: the
supersampling factor is ceil(quad size / output size), at most 4, so a quad no larger than the output
(upsampling) is resampled once, directly at the output size. Points are continuous pixel coordinates
(pixel centre at c + 0.5), so the recipe's +0.5 shift of integer dlib landmarks is not needed.

Where the points land: for an upright face whose eyes are ``d`` apart and whose mouth is ``m <= 1.11 d``
below them, the quad side is 4 d, so at 1024 the eyes are 256 px apart at (384, 512 - 25.6 m / d) and
(640, 512 - 25.6 m / d) and the mouth midpoint is at (512, 512 + 230.4 m / d).
"""
import numpy as np
from PIL import Image
from scipy import ndimage

MAX_SUPERSAMPLE = 4             # resample at up to 4 x the output size, then downsize (the recipe: 4096 -> 1024)
BORDER_FRACTION = 0.1           # crop border around the quad, fraction of its size (at least 3 px)
PAD_FRACTION = 0.3              # minimum reflect padding when the quad leaves the photo
BLUR_FRACTION = 0.02            # Gaussian blur sigma of the padded part, fraction of the quad size


def ffhq_quad(eye_left, eye_right, mouth_left, mouth_right):
    """The recipe's crop square from the four points (person's left / right, pixels (x, y)).

    Args:
        eye_left, eye_right: eye centres; the person's left eye appears on the image's right.
        mouth_left, mouth_right: mouth corners, person's left / right.

    Returns:
        (4, 2) float64 corners: top-left, bottom-left, bottom-right, top-right of the aligned image.
    """
    eye_left, eye_right, mouth_left, mouth_right = (np.asarray(p, dtype=np.float64).reshape(2)
                                                    for p in (eye_left, eye_right, mouth_left, mouth_right))
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_left - eye_right
    eye_to_mouth = (mouth_left + mouth_right) / 2 - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    length = np.hypot(*x)
    if not length > 0:
        raise ValueError("degenerate alignment points: the eyes and mouth give no direction")
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) / length
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_to_square(quad, size):
    """(3, 3) float64 affine map from image pixels to the aligned image in which ``quad`` is [0, size]^2."""
    origin, down, right = quad[0], quad[1] - quad[0], quad[3] - quad[0]
    to_quad = np.array([[right[0], down[0], origin[0]], [right[1], down[1], origin[1]], [0.0, 0.0, 1.0]])
    return np.diag([size, size, 1.0]) @ np.linalg.inv(to_quad)


def align_ffhq(image, eye_left, eye_right, mouth_left, mouth_right, size=1024):
    """Align a photo the FFHQ way (module docstring).

    Args:
        image: (H, W, 3) uint8 RGB.
        eye_left, eye_right, mouth_left, mouth_right: (2,) pixels (x, y), the person's left/right
            (``eye_mouth_points`` returns them in this order).
        size: side of the aligned image (1024 for FFHQ).

    Returns:
        aligned: (size, size, 3) uint8 RGB.
        transform: (3, 3) float64, homogeneous pixels of ``image`` -> pixels of ``aligned``.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size}")
    size = int(size)
    quad = ffhq_quad(eye_left, eye_right, mouth_left, mouth_right)
    transform = quad_to_square(quad, size)
    qsize = np.hypot(*(quad[3] - quad[0]))
    photo = Image.fromarray(image)

    # Shrink: box filter by an integer factor when the quad is more than twice the output size.
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        small = (int(np.rint(photo.width / shrink)), int(np.rint(photo.height / shrink)))
        scale = np.array([small[0] / photo.width, small[1] / photo.height])
        photo = photo.resize(small, Image.Resampling.BOX)
        quad, qsize = quad * scale, qsize / shrink

    # Crop to the quad and a border.
    border = max(int(np.rint(qsize * BORDER_FRACTION)), 3)
    low, high = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
    box = (max(low[0] - border, 0), max(low[1] - border, 0),
           min(high[0] + border, photo.width), min(high[1] + border, photo.height))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError("the alignment square lies outside the image")
    if box != (0, 0, photo.width, photo.height):
        photo = photo.crop(box)
        quad = quad - box[:2]

    # Pad where the quad leaves the photo: reflect, blur and fade the padded part.
    low, high = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
    pad = np.maximum([-low[0] + border, -low[1] + border, high[0] - photo.width + border,
                      high[1] - photo.height + border], 0)
    if pad.max() > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * PAD_FRACTION)))
        photo = Image.fromarray(_padded(np.asarray(photo), pad, qsize))
        quad = quad + pad[:2]

    # Resample the quad bilinearly at (up to) MAX_SUPERSAMPLE x the output size, then downsize with
    # antialiasing. Supersampling beyond the quad's own resolution adds nothing, so it stops there.
    supersample = int(np.clip(np.ceil(qsize / size), 1, MAX_SUPERSAMPLE))
    work = size * supersample
    to_photo = np.linalg.inv(quad_to_square(quad, work))
    aligned = photo.transform((work, work), Image.Transform.AFFINE, tuple(to_photo[:2].ravel()),
                              Image.Resampling.BILINEAR)
    if supersample > 1:
        aligned = aligned.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(aligned), transform


def _padded(image, pad, qsize):
    """Reflect-pad (left, top, right, bottom) and blend the padding towards a blurred, then flat, colour."""
    padded = np.pad(image.astype(np.float32), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), mode="reflect")
    height, width = padded.shape[:2]
    y, x = np.ogrid[:height, :width]
    # 1 at the outer edge of the padding, 0 at the photo's edge, negative inside: blur fades in over a third of
    # the padding width inside the photo, the flat colour only in the padding.
    fade = np.maximum(1.0 - np.minimum(x / pad[0], (width - 1 - x) / pad[2]),
                      1.0 - np.minimum(y / pad[1], (height - 1 - y) / pad[3]))[..., None].astype(np.float32)
    blur = qsize * BLUR_FRACTION
    padded += (ndimage.gaussian_filter(padded, [blur, blur, 0]) - padded) * np.clip(fade * 3.0 + 1.0, 0.0, 1.0)
    padded += (np.median(padded, axis=(0, 1)) - padded) * np.clip(fade, 0.0, 1.0)
    return np.clip(np.rint(padded), 0, 255).astype(np.uint8)


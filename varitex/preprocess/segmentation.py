"""Face parsing in CelebAMask-HQ label ids, from MediaPipe's selfie segmentation, the landmarks and the fit.

The authors parsed FFHQ with a network trained on CelebAMask-HQ, which was not released; their data and
``semantic_regions`` (default 1-15, the whole head) use that data set's ids (``LABELS``). We build the same
labels from an offline person mask (MediaPipe selfie segmentation, the model file from the mediapipe wheel,
see ``varitex.preprocess.models``), the 468 face-mesh landmarks and the pixels covered by the fitted face
model. Heuristics, in the face's own frame (x from the person's right eye to the left, y down the face):

- person = selfie-model probability > 0.5, or covered by the fitted face.
- face = the fitted face mask (or, without one, the landmarks' face-oval polygon): skin (1), then the
  landmark polygons on top: nose (2), brows (6/7), eyes (4/5), upper/lower lip (11/12), the mouth opening
  (10). Non-skin-coloured face pixels above the brows are hair over the forehead (13).
- skin colour: chromaticity (r, g) / (r + g + b) and brightness of the cheeks (face pixels below the eyes
  and above the mouth outside the feature polygons), robust statistics (median, MAD); a pixel is
  skin-coloured within 3 robust standard deviations of chromaticity and 0.4-1.8 x the median brightness.
- jaw line: the face oval's lower arc between the jaw angles (points 58 and 288), extended sideways at the
  jaw angles' height. Person pixels below it: skin-coloured and connected to the face -> neck (17);
  hair-coloured and connected to the hair above -> hair (long hair, 13); the rest -> cloth (18).
- person pixels above the jaw line outside the face: skin-coloured, connected to the face, at its side
  between the brows and the jaw angles -> ears (8 left, 9 right, by side); the rest -> hair (13). (So a
  bald head or a forehead above the face oval is hair: still inside the head region 1-15.)

Glasses (3), hat (14), earring (15) and necklace (16) are never produced (hats and glasses end up as hair
or skin, both inside the head region 1-15). ``--segmentation_dir`` takes label maps from any external
parser instead (``read_label_png``).
"""
import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from varitex.preprocess import landmarks as lm
from varitex.preprocess.models import SELFIE_SEGMENTATION, TFLiteModel, model_file

LABELS = {"background": 0, "skin": 1, "nose": 2, "glasses": 3, "left_eye": 4, "right_eye": 5, "left_brow": 6,
          "right_brow": 7, "left_ear": 8, "right_ear": 9, "mouth": 10, "upper_lip": 11, "lower_lip": 12,
          "hair": 13, "hat": 14, "earring": 15, "necklace": 16, "neck": 17, "cloth": 18}
MAX_LABEL = 18
HEAD_LABELS = tuple(range(1, 16))   # the authors' default semantic_regions: the whole head

# Landmark polygons (MediaPipe face-mesh indices; "left" is the person's left).
NOSE = (168, 351, 399, 420, 429, 358, 327, 326, 2, 97, 98, 129, 209, 198, 174, 122)
UPPER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191, 78)
LOWER_LIP = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78)
# Painted in this order, later parts over earlier ones.
FACE_PARTS = ((NOSE, "nose"), (lm.LEFT_BROW, "left_brow"), (lm.RIGHT_BROW, "right_brow"),
              (lm.LEFT_EYE, "left_eye"), (lm.RIGHT_EYE, "right_eye"), (UPPER_LIP, "upper_lip"),
              (LOWER_LIP, "lower_lip"), (lm.LIPS_INNER, "mouth"))
# Lower arc of the face oval, from the person's right jaw angle over the chin to the left one.
JAW = (58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288)

PERSON_THRESHOLD = 0.5
SKIN_CHROMA_SIGMAS = 3.0            # skin colour: robust standard deviations of chromaticity
SKIN_BRIGHTNESS = (0.4, 1.8)        # skin colour: brightness relative to the cheeks' median
CHROMA_FLOOR = 0.005                # added to the robust chromaticity spread (flat-coloured skin)
SELFIE_SIZE = 256                   # selfie segmentation model input side


@functools.lru_cache(maxsize=1)
def _selfie_model():
    return TFLiteModel(model_file(SELFIE_SEGMENTATION))


def person_probability(image):
    """MediaPipe selfie segmentation: probability that a pixel shows a person (hair included).

    Args:
        image: (H, W, 3) uint8 RGB.

    Returns:
        (H, W) float32 in [0, 1].
    """
    height, width = image.shape[:2]
    small = np.asarray(Image.fromarray(image).resize((SELFIE_SIZE, SELFIE_SIZE), Image.Resampling.BILINEAR))
    (probability,) = _selfie_model()((small.astype(np.float32) / 255.0)[None])
    probability = Image.fromarray(probability[0, :, :, 0].astype(np.float32))
    return np.clip(np.asarray(probability.resize((width, height), Image.Resampling.BILINEAR)), 0.0, 1.0)


def polygon_mask(points, shape):
    """(H, W) bool: pixels whose centres lie inside the polygon ``points`` ((N, 2) continuous pixels)."""
    canvas = Image.new("L", (shape[1], shape[0]), 0)
    # PIL puts pixel centres at integer coordinates, ours at c + 0.5.
    ImageDraw.Draw(canvas).polygon([(float(x) - 0.5, float(y) - 0.5) for x, y in points], fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def _face_frame(landmarks, shape):
    """The face's frame: origin between the outer eye corners, u towards the person's left, v down the face.

    Returns:
        u, v: (H, W) float32 coordinates of the pixel centres; points: (468, 2) float64 landmarks (u, v).
    """
    xy = landmarks[:, :2].astype(np.float64)
    axis_u = xy[lm.OUTER_EYE_CORNER_LEFT] - xy[lm.OUTER_EYE_CORNER_RIGHT]
    axis_u /= max(np.linalg.norm(axis_u), 1e-9)
    axis_v = np.array([-axis_u[1], axis_u[0]])
    origin = (xy[lm.OUTER_EYE_CORNER_LEFT] + xy[lm.OUTER_EYE_CORNER_RIGHT]) / 2
    points = (xy - origin) @ np.stack([axis_u, axis_v], axis=1)
    py = (np.arange(shape[0]) + 0.5 - origin[1]).astype(np.float32)[:, None]
    px = (np.arange(shape[1]) + 0.5 - origin[0]).astype(np.float32)[None, :]
    u = px * np.float32(axis_u[0]) + py * np.float32(axis_u[1])
    v = px * np.float32(axis_v[0]) + py * np.float32(axis_v[1])
    return u, v, points


def _below_curve(u, v, curve):
    """Pixels whose v is below (greater than) the curve's, the curve (N, 2) in (u, v) extended flat."""
    order = np.argsort(curve[:, 0])
    return v > np.interp(u, curve[order, 0], curve[order, 1])


class _ColourModel:
    """Robust colour statistics of sample pixels: chromaticity (r, g)/(r+g+b) and brightness r+g+b."""

    def __init__(self, pixels):
        pixels = pixels.astype(np.float64).reshape(-1, 3)
        brightness = pixels.sum(axis=1) + 1e-6
        chroma = pixels[:, :2] / brightness[:, None]
        self.chroma = np.median(chroma, axis=0)
        self.spread = 1.4826 * np.median(np.abs(chroma - self.chroma), axis=0) + CHROMA_FLOOR
        self.brightness = np.median(brightness)

    def matches(self, image, mask):
        """(H, W) bool: pixels of ``mask`` within SKIN_CHROMA_SIGMAS and SKIN_BRIGHTNESS of the sample."""
        pixels = image[mask].astype(np.float32)
        brightness = pixels.sum(axis=1) + np.float32(1e-6)
        chroma = (pixels[:, :2] / brightness[:, None] - self.chroma.astype(np.float32)) / self.spread.astype(np.float32)
        distance = np.hypot(chroma[:, 0], chroma[:, 1])
        relative = brightness / np.float32(self.brightness)
        out = np.zeros(mask.shape, dtype=bool)
        out[mask] = ((distance < SKIN_CHROMA_SIGMAS) & (relative > SKIN_BRIGHTNESS[0])
                     & (relative < SKIN_BRIGHTNESS[1]))
        return out


def segment_face(image, landmarks, face_mask=None, hair_and_person=None):
    """CelebAMask-HQ labels of one face (heuristics in the module docstring).

    Args:
        image: (H, W, 3) uint8 RGB.
        landmarks: (468, 2 or 3) face-mesh landmarks in pixels of ``image``.
        face_mask: (H, W) bool, pixels covered by the fitted face-model mesh (rendered uv != -1); None: the
            landmarks' face-oval polygon.
        hair_and_person: (H, W) person probability in [0, 1] or bool (``person_probability``); None: computed.

    Returns:
        (H, W) uint8 label ids in 0..18.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    shape = image.shape[:2]
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 2 or landmarks.shape[0] != lm.N_LANDMARKS or landmarks.shape[1] not in (2, 3):
        raise ValueError(f"landmarks must be ({lm.N_LANDMARKS}, 2 or 3), got {landmarks.shape}")
    xy = landmarks[:, :2]
    oval = polygon_mask(xy[list(lm.FACE_OVAL)], shape)
    if face_mask is None:
        face = oval
    else:
        face = _check_mask(face_mask, shape, "face_mask")
    if hair_and_person is None:
        hair_and_person = person_probability(image)
    person = (_check_mask(hair_and_person, shape, "hair_and_person", allow_float=True) > PERSON_THRESHOLD) | face

    u, v, frame = _face_frame(landmarks, shape)
    parts = [(polygon_mask(xy[list(indices)], shape), LABELS[name]) for indices, name in FACE_PARTS]
    features = np.logical_or.reduce([mask for mask, _ in parts])
    eyes_v = frame[list(lm.LEFT_EYE + lm.RIGHT_EYE), 1].max()
    mouth_v = frame[list(lm.LIPS_OUTER), 1].min()
    brows_v = frame[list(lm.LEFT_BROW + lm.RIGHT_BROW), 1].min()
    cheeks = oval & ~ndimage.binary_dilation(features, iterations=2) & (v > eyes_v) & (v < mouth_v)
    skin_colour = _ColourModel(image[cheeks if cheeks.sum() >= 20 else oval])

    # Colour decisions by majority over a window a tenth of the eye distance: no speckle on shaded skin.
    window = max(3, int(round(0.1 * np.linalg.norm(frame[lm.OUTER_EYE_CORNER_LEFT]
                                                   - frame[lm.OUTER_EYE_CORNER_RIGHT]))))
    skin_like = _majority(skin_colour.matches(image, person), window) & person

    labels = np.zeros(shape, dtype=np.uint8)
    labels[face] = LABELS["skin"]
    for mask, label in parts:
        labels[mask] = label
    labels[face & (v < brows_v) & ~features & ~skin_like] = LABELS["hair"]   # hair over the forehead

    rest = person & ~face & ~features
    jaw = frame[list(JAW)]
    below_jaw = _below_curve(u, v, jaw) & ~oval
    above = rest & ~below_jaw
    lateral = ~oval & (v > brows_v) & (v < jaw[[0, -1], 1].max())
    touching_face = ndimage.binary_dilation(face, iterations=2)
    ears = _connected_to(above & skin_like & lateral, touching_face)
    labels[ears & (u > 0)] = LABELS["left_ear"]
    labels[ears & (u <= 0)] = LABELS["right_ear"]
    hair = above & ~ears
    labels[hair] = LABELS["hair"]

    below = rest & below_jaw
    neck = _connected_to(below & skin_like, touching_face)
    labels[below] = LABELS["cloth"]
    labels[neck] = LABELS["neck"]
    if hair.sum() >= 20:
        candidates = below & ~neck
        long_hair = _majority(_ColourModel(image[hair]).matches(image, candidates), window) & candidates
        labels[_connected_to(long_hair | hair, hair) & long_hair] = LABELS["hair"]
    return labels


def _connected_to(mask, seed):
    """(H, W) bool: the connected components of ``mask`` that overlap ``seed``."""
    components, _ = ndimage.label(mask)
    touched = np.unique(components[seed & mask])
    return np.isin(components, touched[touched > 0])


def _majority(mask, window):
    """(H, W) bool: True where most of the ``window`` x ``window`` neighbourhood of ``mask`` is."""
    return ndimage.uniform_filter(mask.astype(np.float32), size=window, mode="nearest") > 0.5


def _check_mask(mask, shape, name, allow_float=False):
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"{name} must have the image's shape {tuple(shape)}, got {mask.shape}")
    if mask.dtype == bool:
        return mask
    if allow_float and np.issubdtype(mask.dtype, np.floating):
        return mask
    raise ValueError(f"{name} must be a bool mask{' or float probabilities' if allow_float else ''}, "
                     f"got dtype {mask.dtype}")


def read_label_png(path, shape):
    """A label map from an external face parser, checked: 8-bit single-channel PNG, CelebAMask-HQ ids.

    Args:
        path: PNG whose pixel values are label ids 0..18 (mode "L", or "P" with the ids as palette indices).
        shape: (H, W) wanted. A map of the same aspect ratio but another size is resized (nearest).

    Returns:
        (H, W) uint8 label ids.

    Raises:
        ValueError: naming the file: unreadable, not 8-bit single channel, an id above 18, other aspect ratio.
    """
    path = Path(path)
    try:
        with Image.open(path) as png:
            png.load()
            mode, size = png.mode, png.size
            labels = np.asarray(png) if mode in ("L", "P") else None
    except (OSError, ValueError) as error:
        raise ValueError(f"label map {path}: cannot read it as an image ({error})") from error
    if labels is None:
        raise ValueError(f"label map {path}: must be an 8-bit single-channel PNG (mode L or P) of label ids, "
                         f"got mode {mode}")
    if labels.max(initial=0) > MAX_LABEL:
        bad = np.unique(labels[labels > MAX_LABEL])
        raise ValueError(f"label map {path}: ids must be CelebAMask-HQ ids 0..{MAX_LABEL}, found {bad.tolist()}")
    height, width = int(shape[0]), int(shape[1])
    if size != (width, height):
        if size[0] * height != size[1] * width:
            raise ValueError(f"label map {path}: size {size[0]}x{size[1]} does not match the image "
                             f"{width}x{height} (aspect ratio differs)")
        labels = np.asarray(Image.fromarray(labels).resize((width, height), Image.Resampling.NEAREST))
    return labels.astype(np.uint8)

"""Faces in a photo: MediaPipe face detection, then the 468-point face mesh on a crop around each face.

Pipeline per image (``FaceLandmarker.detect``), following MediaPipe's published face-mesh graphs:

1. Detection on the whole image, letterboxed to a square: the short-range model (128 x 128, faces that
   fill a good part of the picture: portraits, FFHQ) and the full-range model (192 x 192, smaller faces
   in group photos); their detections are merged by weighted non-maximum suppression (IoU 0.3). When
   nothing is found in a photo whose long side is at least 512 px, both detectors search it again in
   overlapping tiles of half its long side (a face too small for the whole-photo pass).
2. Per detection, a square region of interest 1.5 x the box's long side, rotated so that the eyes lie
   on a horizontal line, resampled to 192 x 192; the face-mesh model gives 468 points in the crop.
3. The region is re-derived from those points (their extent along the eye axis, 1.5 x, rotation from
   the outer eye corners 33 -> 263) and the mesh runs once more: MediaPipe's tracking step, which
   centres the crop on the face better than the detector's box does.
4. The mesh model's face-presence score rejects detections that are no face, and a mesh whose landmark
   box lies mostly (> 50%) inside that of a more confident detection's mesh is the same face, dropped.

Coordinates are continuous pixel coordinates of the input image: x right, y down, pixel (row r,
column c) covers [c, c + 1) x [r, r + 1), its centre is (c + 0.5, r + 0.5). ``z`` is MediaPipe's relative
depth (smaller = closer to the camera) in the same pixel units.

Landmark indices follow MediaPipe's canonical face mesh topology; "left"/"right" are the person's own
(the person's right eye appears on the image's left in an unmirrored photo).
"""
from dataclasses import dataclass

import numpy as np
from PIL import Image

from varitex.preprocess.models import (FACE_DETECTION_FULL_RANGE, FACE_DETECTION_SHORT_RANGE, FACE_LANDMARK,
                                       TFLiteModel, model_file)

N_LANDMARKS = 468

# Contours of the canonical face mesh (MediaPipe face_mesh topology), each an ordered closed polygon.
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
RIGHT_BROW = (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)
LEFT_BROW = (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)

# Alignment points (ffhq-dataset recipe): eye centres = mean of each eye's contour, mouth corners.
EYE_CENTER_LEFT = LEFT_EYE
EYE_CENTER_RIGHT = RIGHT_EYE
MOUTH_LEFT = (291,)
MOUTH_RIGHT = (61,)
# Outer eye corners that orient the mesh crop (MediaPipe's landmarks-to-region step).
OUTER_EYE_CORNER_RIGHT, OUTER_EYE_CORNER_LEFT = 33, 263

DETECTION_IOU = 0.3                 # weighted NMS overlap (MediaPipe's face detection graphs)
ROI_SCALE = 1.5                     # crop side / face extent
MESH_SIZE = 192                     # face-mesh model input side
FACE_PRESENCE_THRESHOLD = 0.5       # the mesh model's face score below which a detection is dropped
SAME_FACE_OVERLAP = 0.5             # meshes whose boxes overlap more (of the smaller) are one face
TILING_MIN_SIDE = 512               # photos this large are searched again in tiles when no face is found
# Crops that shrink the image more than this are resampled from a box-filtered copy (no aliasing).
MAX_BILINEAR_SHRINK = 2.0


@dataclass(frozen=True)
class DetectedFace:
    """One face found in an image.

    box: (4,) float32 x0, y0, x1, y1 in pixels of the input image (the detector's box).
    score: detector confidence in [0, 1].
    landmarks: (468, 3) float32: x, y in pixels of the input image (x right, y down), z relative depth in
        pixels (MediaPipe convention, smaller = closer).
    """
    box: np.ndarray
    score: float
    landmarks: np.ndarray


def eye_mouth_points(landmarks):
    """The four alignment points of the ffhq-dataset recipe from 468 landmarks.

    Args:
        landmarks: (468, 2 or 3) pixels.

    Returns:
        (4, 2) float64: eye centre left, eye centre right, mouth corner left, mouth corner right (the
        person's left/right), x, y in pixels.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)[:, :2]
    return np.stack([landmarks[list(indices)].mean(axis=0)
                     for indices in (EYE_CENTER_LEFT, EYE_CENTER_RIGHT, MOUTH_LEFT, MOUTH_RIGHT)])


@dataclass(frozen=True)
class _DetectorSpec:
    """One SSD face detector: its file and anchor layout (MediaPipe's published graph options)."""
    file: str
    input_size: int
    strides: tuple
    anchors_per_cell: int
    min_score: float


SHORT_RANGE = _DetectorSpec(FACE_DETECTION_SHORT_RANGE, 128, (8, 16, 16, 16), 2, 0.5)
FULL_RANGE = _DetectorSpec(FACE_DETECTION_FULL_RANGE, 192, (4,), 1, 0.6)


def ssd_anchors(spec):
    """Anchor centres (A, 2) in [0, 1] (x, y) of a detector; fixed anchor size 1, cell-major order.

    Layers with equal strides share one feature map (their anchors are stacked per cell), as in
    MediaPipe's SsdAnchorsCalculator.
    """
    anchors = []
    strides = list(spec.strides)
    while strides:
        stride = strides[0]
        n_layers = strides.count(stride)
        strides = strides[n_layers:]
        cells = int(np.ceil(spec.input_size / stride))
        centre = (np.arange(cells) + 0.5) / cells
        y, x = np.meshgrid(centre, centre, indexing="ij")
        grid = np.stack([x.ravel(), y.ravel()], axis=1)
        anchors.append(np.repeat(grid, n_layers * spec.anchors_per_cell, axis=0))
    return np.concatenate(anchors).astype(np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -100.0, 100.0)))


def _iou(box, boxes):
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    intersection = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return intersection / np.maximum(area + areas - intersection, 1e-12)


def weighted_nms(boxes, keypoints, scores, iou_threshold=DETECTION_IOU):
    """Blend overlapping detections (MediaPipe's WEIGHTED suppression).

    Args:
        boxes: (N, 4) x0, y0, x1, y1; keypoints: (N, K, 2); scores: (N,).

    Returns:
        (boxes (M, 4), keypoints (M, K, 2), scores (M,)), best first: each cluster (IoU > threshold with its
        best member) is averaged with score weights and keeps its best score.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.ones(len(scores), dtype=bool)
    out_boxes, out_keypoints, out_scores = [], [], []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        cluster = remaining & (_iou(boxes[i], boxes) > iou_threshold)
        cluster[i] = True
        weights = scores[cluster] / scores[cluster].sum()
        out_boxes.append(weights @ boxes[cluster])
        out_keypoints.append(np.tensordot(weights, keypoints[cluster], axes=1))
        out_scores.append(scores[i])
        remaining &= ~cluster
    return (np.array(out_boxes, dtype=np.float32).reshape(-1, 4),
            np.array(out_keypoints, dtype=np.float32).reshape(-1, keypoints.shape[1], 2),
            np.array(out_scores, dtype=np.float32))


def _shrunk(image, factor):
    """``image`` box-filtered down by an integer ``factor`` (>= 1); returns it and the factor used."""
    factor = int(factor)
    if factor <= 1:
        return image, 1
    return np.asarray(Image.fromarray(image).reduce(factor)), factor


def sample_square(image, centre, axis_x, side, size, border="nearest"):
    """Resample a rotated square of ``image`` to ``size`` x ``size`` (bilinear).

    The square has centre ``centre`` (x, y pixels), its own +x along the unit vector ``axis_x`` and its +y
    along ``axis_x`` turned 90 degrees clockwise on screen; ``side`` pixels. Output pixel (i, j) centre maps
    to ``centre + ((j + 0.5) / size - 0.5) * side * axis_x + ((i + 0.5) / size - 0.5) * side * axis_y``.

    Args:
        image: (H, W, 3) uint8.
        border: ``"nearest"`` (replicate edge pixels) or ``"constant"`` (black) outside the image.

    Returns:
        (size, size, 3) float32 in [0, 255].
    """
    source, factor = _shrunk(image, side / size / MAX_BILINEAR_SHRINK)
    axis_x = np.asarray(axis_x, dtype=np.float64)
    axis_y = np.array([-axis_x[1], axis_x[0]])
    # The square in continuous pixels of ``source``: its corner at output (0, 0) and its extent.
    corner = (np.asarray(centre, dtype=np.float64) - (axis_x + axis_y) * side / 2) / factor
    corners = corner + np.array([[0, 0], [1, 0], [0, 1], [1, 1]]) @ np.stack([axis_x, axis_y]) * side / factor
    low = np.floor(corners.min(axis=0)).astype(int) - 1
    high = np.ceil(corners.max(axis=0)).astype(int) + 1
    # Only the part of the image under the square, padded where the square leaves it.
    height, width = source.shape[:2]
    x0, y0 = min(max(low[0], 0), width - 1), min(max(low[1], 0), height - 1)
    x1, y1 = max(min(high[0], width), x0 + 1), max(min(high[1], height), y0 + 1)
    before = np.maximum([x0 - low[0], y0 - low[1]], 0)
    after = np.maximum([high[0] - x1, high[1] - y1], 0)
    window = np.pad(source[y0:y1, x0:x1], ((before[1], after[1]), (before[0], after[0]), (0, 0)),
                    mode="edge" if border == "nearest" else "constant")
    step = side / size / factor
    offset = corner - (np.array([x0, y0]) - before)
    coefficients = (step * axis_x[0], step * axis_y[0], offset[0], step * axis_x[1], step * axis_y[1], offset[1])
    crop = Image.fromarray(window).transform((size, size), Image.Transform.AFFINE, coefficients,
                                             Image.Resampling.BILINEAR)
    return np.asarray(crop, dtype=np.float32)


class FaceLandmarker:
    """Face detection + the 468-point face mesh, CPU, models loaded once (see the module docstring).

    Args:
        min_score: detector confidence threshold in [0, 1] (applies to both detectors).
        max_faces: at most this many faces per image, the most confident ones.
        num_threads: TensorFlow Lite interpreter threads per model.
    """

    def __init__(self, min_score: float = 0.5, max_faces: int = 8, num_threads: int = 1):
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")
        if int(max_faces) != max_faces or max_faces < 1:
            raise ValueError(f"max_faces must be an integer >= 1, got {max_faces}")
        self.min_score = float(min_score)
        self.max_faces = int(max_faces)
        self._detectors = [(spec, TFLiteModel(model_file(spec.file), num_threads), ssd_anchors(spec))
                           for spec in (SHORT_RANGE, FULL_RANGE)]
        self._mesh = TFLiteModel(model_file(FACE_LANDMARK), num_threads)

    def detect(self, image: np.ndarray) -> list:
        """All faces in ``image``, largest box first.

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            list of DetectedFace sorted by box area, largest first; [] when there is no face.
        """
        image = _check_image(image)
        boxes, keypoints, scores = self.detect_boxes(image)
        faces = []
        for box, eyes, score in zip(boxes, keypoints[:, :2], scores):      # most confident first
            landmarks = self._mesh_from_detection(image, box, eyes)
            if landmarks is not None and not any(_same_face(landmarks, face.landmarks) for face in faces):
                faces.append(DetectedFace(box=box, score=float(score), landmarks=landmarks))
        return sorted(faces, key=lambda face: -float((face.box[2] - face.box[0]) * (face.box[3] - face.box[1])))

    def detect_boxes(self, image):
        """Stage 1 only: face boxes, the six detector keypoints and scores, in pixels of ``image``.

        Returns:
            boxes (M, 4) float32 x0, y0, x1, y1; keypoints (M, 6, 2) float32 (right eye, left eye, nose tip,
            mouth centre, right ear, left ear); scores (M,) float32; at most ``max_faces``, best first.
        """
        image = _check_image(image)
        height, width = image.shape[:2]
        side = max(height, width)
        boxes, keypoints, scores = self._detect_in_squares(image, [((width / 2, height / 2), side)])
        if len(scores) == 0 and side >= TILING_MIN_SIDE:
            boxes, keypoints, scores = self._detect_in_squares(image, _tiles(width, height))
        return boxes[:self.max_faces], keypoints[:self.max_faces], scores[:self.max_faces]

    def _detect_in_squares(self, image, squares):
        """Both detectors on each axis-aligned square (centre, side) of the image, merged by weighted NMS."""
        all_boxes, all_keypoints, all_scores = [], [], []
        for centre, side in squares:
            corner = np.asarray(centre, dtype=np.float32) - np.float32(side / 2)
            for spec, model, anchors in self._detectors:
                # The square (black outside the image), values in [-1, 1]; outputs in units of the square.
                square = sample_square(image, centre, (1.0, 0.0), side, spec.input_size, "constant")
                raw, logits = model((square / 127.5 - 1.0)[None])
                raw, scores = raw[0] / spec.input_size, _sigmoid(logits[0, :, 0])
                keep = scores >= max(self.min_score, spec.min_score)
                centres = raw[keep, :2] + anchors[keep]
                half = raw[keep, 2:4] / 2
                all_boxes.append(np.concatenate([centres - half, centres + half], axis=1) * side
                                 + np.tile(corner, 2))
                all_keypoints.append((raw[keep, 4:16].reshape(-1, 6, 2) + anchors[keep, None]) * side + corner)
                all_scores.append(scores[keep])
        return weighted_nms(np.concatenate(all_boxes), np.concatenate(all_keypoints), np.concatenate(all_scores))

    def _mesh_from_detection(self, image, box, eyes):
        """Stages 2-4 for one detection; (468, 3) float32 landmarks or None when the mesh sees no face."""
        axis_x = _unit(eyes[1] - eyes[0])
        centre = (box[:2] + box[2:]) / 2
        side = ROI_SCALE * float(max(box[2] - box[0], box[3] - box[1]))
        landmarks, presence = self._mesh_on_square(image, centre, axis_x, side)
        centre, axis_x, side = _region_from_landmarks(landmarks)
        landmarks, presence = self._mesh_on_square(image, centre, axis_x, side)
        return landmarks if presence >= FACE_PRESENCE_THRESHOLD else None

    def _mesh_on_square(self, image, centre, axis_x, side):
        crop = sample_square(image, centre, axis_x, side, MESH_SIZE)
        raw, presence_logit = self._mesh((crop / 255.0)[None])
        points = raw.reshape(N_LANDMARKS, 3).astype(np.float64) / MESH_SIZE
        axis_y = np.array([-axis_x[1], axis_x[0]])
        xy = centre + (points[:, :1] - 0.5) * side * axis_x + (points[:, 1:2] - 0.5) * side * axis_y
        landmarks = np.concatenate([xy, points[:, 2:] * side], axis=1).astype(np.float32)
        return landmarks, float(_sigmoid(presence_logit.ravel()[0]))


def _same_face(landmarks, other):
    """Whether two meshes are one face: their landmark boxes overlap by more than SAME_FACE_OVERLAP of the
    smaller one (a detection of part of a face, e.g. its upper half, whose mesh settles on the same face)."""
    low = np.maximum(landmarks[:, :2].min(axis=0), other[:, :2].min(axis=0))
    high = np.minimum(landmarks[:, :2].max(axis=0), other[:, :2].max(axis=0))
    intersection = np.prod(np.clip(high - low, 0, None))
    areas = [np.prod(np.ptp(points[:, :2], axis=0)) for points in (landmarks, other)]
    return intersection > SAME_FACE_OVERLAP * min(areas)


def _tiles(width, height):
    """Squares (centre, side) of half the image's long side, overlapping by half, covering the image."""
    side = max(width, height) / 2

    def centres(extent):
        count = max(1, int(np.ceil((extent - side) / (side / 2))) + 1)
        return np.linspace(side / 2, extent - side / 2, count) if extent > side else np.array([extent / 2])

    return [((x, y), side) for y in centres(height) for x in centres(width)]


def _unit(vector):
    vector = np.asarray(vector, dtype=np.float64)
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else np.array([1.0, 0.0])


def _region_from_landmarks(landmarks):
    """Square crop (centre, axis_x, side) around the landmarks, oriented by the outer eye corners."""
    xy = landmarks[:, :2].astype(np.float64)
    axis_x = _unit(xy[OUTER_EYE_CORNER_LEFT] - xy[OUTER_EYE_CORNER_RIGHT])
    axis_y = np.array([-axis_x[1], axis_x[0]])
    along = np.stack([xy @ axis_x, xy @ axis_y], axis=1)
    low, high = along.min(axis=0), along.max(axis=0)
    middle = (low + high) / 2
    centre = middle[0] * axis_x + middle[1] * axis_y
    return centre, axis_x, ROI_SCALE * float((high - low).max())


def _check_image(image):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    if min(image.shape[:2]) < 2:
        raise ValueError(f"image must be at least 2 x 2 pixels, got {image.shape[1]} x {image.shape[0]}")
    return image

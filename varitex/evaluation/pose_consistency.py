"""Geometric consistency: do rendered faces follow the requested head pose and expression?

Every image of a grid of requested conditions is searched for a face (the own-photos ``FaceLandmarker``),
its 468 landmarks are fitted with the own-photos fitter (``fit_landmarks`` through the face model's landmark
correspondence), and the result is compared with what was requested:

    rotation_error_deg   geodesic angle between the requested and the re-estimated rotation
    pitch_error_deg      re-estimated minus requested Euler angle, signed: a systematic under- or
    yaw_error_deg        over-rotation shows as a bias
    landmark_nme         weighted mean distance of the detected landmarks to the requested geometry's projected
                         landmarks, divided by the requested outer-eye-corner distance (normalized mean error)
    fit_error_px         the fit's own reprojection error, pixels of the evaluated image

Images in which no face is detected are counted (detection rate per condition), never dropped silently.
The same measurement on ground-truth renders of known geometry (``varitex.demo_world.render_reposed``) is
the error floor of the measuring instrument itself.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from varitex.geometry import DEFAULT_S, DEFAULT_T, euler_to_rotation, rotation_angle_deg
from varitex.preprocess.correspondence import load_correspondence
from varitex.preprocess.fitting import FIT_SCHEDULE, LandmarkFaceModel, fit_landmarks, project_landmarks
from varitex.preprocess.landmarks import N_LANDMARKS, OUTER_EYE_CORNER_LEFT, OUTER_EYE_CORNER_RIGHT

# Images smaller than this are upscaled (bicubic) before detection: MediaPipe's face-mesh crop is 192 px, and
# the detectors miss faces that span only a few dozen pixels.
DETECTION_SIZE = 256
# Images fitted per optimizer run (each image's fit is independent of its batch).
FIT_CHUNK = 512
EXPRESSIONS = ("own", "neutral", "other")


@dataclass(frozen=True)
class Condition:
    """One requested rendering condition (one bin of the report).

    pitch, yaw: degrees (roll 0); expression: "own" (the identity's own ``ep``), "neutral" (``ep`` = 0) or
    "other" (the next identity's ``ep``).
    """
    name: str
    pitch: float
    yaw: float
    expression: str = "own"


def condition_grid(max_angle=45.0, step=15.0):
    """The pose grid (every pitch x yaw in [-max_angle, max_angle] in ``step``s, own expression), then two
    expression conditions at the frontal pose (neutral, another identity's).

    Raises:
        ValueError: step <= 0 or max_angle < 0.
    """
    if step <= 0 or max_angle < 0:
        raise ValueError(f"--pose_step must be > 0 and --max_angle >= 0, got {step} and {max_angle}")
    angles = np.arange(-max_angle, max_angle + 1e-6, step)
    grid = [Condition(f"pitch {p:+.0f} yaw {y:+.0f}", float(p), float(y)) for p in angles for y in angles]
    return grid + [Condition("frontal, neutral expression", 0.0, 0.0, "neutral"),
                   Condition("frontal, another identity's expression", 0.0, 0.0, "other")]


def frontal_index(conditions):
    """Index of the frontal pose with the own expression (the identity reference)."""
    for i, condition in enumerate(conditions):
        if condition.pitch == 0 and condition.yaw == 0 and condition.expression == "own":
            return i
    raise ValueError("the condition grid has no frontal pose (pitch 0, yaw 0) with the own expression")


class Requests(NamedTuple):
    """N = identities x conditions requested renders, identity-major.

    identity (N,) int64; condition (N,) int64 index into the condition list; theta (N, 3) degrees;
    sp (N, K_shape); ep (N, K_expr) float32; t (N, 3), s (N, 1): the default framing.
    """
    identity: np.ndarray
    condition: np.ndarray
    theta: torch.Tensor
    sp: torch.Tensor
    ep: torch.Tensor
    t: torch.Tensor
    s: torch.Tensor


def build_requests(sp, ep, conditions):
    """Every (identity, condition) pair.

    Args:
        sp: (I, K_shape), ep: (I, K_expr) each identity's coefficients; conditions: list of Condition.
    """
    sp, ep = torch.as_tensor(sp, dtype=torch.float32), torch.as_tensor(ep, dtype=torch.float32)
    n_identities, n_conditions = sp.shape[0], len(conditions)
    identity = np.repeat(np.arange(n_identities), n_conditions)
    condition = np.tile(np.arange(n_conditions), n_identities)
    theta = torch.tensor([[c.pitch, c.yaw, 0.0] for c in conditions], dtype=torch.float32)[condition]
    own = torch.as_tensor(identity)
    source = {"own": own, "other": (own + 1) % n_identities, "neutral": own}
    kinds = [conditions[c].expression for c in condition]
    ep_rows = torch.stack([ep[source[kind][i]] * (0.0 if kind == "neutral" else 1.0) for i, kind in enumerate(kinds)])
    n = len(identity)
    return Requests(identity, condition, theta, sp[own], ep_rows, torch.tensor(DEFAULT_T).repeat(n, 1),
                    torch.full((n, 1), DEFAULT_S))


class Detections(NamedTuple):
    """Per image: landmarks (N, 468, 2) float32 pixels of the evaluated image (NaN where no face was found),
    boxes (N, 4) float32 likewise, embeddings (N, D) float32 or None (NaN rows where no face)."""
    landmarks: np.ndarray
    boxes: np.ndarray
    embeddings: Optional[np.ndarray]

    @property
    def found(self):
        return ~np.isnan(self.landmarks[:, 0, 0])


def upscaled(image):
    """(S, S, 3) uint8 -> (image at max(S, DETECTION_SIZE), scale factor from its pixels to the input's)."""
    size = image.shape[0]
    if size >= DETECTION_SIZE:
        return image, 1.0
    return np.asarray(Image.fromarray(image).resize((DETECTION_SIZE, DETECTION_SIZE), Image.BICUBIC)), \
        size / DETECTION_SIZE


def detect_faces(images, landmarker, embed: Optional[Callable] = None, desc="detecting faces"):
    """Largest face of each image, and optionally an embedding of it.

    Args:
        images: (N, S, S, 3) uint8 RGB (any iterable of such images).
        landmarker: FaceLandmarker (``detect(image) -> faces``, largest first).
        embed: optional ``embed(image, box) -> (D,)`` on the detection-size image and box (identity).
    Returns:
        Detections.
    """
    landmarks, boxes, embeddings = [], [], []
    for image in tqdm(images, desc=desc, unit="image", leave=False):
        large, scale = upscaled(np.ascontiguousarray(image))
        faces = landmarker.detect(large)
        if faces:
            landmarks.append(faces[0].landmarks[:, :2] * scale)
            boxes.append(faces[0].box * scale)
            if embed is not None:
                embeddings.append(np.asarray(embed(large, faces[0].box), dtype=np.float32))
        else:
            landmarks.append(np.full((N_LANDMARKS, 2), np.nan))
            boxes.append(np.full(4, np.nan))
            if embed is not None:
                embeddings.append(None)
    if embed is not None:
        width = next((len(e) for e in embeddings if e is not None), 1)
        embeddings = np.stack([np.full(width, np.nan, np.float32) if e is None else e for e in embeddings])
    return Detections(np.asarray(landmarks, np.float32).reshape(-1, N_LANDMARKS, 2),
                      np.asarray(boxes, np.float32).reshape(-1, 4), embeddings if embed is not None else None)


class PoseMeasurer:
    """The fitter of one face model: its landmark correspondence (derived from the model file, cached) and
    the landmark-restricted model the fit runs on.

    Args:
        bfm: varitex.geometry.BFM2017 (the model the images were rendered with).
        landmarker: FaceLandmarker (also derives the correspondence on a cache miss).
        device: where the fits run.
        schedule: the fitter's optimization schedule (default: the own-photos fitter's FIT_SCHEDULE).
    """

    def __init__(self, bfm, landmarker, device="cpu", schedule=None):
        self.schedule = FIT_SCHEDULE if schedule is None else schedule
        self.correspondence = load_correspondence(bfm, lambda: landmarker)
        self.model = LandmarkFaceModel(bfm, self.correspondence.vertex_ids, self.correspondence.barycentrics,
                                       device=device)
        self.weights = torch.as_tensor(self.correspondence.weights, dtype=torch.float32)

    def requested_landmarks(self, requests, image_size):
        """(N, 468, 2) pixel positions of the correspondence points of the requested geometry."""
        device = self.model.device
        alpha = requests.sp.to(device) / self.model.shape_std
        beta = requests.ep.to(device) / self.model.expression_std
        with torch.no_grad():
            return project_landmarks(self.model, requests.theta.to(device), requests.t.to(device),
                                     requests.s.to(device), alpha, beta, image_size).cpu()

    def measure(self, detections, requests, image_size):
        """Per-image errors of the detected faces against the requests.

        Args:
            detections: Detections of the N images; requests: Requests of the same N images.
            image_size: side of the evaluated images in pixels.
        Returns:
            dict of (N,) float32 numpy arrays: detected (0/1), rotation_error_deg, pitch_error_deg,
            yaw_error_deg, landmark_nme, fit_error_px (NaN where no face was found), and theta_fit (N, 3).
        """
        n = len(requests.identity)
        result = {name: np.full(n, np.nan, np.float32) for name in
                  ("rotation_error_deg", "pitch_error_deg", "yaw_error_deg", "landmark_nme", "fit_error_px")}
        result["theta_fit"] = np.full((n, 3), np.nan, np.float32)
        found = detections.found
        result["detected"] = found.astype(np.float32)
        index = np.flatnonzero(found)
        requested = self.requested_landmarks(requests, image_size)
        weights = self.weights
        for start in tqdm(range(0, len(index), FIT_CHUNK), desc="fitting", unit="chunk", leave=False):
            rows = index[start:start + FIT_CHUNK]
            detected = torch.from_numpy(detections.landmarks[rows])
            with single_cpu_thread(self.model.device):
                fit = fit_landmarks(self.model, detected, image_size, weights=weights, schedule=self.schedule)
            theta = requests.theta[rows]
            result["rotation_error_deg"][rows] = rotation_angle_deg(fit.R, euler_to_rotation(theta)).numpy()
            result["pitch_error_deg"][rows] = (fit.theta[:, 0] - theta[:, 0]).numpy()
            result["yaw_error_deg"][rows] = (fit.theta[:, 1] - theta[:, 1]).numpy()
            result["fit_error_px"][rows] = fit.error_px.numpy()
            result["theta_fit"][rows] = fit.theta.numpy()
            result["landmark_nme"][rows] = landmark_nme(detected, requested[rows], weights).numpy()
        return result


@contextlib.contextmanager
def single_cpu_thread(device):
    """torch on one intra-op thread inside the block when ``device`` is the CPU: the fit's tensors are small,
    and torch's thread synchronization made it several times slower on a shared 2-core machine."""
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def landmark_nme(detected, requested, weights):
    """Weighted mean landmark distance over the requested outer-eye-corner distance.

    Args:
        detected, requested: (B, 468, 2) pixels; weights: (468,) non-negative.
    Returns:
        (B,) float.
    """
    distance = (detected - requested).norm(dim=-1)
    interocular = (requested[:, OUTER_EYE_CORNER_LEFT] - requested[:, OUTER_EYE_CORNER_RIGHT]).norm(dim=-1)
    return (distance * weights).sum(1) / weights.sum() / interocular


SUMMARY_ERRORS = ("rotation_error_deg", "pitch_error_deg", "yaw_error_deg", "landmark_nme", "fit_error_px")


def summarize(measured, groups, names):
    """Per group (e.g. per condition): counts, detection rate and error statistics over the detected faces.

    Args:
        measured: dict of PoseMeasurer.measure; groups: (N,) int group of each image; names: group names.
    Returns:
        list of dicts (one per group, in order): name, n, detected, detection_rate, and for the rotation
        error median / p90 / mean, for the signed pitch and yaw errors the mean (bias), for landmark_nme and
        fit_error_px the median; None where no face was detected.
    """
    rows = []
    for g, name in enumerate(names):
        chosen = groups == g
        rows.append({"name": name, **error_statistics({k: v[chosen] for k, v in measured.items()})})
    return rows


def error_statistics(measured):
    """The statistics of ``summarize`` over all images of ``measured``."""
    detected = measured["detected"] > 0
    n, found = int(detected.size), int(detected.sum())

    def stat(name, function):
        values = measured[name][detected]
        return float(function(values)) if found else None

    return {
        "n": n, "detected": found, "detection_rate": found / n if n else None,
        "rotation_error_deg_median": stat("rotation_error_deg", np.median),
        "rotation_error_deg_p90": stat("rotation_error_deg", lambda v: np.percentile(v, 90)),
        "rotation_error_deg_mean": stat("rotation_error_deg", np.mean),
        "pitch_bias_deg": stat("pitch_error_deg", np.mean),
        "yaw_bias_deg": stat("yaw_error_deg", np.mean),
        "landmark_nme_median": stat("landmark_nme", np.median),
        "fit_error_px_median": stat("fit_error_px", np.median),
    }

"""Joint fit of face-model shape ``sp``, expression ``ep`` and a similarity pose (R, t, s) to 2D landmarks.

The model is posed and projected with the project's own geometry, the functions that pose and render the
mesh for the uv maps: ``BFM2017.generate_vertices`` (through its linear basis), ``pose_vertices`` with the
authors' centroid correction, ``euler_to_rotation`` and the fixed camera's ``project_to_ndc``. So a fitted
(R, t, s, sp, ep) rendered with ``render_uv`` lands on the landmarks it was fitted to.

Objective per image (a MAP estimate; weights in ``LOSS_WEIGHTS``)::

    landmarks          sum_l w_l huber(|proj_l - x_l|) / sum_l w_l   residuals in pixels of a 512 image
    shape_prior        mean_k (sp_k / sigma_k)^2                      sigma_k^2 = the model's pcaVariance
    expression_prior   mean_k (ep_k / sigma_k)^2
    framing_prior      (log(s / 0.1) / 0.1)^2 + ((t_z + 57) / 5)^2    resolves the scale/depth ambiguity

Schedule (``FIT_SCHEDULE``): a rigid stage (Euler angles, t, log s) from the authors' default framing
(theta 0, t = (0, -2, -57), s = 0.1), then everything jointly. Each image's loss only depends on its own
parameters and the batch loss is their sum, so an image's fit does not depend on what else is in its batch.
"""
import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import torch

from varitex.geometry import DEFAULT_S, DEFAULT_T, euler_to_rotation, pose_vertices, project_to_ndc

# Residuals are measured in pixels of an image of this side, whatever the landmarks' image size, so that
# the Huber threshold and the loss weights mean the same at every resolution (512: the uv/segmentation size).
REFERENCE_SIZE = 512
# Landmark residuals above this many reference pixels count linearly (Huber): outlying detections pull
# less. MediaPipe's landmarks scatter by about 1-3 px at 512 on a well-detected face.
HUBER_DELTA_PX = 3.0
# Spread of the framing prior around the authors' default framing: log-scale and depth.
LOG_SCALE_STD = 0.1
DEPTH_STD = 5.0

LOSS_WEIGHTS = {
    "landmarks": 1.0,
    "shape_prior": 2.0,
    "expression_prior": 2.0,
    "framing_prior": 0.05,
}


@dataclass(frozen=True)
class Stage:
    """One optimizer run of the schedule: which parameter groups move, for how many Adam steps, how fast.

    groups: subset of ("pose", "shape", "expression"). lr_scale multiplies the per-group learning rates
    of ``LEARNING_RATES``; the rate decays with a cosine to 5% over the stage.
    """
    name: str
    steps: int
    groups: tuple
    lr_scale: float = 1.0


FIT_SCHEDULE = (
    Stage("rigid", steps=120, groups=("pose",)),
    Stage("shape_expression", steps=240, groups=("pose", "shape", "expression")),
)
# Adam step sizes per parameter group, in the units of the parameters: Euler degrees, t units, log s and
# coefficients in standard deviations.
LEARNING_RATES = {"theta": 2.0, "t": 0.2, "log_s": 0.02, "shape": 0.1, "expression": 0.1}


class LandmarkFaceModel:
    """The face model evaluated only where it is needed for the fit: at the landmarks' surface points and at
    the vertex centroid (which ``pose_vertices`` rotates about). Both are linear in (sp, ep), so they are
    exact; the basis is obtained through ``bfm.generate_vertices`` itself.

    Args:
        bfm: a varitex.geometry.BFM2017.
        vertex_ids: (L, 3) int vertex indices of the triangle holding each landmark's surface point.
        barycentrics: (L, 3) float weights of those vertices (rows sum to 1; a vertex is (1, 0, 0)).
        device: where the fit runs.
    """

    def __init__(self, bfm, vertex_ids, barycentrics, device="cpu"):
        vertex_ids = torch.as_tensor(vertex_ids, dtype=torch.int64)
        barycentrics = torch.as_tensor(barycentrics, dtype=torch.float64)
        if vertex_ids.shape != barycentrics.shape or vertex_ids.dim() != 2 or vertex_ids.shape[1] != 3:
            raise ValueError(f"vertex_ids and barycentrics must both have shape (L, 3), got "
                             f"{tuple(vertex_ids.shape)} and {tuple(barycentrics.shape)}")
        self.n_shape, self.n_expression = bfm.n_shape, bfm.n_expression
        self.n_landmarks = vertex_ids.shape[0]
        mean, shape_rows, expression_rows = _restricted_basis(bfm, vertex_ids, barycentrics)
        self.device = torch.device(device)
        to = dict(device=self.device, dtype=torch.float32)
        # Coefficients are optimized in units of their standard deviation: scale the basis accordingly.
        shape_std = bfm.shape_variance.double().sqrt()
        expression_std = bfm.expression_variance.double().sqrt()
        self.mean = mean.to(**to)                                                 # (L + 1, 3)
        self.shape_basis = (shape_rows * shape_std[:, None, None]).to(**to)       # (K_shape, L + 1, 3)
        self.expression_basis = (expression_rows * expression_std[:, None, None]).to(**to)
        self.shape_std = shape_std.to(**to)
        self.expression_std = expression_std.to(**to)

    def points(self, alpha, beta):
        """Landmark surface points and vertex centroid of the model for normalized coefficients.

        Args:
            alpha: (B, K_shape) shape coefficients in standard deviations (sp = alpha * sigma).
            beta: (B, K_expr) expression coefficients in standard deviations.

        Returns:
            (B, L, 3) landmark points and (B, 1, 3) centroid of all vertices, model space (mm).
        """
        flat = (self.mean.reshape(1, -1) + alpha @ self.shape_basis.reshape(self.n_shape, -1)
                + beta @ self.expression_basis.reshape(self.n_expression, -1))
        flat = flat.view(alpha.shape[0], self.n_landmarks + 1, 3)
        return flat[:, :-1], flat[:, -1:]


def _restricted_basis(bfm, vertex_ids, barycentrics, chunk=32):
    """Rows of the model's mean and bases at the landmark points plus the vertex centroid, float64.

    Returns mean (L + 1, 3), shape (K_shape, L + 1, 3), expression (K_expr, L + 1, 3); the last row is the
    centroid (mean over all vertices). Built by evaluating ``generate_vertices`` at unit coefficients.
    """
    zeros_shape = torch.zeros(1, bfm.n_shape, dtype=torch.float64)
    zeros_expression = torch.zeros(1, bfm.n_expression, dtype=torch.float64)

    def restrict(vertices):  # (B, V, 3) -> (B, L + 1, 3)
        landmarks = (vertices[:, vertex_ids] * barycentrics[None, :, :, None]).sum(dim=2)
        return torch.cat([landmarks, vertices.mean(dim=1, keepdim=True)], dim=1)

    mean_vertices = bfm.generate_vertices(zeros_shape, zeros_expression)
    mean = restrict(mean_vertices)[0]
    rows = []
    for n, make in ((bfm.n_shape, lambda eye: (eye, zeros_expression.expand(len(eye), -1))),
                    (bfm.n_expression, lambda eye: (zeros_shape.expand(len(eye), -1), eye))):
        identity = torch.eye(n, dtype=torch.float64)
        parts = [restrict(bfm.generate_vertices(*make(identity[i:i + chunk])) - mean_vertices)
                 for i in range(0, n, chunk)]
        rows.append(torch.cat(parts))
    return mean, rows[0], rows[1]


def ndc_to_pixels(ndc_xy, image_size):
    """(..., 2) camera NDC (+x left, +y up) -> pixel coordinates (+x right, +y down, pixel c spans [c, c+1))."""
    return image_size * (1.0 - ndc_xy) / 2.0


def pixels_to_ndc(pixels, image_size):
    """Inverse of ``ndc_to_pixels``."""
    return 1.0 - 2.0 * pixels / image_size


def project_landmarks(model, theta, t, s, alpha, beta, image_size):
    """Pixel positions of the model's landmark points for the pose and normalized coefficients.

    Args:
        model: LandmarkFaceModel.
        theta: (B, 3) Euler angles in degrees (pitch, yaw, roll); t: (B, 3); s: (B, 1).
        alpha, beta: (B, K) coefficients in standard deviations.
        image_size: side of the square image the pixels refer to.

    Returns:
        (B, L, 2) float32 pixel coordinates (x right, y down) in an image_size x image_size image.
    """
    points, centroid = model.points(alpha, beta)
    R = euler_to_rotation(theta)
    # pose_vertices' centroid correction, s * ((v - c) @ R + c) + t, with the centroid of the whole mesh
    # (not of the landmark points): the same posed points as pose_vertices on the full mesh.
    posed = pose_vertices(points - centroid, R, t + s * centroid[:, 0], s, correct_translation=False)
    return ndc_to_pixels(project_to_ndc(posed)[..., :2], image_size)


def _cosine_decay(step, steps, floor=0.05):
    """Learning-rate factor: a cosine from 1 at step 0 to ``floor`` at the last step."""
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / max(1, steps)))


def huber(residual, delta):
    """Huber penalty of non-negative residuals: r^2 / 2 below delta, delta (r - delta / 2) above."""
    return torch.where(residual <= delta, 0.5 * residual ** 2, delta * (residual - 0.5 * delta))


class FitResult(NamedTuple):
    """Fitted parameters of B images, float32 on the CPU, in the layout of the preprocessed dataset.

    R: (B, 3, 3) rotation (``verts @ R``); theta: (B, 3) its Euler angles in degrees; t: (B, 3); s: (B, 1);
    sp: (B, K_shape), ep: (B, K_expr) coefficients (not normalized); error_px: (B,) weighted mean landmark
    reprojection error in pixels of the input image size; losses: per stage, the final batch-mean value of
    each loss term; seconds: wall time of the fit (all B images).
    """
    R: torch.Tensor
    theta: torch.Tensor
    t: torch.Tensor
    s: torch.Tensor
    sp: torch.Tensor
    ep: torch.Tensor
    error_px: torch.Tensor
    losses: dict
    seconds: float


def fit_landmarks(model, landmarks, image_size, weights=None, schedule=FIT_SCHEDULE, loss_weights=None):
    """Fit (R, t, s, sp, ep) of B images to their 2D landmarks in one batched optimization.

    Args:
        model: LandmarkFaceModel (its device is where the fit runs).
        landmarks: (B, L, 2) float pixel coordinates (x right, y down) in the square image of side image_size
            in which the uv maps are rendered (the aligned photo).
        image_size: side of that image in pixels.
        weights: (B, L) or (L,) non-negative confidence of each landmark (0 = ignore); typically the
            correspondence's per-landmark weights. None: all 1.
        schedule: sequence of Stage.
        loss_weights: overrides of LOSS_WEIGHTS entries.

    Returns:
        FitResult.
    """
    start = time.perf_counter()
    device = model.device
    landmarks = torch.as_tensor(landmarks, dtype=torch.float32, device=device)
    if landmarks.dim() != 3 or landmarks.shape[1:] != (model.n_landmarks, 2):
        raise ValueError(f"landmarks must have shape (B, {model.n_landmarks}, 2), got {tuple(landmarks.shape)}")
    batch = landmarks.shape[0]
    weights = torch.ones(model.n_landmarks) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    weights = weights.to(device).expand(batch, model.n_landmarks)
    if not torch.isfinite(landmarks).all():
        raise ValueError("landmarks contain NaN or infinite values")
    if (weights.sum(dim=1) <= 0).any():
        raise ValueError("every image needs at least one landmark with a positive weight")
    loss_weights = {**LOSS_WEIGHTS, **(loss_weights or {})}
    unknown = set(loss_weights) - set(LOSS_WEIGHTS)
    if unknown:
        raise ValueError(f"unknown loss terms {sorted(unknown)}; known: {sorted(LOSS_WEIGHTS)}")
    to_reference = REFERENCE_SIZE / image_size

    params = {
        "theta": torch.zeros(batch, 3, device=device),
        "t": torch.tensor(DEFAULT_T, device=device).repeat(batch, 1),
        "log_s": torch.full((batch, 1), math.log(DEFAULT_S), device=device),
        "shape": torch.zeros(batch, model.n_shape, device=device),
        "expression": torch.zeros(batch, model.n_expression, device=device),
    }
    groups = {"pose": ("theta", "t", "log_s"), "shape": ("shape",), "expression": ("expression",)}

    def loss_terms():
        projected = project_landmarks(model, params["theta"], params["t"], params["log_s"].exp(),
                                      params["shape"], params["expression"], image_size)
        residual = (projected - landmarks).norm(dim=-1) * to_reference
        terms = {
            "landmarks": (weights * huber(residual, HUBER_DELTA_PX)).sum(1) / weights.sum(1),
            "shape_prior": params["shape"].pow(2).mean(1),
            "expression_prior": params["expression"].pow(2).mean(1),
            "framing_prior": ((params["log_s"][:, 0] - math.log(DEFAULT_S)) / LOG_SCALE_STD) ** 2
                             + ((params["t"][:, 2] - DEFAULT_T[2]) / DEPTH_STD) ** 2,
        }
        return terms, residual

    losses = {}
    for stage in schedule:
        names = [name for group in stage.groups for name in groups[group]]
        for name in names:
            params[name].requires_grad_(True)
        optimizer = torch.optim.Adam([{"params": [params[n]], "lr": LEARNING_RATES[n] * stage.lr_scale}
                                      for n in names])
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _cosine_decay(step, stage.steps))
        for _ in range(stage.steps):
            optimizer.zero_grad(set_to_none=True)
            terms, _ = loss_terms()
            # Sum over images: each image's parameters see only their own gradient.
            total = sum(loss_weights[name] * value for name, value in terms.items()).sum()
            total.backward()
            optimizer.step()
            scheduler.step()
        for name in names:
            params[name].requires_grad_(False)
        with torch.no_grad():
            losses[stage.name] = {name: value.mean().item() for name, value in loss_terms()[0].items()}

    with torch.no_grad():
        _, residual = loss_terms()
        error_px = (weights * residual).sum(1) / weights.sum(1) / to_reference
        theta = params["theta"]
        return FitResult(
            R=euler_to_rotation(theta).float().cpu(), theta=theta.cpu(), t=params["t"].cpu(),
            s=params["log_s"].exp().cpu(), sp=(params["shape"] * model.shape_std).cpu(),
            ep=(params["expression"] * model.expression_std).cpu(), error_px=error_px.cpu(), losses=losses,
            seconds=time.perf_counter() - start)

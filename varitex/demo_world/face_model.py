"""A procedural face model in the Basel Face Model 2017 layout, for the embedded demo world.

The mean face is an open "face mask" surface (forehead to chin, cheek to cheek) built on a regular grid
over a chart ``(phi, Y)``: ``phi`` is the angle around a vertical elliptic cross-section of the head and
``Y`` the height in millimetres. Each vertex sits on a smooth base surface and is displaced along the
base normal by analytic features (nose, eye sockets and eyeballs, brow ridge, cheekbones, lips, chin).
The grid is cut between the lips, so the mouth is a slit that opens like BFM's ``nomouth`` mesh.

Coordinates are BFM-like: millimetres, +x the person's left (image right at yaw 0), +y up, +z out of the
face, about 155 mm wide, so that the authors' default pose ``t = (0, -2, -57)``, ``s = 0.1`` frames the
face as in an aligned FFHQ image (eyes near the image centre, mouth at three quarters of the height).

Shape and expression bases are orthonormal columns (as in BFM 2017), with coefficient ``i`` distributed
as ``N(0, variance_i)``: 199 smooth shape components and 100 expression components whose first
``len(EXPRESSION_NAMES)`` are semantic (open the jaw, smile, raise the brows, ...), the rest smaller
local deformations. Everything is a pure function of module constants and a fixed seed.
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.interpolate import CubicSpline, PchipInterpolator
from scipy.linalg import solve_triangular

N_SHAPE = 199
N_EXPRESSION = 100
# Fixed seed of the random smooth components: the face model is one fixed model, like BFM.
MODEL_SEED = 2017

# Chart extent: forehead top to chin bottom (mm), and the half angle around the head (radians).
Y_TOP, Y_BOTTOM = 100.0, -90.0
PHI_MAX = np.deg2rad(84.0)
N_COLUMNS = 73                  # odd, so that one column runs down the midline (nose ridge)
ROW_SPACING = 2.5               # target vertical grid spacing (mm)
MOUTH_Y = -40.0                 # height of the line between the lips
MOUTH_GAP = 0.8                 # vertical gap between the upper and lower lip rows of the mean face (mm)
MOUTH_HALF_WIDTH = 29.0         # the slit is open for |x| below this (mm)
OUTLINE_CENTER_Y = 5.0          # the face outline is a squircle above and an oval below this height

# Landmarks of the mean face in front coordinates (x, y) mm, shared with the albedo painting.
EYE_CENTER = (32.0, 27.0)       # (|x|, y) of each eye
BROW_Y = 42.0
NOSE_TIP_Y = -10.0
LIP_UPPER_Y, LIP_LOWER_Y = -34.0, -46.0
CHIN_Y = -73.0

# Smooth profiles of the base surface along the height Y: half width, front-most depth and the depth
# semi-axis of the elliptic cross-section (mm).
_HALF_WIDTH = CubicSpline([-95, -75, -50, -20, 10, 40, 70, 100], [30, 48, 64, 73, 77, 75, 70, 62])
_FRONT_Z = CubicSpline([-95, -70, -40, -10, 20, 50, 75, 100], [84, 95, 102, 102, 99, 96, 90, 80])
_DEPTH = CubicSpline([-95, -60, 0, 100], [70, 88, 95, 95])
# Nose ridge height and width along y (shape-preserving, so the profile never dips below zero).
_NOSE_HEIGHT = PchipInterpolator([-24, -21, -18, -14, -10, -5, 5, 20, 30, 35],
                                 [0, 4, 12, 21, 24, 21, 13, 7, 3, 0])
_NOSE_SIGMA = PchipInterpolator([-24, -12, 0, 20, 35], [10, 9, 7.5, 6, 7])

# Expression components 0..8, in this order (then 91 smaller local deformations).
EXPRESSION_NAMES = ("jaw_open", "brow_raise", "smile", "jaw_sideways", "cheek_puff", "pucker", "smirk",
                    "brow_frown", "eye_close")
# Displacement (mm, largest vertex) of each named expression at one standard deviation (at most: the
# variances are capped to be non-increasing).
_EXPRESSION_AMPLITUDE = (7.0, 4.5, 7.0, 3.0, 3.0, 4.0, 3.5, 3.5, 3.0)
_SHAPE_NAMES = ("face_width", "face_length", "nose_size", "nose_width", "jaw_width", "chin",
                "eye_depth", "cheek_fullness", "lip_fullness", "forehead_slope", "eye_spacing")
_SHAPE_AMPLITUDE = (6.0, 6.0, 5.0, 3.0, 5.0, 4.0, 3.0, 3.5, 2.0, 4.0, 2.5)


@dataclass(frozen=True)
class SyntheticFaceModel:
    """The face model as numpy arrays (float64 geometry, int64 indices).

    mean: (V, 3) mean vertices in mm. faces: (F, 3) vertex indices, counter-clockwise seen from outside.
    verts_uvs: (V, 2) per-vertex UV in [0, 1] (u left to right, v forehead to chin); the UV faces are
    ``faces``. front: (V, 2) front coordinates (x, y) of each vertex on the base surface, the frame in
    which landmarks and regions are defined. normals: (V, 3) unit base-surface normals.
    shape_basis: (3V, 199) and expression_basis: (3V, 100) orthonormal columns in BFM's interleaved
    x0 y0 z0 x1 ... order; shape_variance (199,) and expression_variance (100,) decreasing.
    """
    mean: np.ndarray
    faces: np.ndarray
    verts_uvs: np.ndarray
    front: np.ndarray
    normals: np.ndarray
    shape_basis: np.ndarray
    shape_variance: np.ndarray
    expression_basis: np.ndarray
    expression_variance: np.ndarray

    @property
    def n_vertices(self):
        return self.mean.shape[0]

    def vertices(self, sp=None, ep=None):
        """(V, 3) vertices ``mean + shape_basis @ sp + expression_basis @ ep`` for 1-D coefficient arrays."""
        flat = self.mean.reshape(-1).copy()
        if sp is not None:
            flat += self.shape_basis[:, :len(sp)] @ np.asarray(sp, dtype=np.float64)
        if ep is not None:
            flat += self.expression_basis[:, :len(ep)] @ np.asarray(ep, dtype=np.float64)
        return flat.reshape(-1, 3)


def gauss(dx, dy, sx, sy):
    """Axis-aligned Gaussian bump exp(-(dx/sx)^2/2 - (dy/sy)^2/2), 1 at its centre."""
    return np.exp(-0.5 * ((dx / sx) ** 2 + (dy / sy) ** 2))


def smoothstep(edge0, edge1, value):
    """Cubic Hermite step from 0 at edge0 to 1 at edge1 (edge0 > edge1 gives a falling step)."""
    t = np.clip((value - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def base_surface(phi, y):
    """Point on the smooth base head surface at chart (phi, y): (..., 3) mm."""
    half_width, front_z, depth = _HALF_WIDTH(y), _FRONT_Z(y), _DEPTH(y)
    return np.stack([half_width * np.sin(phi), y, front_z - depth + depth * np.cos(phi)], axis=-1)


def chart_to_front(phi, y):
    """Front coordinates (x, y) of chart points: (..., 2) mm."""
    phi, y = np.broadcast_arrays(np.asarray(phi, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return np.stack([_HALF_WIDTH(y) * np.sin(phi), y], axis=-1)


def uv_to_chart(u, v):
    """Chart (phi, y) of UV coordinates in [0, 1] (inverse of the per-vertex UV assignment)."""
    return (2.0 * np.asarray(u) - 1.0) * PHI_MAX, Y_TOP - np.asarray(v) * (Y_TOP - Y_BOTTOM)


def _base_normals(phi, y, eps=1e-3):
    d_phi = base_surface(phi + eps, y) - base_surface(phi - eps, y)
    d_y = base_surface(phi, y + eps) - base_surface(phi, y - eps)
    normal = np.cross(d_phi, d_y)
    return normal / np.linalg.norm(normal, axis=-1, keepdims=True)


def nose_height(x, y):
    """Height (mm) of the nose (ridge, tip and wings) above the base surface at front coordinates."""
    inside = (y > -24) & (y < 35)
    ridge = np.where(inside, np.clip(_NOSE_HEIGHT(y), 0, None), 0.0) * np.exp(
        -0.5 * (x / _NOSE_SIGMA(np.clip(y, -24, 35))) ** 2)
    wings = 7.0 * gauss(np.abs(x) - 13.0, y + 15.0, 5.5, 5.0)
    return ridge + wings


def feature_height(x, y):
    """Displacement (mm) of the mean face along the base normal at front coordinates (x, y)."""
    ax = np.abs(x)
    ex, ey = EYE_CENTER
    height = nose_height(x, y)
    height += -9.0 * gauss(ax - ex, y - ey - 1.0, 15.0, 9.0)                          # eye sockets
    height += 4.5 * gauss(ax - ex, y - ey, 9.0, 5.5)                                  # eyeballs
    height += 4.0 * np.exp(-0.5 * ((y - BROW_Y) / 6.0) ** 2) * np.exp(
        -0.5 * (np.clip(ax - 40.0, 0, None) / 12.0) ** 2)                              # brow ridge
    height += 5.0 * gauss(ax - 45.0, y - 2.0, 13.0, 12.0)                             # cheekbones
    height += -3.0 * gauss(ax - 62.0, y - 40.0, 10.0, 15.0)                           # temples
    height += 3.5 * gauss(x, y - LIP_UPPER_Y, 17.0, 4.0)                              # upper lip
    height += 4.0 * gauss(x, y - LIP_LOWER_Y, 16.0, 4.5)                              # lower lip
    height += -1.0 * gauss(x, y - MOUTH_Y, 20.0, 1.2)                                 # lips curl inwards
    height += -2.5 * gauss(ax - 27.0, y - MOUTH_Y, 4.0, 4.0)                          # mouth corners
    height += -0.8 * gauss(x, y + 28.0, 2.5, 4.0)                                     # philtrum
    height += -2.5 * gauss(x, y + 55.0, 18.0, 4.0)                                    # below the lower lip
    height += 5.0 * gauss(x, y - CHIN_Y, 15.0, 9.0)                                   # chin
    return height


def _grid_rows():
    """Row heights: rows above the mouth end just above MOUTH_Y, rows below start just under it."""
    upper_end, lower_start = MOUTH_Y + MOUTH_GAP / 2, MOUTH_Y - MOUTH_GAP / 2
    n_upper = int(round((Y_TOP - upper_end) / ROW_SPACING)) + 1
    n_lower = int(round((lower_start - Y_BOTTOM) / ROW_SPACING)) + 1
    return np.concatenate([np.linspace(Y_TOP, upper_end, n_upper),
                           np.linspace(lower_start, Y_BOTTOM, n_lower)]), n_upper - 1


def _inside_outline(phi, y):
    """Face outline: a squircle over the forehead, an oval towards the chin."""
    p_norm = np.abs(phi) / PHI_MAX
    upper = p_norm ** 4 + ((y - OUTLINE_CENTER_Y) / (Y_TOP - OUTLINE_CENTER_Y)) ** 4
    lower = p_norm ** 2.2 + (np.abs(OUTLINE_CENTER_Y - y) / (OUTLINE_CENTER_Y - Y_BOTTOM)) ** 2.2
    return np.where(y >= OUTLINE_CENTER_Y, upper, lower) <= 1.0 + 1e-9


def _mesh():
    """Grid mesh of the face mask: (phi, y) per vertex and (F, 3) faces, compacted to used vertices."""
    rows, mouth_row = _grid_rows()
    phis = np.linspace(-PHI_MAX, PHI_MAX, N_COLUMNS)
    phi, y = np.meshgrid(phis, rows)                                         # (R, C)
    index = np.arange(phi.size).reshape(phi.shape)
    inside = _inside_outline(phi, y).reshape(-1)

    r, c = np.meshgrid(np.arange(len(rows) - 1), np.arange(N_COLUMNS - 1), indexing="ij")
    a, b = index[r, c], index[r, c + 1]                                      # top-left, top-right
    d, e = index[r + 1, c], index[r + 1, c + 1]                              # bottom-left, bottom-right
    # Alternate the quad diagonals in a checkerboard so that the mesh is left-right symmetric.
    flip = ((r + c) % 2 == 1)[..., None]
    tri1 = np.where(flip, np.stack([a, d, b], -1), np.stack([a, d, e], -1))
    tri2 = np.where(flip, np.stack([b, d, e], -1), np.stack([a, e, b], -1))
    quad_x = _HALF_WIDTH(MOUTH_Y) * np.sin((phis[c] + phis[c + 1]) / 2)
    in_slit = (r == mouth_row) & (np.abs(quad_x) < MOUTH_HALF_WIDTH)
    keep = ~in_slit.reshape(-1)
    faces = np.concatenate([tri1.reshape(-1, 3)[keep], tri2.reshape(-1, 3)[keep]])
    faces = faces[inside[faces].all(axis=1)]

    used = np.unique(faces)
    remap = np.full(phi.size, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return phi.reshape(-1)[used], y.reshape(-1)[used], remap[faces]


def _orthonormal_columns(fields):
    """Orthonormalize (3V, K) raw displacement fields in order (the Gram-Schmidt result, via Cholesky).

    Column k keeps the orientation of raw field k. The fields are well conditioned, so one Cholesky
    pass is orthonormal to ~1e-13, far below the float32 the file stores, and much faster than QR.
    """
    upper = np.linalg.cholesky(fields.T @ fields).T
    return solve_triangular(upper, fields.T, trans="T").T


def _variance_for(columns, amplitudes):
    """Variance per column such that one standard deviation moves the farthest vertex by ``amplitude`` mm."""
    peak = np.linalg.norm(columns.reshape(-1, 3, columns.shape[1]), axis=1).max(axis=0)
    return (np.asarray(amplitudes) / peak) ** 2


def _random_smooth_fields(points, normals, rng, count, frequency_scale):
    """Random low-frequency displacement fields (V, 3, count), each a sum of four plane waves.

    Frequencies grow with the component index; the tangential part is damped so that the fields mostly
    move the surface along its normal, as identity differences do.
    """
    scaled = (points - np.array([0.0, 0.0, 60.0])) / np.array([80.0, 100.0, 60.0])
    fields = np.empty((points.shape[0], 3, count))
    for k in range(count):
        freqs = rng.normal(0.0, 0.25 + frequency_scale * np.sqrt(k + 1), size=(4, 3))
        phases = rng.uniform(0.0, 2.0 * np.pi, size=4)
        vectors = rng.normal(size=(4, 3))
        field = np.cos(2.0 * np.pi * scaled @ freqs.T + phases) @ vectors            # (V, 3)
        along_normal = (field * normals).sum(axis=1, keepdims=True) * normals
        fields[:, :, k] = along_normal + 0.4 * (field - along_normal)
    return fields


def _semantic_shape_fields(points, front, normals):
    """Identity variations with a name (``_SHAPE_NAMES``): (V, 3, 11) raw displacement fields."""
    x, y = front[:, 0], front[:, 1]
    ax, side = np.abs(x), np.sign(x)
    ex, ey = EYE_CENTER
    zero = np.zeros_like(x)

    def along_x(values):
        return np.stack([values, zero, zero], axis=-1)

    fields = [
        along_x(points[:, 0] / 80.0),                                                 # face_width
        np.stack([zero, (points[:, 1] - 10.0) / 100.0, zero], axis=-1),               # face_length
        normals * nose_height(x, y)[:, None] / 24.0,                                  # nose_size
        along_x(x / 14.0 * gauss(x, y + 8.0, 14.0, 16.0)),                            # nose_width
        along_x(x / 70.0 * smoothstep(-10.0, -70.0, y)),                              # jaw_width
        np.array([0.0, -0.5, 1.0]) * gauss(x, y - CHIN_Y, 18.0, 12.0)[:, None],       # chin
        -normals * gauss(ax - ex, y - ey, 14.0, 9.0)[:, None],                        # eye_depth
        normals * gauss(ax - 45.0, y + 15.0, 18.0, 18.0)[:, None],                    # cheek_fullness
        normals * (gauss(x, y - LIP_UPPER_Y, 17.0, 4.0)
                   + gauss(x, y - LIP_LOWER_Y, 16.0, 4.5))[:, None],                  # lip_fullness
        np.stack([zero, zero, -np.clip(y - 40.0, 0.0, None) / 60.0], axis=-1),        # forehead_slope
        along_x(side * gauss(ax - ex, y - ey, 12.0, 10.0)),                           # eye_spacing
    ]
    return np.stack(fields, axis=-1)


def jaw_weight(front):
    """(V,) how much each vertex follows the lower jaw: 1 on the lower lip and chin, 0 above the mouth.

    Inside the slit the weight jumps across the lip line (the lips part); beyond the mouth corners it
    ramps smoothly with height, so the closed skin there stretches instead of tearing.
    """
    x, y = front[:, 0], front[:, 1]
    ax = np.abs(x)
    in_mouth = 1.0 - smoothstep(12.0, MOUTH_HALF_WIDTH, ax)
    ramp = smoothstep(-35.0, -70.0, y)
    weight = in_mouth * (y < MOUTH_Y) + (1.0 - in_mouth) * ramp
    return weight * (1.0 - smoothstep(45.0, 80.0, ax))


def _semantic_expression_fields(points, front, normals):
    """Expressions with a name: (V, 3, 9) raw displacement fields in ``EXPRESSION_NAMES`` order."""
    x, y = front[:, 0], front[:, 1]
    ax = np.abs(x)
    ex, ey = EYE_CENTER
    zero = np.zeros_like(x)
    # The jaw rotates about the temporomandibular joints, roughly level with the ears (mm).
    relative = points - np.array([0.0, 5.0, -5.0])
    jaw_rotation = np.stack([zero, -relative[:, 2], relative[:, 1]], axis=-1) / 100.0
    jaw = jaw_weight(front)[:, None]
    in_mouth = 1.0 - smoothstep(12.0, MOUTH_HALF_WIDTH, ax)
    upper_lip_lift = (in_mouth * (y > MOUTH_Y) * np.exp(-0.5 * ((y - MOUTH_Y) / 6.0) ** 2))[:, None]

    def corner(side):
        return np.array([0.5 * side, 1.0, -0.6]) * gauss(x - side * 27.0, y - MOUTH_Y, 10.0, 9.0)[:, None]

    cheeks_up = sum(np.array([0.0, 0.5, 0.3]) * gauss(x - side * 40.0, y + 15.0, 14.0, 14.0)[:, None]
                    for side in (-1, 1))
    below_brow = np.exp(-0.5 * ((y - BROW_Y) / 8.0) ** 2)
    brow_band = np.where(y < BROW_Y, below_brow, 0.5 + 0.5 * below_brow) * (1 - smoothstep(50, 70, ax))
    frown = sum(np.array([-0.5 * side, -1.0, 0.3]) * gauss(x - side * 17.0, y - BROW_Y + 1.0, 9.0, 7.0)[:, None]
                for side in (-1, 1))
    # Closing the eyes compresses the painted eye towards the lower lid.
    lid = sum(gauss(x - side * ex, y - ey, 14.0, 7.0) for side in (-1, 1)) * -(y - (ey - 5.5)) * 0.35
    puff = sum(gauss(x - side * 42.0, y + 28.0, 15.0, 14.0) for side in (-1, 1))

    fields = {
        "jaw_open": jaw * jaw_rotation + 0.2 * upper_lip_lift * np.array([0.0, 1.0, 0.0]),
        "brow_raise": np.stack([zero, brow_band, zero], axis=-1),
        "smile": corner(-1) + corner(1) + cheeks_up,
        "jaw_sideways": jaw * np.array([1.0, 0.0, 0.0]),
        "cheek_puff": normals * puff[:, None],
        "pucker": np.stack([-x / 25.0 * 0.8, zero, 1.0 + zero], axis=-1) * gauss(x, y - MOUTH_Y, 22.0, 9.0)[:, None],
        "smirk": corner(1),
        "brow_frown": frown,
        "eye_close": np.stack([zero, lid, zero], axis=-1),
    }
    return np.stack([fields[name] for name in EXPRESSION_NAMES], axis=-1)


def _random_local_fields(front, rng, count):
    """Random local expression fields (V, 3, count): three Gaussian bumps each, mostly around the mouth."""
    x, y = front[:, 0], front[:, 1]
    ex, ey = EYE_CENTER
    fields = np.zeros((front.shape[0], 3, count))
    for k in range(count):
        for _ in range(3):
            region = rng.choice(3, p=[0.55, 0.25, 0.2])
            side = rng.choice([-1.0, 1.0])
            if region == 0:
                center = (rng.normal(0.0, 15.0), MOUTH_Y + rng.normal(0.0, 10.0))
            elif region == 1:
                center = (side * (ex + rng.normal(0.0, 8.0)), rng.normal(35.0, 8.0))
            else:
                center = (side * rng.normal(40.0, 10.0), rng.normal(-30.0, 15.0))
            sigma = rng.uniform(8.0, 18.0)
            vector = rng.normal(size=3) * np.array([1.0, 1.0, 0.5])
            fields[:, :, k] += gauss(x - center[0], y - center[1], sigma, sigma)[:, None] * vector
    return fields


def _basis(fields, amplitudes, n_named):
    """Orthonormal basis (3V, K) and non-increasing variances from raw fields (V, 3, K).

    The first ``n_named`` components keep their order (their index is their meaning); a variance larger
    than its predecessor's is capped to it. The other components follow, sorted by variance and scaled
    to lie below the smallest named one.
    """
    columns = _orthonormal_columns(fields.reshape(-1, fields.shape[-1]))
    variance = _variance_for(columns, amplitudes)
    variance[:n_named] = np.minimum.accumulate(variance[:n_named])
    order = np.concatenate([np.arange(n_named), n_named + np.argsort(-variance[n_named:], kind="stable")])
    columns, variance = columns[:, order], variance[order]
    if n_named and n_named < len(variance):
        variance[n_named:] *= min(1.0, 0.8 * variance[n_named - 1] / variance[n_named])
    return columns, variance


@lru_cache(maxsize=1)
def build_face_model():
    """Build the synthetic face model (deterministic, cached per process; treat its arrays as read-only).

    Returns:
        SyntheticFaceModel.
    """
    phi, y, faces = _mesh()
    normals = _base_normals(phi, y)
    front = chart_to_front(phi, y)
    mean = base_surface(phi, y) + normals * feature_height(front[:, 0], front[:, 1])[:, None]
    verts_uvs = np.stack([(phi / PHI_MAX + 1.0) / 2.0, (Y_TOP - y) / (Y_TOP - Y_BOTTOM)], axis=-1)

    rng = np.random.default_rng(MODEL_SEED)
    n_named_shape = len(_SHAPE_NAMES)
    shape_fields = np.concatenate([
        _semantic_shape_fields(mean, front, normals),
        _random_smooth_fields(mean, normals, rng, N_SHAPE - n_named_shape, frequency_scale=0.06)], axis=-1)
    random_amplitude = 3.0 * np.arange(1, N_SHAPE - n_named_shape + 1) ** -1.0
    # Shape components are sorted by variance only: BFM orders its PCA components that way.
    shape_basis, shape_variance = _basis(shape_fields, np.concatenate([_SHAPE_AMPLITUDE, random_amplitude]), 0)

    n_named_expression = len(EXPRESSION_NAMES)
    expression_fields = np.concatenate([
        _semantic_expression_fields(mean, front, normals),
        _random_local_fields(front, rng, N_EXPRESSION - n_named_expression)], axis=-1)
    random_amplitude = 1.5 * np.arange(1, N_EXPRESSION - n_named_expression + 1) ** -0.8
    expression_basis, expression_variance = _basis(
        expression_fields, np.concatenate([_EXPRESSION_AMPLITUDE, random_amplitude]), n_named_expression)

    return SyntheticFaceModel(mean=mean, faces=faces, verts_uvs=verts_uvs, front=front, normals=normals,
                              shape_basis=shape_basis, shape_variance=shape_variance,
                              expression_basis=expression_basis, expression_variance=expression_variance)

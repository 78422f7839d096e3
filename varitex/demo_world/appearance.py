"""Appearance of the synthetic demo people: per-identity albedo and labels in UV space, and the head around the face.

The face mesh carries a painted albedo and a label map in UV space (skin, nose, eyes, brows, lips and,
for people with a fringe, hair over the forehead). Everything outside the face mesh (the "exterior"
that VariTex's additive decoder has to learn) is a second mesh in the face model's frame: the skull with
hair or skin, ears, a neck, shoulders in clothes, optional long hair, and the inside of the mouth seen
through the lip slit.

Label ids are CelebAMask-HQ's (``LABELS``); "left" is the person's left (+x, the image's right at yaw 0).
"""
from dataclasses import dataclass

import numpy as np

from varitex.demo_world import face_model as fm

LABELS = {"background": 0, "skin": 1, "nose": 2, "left_eye": 4, "right_eye": 5, "left_brow": 6,
          "right_brow": 7, "left_ear": 8, "right_ear": 9, "mouth": 10, "upper_lip": 11, "lower_lip": 12,
          "hair": 13, "neck": 17, "cloth": 18}

# Display colours of the labels (contact sheets).
LABEL_COLORS = {0: (0, 0, 0), 1: (230, 180, 150), 2: (250, 120, 60), 4: (40, 120, 255), 5: (0, 200, 255),
                6: (120, 60, 20), 7: (180, 110, 40), 8: (200, 60, 200), 9: (140, 40, 160), 10: (90, 0, 30),
                11: (230, 40, 70), 12: (255, 110, 140), 13: (90, 60, 30), 17: (120, 200, 90), 18: (70, 90, 170)}

_SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.90, 0.70, 0.56], [0.78, 0.57, 0.42], [0.60, 0.42, 0.30],
                        [0.40, 0.27, 0.19]])
_HAIR_COLORS = np.array([[0.06, 0.05, 0.05], [0.17, 0.10, 0.06], [0.33, 0.20, 0.11], [0.48, 0.21, 0.09],
                         [0.78, 0.62, 0.38], [0.62, 0.61, 0.60]])
_HAIR_PROBABILITIES = np.array([0.3, 0.25, 0.18, 0.08, 0.12, 0.07])
_IRIS_COLORS = np.array([[0.33, 0.19, 0.09], [0.14, 0.08, 0.05], [0.28, 0.44, 0.64], [0.33, 0.44, 0.24],
                         [0.45, 0.50, 0.55]])
_LIPSTICK = np.array([0.68, 0.10, 0.16])

# Exterior mesh parts (one id per exterior face).
SKULL, NECK, HAIR_SHEET, LEFT_EAR, RIGHT_EAR, MOUTH, TORSO = range(7)
_SKULL_CENTER = np.array([0.0, 12.0, 0.0])
_SKULL_RADII = np.array([80.0, 114.0, 100.0])   # x, y above the centre, z (mm)
_SKULL_LOWER_RADIUS_Y = 90.0                     # the skull is flatter below its centre


@dataclass(frozen=True)
class Identity:
    """Appearance parameters of one synthetic person (colours are RGB in [0, 1], lengths in mm)."""
    skin: np.ndarray
    lips: np.ndarray
    hair: np.ndarray
    brows: np.ndarray
    iris: np.ndarray
    hairline: float         # height above which the forehead is covered by hair (low: a fringe)
    hair_volume: float      # thickness of the hair over the upper half of the skull
    long_hair: bool
    hair_length: float      # lowest point of long hair (only used when long_hair)
    brow_thickness: float
    brow_arch: float
    blush: float
    stubble: float
    gaze: float             # horizontal offset of both irises
    ear_scale: float
    neck_width: float
    cloth: np.ndarray
    skin_noise_phase: np.ndarray


def sample_identity(rng):
    """Draw an Identity from ``rng`` (numpy Generator)."""
    tone = rng.uniform(0.0, len(_SKIN_TONES) - 1)
    low = int(np.floor(tone))
    high = min(low + 1, len(_SKIN_TONES) - 1)
    skin = _SKIN_TONES[low] + (tone - low) * (_SKIN_TONES[high] - _SKIN_TONES[low])
    skin = np.clip(skin * rng.uniform(0.95, 1.05, 3), 0, 1)
    hair = _HAIR_COLORS[rng.choice(len(_HAIR_COLORS), p=_HAIR_PROBABILITIES)] * rng.uniform(0.85, 1.1)
    lips = skin + rng.uniform(0.45, 0.7) * (np.array([0.72, 0.30, 0.32]) - skin) * np.array([1.0, 1.2, 1.1])
    if rng.random() < 0.15:
        lips = _LIPSTICK * rng.uniform(0.8, 1.1)
    brows = hair * (0.55 if hair.mean() > 0.4 else 0.85)
    bangs = rng.random() < 0.25
    long_hair = bool(rng.random() < 0.45)
    return Identity(
        skin=skin, lips=np.clip(lips, 0, 1), hair=np.clip(hair, 0, 1), brows=brows,
        iris=_IRIS_COLORS[rng.integers(len(_IRIS_COLORS))] * rng.uniform(0.85, 1.15),
        hairline=float(rng.uniform(50.0, 66.0) if bangs else rng.uniform(74.0, 98.0)),
        hair_volume=float(rng.uniform(4.0, 20.0)),
        long_hair=long_hair, hair_length=float(rng.uniform(-170.0, -60.0)),
        brow_thickness=float(rng.uniform(4.5, 7.0)), brow_arch=float(rng.uniform(1.5, 4.0)),
        blush=float(rng.uniform(0.0, 1.0)), stubble=float(rng.uniform(0.3, 1.0) if rng.random() < 0.25 else 0.0),
        gaze=float(rng.normal(0.0, 1.2)), ear_scale=float(rng.uniform(0.9, 1.1)),
        neck_width=float(rng.uniform(-4.0, 6.0)), cloth=rng.uniform(0.05, 0.9, 3) ** 1.3,
        skin_noise_phase=rng.uniform(0, 2 * np.pi, 4))


def mean_identity():
    """The average person of ``sample_identity``'s distribution: the middle skin tone, the expected hair and
    iris colours, no fringe, no stubble. Its albedo is the face model file's mean colour."""
    skin = _SKIN_TONES[len(_SKIN_TONES) // 2]
    hair = _HAIR_PROBABILITIES @ _HAIR_COLORS
    lips = skin + 0.575 * (np.array([0.72, 0.30, 0.32]) - skin) * np.array([1.0, 1.2, 1.1])
    return Identity(
        skin=skin, lips=np.clip(lips, 0, 1), hair=hair, brows=hair * 0.85, iris=_IRIS_COLORS.mean(axis=0),
        hairline=86.0, hair_volume=12.0, long_hair=False, hair_length=-115.0, brow_thickness=5.75, brow_arch=2.75,
        blush=0.5, stubble=0.0, gaze=0.0, ear_scale=1.0, neck_width=1.0, cloth=np.full(3, 0.4),
        skin_noise_phase=np.zeros(4))


def _mix(color, target, alpha):
    """Blend (..., 3) colours towards ``target`` by ``alpha`` (...,) in [0, 1]."""
    return color + np.clip(alpha, 0, 1)[..., None] * (np.asarray(target) - color)


def _soft(distance, width=0.6):
    """Soft inside indicator from a signed distance (negative inside), ramping over ``width`` mm."""
    return np.clip(0.5 - distance / width, 0.0, 1.0)


def paint_face_texture(identity, size):
    """Albedo and labels of the face mesh in UV space.

    Args:
        identity: Identity.
        size: T, texture side in texels.

    Returns:
        albedo: (T, T, 3) float32 in [0, 1]; labels: (T, T) uint8 CelebAMask-HQ ids. Row r, column c is
        UV ((c + 0.5) / T, (r + 0.5) / T), i.e. the texel a grid_sample with align_corners=False reads.
    """
    centers = (np.arange(size) + 0.5) / size
    phi, y = fm.uv_to_chart(centers[None, :], centers[:, None])
    front = fm.chart_to_front(phi, y)
    x, y = front[..., 0], front[..., 1]
    ax, side = np.abs(x), np.where(x >= 0, 1.0, -1.0)
    labels = np.full(x.shape, LABELS["skin"], dtype=np.uint8)

    # Skin: base tone, low-frequency variation, blush, shading around the eyes, stubble.
    phase = identity.skin_noise_phase
    variation = 1.0 + 0.03 * (np.sin(x / 9.0 + phase[0]) * np.sin(y / 11.0 + phase[1])
                              + np.sin((x + y) / 5.0 + phase[2]) * 0.5)
    color = identity.skin[None, None, :] * variation[..., None]
    blush = identity.blush * 0.3 * fm.gauss(ax - 42.0, y + 8.0, 14.0, 12.0)
    color = _mix(color, identity.skin * np.array([1.05, 0.72, 0.70]), blush)
    color = color * (1.0 - 0.1 * fm.gauss(ax - 32.0, y - 25.0, 16.0, 9.0))[..., None]
    beard_area = (fm.smoothstep(-15.0, -30.0, y) * (1 - fm.gauss(x, y - fm.MOUTH_Y, 24.0, 5.0))
                  + fm.smoothstep(50.0, 65.0, ax) * fm.smoothstep(10.0, -5.0, y))
    color = _mix(color, identity.skin * 0.6 + np.array([0.02, 0.03, 0.05]),
                 identity.stubble * 0.5 * np.clip(beard_area, 0, 1))

    # Nose: its region is where the nose rises from the face; nostrils underneath, a redder tip.
    nose = fm.nose_height(x, y)
    labels[nose > 2.0] = LABELS["nose"]
    color = _mix(color, identity.skin * np.array([1.02, 0.85, 0.82]), 0.5 * fm.gauss(x, y - fm.NOSE_TIP_Y, 7, 6))
    nostril = fm.gauss(ax - 6.5, y + 19.5, 2.2, 1.2)
    color = color * (1.0 - 0.55 * nostril)[..., None]

    # Lips: upper lip with a cupid's bow, lower lip, darker towards the mouth line.
    ex, ey = fm.EYE_CENTER
    upper_height = (6.5 * np.clip(1 - (x / 26.0) ** 2, 0, None) ** 0.6 + 1.0 * np.exp(-0.5 * ((ax - 5.0) / 3.0) ** 2)
                    - 1.2 * np.exp(-0.5 * (x / 2.0) ** 2))
    lower_height = 9.0 * np.clip(1 - (x / 25.0) ** 2, 0, None) ** 0.7
    dy_mouth = y - fm.MOUTH_Y
    upper = _soft(np.maximum(dy_mouth - upper_height, -dy_mouth)) * (ax < 26)
    lower = _soft(np.maximum(-dy_mouth - lower_height, dy_mouth)) * (ax < 25)
    lip_color = identity.lips * (1.0 - 0.35 * np.exp(-np.abs(dy_mouth) / 1.5))[..., None]
    lip_color = lip_color * (1.0 + 0.12 * fm.gauss(x, dy_mouth + 5.0, 8.0, 2.0))[..., None]
    color = color + (upper + lower)[..., None] * (lip_color - color)
    labels[upper > 0.5] = LABELS["upper_lip"]
    labels[lower > 0.5] = LABELS["lower_lip"]
    line = (np.abs(dy_mouth) < 0.5) & (ax < 28.0)
    color[line] = identity.lips * 0.3
    labels[line] = LABELS["upper_lip"]

    # Eyes: almond opening with sclera, iris, pupil; lashes along the upper lid, a crease above it.
    dx, dy = x - side * ex, y - ey
    across = np.clip(1 - (dx / 14.0) ** 2, 0, None)
    upper_lid, lower_lid = 5.0 * across + 0.6 * side * dx / 14.0, -3.5 * across
    inside = (np.abs(dx) < 14.0) & (dy < upper_lid) & (dy > lower_lid)
    iris_radius = np.hypot(dx - identity.gaze, dy - 0.4)
    iris = identity.iris * ((0.75 + 0.35 * iris_radius / 5.2) * (1 - 0.45 * (iris_radius > 4.6)))[..., None]
    sclera = np.array([0.92, 0.89, 0.86]) * (1 - 0.25 * (np.abs(dx) / 14.0) ** 2)[..., None]
    eye = np.where((iris_radius < 5.2)[..., None], iris, sclera)
    eye = np.where((iris_radius < 2.2)[..., None], np.array([0.04, 0.03, 0.03]), eye)
    eye = eye * (1 - 0.5 * np.clip((dy - upper_lid + 1.5) / 1.5, 0, 1))[..., None]
    color = np.where(inside[..., None], eye, color)
    labels[inside] = np.where(side[inside] > 0, LABELS["left_eye"], LABELS["right_eye"])
    lashes = (np.abs(dx) < 15.0) & (dy >= upper_lid) & (dy < upper_lid + 0.9 + 0.4 * across)
    color[lashes] = np.array([0.08, 0.06, 0.05])
    crease = (np.abs(dx) < 13.0) & (dy > upper_lid + 3.2) & (dy < upper_lid + 4.0)
    color[crease] = color[crease] * 0.85

    # Brows: tapered arcs from the inner end (|x| = 17) to the outer end (|x| = 52).
    along = (ax - 17.0) / 35.0
    centre = fm.BROW_Y - 2.0 + identity.brow_arch * (1.0 - ((along - 0.6) / 0.6) ** 2)
    half_thickness = identity.brow_thickness * (1.0 - 0.55 * np.clip(along, 0, 1)) / 2.0
    brow = _soft(np.maximum(np.abs(y - centre) - half_thickness,
                            np.maximum(-along * 35.0, (along - 1.0) * 35.0)), width=0.8)
    strands = 0.85 + 0.15 * np.sin(x * 2.3 + y * 1.1)
    color = color + (0.9 * brow)[..., None] * (identity.brows * strands[..., None] - color)
    labels[brow > 0.5] = np.where(side[brow > 0.5] > 0, LABELS["left_brow"], LABELS["right_brow"])

    # Hair over the forehead (a fringe for low hairlines) and at the temples.
    temple_drop = fm.smoothstep(50.0, 70.0, ax)
    hairline = identity.hairline + 2.5 * np.sin(x / 6.0 + phase[3])
    hairline = hairline - (hairline - 40.0) * temple_drop
    hair = _soft(hairline - y, width=1.0)
    hair_color = identity.hair * (0.8 + 0.2 * np.sin(x * 1.7 + 0.2 * y))[..., None]
    color = color + hair[..., None] * (hair_color - color)
    labels[hair > 0.5] = LABELS["hair"]
    return np.clip(color, 0, 1).astype(np.float32), labels


def _grid_faces(n_rows, n_cols, wrap):
    """(F, 3) triangles of a row-major vertex grid; ``wrap`` closes the grid across its last column."""
    cols = n_cols if wrap else n_cols - 1
    r, c = np.meshgrid(np.arange(n_rows - 1), np.arange(cols), indexing="ij")
    c_next = (c + 1) % n_cols
    a, b = r * n_cols + c, r * n_cols + c_next
    d, e = (r + 1) * n_cols + c, (r + 1) * n_cols + c_next
    return np.concatenate([np.stack([a, d, e], -1).reshape(-1, 3), np.stack([a, e, b], -1).reshape(-1, 3)])


def _skull_radius_factor(y):
    """Fraction of the skull's horizontal radii at height y (1 at and below its centre)."""
    above = np.clip((y - _SKULL_CENTER[1]) / _SKULL_RADII[1], 0.0, 1.0)
    return np.sqrt(1.0 - above ** 2)


def build_exterior(identity):
    """The head around the face for one identity, in the face model's frame (mm).

    The topology is the same for every identity, so a batch of people shares one face array.

    Returns:
        vertices (Ve, 3) float64, faces (Fe, 3) int64, parts (Fe,) int64 part id per face
        (SKULL, NECK, HAIR_SHEET, LEFT_EAR, RIGHT_EAR, MOUTH, TORSO).
    """
    pieces = []
    volume = identity.hair_volume

    theta, psi = np.meshgrid(np.linspace(-np.pi / 2, np.pi / 2, 25), np.linspace(0, 2 * np.pi, 48, endpoint=False),
                             indexing="ij")
    # Hair adds volume above the ears only, so the ears and the jaw stay on the skin.
    hair = volume * fm.smoothstep(-0.1, 0.5, theta)
    radius_y = np.where(theta > 0, _SKULL_RADII[1] + hair, _SKULL_LOWER_RADIUS_Y)
    skull = np.stack([(_SKULL_RADII[0] + hair) * np.cos(theta) * np.sin(psi),
                      _SKULL_CENTER[1] + radius_y * np.sin(theta),
                      _SKULL_CENTER[2] + (_SKULL_RADII[2] + hair) * np.cos(theta) * np.cos(psi)], -1)
    pieces.append((skull.reshape(-1, 3), _grid_faces(*theta.shape, wrap=True), SKULL))

    height, psi = np.meshgrid(np.linspace(-30.0, -230.0, 11), np.linspace(0, 2 * np.pi, 32, endpoint=False),
                              indexing="ij")
    neck = np.stack([(56.0 + identity.neck_width) * np.sin(psi), height,
                     -5.0 + (48.0 + 0.5 * identity.neck_width) * np.cos(psi)], -1)
    pieces.append((neck.reshape(-1, 3), _grid_faces(*height.shape, wrap=True), NECK))

    theta, psi = np.meshgrid(np.linspace(-np.pi / 2, np.pi / 2, 13), np.linspace(0, 2 * np.pi, 32, endpoint=False),
                             indexing="ij")
    torso = np.stack([175.0 * np.cos(theta) * np.sin(psi), -255.0 + 115.0 * np.sin(theta),
                      -15.0 + 95.0 * np.cos(theta) * np.cos(psi)], -1)
    pieces.append((torso.reshape(-1, 3), _grid_faces(*theta.shape, wrap=True), TORSO))

    # Long hair hugs the skull above its centre and falls straight down below it. Short hair collapses
    # the same sheet to a point (zero-area faces render nothing and cost nothing), so that every
    # identity has the same topology.
    top, bottom = 85.0, identity.hair_length
    height, psi = np.meshgrid(np.linspace(top, bottom, 16), np.deg2rad(np.linspace(55.0, 305.0, 36)),
                              indexing="ij")
    factor = _skull_radius_factor(height)
    sheet = np.stack([(factor * (_SKULL_RADII[0] + volume) + 2.0) * np.sin(psi), height,
                      _SKULL_CENTER[2] + (factor * (_SKULL_RADII[2] + volume) + 2.0) * np.cos(psi)], -1)
    if not identity.long_hair:
        sheet[:] = _SKULL_CENTER
    pieces.append((sheet.reshape(-1, 3), _grid_faces(*height.shape, wrap=False), HAIR_SHEET))

    theta, psi = np.meshgrid(np.linspace(-np.pi / 2, np.pi / 2, 8), np.linspace(0, 2 * np.pi, 12, endpoint=False),
                             indexing="ij")
    unit = np.stack([np.cos(theta) * np.sin(psi), np.sin(theta), np.cos(theta) * np.cos(psi)], -1)
    # Long hair covers the ears: they move inside the skull.
    ear_x = 70.0 if identity.long_hair else 80.0 + 4.0 * identity.ear_scale
    for side, part in ((1.0, LEFT_EAR), (-1.0, RIGHT_EAR)):
        ear = unit * np.array([6.0, 28.0, 16.0]) * identity.ear_scale + np.array([side * ear_x, 6.0, -8.0])
        pieces.append((ear.reshape(-1, 3), _grid_faces(*theta.shape, wrap=True), part))

    # The inside of the mouth: deep enough behind the lips and small enough to stay hidden behind the
    # face everywhere but through the lip slit, even for narrow chins.
    x, height = np.meshgrid(np.linspace(-28.0, 28.0, 11), np.linspace(-32.0, -62.0, 6))
    mouth = np.stack([x, height, 80.0 - 10.0 * (x / 28.0) ** 2], -1)
    pieces.append((mouth.reshape(-1, 3), _grid_faces(*x.shape, wrap=False), MOUTH))

    vertices, faces, parts, offset = [], [], [], 0
    for piece_vertices, piece_faces, part in pieces:
        vertices.append(piece_vertices)
        faces.append(piece_faces + offset)
        parts.append(np.full(len(piece_faces), part))
        offset += len(piece_vertices)
    return np.concatenate(vertices), np.concatenate(faces), np.concatenate(parts)


def exterior_outward_signs(vertices, faces, parts):
    """(Fe,) +1/-1 when a face's winding normal points out of / into its closed part, 0 for open parts.

    Faces of closed parts that point away from the camera can never be seen, so the renderer drops them.
    """
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    signs = np.zeros(len(faces))
    for part in (SKULL, NECK, LEFT_EAR, RIGHT_EAR, TORSO):
        mask = parts == part
        centre = vertices[np.unique(faces[mask])].mean(axis=0)
        signs[mask] = np.sign((normals[mask] * (corners[mask].mean(axis=1) - centre)).sum(axis=1))
    return signs


def exterior_appearance(identity, parts, points):
    """Albedo and labels of exterior surface points.

    Args:
        identity: Identity.
        parts: (N,) part id of each point.
        points: (N, 3) model-frame positions (mm).

    Returns:
        albedo (N, 3) float32 in [0, 1] and labels (N,) uint8.
    """
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    around = np.abs(np.arctan2(x, z - _SKULL_CENTER[2]))         # 0 at the face, pi at the back
    angle = np.arctan2(x, z)
    hair_strands = (0.8 + 0.1 * np.sin(angle * 45.0 + 2.0 * np.sin(y / 12.0))
                    + 0.1 * np.sin(angle * 113.0 + y / 9.0 + identity.skin_noise_phase[3]))
    hair = identity.hair[None, :] * hair_strands[:, None]
    color = np.broadcast_to(identity.skin, points.shape).copy()
    labels = np.full(len(points), LABELS["skin"], dtype=np.uint8)

    hairline = np.interp(around, [0.0, 0.7, 1.57, 2.4, np.pi], [60.0, 60.0, 22.0, -30.0, -45.0])
    is_hair = ((parts == SKULL) & (y > hairline + 3.0 * np.sin(around * 14.0))) | (parts == HAIR_SHEET)
    color[is_hair] = hair[is_hair]
    labels[is_hair] = LABELS["hair"]

    neck = parts == NECK
    color[neck] *= 0.88
    labels[neck] = LABELS["neck"]
    for part, name in ((LEFT_EAR, "left_ear"), (RIGHT_EAR, "right_ear")):
        ear = parts == part
        color[ear] *= np.array([1.0, 0.92, 0.9])
        labels[ear] = LABELS[name]

    torso = parts == TORSO
    color[torso] = identity.cloth * (0.9 + 0.1 * np.sin(x[torso] / 4.0))[:, None]
    labels[torso] = LABELS["cloth"]

    mouth = parts == MOUTH
    teeth = mouth & (y > -45.0) & (np.abs(x) < 24.0)
    color[mouth] = np.array([0.25, 0.06, 0.07])
    color[mouth & (y < -56.0)] = np.array([0.62, 0.28, 0.30])
    color[teeth] = np.array([0.92, 0.89, 0.80]) * (0.8 + 0.2 * np.abs(np.cos(x[teeth] * np.pi / 6.0)))[:, None]
    labels[mouth] = LABELS["mouth"]
    return np.clip(color, 0, 1).astype(np.float32), labels

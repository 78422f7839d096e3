"""Which surface point of a face model each detector landmark sits on, derived from the model file itself.

No correspondence file is shipped or downloaded: for any face model in the Basel Face Model 2017 layout
(the real ``face12`` model, the embedded demo model, another PCA model written in that layout) the
correspondence is computed at run time and cached per model file:

1. the model's mean shape is rendered with Lambertian shading (one light, two-sided normals, dark
   background) in ``VIEWS_DEG`` poses with the authors' default framing (t = (0, -2, -57), s = 0.1, the
   framing of an aligned FFHQ photo) at 512 x 512. The albedo is the file's mean colour
   (``color/model/mean``, as the real Basel Face Model has): the detector then places eyes, brows and lips
   where the model's own texture has them, as it does on photos. On a plain skin-coloured mesh it has to
   guess them from the relief: on the demo world's held-out people the true parameters then reproject
   with a mean landmark error of 6.3 px at 512 against 5.3 px, and the fits' rotation error median is
   3.3 against 2.7 degrees. Files without a colour model are rendered in one skin colour (``ALBEDO``);
2. the face landmarker runs on each render;
3. each landmark is lifted to the surface with the rasterizer: the triangle under its pixel
   (``pix_to_face``) and the perspective-correct barycentrics give a point of the mean mesh;
4. over the views, the lifted points of a landmark are aggregated robustly: the medoid (the view's point
   closest to the coordinate-wise median) is kept, as its triangle and barycentrics, and the median
   distance of the views' points to it is the landmark's *spread* in millimetres.

Weights: a landmark that lands on the surface in fewer than ``MIN_HIT_FRACTION`` of the views where a face
was found, or whose spread exceeds ``MAX_SPREAD_MM``, gets weight 0 (not fitted); the others get
``exp(-(spread / SPREAD_SCALE_MM)^2)``. Landmarks without a stable surface point are thereby dropped or
down-weighted: points of the face outline that slide along the silhouette as the head turns, and points
outside the model's surface (forehead top, jaw line beyond a cropped face mask), which hit the background.

Cache: ``$VARITEX_CACHE/correspondence/<sha256 of the model file>.npz`` (default ``~/.cache/varitex``),
keyed also by ``CORRESPONDENCE_VERSION`` and the detector's name; written atomically.
"""
import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from varitex.geometry import DEFAULT_S, DEFAULT_T, euler_to_rotation, pose_vertices, rasterize
from varitex.geometry.mesh_attributes import interpolate_vertex_attributes, vertex_normals

# Bump when the rendering, detection or aggregation changes: cached correspondences are then recomputed.
CORRESPONDENCE_VERSION = 3
# Poses (pitch, yaw, roll in degrees) of the renders: frontal, turned left/right, up/down, and mixed.
VIEWS_DEG = ((0, 0, 0), (0, -15, 0), (0, 15, 0), (0, -30, 0), (0, 30, 0), (-10, 0, 0), (10, 0, 0),
             (-8, -20, 0), (8, 20, 0), (0, 0, -10), (0, 0, 10))
RENDER_SIZE = 512
MIN_HIT_FRACTION = 0.6
SPREAD_SCALE_MM = 4.0
MAX_SPREAD_MM = 3.5
# Render appearance: the albedo of files without a colour model, a light from the upper front, dark-grey
# background.
ALBEDO = (0.85, 0.66, 0.55)
LIGHT_DIRECTION = (0.2, 0.35, 1.0)
AMBIENT = 0.35
BACKGROUND = (0.12, 0.12, 0.14)


class Correspondence(NamedTuple):
    """Landmark l sits at ``sum_j barycentrics[l, j] * vertices[vertex_ids[l, j]]`` of the face model.

    vertex_ids: (L, 3) int64; barycentrics: (L, 3) float32 (rows sum to 1); weights: (L,) float32 in [0, 1],
    0 for landmarks that are not fitted; spread_mm: (L,) float32 median distance of the per-view surface
    points to the chosen one (inf when never on the surface); n_views: renders in which a face was found.
    """
    vertex_ids: np.ndarray
    barycentrics: np.ndarray
    weights: np.ndarray
    spread_mm: np.ndarray
    n_views: int


def cache_folder():
    """``$VARITEX_CACHE/correspondence`` or ``~/.cache/varitex/correspondence``."""
    root = os.environ.get("VARITEX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "varitex")
    return Path(root) / "correspondence"


def file_digest(path):
    """sha256 hex digest of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def render_views(bfm, views=VIEWS_DEG, size=RENDER_SIZE):
    """The model's mean shape in its mean colour (or ``ALBEDO``), shaded, in each pose of ``views`` with the
    default framing.

    Args:
        bfm: varitex.geometry.BFM2017.
        views: (P, 3) Euler angles in degrees.
        size: image side.

    Returns:
        images (P, size, size, 3) uint8 RGB; fragments of the renders (perspective-correct barycentrics);
        mean vertices (V, 3) float32 in model space (mm).
    """
    mean = bfm.generate_vertices(torch.zeros(1, bfm.n_shape), torch.zeros(1, bfm.n_expression))
    n = len(views)
    rotation = euler_to_rotation(torch.as_tensor(views, dtype=torch.float32))
    posed = pose_vertices(mean.expand(n, -1, -1), rotation, torch.tensor(DEFAULT_T).repeat(n, 1),
                          torch.full((n, 1), DEFAULT_S))
    fragments = rasterize(posed, bfm.faces, size, perspective_correct=True)
    normals = interpolate_vertex_attributes(fragments, bfm.faces, vertex_normals(posed, bfm.faces))
    normals = torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)
    # Two-sided: the model's triangle winding is not known, so normals face the viewer (+z in world).
    normals = normals * torch.where(normals[..., 2:] < 0, -1.0, 1.0)
    light = torch.nn.functional.normalize(torch.tensor(LIGHT_DIRECTION), dim=0)
    shade = AMBIENT + (1 - AMBIENT) * (normals @ light).clamp(min=0)
    if bfm.mean_color is not None:
        albedo = interpolate_vertex_attributes(fragments, bfm.faces, bfm.mean_color.expand(n, -1, -1))
    else:
        albedo = torch.tensor(ALBEDO)
    color = albedo * shade[..., None]
    hit = (fragments.pix_to_face >= 0)[..., None]
    image = torch.where(hit, color, torch.tensor(BACKGROUND))
    return (image * 255 + 0.5).clamp(0, 255).to(torch.uint8).numpy(), fragments, mean[0]


def lift_to_surface(landmarks_px, pix_to_face, bary_coords):
    """Triangle and barycentrics under each landmark's pixel in one render.

    Args:
        landmarks_px: (L, 2) pixel coordinates (x right, y down; pixel c spans [c, c + 1)).
        pix_to_face: (S, S) int64, -1 for background; bary_coords: (S, S, 3).

    Returns:
        face (L,) int64 (-1 where the landmark is off the surface or off the image), bary (L, 3) float32.
    """
    size = pix_to_face.shape[0]
    column = np.floor(np.asarray(landmarks_px)[:, 0]).astype(np.int64)
    row = np.floor(np.asarray(landmarks_px)[:, 1]).astype(np.int64)
    inside = (column >= 0) & (column < size) & (row >= 0) & (row < size)
    face = np.full(len(column), -1, dtype=np.int64)
    bary = np.zeros((len(column), 3), dtype=np.float32)
    face[inside] = pix_to_face[row[inside], column[inside]]
    bary[inside] = bary_coords[row[inside], column[inside]]
    return face, bary


def aggregate(faces_per_view, bary_per_view, mesh_faces, mean_vertices):
    """Robust per-landmark surface point over views (see the module docstring, step 4).

    Args:
        faces_per_view: (P, L) int64 triangle per view and landmark, -1 off the surface.
        bary_per_view: (P, L, 3) float32 barycentrics.
        mesh_faces: (F, 3) int64; mean_vertices: (V, 3) float model-space vertices.

    Returns:
        Correspondence.
    """
    n_views, n_landmarks = faces_per_view.shape
    vertex_ids = np.zeros((n_landmarks, 3), dtype=np.int64)
    barycentrics = np.tile(np.array([1.0, 0.0, 0.0], dtype=np.float32), (n_landmarks, 1))
    spread = np.full(n_landmarks, np.inf, dtype=np.float32)
    hit_fraction = (faces_per_view >= 0).mean(axis=0) if n_views else np.zeros(n_landmarks)
    for l in range(n_landmarks):
        hits = np.flatnonzero(faces_per_view[:, l] >= 0)
        if len(hits) == 0:
            continue
        corners = mesh_faces[faces_per_view[hits, l]]                              # (n, 3)
        points = (bary_per_view[hits, l, :, None] * mean_vertices[corners]).sum(1)  # (n, 3)
        distance = np.linalg.norm(points - np.median(points, axis=0), axis=1)
        best = int(np.argmin(distance))
        vertex_ids[l] = corners[best]
        barycentrics[l] = bary_per_view[hits[best], l]
        spread[l] = np.median(np.linalg.norm(points - points[best], axis=1))
    weights = np.exp(-(np.minimum(spread, 1e6) / SPREAD_SCALE_MM) ** 2)
    weights[(hit_fraction < MIN_HIT_FRACTION) | ~(spread <= MAX_SPREAD_MM)] = 0.0
    return Correspondence(vertex_ids, barycentrics / barycentrics.sum(1, keepdims=True),
                          weights.astype(np.float32), spread, n_views)


def derive_correspondence(bfm, landmarker, views=VIEWS_DEG, size=RENDER_SIZE):
    """Render, detect, lift and aggregate (module docstring); no caching.

    Args:
        bfm: varitex.geometry.BFM2017.
        landmarker: object with ``detect(image (H, W, 3) uint8) -> list`` of faces with ``.landmarks``
            (L, >= 2) in pixels, largest first (varitex.preprocess.landmarks.FaceLandmarker).

    Returns:
        Correspondence.

    Raises:
        RuntimeError: the landmarker found a face in none of the renders.
    """
    images, fragments, mean = render_views(bfm, views, size)
    found_faces, found_bary = [], []
    for image, pix_to_face, bary in zip(images, fragments.pix_to_face.numpy(), fragments.bary_coords.numpy()):
        detected = landmarker.detect(image)
        if detected:
            face, weights = lift_to_surface(detected[0].landmarks[:, :2], pix_to_face, bary)
            found_faces.append(face)
            found_bary.append(weights)
    if not found_faces:
        raise RuntimeError(f"{bfm.path}: the face landmarker found no face in any of the {len(views)} renders of "
                           "the model's mean shape, so landmarks cannot be placed on this model")
    return aggregate(np.stack(found_faces), np.stack(found_bary), bfm.faces.numpy(), mean.numpy())


def load_correspondence(bfm, landmarker_factory, cache_dir=None):
    """The correspondence of ``bfm``'s file: from the cache, or derived and cached.

    Args:
        bfm: varitex.geometry.BFM2017 (its ``path`` is hashed).
        landmarker_factory: callable returning a landmarker, only called when the cache misses.
        cache_dir: folder of the cache (default ``cache_folder()``).

    Returns:
        Correspondence.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else cache_folder()
    path = cache_dir / f"{file_digest(bfm.path)}-v{CORRESPONDENCE_VERSION}.npz"
    if path.is_file():
        try:
            with np.load(path) as stored:
                return Correspondence(stored["vertex_ids"], stored["barycentrics"], stored["weights"],
                                      stored["spread_mm"], int(stored["n_views"]))
        except (OSError, KeyError, ValueError):
            pass  # an unreadable cache entry is recomputed and replaced
    correspondence = derive_correspondence(bfm, landmarker_factory())
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as handle:
        np.savez(handle, **correspondence._asdict())
    os.replace(partial, path)
    return correspondence

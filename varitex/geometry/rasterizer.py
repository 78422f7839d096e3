"""Pure-PyTorch mesh rasterizer that reproduces PyTorch3D's naive kernel (blur 0, one face per pixel).

The per-pixel rules (docs/conventions.md, "Rasterization") are evaluated in float32 in
PyTorch3D's operation order so that results match it bit for bit on the same input:

* a face is skipped when its projected area ``E(v0; v1, v2)`` has ``|area| <= 1e-8`` or a vertex has
  ``z_view < 1e-8``;
* a pixel centre is tested only inside the face's (inclusive) xy bounding box;
* barycentrics ``w_i = E(p; v_j, v_k) / (E(v2; v0, v1) + 1e-8)``, optionally perspective-corrected;
* the centre is covered only if all three (corrected) barycentrics are strictly positive, so a centre
  exactly on a shared edge belongs to neither face;
* depth ``pz = w0 z0 + w1 z1 + w2 z2``; the smallest wins, ties go to the lower face index.

Instead of testing every face at every pixel, each face is paired with the pixel centres inside its
bounding box (found exactly with ``searchsorted`` on the float32 centres), the pairs are tested in one
vectorized pass, and a per-pixel ``amin`` over a packed (depth bits, face index) key resolves visibility.
Faces are processed in chunks only to bound the memory of the pair arrays.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from varitex.geometry.camera import pixel_centers, project_to_ndc

# PyTorch3D's kEpsilon: the zero-area threshold, the z_view validity threshold, the barycentric
# denominator offset and the floor of the perspective-correction denominator.
EPSILON = 1e-8
# Upper bound on (face, pixel) pairs evaluated at once. The pair arrays peak at about 200 bytes per pair,
# so a chunk needs about 200 MB; a BFM-sized face at 256 x 256 gives about 140k pairs per image.
MAX_PAIRS_PER_CHUNK = 1 << 20
_NO_HIT = torch.iinfo(torch.int64).max


class Fragments(NamedTuple):
    """Rasterizer output for a batch of B meshes rendered at S x S.

    pix_to_face: (B, S, S) int64, index of the visible face in its mesh (0..F-1), -1 for background.
    zbuf: (B, S, S) float32, view-space depth of the visible point (positive), -1 for background.
    bary_coords: (B, S, S, 3) float32, barycentrics of the pixel centre in the visible face
        (perspective-corrected when requested), -1 for background.
    """
    pix_to_face: torch.Tensor
    zbuf: torch.Tensor
    bary_coords: torch.Tensor


def square_image_size(image_size):
    """Side S of a square image given as ``S`` or ``(S, S)``; raises ValueError for non-square requests."""
    if isinstance(image_size, (tuple, list)):
        if len(image_size) != 2 or image_size[0] != image_size[1]:
            raise ValueError(f"only square images are supported, got image_size={tuple(image_size)}")
        image_size = image_size[0]
    size = int(image_size)
    if size <= 0 or size != image_size:
        raise ValueError(f"image_size must be a positive integer, got {image_size}")
    return size


def check_faces(faces, n_vertices, name="faces"):
    """Validate an (F, 3) integer index tensor against a vertex count; returns it as int64."""
    if faces.dim() != 2 or faces.shape[1] != 3:
        raise ValueError(f"{name} must have shape (F, 3), got {tuple(faces.shape)}")
    if faces.dtype.is_floating_point or faces.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got {faces.dtype}")
    if faces.numel() > 0:
        low, high = int(faces.min()), int(faces.max())
        if low < 0 or high >= n_vertices:
            raise ValueError(f"{name} index out of range: indices span [{low}, {high}] but there are "
                             f"{n_vertices} vertices")
    return faces.long()


def _edge(px, py, ax, ay, dx, dy):
    """PyTorch3D's edge function ``E(p; a, b) = (p.x - a.x) (b.y - a.y) - (p.y - a.y) (b.x - a.x)``
    with the edge vector ``(dx, dy) = b - a`` precomputed per face (same float32 rounding)."""
    return (px - ax) * dy - (py - ay) * dx


class _FaceTable(NamedTuple):
    """Per-face float32 quantities, flattened over the batch (index ``b * F + f``), each (B*F,)."""
    x0: torch.Tensor
    y0: torch.Tensor
    x1: torch.Tensor
    y1: torch.Tensor
    x2: torch.Tensor
    y2: torch.Tensor
    dx01: torch.Tensor  # x1 - x0
    dy01: torch.Tensor
    dx12: torch.Tensor  # x2 - x1
    dy12: torch.Tensor
    dx20: torch.Tensor  # x0 - x2
    dy20: torch.Tensor
    area: torch.Tensor  # E(v2; v0, v1) + 1e-8, the barycentric denominator
    z0: torch.Tensor
    z1: torch.Tensor
    z2: torch.Tensor

    def take(self, index, fields):
        return [getattr(self, name).index_select(0, index) for name in fields]


def _face_table(face_verts):
    """Build the _FaceTable and the per-face validity mask from (B*F, 3, 3) projected face vertices."""
    x0, x1, x2 = face_verts[:, :, 0].unbind(1)
    y0, y1, y2 = face_verts[:, :, 1].unbind(1)
    z0, z1, z2 = face_verts[:, :, 2].unbind(1)
    dx01, dy01 = x1 - x0, y1 - y0
    dx12, dy12 = x2 - x1, y2 - y1
    dx20, dy20 = x0 - x2, y0 - y2
    # PyTorch3D tests the area E(v0; v1, v2) for degeneracy but divides by E(v2; v0, v1) + eps; the two
    # differ only by rounding, which decides near-degenerate faces, so both are kept.
    area_test = _edge(x0, y0, x1, y1, dx12, dy12)
    area = _edge(x2, y2, x0, y0, dx01, dy01) + EPSILON
    z_min = torch.minimum(torch.minimum(z0, z1), z2)
    valid = (area_test.abs() > EPSILON) & (z_min >= EPSILON)
    table = _FaceTable(x0, y0, x1, y1, x2, y2, dx01, dy01, dx12, dy12, dx20, dy20, area, z0, z1, z2)
    return table, valid


def _screen_barycentrics(table, index, px, py):
    """Uncorrected barycentrics (w0, w1, w2) of points (px, py) in faces ``index`` (all (P,))."""
    x0, y0, x1, y1, x2, y2, dx01, dy01, dx12, dy12, dx20, dy20, area = table.take(
        index, ("x0", "y0", "x1", "y1", "x2", "y2", "dx01", "dy01", "dx12", "dy12", "dx20", "dy20", "area"))
    w0 = _edge(px, py, x1, y1, dx12, dy12) / area
    w1 = _edge(px, py, x2, y2, dx20, dy20) / area
    w2 = _edge(px, py, x0, y0, dx01, dy01) / area
    return w0, w1, w2


def _corrected_and_depth(table, index, w0, w1, w2, perspective_correct):
    """Optionally perspective-correct barycentrics; returns (w0, w1, w2, pz), all (P,)."""
    z0, z1, z2 = table.take(index, ("z0", "z1", "z2"))
    if perspective_correct:
        top0 = w0 * z1 * z2
        top1 = w1 * z0 * z2
        top2 = w2 * z0 * z1
        denom = torch.clamp(top0 + top1 + top2, min=EPSILON)
        w0, w1, w2 = top0 / denom, top1 / denom, top2 / denom
    return w0, w1, w2, w0 * z0 + w1 * z1 + w2 * z2


def _pixel_span(low, high, centers):
    """Exact range of pixel-centre indices i with ``low <= centers[i] <= high`` as (first, count)."""
    first = torch.searchsorted(centers, low, right=False)
    last = torch.searchsorted(centers, high, right=True) - 1
    return first, (last - first + 1).clamp(min=0)


def _chunks(counts):
    """Slices of consecutive faces whose candidate-pair counts sum to about MAX_PAIRS_PER_CHUNK (at least
    one face each), to bound the memory of the pair arrays."""
    if len(counts) == 0:
        return []
    cumulative = torch.cumsum(counts, 0)
    n_chunks = int(cumulative[-1]) // MAX_PAIRS_PER_CHUNK + 1
    thresholds = torch.arange(1, n_chunks, device=counts.device) * MAX_PAIRS_PER_CHUNK
    edges = [0] + torch.searchsorted(cumulative, thresholds).tolist() + [len(counts)]
    return [slice(start, stop) for start, stop in zip(edges[:-1], edges[1:]) if stop > start]


def _enumerate_pairs(counts, widths):
    """Expand faces into their candidate pixels.

    Args:
        counts: (n,) int64 number of candidate pixels per face (width * height of its pixel box), > 0.
        widths: (n,) int64 width of each face's pixel box.

    Returns:
        (P,) face position in 0..n-1, and (P,) row and column offsets inside the face's pixel box.
    """
    total = int(counts.sum())
    local = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts, output_size=total)
    starts = torch.cumsum(counts, 0) - counts
    offset = torch.arange(total, device=counts.device) - starts.index_select(0, local)
    width = widths.index_select(0, local)
    row = torch.div(offset, width, rounding_mode="floor")
    return local, row, offset - row * width


def rasterize(vertices: torch.Tensor, faces: torch.Tensor, image_size: int, fov: float = 30.0, znear: float = 1.0,
              zfar: float = 1000.0, perspective_correct: bool = False) -> Fragments:
    """Rasterize a batch of meshes that share one topology with the fixed VariTex camera.

    Args:
        vertices: (B, V, 3) float world-space vertices (computed in float32).
        faces: (F, 3) integer vertex indices, shared by all B meshes.
        image_size: S, or (S, S); only square images.
        fov: vertical field of view in degrees.
        znear, zfar: clipping planes of PyTorch3D's ``FoVPerspectiveCameras``. Its rasterizer discards the
            NDC depth, so they do not change the result; they are validated and kept for parity.
        perspective_correct: perspective-correct the barycentrics (PyTorch3D >= 0.4 default for this
            camera). False reproduces the authors' 2021 renders (PyTorch3D 0.3).

    Returns:
        Fragments(pix_to_face (B,S,S) int64, zbuf (B,S,S) float32, bary_coords (B,S,S,3) float32); -1 marks
        background everywhere. Row 0 is the image top, column 0 its left.
    """
    size = square_image_size(image_size)
    if vertices.dim() != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape (B, V, 3), got {tuple(vertices.shape)}")
    if not 0.0 < znear < zfar:
        raise ValueError(f"need 0 < znear < zfar, got znear={znear}, zfar={zfar}")
    faces = check_faces(faces.to(vertices.device), vertices.shape[1])
    batch, n_faces, device = vertices.shape[0], faces.shape[0], vertices.device

    ndc = project_to_ndc(vertices.float(), fov)
    face_verts = ndc.index_select(1, faces.reshape(-1)).reshape(batch * n_faces, 3, 3)
    table, valid = _face_table(face_verts)

    # Candidate pixels of each face: the centres inside its inclusive bounding box, as index spans into
    # the ascending centre array (column c has x index S-1-c, row r has y index S-1-r).
    centers = pixel_centers(size, device)
    first_x, count_x = _pixel_span(torch.minimum(torch.minimum(table.x0, table.x1), table.x2),
                                   torch.maximum(torch.maximum(table.x0, table.x1), table.x2), centers)
    first_y, count_y = _pixel_span(torch.minimum(torch.minimum(table.y0, table.y1), table.y2),
                                   torch.maximum(torch.maximum(table.y0, table.y1), table.y2), centers)
    counts = count_x * count_y * valid
    face_ids = torch.nonzero(counts).squeeze(1)
    counts, count_x = counts[face_ids], count_x[face_ids]
    last_x = first_x[face_ids] + count_x - 1
    last_y = first_y[face_ids] + count_y[face_ids] - 1
    mesh = torch.div(face_ids, n_faces, rounding_mode="floor")
    pixel_base = mesh * (size * size) + (size - 1 - last_y) * size + (size - 1 - last_x)

    # Per-pixel key: float32 depth bits (monotone for pz >= 0) in the high word, face index in the low
    # word, so one amin picks the nearest face and, on an exact depth tie, the lower face index.
    best = torch.full((batch * size * size,), _NO_HIT, dtype=torch.int64, device=device)
    for chunk in _chunks(counts):
        local, row, col = _enumerate_pairs(counts[chunk], count_x[chunk])
        pair_face = face_ids[chunk].index_select(0, local)
        px = centers.index_select(0, last_x[chunk].index_select(0, local) - col)
        py = centers.index_select(0, last_y[chunk].index_select(0, local) - row)
        w0, w1, w2 = _screen_barycentrics(table, pair_face, px, py)
        inside = torch.nonzero((w0 > 0) & (w1 > 0) & (w2 > 0)).squeeze(1)
        pair_face = pair_face.index_select(0, inside)
        w0, w1, w2 = w0.index_select(0, inside), w1.index_select(0, inside), w2.index_select(0, inside)
        # PyTorch3D also skips pz < 0, which cannot happen here: covered centres have positive
        # barycentrics and valid faces have z_view >= 1e-8, so pz > 0 and its float bits sort like pz.
        *_, pz = _corrected_and_depth(table, pair_face, w0, w1, w2, perspective_correct)
        pixel = (pixel_base[chunk].index_select(0, local) + row * size + col).index_select(0, inside)
        key = (pz.view(torch.int32).long() << 32) | (pair_face % n_faces)
        best.scatter_reduce_(0, pixel, key, reduce="amin")

    return _fragments_from_keys(best, table, n_faces, batch, size, centers, perspective_correct)


def _fragments_from_keys(best, table, n_faces, batch, size, centers, perspective_correct):
    """Decode the per-pixel keys and recompute the winners' barycentrics with the same float ops."""
    device = best.device
    hit = torch.nonzero(best != _NO_HIT).squeeze(1)
    face = best.index_select(0, hit) & 0xFFFFFFFF
    mesh = torch.div(hit, size * size, rounding_mode="floor")
    pixel = hit % (size * size)
    row = torch.div(pixel, size, rounding_mode="floor")
    col = pixel % size
    flat_face = mesh * n_faces + face
    px = centers.index_select(0, size - 1 - col)
    py = centers.index_select(0, size - 1 - row)
    w0, w1, w2 = _screen_barycentrics(table, flat_face, px, py)
    w0, w1, w2, pz = _corrected_and_depth(table, flat_face, w0, w1, w2, perspective_correct)

    pix_to_face = torch.full((batch * size * size,), -1, dtype=torch.int64, device=device)
    zbuf = torch.full((batch * size * size,), -1.0, dtype=torch.float32, device=device)
    bary = torch.full((batch * size * size, 3), -1.0, dtype=torch.float32, device=device)
    pix_to_face[hit] = face
    zbuf[hit] = pz
    bary[hit] = torch.stack([w0, w1, w2], dim=1)
    return Fragments(pix_to_face.view(batch, size, size), zbuf.view(batch, size, size),
                     bary.view(batch, size, size, 3))

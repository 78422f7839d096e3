"""Pure-PyTorch mesh rasterizer that reproduces PyTorch3D's naive kernel (blur 0, one face per pixel).

The per-pixel rules are those of ``shared/golden/README.md`` ("Per-pixel test"), evaluated in float32 in
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
from typing import NamedTuple

import torch

from varitex.geometry.camera import pixel_centers, project_to_ndc

# PyTorch3D's kEpsilon: the zero-area threshold, the z_view validity threshold, the barycentric
# denominator offset and the floor of the perspective-correction denominator.
EPSILON = 1e-8
# Upper bound on (face, pixel) pairs evaluated at once; about 40 bytes of temporaries per pair and step.
MAX_PAIRS_PER_CHUNK = 1 << 21
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


def _enumerate_pairs(face_ids, counts, widths):
    """Expand faces into their candidate pixels.

    Args:
        face_ids: (n,) int64 flat face indices with at least one candidate pixel.
        counts: (n,) int64 number of candidate pixels per face (width * height of its pixel box).
        widths: (n,) int64 width of each face's pixel box.

    Returns:
        pair_face (P,) flat face index of each pair, and (P,) row and column offsets inside the box.
    """
    total = int(counts.sum())
    local = torch.repeat_interleave(torch.arange(len(face_ids), device=counts.device), counts,
                                    output_size=total)
    starts = torch.cumsum(counts, 0) - counts
    offset = torch.arange(total, device=counts.device) - starts.index_select(0, local)
    width = widths.index_select(0, local)
    row = torch.div(offset, width, rounding_mode="floor")
    return face_ids.index_select(0, local), local, row, offset - row * width


def rasterize(vertices, faces, image_size, fov=30.0, znear=1.0, zfar=1000.0, perspective_correct=False):
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
    face_verts = ndc[:, faces].reshape(batch * n_faces, 3, 3)
    table, valid = _face_table(face_verts)

    centers = pixel_centers(size, device)
    xy_min = face_verts[:, :, :2].amin(dim=1)
    xy_max = face_verts[:, :, :2].amax(dim=1)
    first_x, count_x = _pixel_span(xy_min[:, 0].contiguous(), xy_max[:, 0].contiguous(), centers)
    first_y, count_y = _pixel_span(xy_min[:, 1].contiguous(), xy_max[:, 1].contiguous(), centers)
    counts = count_x * count_y * valid
    face_ids = torch.nonzero(counts).squeeze(1)
    counts, count_x = counts[face_ids], count_x[face_ids]
    # Highest centre index first: column c has x index S-1-c, row r has y index S-1-r.
    col0 = size - 1 - (first_x[face_ids] + count_x - 1)
    row0 = size - 1 - (first_y[face_ids] + count_y[face_ids] - 1)
    pixel_base = torch.div(face_ids, n_faces, rounding_mode="floor") * (size * size) + row0 * size + col0
    x_of_col = centers.flip(0)
    y_of_row = centers.flip(0)

    # Per-pixel key: float32 depth bits (monotone for pz >= 0) in the high word, face index in the low
    # word, so one amin picks the nearest face and, on an exact depth tie, the lower face index.
    best = torch.full((batch * size * size,), _NO_HIT, dtype=torch.int64, device=device)
    cumulative = torch.cumsum(counts, 0)
    n_chunks = int(cumulative[-1]) // MAX_PAIRS_PER_CHUNK + 1 if len(cumulative) else 0
    bounds = torch.searchsorted(cumulative, torch.arange(1, n_chunks, device=device) * MAX_PAIRS_PER_CHUNK)
    edges = [0] + bounds.tolist() + [len(face_ids)]
    for start, stop in zip(edges[:-1], edges[1:]):
        if stop <= start:
            continue
        pair_face, local, row, col = _enumerate_pairs(face_ids[start:stop], counts[start:stop],
                                                      count_x[start:stop])
        base = pixel_base[start:stop].index_select(0, local)
        row0_pair = torch.div(base % (size * size), size, rounding_mode="floor")
        col0_pair = base % size
        px = x_of_col.index_select(0, col0_pair + col)
        py = y_of_row.index_select(0, row0_pair + row)
        w0, w1, w2 = _screen_barycentrics(table, pair_face, px, py)
        inside = torch.nonzero((w0 > 0) & (w1 > 0) & (w2 > 0)).squeeze(1)
        pair_face = pair_face.index_select(0, inside)
        w0, w1, w2 = w0.index_select(0, inside), w1.index_select(0, inside), w2.index_select(0, inside)
        *_, pz = _corrected_and_depth(table, pair_face, w0, w1, w2, perspective_correct)
        keep = torch.nonzero(pz >= 0).squeeze(1)
        pixel = (base + row * size + col).index_select(0, inside).index_select(0, keep)
        key = (pz.index_select(0, keep).view(torch.int32).long() << 32) | (
            pair_face.index_select(0, keep) % n_faces)
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

"""Basel Face Model 2017: HDF5 reader, PCA vertex generation and sampling, and a writer of the same layout.

Layout (docs/conventions.md): ``shape/model/mean`` (3V,), ``shape/model/pcaBasis`` (3V, K_shape),
``shape/model/pcaVariance`` (K_shape,), ``shape/representer/cells`` (3, F),
``expression/model/pcaBasis`` (3V, K_expr), ``expression/model/pcaVariance`` (K_expr,) and, optional,
``color/model/mean`` (3V,), the mean albedo r0 g0 b0 r1 ... in [0, 1]. Coordinates are interleaved
x0 y0 z0 x1 y1 z1 ... in millimetres. Counts are read from the file (V = 28,588, F = 56,572,
K = 199 / 100 for ``model2017-1_face12_nomouth.h5``).
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from varitex.safe_io import DataFileError

SHAPE_MEAN = "shape/model/mean"
SHAPE_BASIS = "shape/model/pcaBasis"
SHAPE_VARIANCE = "shape/model/pcaVariance"
CELLS = "shape/representer/cells"
EXPRESSION_BASIS = "expression/model/pcaBasis"
EXPRESSION_VARIANCE = "expression/model/pcaVariance"
EXPRESSION_MEAN = "expression/model/mean"
COLOR_MEAN = "color/model/mean"
REQUIRED_KEYS = (SHAPE_MEAN, SHAPE_BASIS, SHAPE_VARIANCE, CELLS, EXPRESSION_BASIS, EXPRESSION_VARIANCE)


def _open_h5(path):
    """h5py.File(path, "r"), or DataFileError naming the file when it is not a readable HDF5 file."""
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DataFileError(f"face model file {path} is not a readable HDF5 file ({error}); it is empty, "
                            f"truncated or of another format") from None


def bfm_counts(path: str | Path) -> tuple[int, int, int, int]:
    """(n_shape, n_expression) of a BFM 2017 file, read from the datasets' shapes only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Basel Face Model file not found: {path}")
    with _open_h5(path) as h5:
        for key in (SHAPE_VARIANCE, EXPRESSION_VARIANCE):
            if key not in h5:
                raise ValueError(f"{path}: Basel Face Model 2017 file lacks the required dataset '{key}'")
        return h5[SHAPE_VARIANCE].size, h5[EXPRESSION_VARIANCE].size


class BFM2017:
    """The Basel Face Model 2017 read from its HDF5 file.

    Attributes:
        path: the HDF5 file.
        n_vertices, n_faces, n_shape, n_expression: counts read from the file.
        faces: (F, 3) int64 triangle vertex indices.
        shape_variance: (K_shape,) float32 PCA variances; expression_variance likewise (K_expr,).
        mean_color: (V, 3) float32 mean albedo in [0, 1] from ``color/model/mean``, or None when the file
            has no colour model.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Basel Face Model file not found: {self.path}")
        with _open_h5(self.path) as h5:
            for key in REQUIRED_KEYS:
                if key not in h5 or not isinstance(h5[key], h5py.Dataset):
                    raise ValueError(f"{self.path}: Basel Face Model 2017 file lacks the required dataset '{key}'")
                if h5[key].dtype.kind not in "iuf":
                    raise ValueError(f"{self.path}: dataset '{key}' has dtype {h5[key].dtype}; expected numbers")
            mean = np.asarray(h5[SHAPE_MEAN], dtype=np.float32).reshape(-1)
            shape_basis = np.asarray(h5[SHAPE_BASIS], dtype=np.float32)
            shape_variance = np.asarray(h5[SHAPE_VARIANCE], dtype=np.float32).reshape(-1)
            cells = np.asarray(h5[CELLS])
            expression_basis = np.asarray(h5[EXPRESSION_BASIS], dtype=np.float32)
            expression_variance = np.asarray(h5[EXPRESSION_VARIANCE], dtype=np.float32).reshape(-1)
            mean_color = np.asarray(h5[COLOR_MEAN], dtype=np.float32).reshape(-1) if COLOR_MEAN in h5 else None
        for key, values in ((SHAPE_MEAN, mean), (SHAPE_BASIS, shape_basis), (SHAPE_VARIANCE, shape_variance),
                            (EXPRESSION_BASIS, expression_basis), (EXPRESSION_VARIANCE, expression_variance)):
            if not np.isfinite(values).all():
                raise ValueError(f"{self.path}: dataset '{key}' holds non-finite values (NaN or infinity)")
        for key, values in ((SHAPE_VARIANCE, shape_variance), (EXPRESSION_VARIANCE, expression_variance)):
            if values.size and values.min() < 0:
                raise ValueError(f"{self.path}: dataset '{key}' holds negative variances (min {values.min()})")
        if cells.dtype.kind == "f":
            raise ValueError(f"{self.path}: '{CELLS}' has dtype {cells.dtype}; expected integer vertex indices")
        if mean.shape[0] % 3:
            raise ValueError(f"{self.path}: '{SHAPE_MEAN}' has {mean.shape[0]} entries, not a multiple of 3")
        self.n_vertices = mean.shape[0] // 3
        for key, basis, variance in ((SHAPE_BASIS, shape_basis, shape_variance),
                                     (EXPRESSION_BASIS, expression_basis, expression_variance)):
            if basis.ndim != 2 or basis.shape[0] != mean.shape[0] or basis.shape[1] != variance.shape[0]:
                raise ValueError(f"{self.path}: '{key}' has shape {basis.shape}, expected "
                                 f"({mean.shape[0]}, {variance.shape[0]}) to match the mean and the variances")
        if cells.ndim != 2 or cells.shape[0] != 3:
            raise ValueError(f"{self.path}: '{CELLS}' has shape {cells.shape}, expected (3, F)")
        if cells.size and (cells.min() < 0 or cells.max() >= self.n_vertices):
            raise ValueError(f"{self.path}: '{CELLS}' index out of range [0, {self.n_vertices})")
        self.mean_color = None if mean_color is None else torch.from_numpy(self._checked_color(mean_color))
        self.n_shape = shape_variance.shape[0]
        self.n_expression = expression_variance.shape[0]
        self.faces = torch.from_numpy(cells.T.astype(np.int64))
        self.n_faces = self.faces.shape[0]
        self.shape_variance = torch.from_numpy(shape_variance)
        self.expression_variance = torch.from_numpy(expression_variance)
        self._host = (torch.from_numpy(mean), torch.from_numpy(shape_basis), torch.from_numpy(expression_basis))
        self._on_device = {}

    def _checked_color(self, mean_color):
        """(V, 3) colours in [0, 1] from the flat ``color/model/mean``; ValueError naming the file otherwise."""
        if mean_color.shape[0] != 3 * self.n_vertices:
            raise ValueError(f"{self.path}: '{COLOR_MEAN}' has {mean_color.shape[0]} entries, expected "
                             f"{3 * self.n_vertices} (r, g, b for each of the {self.n_vertices} vertices)")
        if not np.isfinite(mean_color).all():
            raise ValueError(f"{self.path}: dataset '{COLOR_MEAN}' holds non-finite values (NaN or infinity)")
        # The Basel Face Model stores colours in [0, 1]; a slight overshoot of a PCA mean is clipped, values
        # far outside (8-bit colours, say) are refused rather than guessed.
        if mean_color.min() < -0.1 or mean_color.max() > 1.1:
            raise ValueError(f"{self.path}: '{COLOR_MEAN}' ranges over [{mean_color.min():.3g}, "
                             f"{mean_color.max():.3g}]; expected colours in [0, 1]")
        return np.clip(mean_color, 0.0, 1.0).reshape(self.n_vertices, 3)

    def _model(self, device, dtype):
        """(mean, shape basis, expression basis) on ``device`` in ``dtype``, cached per (device, dtype)."""
        key = (torch.device(device), dtype)
        if key not in self._on_device:
            self._on_device[key] = tuple(x.to(device=device, dtype=dtype) for x in self._host)
        return self._on_device[key]

    def _check_coefficients(self, name, coefficients, expected):
        if coefficients.dim() != 2 or coefficients.shape[1] != expected:
            raise ValueError(f"{name} coefficients must have shape (B, {expected}) for {self.path.name}, "
                             f"got {tuple(coefficients.shape)}")

    def generate_vertices(self, sp: torch.Tensor, ep: torch.Tensor) -> torch.Tensor:
        """Vertices of the model for batched coefficients: ``mean + shapeBasis @ sp + expressionBasis @ ep``.

        The expression model's mean is not added: an authors' quirk, kept so that the same coefficients
        give the same vertices as in their renders (uv.npy).

        Args:
            sp: (B, K_shape) float shape coefficients (not normalized by the standard deviation).
            ep: (B, K_expr) float expression coefficients, same batch and device as sp.

        Returns:
            (B, V, 3) vertices in millimetres, on sp's device, in sp's floating dtype (float32 otherwise).
        """
        sp, ep = torch.as_tensor(sp), torch.as_tensor(ep)
        self._check_coefficients("shape", sp, self.n_shape)
        self._check_coefficients("expression", ep, self.n_expression)
        if sp.shape[0] != ep.shape[0]:
            raise ValueError(f"shape and expression batches differ: {sp.shape[0]} vs {ep.shape[0]}")
        dtype = sp.dtype if sp.is_floating_point() else torch.float32
        mean, shape_basis, expression_basis = self._model(sp.device, dtype)
        flat = torch.addmm(mean, sp.to(dtype), shape_basis.T) + ep.to(device=sp.device, dtype=dtype) @ expression_basis.T
        return flat.view(sp.shape[0], self.n_vertices, 3)

    def sample_shape(self, n: int, std_multiplier: float = 1.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, K_shape) float32 shape coefficients, coefficient i ~ N(0, pcaVariance_i * std_multiplier^2)."""
        return self._sample(self.shape_variance, n, std_multiplier, generator)

    def sample_expression(self, n: int, std_multiplier: float = 1.0,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, K_expr) float32 expression coefficients, coefficient i ~ N(0, pcaVariance_i * std_multiplier^2)."""
        return self._sample(self.expression_variance, n, std_multiplier, generator)

    @staticmethod
    def _sample(variance, n, std_multiplier, generator):
        noise = torch.randn(n, variance.shape[0], generator=generator)
        return noise * variance.sqrt() * std_multiplier


def save_bfm2017(path, mean, shape_basis, shape_variance, expression_basis, expression_variance, faces,
                 expression_mean=None, mean_color=None):
    """Write a face model in the exact Basel Face Model 2017 HDF5 layout (read back by BFM2017).

    Args:
        path: output .h5 file (parent folders are created).
        mean: (3V,) interleaved mean shape, or (V, 3).
        shape_basis: (3V, K_shape); shape_variance: (K_shape,).
        expression_basis: (3V, K_expr); expression_variance: (K_expr,).
        faces: (F, 3) vertex indices, stored as ``shape/representer/cells`` (3, F) int32.
        expression_mean: optional (3V,) ``expression/model/mean`` (present in the real file, never used).
        mean_color: optional (V, 3) or (3V,) mean albedo in [0, 1], stored as ``color/model/mean``.

    Returns:
        The path written, as a Path.
    """
    def as_array(x, dtype):
        return np.ascontiguousarray(x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x), dtype=dtype)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mean = as_array(mean, np.float32).reshape(-1)
    faces = as_array(faces, np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= mean.shape[0] // 3):
        raise ValueError(f"faces index out of range [0, {mean.shape[0] // 3})")
    datasets = {
        SHAPE_MEAN: mean,
        SHAPE_BASIS: as_array(shape_basis, np.float32),
        SHAPE_VARIANCE: as_array(shape_variance, np.float32).reshape(-1),
        CELLS: np.ascontiguousarray(faces.T.astype(np.int32)),
        EXPRESSION_BASIS: as_array(expression_basis, np.float32),
        EXPRESSION_VARIANCE: as_array(expression_variance, np.float32).reshape(-1),
    }
    if expression_mean is not None:
        datasets[EXPRESSION_MEAN] = as_array(expression_mean, np.float32).reshape(-1)
    if mean_color is not None:
        datasets[COLOR_MEAN] = as_array(mean_color, np.float32).reshape(-1)
        if datasets[COLOR_MEAN].shape != mean.shape:
            raise ValueError(f"mean_color must have {mean.shape[0] // 3} x 3 entries, "
                             f"got {datasets[COLOR_MEAN].size}")
    for key in (SHAPE_BASIS, EXPRESSION_BASIS):
        if datasets[key].ndim != 2 or datasets[key].shape[0] != mean.shape[0]:
            raise ValueError(f"'{key}' must have shape ({mean.shape[0]}, K), got {datasets[key].shape}")
    with h5py.File(path, "w") as h5:
        for key, value in datasets.items():
            h5.create_dataset(key, data=value)
    return path

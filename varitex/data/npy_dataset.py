"""NPYDataset: the authors' preprocessed FFHQ layout as a torch Dataset.

Folder ``--dataroot_npy`` holds R.npy (N,3,3), t.npy (N,3), s.npy (N,1), sp.npy (N,K), ep.npy (N,K),
segmentation.npy (N,S,S) label ids, uv.npy (N,S,S,2) in [-1,1] with background -1, filename.npy (N,) image
stems and dataset_splits.npz (index arrays ``train``, ``val``); ``--image_folder`` holds ``<stem>.png``.
The arrays are memory-mapped, opened lazily in each process (DataLoader workers included), never read whole.

Differences from the authors' code, all without effect on the values unless stated:
- the uv map is augmented in float; the authors pushed it through an 8-bit image (uv quantized to 1/127.5);
- flip + affine are applied as one nearest-neighbour sampling map gathered from image, uv and labels
  (varitex.data.augmentation), the authors transformed each array with PIL, the uv map twice;
- the flip is drawn from torch's generator instead of numpy's;
- MASK_UV and MASK_FULL are float32 0/1 (the authors' were bool), coefficients are tensors;
- uv values outside [-1, 1] are looked for in the stored row (the authors looked after the resize) and
  raise ValueError naming file, row and image, where the authors printed and called exit(0); missing or
  undecodable PNGs raise FileNotFoundError / ValueError naming path and index.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from varitex.data.augmentation import apply_sampling_map, draw_affine, sampling_map, transform_params
from varitex.data.image_ops import fill_holes, normalize_image, resize_bilinear, uv_mask
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.data.paths import require_path
from varitex.safe_io import check_stems, load_npy, load_npz, load_string_array, save_npy

# File stem -> expected shape; N rows, S the square array size, K coefficients.
ARRAY_SHAPES = {
    "R": ("N", 3, 3),
    "t": ("N", 3),
    "s": ("N", 1),
    "sp": ("N", "K"),
    "ep": ("N", "K"),
    "segmentation": ("N", "S", "S"),
    "uv": ("N", "S", "S", 2),
}
SPLITS_FILE = "dataset_splits.npz"
COEFFICIENT_ARRAYS = ("R", "t", "s", "sp", "ep")
REGION_CHECK_ROWS = 16  # rows of the split looked at to check that --semantic_regions matches some label


class NPYDataset(torch.utils.data.Dataset):
    """Items of the authors' NPYDataset: dicts keyed by DataItemKey members.

    Item (H = opt.image_h = opt.image_w):
        IMAGE_IN:          (3,H,W) float32, ImageNet-normalized, augmented, background filled
        IMAGE_IN_ENCODE:   (3,H,W) float32, the same image without augmentation (masked with its own masks)
        SEGMENTATION_MASK: (1,H,W) float32 in [0,1]: 1 on opt.semantic_regions, soft at borders (see below)
        UV_RENDERED:       (H,W,2) float32 in [-1,1], background -1, silhouette pixels blended with -1
        MASK_UV:           (1,H,W) float32 {0,1}: u != -1 and v != -1
        MASK_FULL:         (1,H,W) float32 {0,1}: hole-filled union of MASK_UV and SEGMENTATION_MASK > 0
        FILENAME:          str, the image stem
        COEFF_SHAPE (K,), COEFF_EXPRESSION (K,), R (3,3), T (3,), SCALE (1,): float32 tensors

    Args:
        opt: options (dataroot_npy, image_folder, dataset_split, image_h, image_w, transform_mode,
            semantic_regions, keep_background, bg_color, image_cache).
        split: 'train', 'val' (keys of dataset_splits.npz) or 'all'; None -> opt.dataset_split.
        augmentation: random flip + affine on IMAGE_IN, SEGMENTATION_MASK, UV_RENDERED and the masks; the
            authors' training script turns it on for training only. None -> off.
    """

    def __init__(self, opt: argparse.Namespace, split: str | None = None, augmentation: bool | None = None):
        if opt.image_h != opt.image_w:
            raise ValueError(f"only square images are supported: --image_h {opt.image_h} != --image_w {opt.image_w}")
        self.opt = opt
        self.split = opt.dataset_split if split is None else split
        self.augmentation = bool(augmentation)
        self.affine_params = transform_params(opt.transform_mode) if self.augmentation else None
        self.height = opt.image_h
        self.dataroot = Path(require_path(opt, "dataroot_npy"))
        self.image_folder = Path(require_path(opt, "image_folder"))
        self.array_size, n_rows, self.filenames = self._validate_arrays()
        self.indices = self._split_indices(n_rows)
        self.foreground_lut = np.zeros(256, dtype=bool)
        self.foreground_lut[[r for r in opt.semantic_regions if 0 <= r < 256]] = True
        self.image_cache = self._image_cache_folder(getattr(opt, "image_cache", None))
        self._arrays = None  # memory maps, opened on first use in each process
        self._check_semantic_regions()

    # ---- construction --------------------------------------------------------------------------------

    def _path(self, name):
        path = self.dataroot / name
        if not path.is_file():
            raise FileNotFoundError(f"dataset file {path} is missing (--dataroot_npy {self.dataroot} must "
                                    f"hold {', '.join(k + '.npy' for k in ARRAY_SHAPES)}, filename.npy and {SPLITS_FILE})")
        return path

    def _validate_arrays(self):
        """Check that every file exists, has its shape, dtype and the same length N, that the coefficients are
        finite and the image names are plain, unique file names; return (S, N, filenames)."""
        arrays = {name + ".npy": load_npy(self._path(name + ".npy"), mmap=True, what="dataset file")
                  for name in ARRAY_SHAPES}
        if not np.issubdtype(arrays["uv.npy"].dtype, np.floating):
            raise ValueError(f"{self.dataroot / 'uv.npy'} has dtype {arrays['uv.npy'].dtype}; expected float")
        labels = arrays["segmentation.npy"].dtype
        if not np.issubdtype(labels, np.integer):
            raise ValueError(f"{self.dataroot / 'segmentation.npy'} has dtype {labels}; expected integer label "
                             f"ids (CelebAMask-HQ ids, e.g. uint8)")
        for name in COEFFICIENT_ARRAYS:
            if not np.issubdtype(arrays[name + ".npy"].dtype, np.number) or arrays[name + ".npy"].dtype.kind == "c":
                raise ValueError(f"{self.dataroot / (name + '.npy')} has dtype {arrays[name + '.npy'].dtype}; "
                                 f"expected real numbers")
        shapes = {file: array.shape for file, array in arrays.items()}
        names = load_string_array(self._path("filename.npy"), what="dataset file")
        shapes["filename.npy"] = names.shape
        lengths = {file: shape[0] if shape else None for file, shape in shapes.items()}
        if len(set(lengths.values())) != 1:
            listing = ", ".join(f"{file}: {length}" for file, length in lengths.items())
            raise ValueError(f"arrays in {self.dataroot} have inconsistent lengths ({listing})")
        uv_shape = shapes["uv.npy"]
        size = uv_shape[1] if len(uv_shape) > 1 else None
        for name, expected in list(ARRAY_SHAPES.items()) + [("filename", ("N",))]:
            shape = shapes[name + ".npy"]
            if len(shape) != len(expected) or any(dim != (size if want == "S" else want)
                                                   for dim, want in zip(shape, expected) if want not in ("N", "K")):
                raise ValueError(f"{self.dataroot / (name + '.npy')} has shape {shape}; expected "
                                 f"({', '.join(map(str, expected))}) with S = {size}, the size of uv.npy")
        filenames = np.asarray(names, dtype=str)
        check_stems(list(filenames), f"dataset file {self.dataroot / 'filename.npy'}")
        for name in COEFFICIENT_ARRAYS:
            self._check_finite(name, arrays[name + ".npy"], filenames)
        return size, lengths["uv.npy"], filenames

    def _check_finite(self, name, array, filenames, chunk=65536):
        """Raise ValueError naming the file and the first row holding NaN or infinity (read in chunks)."""
        for start in range(0, len(array), chunk):
            rows = np.asarray(array[start:start + chunk])
            finite = np.isfinite(rows.reshape(len(rows), -1)).all(axis=1)
            if not finite.all():
                row = start + int(np.flatnonzero(~finite)[0])
                raise ValueError(f"{self.dataroot / (name + '.npy')} row {row} (image '{filenames[row]}') holds "
                                 f"non-finite values (NaN or infinity): {rows[row - start].ravel()[:6]}")

    def _split_indices(self, n_rows):
        return split_indices(self.dataroot, self.split, n_rows)

    def check_not_empty(self, purpose):
        """Raise ValueError naming the split when it has no rows (``purpose``: e.g. 'training')."""
        if not len(self.indices):
            raise ValueError(f"split '{self.split}' of {self.dataroot / SPLITS_FILE} is empty: nothing to use for "
                             f"{purpose} (--dataset_split)")

    def check_coefficient_widths(self, n_shape, n_expression, face_model):
        """Raise ValueError naming sp.npy / ep.npy when their widths differ from the face model's counts."""
        for name, expected, kind in (("sp", n_shape, "shape"), ("ep", n_expression, "expression")):
            width = self._open()[name].shape[1]
            if width != expected:
                raise ValueError(f"{self.dataroot / (name + '.npy')} has {width} {kind} coefficients per row, but "
                                 f"the face model {face_model} has {expected}: expected shape (N, {expected})")

    def _check_semantic_regions(self):
        """Raise ValueError when --semantic_regions matches no label of up to REGION_CHECK_ROWS rows of the split
        (every SEGMENTATION_MASK would be empty and the network would learn to paint nothing)."""
        regions = self.opt.semantic_regions
        if not len(self.indices):
            return
        rows = np.unique(self.indices[np.linspace(0, len(self.indices) - 1, REGION_CHECK_ROWS).astype(int)])
        segmentation = self._open()["segmentation"]
        present = np.unique(np.concatenate([np.unique(segmentation[row]) for row in rows]))
        if not np.isin(regions, present).any():
            raise ValueError(f"--semantic_regions {' '.join(map(str, regions))} matches no label of "
                             f"{self.dataroot / 'segmentation.npy'} (rows {', '.join(map(str, rows[:6]))}"
                             f"{'...' if len(rows) > 6 else ''} hold labels {', '.join(map(str, present))}); the "
                             f"foreground masks would all be empty")

    def _image_cache_folder(self, root):
        """One cache sub-folder per image folder and array size, so that caches never mix."""
        if not root:
            return None
        source = hashlib.sha1(str(self.image_folder.resolve()).encode()).hexdigest()[:12]
        folder = Path(root) / f"{source}_{self.array_size}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # ---- pickling for DataLoader workers: never ship the memory maps -----------------------------------

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_arrays"] = None
        return state

    def _open(self):
        if self._arrays is None:
            self._arrays = {name: load_npy(self.dataroot / f"{name}.npy", mmap=True, what="dataset file")
                            for name in ARRAY_SHAPES}
        return self._arrays

    # ---- items -------------------------------------------------------------------------------------------

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        """Item ``index``; or ``(index, seed)``, as the training sampler yields: the augmentation is then drawn
        from a generator seeded with ``seed`` (so it does not depend on which process loads the item or what
        it loaded before), else from torch's global generator."""
        index, seed = index if isinstance(index, tuple) else (index, None)
        row = int(self.indices[index])
        arrays = self._open()
        stem = self.filenames[row]
        image = self._read_image(row, index)
        uv = np.array(arrays["uv"][row], dtype=np.float32)  # a writable copy, torch refuses read-only views
        uv_min, uv_max = uv.min(), uv.max()
        if not (-1 <= uv_min and uv_max <= 1):
            kind = "non-finite values (NaN or infinity)" if not np.isfinite(uv).all() else "values outside [-1, 1]"
            raise ValueError(f"{self.dataroot / 'uv.npy'} row {row} (dataset index {index}, image '{stem}') has "
                             f"{kind}: min {uv_min}, max {uv_max}")
        foreground = self._foreground(arrays["segmentation"][row])

        clean = self._resize_and_mask(image, uv, foreground)
        if self.augmentation:
            generator = None if seed is None else torch.Generator().manual_seed(seed)
            draw = draw_affine(self.affine_params, self.array_size, generator)
            sampling = sampling_map(draw, self.array_size)
            augmented = self._resize_and_mask(apply_sampling_map(image, sampling, 0),
                                              apply_sampling_map(uv, sampling, -1),
                                              apply_sampling_map(foreground, sampling, False))
        else:
            augmented = clean
        image_in = self._network_image(augmented)
        # IMAGE_IN_ENCODE: the un-augmented image, masked with the masks of the un-augmented arrays.
        image_in_encode = self._network_image(clean) if self.augmentation else image_in.clone()
        return {
            DIK.IMAGE_IN: image_in,
            DIK.IMAGE_IN_ENCODE: image_in_encode,
            DIK.SEGMENTATION_MASK: torch.from_numpy(augmented["segmentation"]).unsqueeze(0),
            DIK.UV_RENDERED: torch.from_numpy(augmented["uv"]),
            DIK.MASK_UV: torch.from_numpy(augmented["mask_uv"]).unsqueeze(0).float(),
            DIK.MASK_FULL: torch.from_numpy(augmented["mask_full"]).unsqueeze(0).float(),
            DIK.FILENAME: str(stem),
            DIK.COEFF_SHAPE: self._row_tensor("sp", row),
            DIK.COEFF_EXPRESSION: self._row_tensor("ep", row),
            DIK.R: self._row_tensor("R", row),
            DIK.T: self._row_tensor("t", row),
            DIK.SCALE: self._row_tensor("s", row),
        }

    def _row_tensor(self, name, row):
        return torch.from_numpy(np.array(self._arrays[name][row], dtype=np.float32))

    def _foreground(self, labels):
        """(S,S) label ids -> (S,S) bool, True on opt.semantic_regions (computed at the array size)."""
        if labels.dtype == np.uint8:
            return np.take(self.foreground_lut, labels)
        return np.isin(labels, self.opt.semantic_regions)

    def _resize_and_mask(self, image, uv, foreground):
        """Arrays at the array size S -> image_h: image (H,W,3) uint8, uv (H,W,2), segmentation (H,W) float32,
        mask_uv and mask_full (H,W) bool.

        The authors' centre crop to a square is the identity here (the arrays are square, the image is
        resized to their size), so only the resize remains.
        """
        size = (self.height, self.height)
        # Authors' quirk, kept because the pretrained model was trained on it: their OpenCV call passed the
        # nearest-neighbour flag in the ``dst`` position, so uv and segmentation are resized bilinearly like
        # the image. The binary segmentation mask becomes soft (.25/.5/.75 at 2x) and silhouette uv pixels
        # blend with the -1 background (they still count in MASK_UV).
        uv = resize_bilinear(uv, size)
        segmentation = resize_bilinear(foreground.astype(np.float32), size)
        mask_uv = uv_mask(uv, both_valid=True)
        return {
            "image": resize_bilinear(image, size),
            "uv": uv,
            "segmentation": segmentation,
            "mask_uv": mask_uv,
            "mask_full": fill_holes(mask_uv | (segmentation > 0)),
        }

    def _network_image(self, views):
        """(3,H,W) float32: the ImageNet-normalized image; unless keep_background, pixels outside mask_full
        hold the normalized image's own minimum (bg_color black) or 0."""
        image = normalize_image(views["image"])
        if self.opt.keep_background:
            return image
        fill = image.min() if self.opt.bg_color == "black" else 0.0
        keep = torch.from_numpy(views["mask_full"]).float()
        # Equals torch.where(mask_full, image, fill) bit for bit (x * 1 + fill * 0 = x, x * 0 + fill = fill)
        # and is several times faster.
        return image * keep + fill * (1 - keep)

    def _read_image(self, row, index):
        """``<image_folder>/<stem>.png`` as RGB uint8 (S,S,3), resized bilinearly to the array size.

        FFHQ: 1024x1024 PNGs -> 512. The authors decoded with cv2.imread and resized with cv2.INTER_LINEAR
        (bilinear, see docs/conventions.md); at this exact 2x ratio OpenCV averages 2x2 blocks rounding half up.
        We decode with PIL (RGB; alpha dropped as cv2.imread does) and resize with resize_bilinear, which
        gives those same numbers for 2x (PIL's reduce) and follows OpenCV's bilinear for other ratios.
        With --image_cache the resized image is stored once and later items skip decoding.
        """
        stem = self.filenames[row]
        cached = None
        if self.image_cache is not None:
            cached = self.image_cache / f"{stem}.npy"
            image = self._read_cached(cached)
            if image is not None:
                return image
        path = self.image_folder / f"{stem}.png"
        if not path.is_file():
            raise FileNotFoundError(f"image {path} of dataset index {index} (row {row} of filename.npy) "
                                    f"does not exist (--image_folder {self.image_folder})")
        try:
            with Image.open(path) as png:
                png.load()
                image = rgb8(png, path)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise ValueError(f"cannot decode image {path} of dataset index {index} (row {row}): {error}") from None
        if image.width != image.height:
            raise ValueError(f"image {path} of dataset index {index} (row {row}) is {image.width}x{image.height}; "
                             f"expected a square image (FFHQ aligned and cropped, framed like uv.npy)")
        image = resize_bilinear(image, (self.array_size, self.array_size))
        if cached is not None:
            save_npy(cached, image)  # atomic: several workers or runs may fill the cache at once
        return image

    def _read_cached(self, path):
        """A cached image (S,S,3) uint8, or None when absent or unusable."""
        if not path.is_file():
            return None
        try:
            image = load_npy(path, what="cached image")
        except (OSError, ValueError):
            return None
        if image.shape != (self.array_size, self.array_size, 3) or image.dtype != np.uint8:
            return None
        return image


def rgb8(image, path):
    """A decoded PIL image as 8-bit RGB. 16-bit grayscale (PIL modes I;16*, and I with values up to 65535) is
    scaled to 8 bits (PIL's own conversion would clip it to white); float images are refused."""
    if image.mode == "RGB":
        return image  # convert() would copy
    if image.mode.startswith("I"):
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"{path} is a {image.mode} image with values outside 0..65535; expected 8- or 16-bit")
        return Image.fromarray(np.round(values.astype(np.float64) / 257).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        raise ValueError(f"{path} is a floating-point image (PIL mode F); expected an 8- or 16-bit image")
    return image.convert("RGB")


def split_indices(dataroot: str | Path, split: str, n_rows: int) -> np.ndarray:
    """Row indices of ``split`` ('all' or a key of ``dataroot/dataset_splits.npz``) for arrays of ``n_rows``.

    A boolean mask over the rows is accepted (its True rows); floats, duplicates and out-of-range indices
    are refused with the split named.
    """
    if split == "all":
        return np.arange(n_rows)
    path = Path(dataroot) / SPLITS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {path} is missing (--dataroot_npy {dataroot})")
    splits = load_npz(path, what="dataset file")
    if split not in splits:
        available = ", ".join(sorted(splits) + ["all"])
        raise ValueError(f"unknown split '{split}' (--dataset_split); {path} offers: {available}")
    stored = np.asarray(splits[split]).reshape(-1)
    where = f"split '{split}' of {path}"
    if stored.dtype == bool:
        if len(stored) != n_rows:
            raise ValueError(f"{where} is a boolean mask of {len(stored)} entries; a mask must have one "
                             f"entry per row of the arrays ({n_rows})")
        stored = np.flatnonzero(stored)
    elif not np.issubdtype(stored.dtype, np.integer):
        raise ValueError(f"{where} has dtype {stored.dtype}; expected integer row indices (or a boolean mask)")
    indices = stored.astype(np.int64)
    if len(indices) and (indices.min() < 0 or indices.max() >= n_rows):
        raise ValueError(f"{where} has indices outside [0, {n_rows})")
    unique, counts = np.unique(indices, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{where} lists row {int(unique[counts > 1][0])} more than once; a split must list "
                         f"each row once")
    return indices

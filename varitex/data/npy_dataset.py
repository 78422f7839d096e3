"""NPYDataset: the authors' preprocessed FFHQ layout (DESIGN.md section 4) as a torch Dataset.

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
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from varitex.data.augmentation import apply_sampling_map, draw_affine, sampling_map, transform_params
from varitex.data.image_ops import fill_holes, normalize_image, resize_bilinear, uv_mask
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.data.paths import require_path

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


def split_indices(path, split, n_rows):
    """Rows of the arrays that make up ``split``.

    Args:
        path: dataset_splits.npz (unused for 'all'); split: one of its keys, or 'all'; n_rows: N.
    Returns:
        (M,) int64 numpy array of row indices in [0, N).
    Raises:
        ValueError: an unknown split (naming the ones the file offers) or indices outside [0, N).
    """
    if split == "all":
        return np.arange(n_rows)
    with np.load(path) as splits:
        if split not in splits.files:
            available = ", ".join(sorted(splits.files) + ["all"])
            raise ValueError(f"unknown split '{split}' (--dataset_split); {path} offers: {available}")
        indices = np.asarray(splits[split], dtype=np.int64).reshape(-1)
    if len(indices) and (indices.min() < 0 or indices.max() >= n_rows):
        raise ValueError(f"split '{split}' of {path} has indices outside [0, {n_rows})")
    return indices


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

    def __init__(self, opt, split=None, augmentation=None):
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

    # ---- construction --------------------------------------------------------------------------------

    def _path(self, name):
        path = self.dataroot / name
        if not path.is_file():
            raise FileNotFoundError(f"dataset file {path} is missing (--dataroot_npy {self.dataroot} must "
                                    f"hold {', '.join(k + '.npy' for k in ARRAY_SHAPES)}, filename.npy and {SPLITS_FILE})")
        return path

    def _validate_arrays(self):
        """Check that every file exists, has its shape and the same length N; return (S, N, filenames)."""
        arrays = {name + ".npy": np.load(self._path(name + ".npy"), mmap_mode="r") for name in ARRAY_SHAPES}
        if not np.issubdtype(arrays["uv.npy"].dtype, np.floating):
            raise ValueError(f"{self.dataroot / 'uv.npy'} has dtype {arrays['uv.npy'].dtype}; expected float")
        shapes = {file: array.shape for file, array in arrays.items()}
        names = np.load(self._path("filename.npy"), allow_pickle=True)
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
        filenames = np.array([name.decode() if isinstance(name, bytes) else str(name) for name in names])
        return size, lengths["uv.npy"], filenames

    def _split_indices(self, n_rows):
        return split_indices(self._path(SPLITS_FILE) if self.split != "all" else None, self.split, n_rows)

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
            self._arrays = {name: np.load(self.dataroot / f"{name}.npy", mmap_mode="r") for name in ARRAY_SHAPES}
        return self._arrays

    # ---- items -------------------------------------------------------------------------------------------

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        row = int(self.indices[index])
        arrays = self._open()
        stem = self.filenames[row]
        image = self._read_image(row, index)
        uv = np.array(arrays["uv"][row], dtype=np.float32)  # a writable copy, torch refuses read-only views
        uv_min, uv_max = uv.min(), uv.max()
        if not (-1 <= uv_min and uv_max <= 1):
            raise ValueError(f"{self.dataroot / 'uv.npy'} row {row} (dataset index {index}, image '{stem}') has "
                             f"values outside [-1, 1]: min {uv_min}, max {uv_max}")
        foreground = self._foreground(arrays["segmentation"][row])

        clean = self._resize_and_mask(image, uv, foreground)
        if self.augmentation:
            draw = draw_affine(self.affine_params, self.array_size)
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
        (bilinear, as DESIGN.md says); at this exact 2x ratio OpenCV averages 2x2 blocks rounding half up.
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
                image = png if png.mode == "RGB" else png.convert("RGB")  # convert() would copy RGB too
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"cannot decode image {path} of dataset index {index} (row {row}): {error}") from error
        image = resize_bilinear(image, (self.array_size, self.array_size))
        if cached is not None:
            # Write-then-rename keeps the cache valid when several workers or runs fill it at once.
            partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")
            with open(partial, "wb") as file:
                np.save(file, image)
            os.replace(partial, cached)
        return image

    def _read_cached(self, path):
        """A cached image (S,S,3) uint8, or None when absent or unusable."""
        try:
            image = np.load(path)
        except (OSError, ValueError):
            return None
        if image.shape != (self.array_size, self.array_size, 3) or image.dtype != np.uint8:
            return None
        return image

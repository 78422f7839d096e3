"""NPYDataset on small datasets in the authors' layout written here, checked against hand-computed items.

Layout "quirks" (N=6, arrays 32x32, PNGs 64x64, image_h 16, so both resizes halve):
  uv: background -1; a face patch rows 16-27, cols 4-14 with u = (x-9)/10, v = (y-22)/10, whose column 14
      shares its 2x2 blocks with background (a blended silhouette); a block with only u = -1 (rows 2-3,
      cols 2-3) and one with only v = -1 (rows 2-3, cols 6-7).
  segmentation: a ring of label 1 (rows 5-26, cols 17-30) around a hole of label 0 (rows 11-20, cols 21-26)
      at odd pixel borders, so its 2x2 blocks give 0.25 / 0.5 / 0.75; label 17 (neck, not a semantic
      region by default) at rows 28-31, cols 0-3.
Layout "coords" (arrays and PNGs 32x32, image_h 32): uv, image and labels encode pixel coordinates, for
checking that augmentation moves every array identically.
"""
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from torch.utils.data import DataLoader
from torchvision import transforms

from varitex.data.keys_enum import DIK
from varitex.data.npy_dataset import NPYDataset
from varitex.options import MissingPathError, TrainOptions

N, S = 6, 32
NORMALIZE = transforms.Compose([transforms.ToTensor(),
                                transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])


def write_layout(root, uv, segmentation, images, splits=None):
    """Write the authors' layout: root/pre/*.npy + dataset_splits.npz, root/images/<stem>.png."""
    pre, image_folder = root / "pre", root / "images"
    pre.mkdir(parents=True)
    image_folder.mkdir()
    n = len(uv)
    rng = np.random.default_rng(0)
    np.save(pre / "uv.npy", uv)
    np.save(pre / "segmentation.npy", segmentation)
    np.save(pre / "R.npy", rng.normal(size=(n, 3, 3)))
    np.save(pre / "t.npy", rng.normal(size=(n, 3)))
    np.save(pre / "s.npy", rng.uniform(0.05, 0.15, (n, 1)))
    np.save(pre / "sp.npy", rng.normal(size=(n, 199)))
    np.save(pre / "ep.npy", rng.normal(size=(n, 100)))
    stems = np.array([f"{i:05d}" for i in range(n)], dtype=object)
    np.save(pre / "filename.npy", stems)
    splits = splits or {"train": np.arange(n - 2), "val": np.arange(n - 2, n)}
    np.savez(pre / "dataset_splits.npz", **splits)
    for stem, image in zip(stems, images):
        Image.fromarray(image).save(image_folder / f"{stem}.png")
    return root


def quirks_arrays():
    uv = np.full((N, S, S, 2), -1, dtype=np.float32)
    y, x = np.mgrid[16:28, 4:15]
    uv[:, 16:28, 4:15] = np.stack([(x - 9) / 10, (y - 22) / 10], -1)
    uv[:, 2:4, 2:4] = (-1.0, 0.3)
    uv[:, 2:4, 6:8] = (0.5, -1.0)
    segmentation = np.zeros((N, S, S), dtype=np.uint8)
    segmentation[:, 5:27, 17:31] = 1
    segmentation[:, 11:21, 21:27] = 0
    segmentation[:, 28:32, 0:4] = 17
    py, px = np.mgrid[0:2 * S, 0:2 * S]
    images = [np.stack([(3 * px + 5 * py + 50 * c + 7 * (px * py % 5) + 11 * i) % 256 for c in range(3)],
                       -1).astype(np.uint8) for i in range(N)]
    return uv, segmentation, images


@pytest.fixture(scope="module")
def quirks(tmp_path_factory):
    return write_layout(tmp_path_factory.mktemp("quirks"), *quirks_arrays())


@pytest.fixture(scope="module")
def coords(tmp_path_factory):
    y, x = np.mgrid[0:S, 0:S]
    uv = np.stack([(2 * x + 1) / S - 1, (2 * y + 1) / S - 1], -1).astype(np.float32)
    labels = np.where((x + 2 * y) % 3 == 0, 0, 1 + (x + y) % 20).astype(np.uint8)  # 16..20 are not semantic
    image = np.stack([8 * x + 4, 8 * y + 4, np.full_like(x, 200)], -1).astype(np.uint8)
    return write_layout(tmp_path_factory.mktemp("coords"), np.repeat(uv[None], N, 0),
                        np.repeat(labels[None], N, 0), [image] * N)


def options(root, *flags, size=16):
    return TrainOptions().parse(["--dataroot_npy", str(root / "pre"), "--image_folder", str(root / "images"),
                                 "--image_h", str(size), "--image_w", str(size), *flags])


def halve_uint8(image):
    """OpenCV's 2x bilinear downscale of uint8, by hand: (sum of the 2x2 block + 2) // 4."""
    h, w = image.shape[:2]
    return ((image.astype(np.int64).reshape(h // 2, 2, w // 2, 2, -1).sum((1, 3)) + 2) // 4).astype(np.uint8)


def halve_float(array):
    h, w = array.shape[:2]
    return array.reshape(h // 2, 2, w // 2, 2, *array.shape[2:]).mean((1, 3))


def expected_masks():
    """Hand-built 16x16 SEGMENTATION_MASK, MASK_UV, MASK_FULL of the quirks layout."""
    uv, segmentation, _ = quirks_arrays()
    soft = halve_float(np.isin(segmentation[0], range(1, 16)).astype(np.float64))
    uv16 = halve_float(uv[0].astype(np.float64))
    mask_uv = (uv16[..., 0] != -1) & (uv16[..., 1] != -1)
    return soft, uv16, mask_uv, ndimage.binary_fill_holes(mask_uv | (soft > 0))


# ---- the item, without augmentation ---------------------------------------------------------------------

def test_item_keys_shapes_dtypes_and_ranges(quirks):
    dataset = NPYDataset(options(quirks), split="train")
    item = dataset[1]
    expected = {DIK.IMAGE_IN: (3, 16, 16), DIK.IMAGE_IN_ENCODE: (3, 16, 16), DIK.SEGMENTATION_MASK: (1, 16, 16),
                DIK.UV_RENDERED: (16, 16, 2), DIK.MASK_UV: (1, 16, 16), DIK.MASK_FULL: (1, 16, 16),
                DIK.COEFF_SHAPE: (199,), DIK.COEFF_EXPRESSION: (100,), DIK.R: (3, 3), DIK.T: (3,), DIK.SCALE: (1,)}
    assert set(item) == set(expected) | {DIK.FILENAME}
    for key, shape in expected.items():
        assert item[key].shape == shape and item[key].dtype == torch.float32, key
    assert item[DIK.FILENAME] == "00001" and isinstance(item[DIK.FILENAME], str)
    assert len(dataset) == 4
    assert -1 <= item[DIK.UV_RENDERED].min() and item[DIK.UV_RENDERED].max() <= 1
    assert -2.12 < item[DIK.IMAGE_IN].min() and item[DIK.IMAGE_IN].max() < 2.65
    for key in (DIK.SEGMENTATION_MASK, DIK.MASK_UV, DIK.MASK_FULL):
        assert 0 <= item[key].min() and item[key].max() <= 1


def test_pose_and_coefficients_are_the_stored_rows_as_float32(quirks):
    item = NPYDataset(options(quirks), split="val")[1]  # val = rows 4, 5
    pre = quirks / "pre"
    for key, name in [(DIK.R, "R"), (DIK.T, "t"), (DIK.SCALE, "s"), (DIK.COEFF_SHAPE, "sp"),
                      (DIK.COEFF_EXPRESSION, "ep")]:
        np.testing.assert_array_equal(item[key].numpy(), np.load(pre / f"{name}.npy")[5].astype(np.float32))
    assert item[DIK.FILENAME] == "00005"


def test_images_are_png_halved_to_the_array_size_then_halved_to_image_h(quirks):
    item = NPYDataset(options(quirks, "--keep_background"), split="all")[3]
    png = np.array(Image.open(quirks / "images" / "00003.png"))
    expected = NORMALIZE(halve_uint8(halve_uint8(png)))  # 64 -> 32 (array size) -> 16, rounded twice
    assert torch.equal(item[DIK.IMAGE_IN_ENCODE], expected)
    assert torch.equal(item[DIK.IMAGE_IN], expected)


def test_segmentation_mask_is_soft_from_the_bilinear_resize(quirks):
    item = NPYDataset(options(quirks), split="all")[0]
    mask = item[DIK.SEGMENTATION_MASK][0].numpy()
    soft, _, _, _ = expected_masks()
    np.testing.assert_array_equal(mask, soft)
    assert set(np.unique(mask)) == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert mask[2, 8] == 0.25 and mask[5, 10] == 0.75 and mask[2, 9] == 0.5 and mask[3, 9] == 1.0
    assert (mask[14:, :2] == 0).all()  # label 17 is not a semantic region


def test_uv_is_resized_bilinearly_and_silhouettes_blend_with_minus_one(quirks):
    item = NPYDataset(options(quirks), split="all")[0]
    uv = item[DIK.UV_RENDERED].numpy()
    _, uv16, _, _ = expected_masks()
    np.testing.assert_allclose(uv, uv16, atol=1e-7)
    # Block (8, 7) holds face pixels (16, 14), (17, 14) and two background pixels.
    np.testing.assert_allclose(uv[8, 7], [(0.5 - 1 + 0.5 - 1) / 4, (-0.6 - 1 - 0.5 - 1) / 4], atol=1e-7)
    assert (uv[0, 0] == -1).all()


def test_mask_uv_needs_both_coordinates_valid(quirks):
    item = NPYDataset(options(quirks), split="all")[0]
    mask_uv = item[DIK.MASK_UV][0].numpy()
    uv = item[DIK.UV_RENDERED].numpy()
    assert uv[1, 1, 0] == -1 and uv[1, 1, 1] == pytest.approx(0.3) and mask_uv[1, 1] == 0
    assert uv[1, 3, 0] == pytest.approx(0.5) and uv[1, 3, 1] == -1 and mask_uv[1, 3] == 0
    assert mask_uv[8, 7] == 1  # a blended silhouette pixel counts
    np.testing.assert_array_equal(mask_uv, expected_masks()[2])
    assert mask_uv.sum() == 6 * 6  # face blocks rows 8-13, cols 2-7


def test_mask_full_fills_the_hole_of_the_segmentation_ring(quirks):
    item = NPYDataset(options(quirks), split="all")[0]
    mask_full = item[DIK.MASK_FULL][0].numpy()
    union = (item[DIK.MASK_UV][0] > 0) | (item[DIK.SEGMENTATION_MASK][0] > 0)
    assert not union[6:10, 11:13].any() and mask_full[6:10, 11:13].all()
    np.testing.assert_array_equal(mask_full, expected_masks()[3])
    assert mask_full[0, 0] == 0 and mask_full[1, 1] == 0


def test_background_is_filled_with_the_image_minimum(quirks):
    item = NPYDataset(options(quirks), split="all")[2]
    png = np.array(Image.open(quirks / "images" / "00002.png"))
    clean = NORMALIZE(halve_uint8(halve_uint8(png)))
    inside = torch.from_numpy(expected_masks()[3])
    expected = torch.where(inside, clean, clean.min())
    assert torch.equal(item[DIK.IMAGE_IN_ENCODE], expected)
    assert torch.equal(item[DIK.IMAGE_IN], expected)
    assert (item[DIK.IMAGE_IN][:, ~inside] == clean.min()).all() and clean.min() < -1.5


def test_background_zero_fill_with_bg_color_zero(quirks):
    item = NPYDataset(options(quirks, "--bg_color", "zero"), split="all")[2]
    inside = torch.from_numpy(expected_masks()[3])
    assert (item[DIK.IMAGE_IN][:, ~inside] == 0).all()
    assert (item[DIK.IMAGE_IN][:, inside] != 0).any()


def test_semantic_regions_option_selects_the_labels(quirks):
    item = NPYDataset(options(quirks, "--semantic_regions", "17"), split="all")[0]
    mask = item[DIK.SEGMENTATION_MASK][0].numpy()
    assert (mask[14:, :2] == 1).all() and mask.sum() == 4


# ---- augmentation -------------------------------------------------------------------------------------

def source_pixels(uv):
    """Pixel coordinates (x, y) encoded by the coords layout's uv, and where the augmentation filled."""
    filled = (uv[..., 0] == -1) & (uv[..., 1] == -1)
    xy = np.rint((uv + 1) * S / 2 - 0.5).astype(np.int64)
    return xy[..., 0], xy[..., 1], filled


@pytest.mark.parametrize("seed", range(6))
def test_augmentation_moves_image_uv_and_segmentation_identically(coords, seed):
    dataset = NPYDataset(options(coords, "--keep_background", size=S), split="all", augmentation=True)
    torch.manual_seed(seed)
    item = dataset[0]
    x, y, filled = source_pixels(item[DIK.UV_RENDERED].numpy())
    assert filled.any() and not filled.all()
    identity_x, identity_y = np.mgrid[0:S, 0:S][::-1]
    assert not (np.array_equal(x[~filled], identity_x[~filled]) and np.array_equal(y[~filled], identity_y[~filled]))
    image = item[DIK.IMAGE_IN].numpy()
    source = np.stack([8 * x + 4, 8 * y + 4, np.full_like(x, 200)], -1).astype(np.uint8)
    fill = NORMALIZE(np.zeros((S, S, 3), dtype=np.uint8)).numpy()
    np.testing.assert_array_equal(image, np.where(filled, fill, NORMALIZE(source).numpy()))
    labels = np.where((x + 2 * y) % 3 == 0, 0, 1 + (x + y) % 20)
    expected_segmentation = np.where(filled, 0.0, (labels >= 1) & (labels <= 15))
    np.testing.assert_array_equal(item[DIK.SEGMENTATION_MASK][0].numpy(), expected_segmentation)
    np.testing.assert_array_equal(item[DIK.MASK_UV][0].numpy(), ~filled)
    assert torch.equal(item[DIK.IMAGE_IN_ENCODE], NORMALIZE(np.array(Image.open(coords / "images" / "00000.png"))))


def test_augmentation_draws_differ_per_item_and_flip_sometimes(coords):
    dataset = NPYDataset(options(coords, "--keep_background", size=S), split="all", augmentation=True)
    torch.manual_seed(0)
    flips = 0
    maps = set()
    for _ in range(16):
        x, y, filled = source_pixels(dataset[0][DIK.UV_RENDERED].numpy())
        maps.add(x.tobytes() + y.tobytes())
        row = x[S // 2][~filled[S // 2]]
        flips += bool(row[0] > row[-1])
    assert len(maps) == 16 and 3 <= flips <= 13


def test_transform_mode_f_only_mirrors_or_keeps(coords):
    dataset = NPYDataset(options(coords, "--keep_background", "--transform_mode", "f", size=S), split="all",
                         augmentation=True)
    torch.manual_seed(0)
    clean = dataset[0][DIK.IMAGE_IN_ENCODE]
    outcomes = {("mirror" if torch.equal(image, clean.flip(-1)) else "same" if torch.equal(image, clean) else "other")
                for image in (dataset[0][DIK.IMAGE_IN] for _ in range(12))}
    assert outcomes == {"mirror", "same"}


def test_transform_mode_t_only_shifts_by_whole_pixels(coords):
    dataset = NPYDataset(options(coords, "--keep_background", "--transform_mode", "t", size=S), split="all",
                         augmentation=True)
    torch.manual_seed(4)
    shifts = set()
    for _ in range(5):
        x, y, filled = source_pixels(dataset[0][DIK.UV_RENDERED].numpy())
        grid_y, grid_x = np.mgrid[0:S, 0:S]
        dx, dy = np.unique((grid_x - x)[~filled]), np.unique((grid_y - y)[~filled])
        assert len(dx) == 1 and len(dy) == 1
        assert abs(dx[0]) <= round(0.2 * S) and abs(dy[0]) <= round(0.2 * S)
        shifts.add((dx[0], dy[0]))
    assert len(shifts) == 5


def test_augmentation_happens_at_the_array_size_before_the_resize(coords):
    full = NPYDataset(options(coords, "--keep_background", size=S), split="all", augmentation=True)
    half = NPYDataset(options(coords, "--keep_background", size=S // 2), split="all", augmentation=True)
    torch.manual_seed(7)
    expected = full[2]
    torch.manual_seed(7)
    item = half[2]
    np.testing.assert_allclose(item[DIK.UV_RENDERED].numpy(), halve_float(expected[DIK.UV_RENDERED].numpy()),
                               atol=1e-7)
    np.testing.assert_array_equal(item[DIK.SEGMENTATION_MASK][0].numpy(),
                                  halve_float(expected[DIK.SEGMENTATION_MASK][0].numpy()))


def test_image_in_encode_is_the_unaugmented_item_masked_with_unaugmented_masks(quirks):
    plain = NPYDataset(options(quirks), split="all")[0]
    augmented = NPYDataset(options(quirks), split="all", augmentation=True)
    torch.manual_seed(0)
    item = augmented[0]
    assert torch.equal(item[DIK.IMAGE_IN_ENCODE], plain[DIK.IMAGE_IN_ENCODE])
    assert not torch.equal(item[DIK.IMAGE_IN], plain[DIK.IMAGE_IN])
    assert not torch.equal(item[DIK.MASK_FULL], plain[DIK.MASK_FULL])


# ---- loading in workers, pickling, cache ---------------------------------------------------------------

def test_dataloader_with_two_workers_matches_direct_items(quirks):
    dataset = NPYDataset(options(quirks), split="all")
    batches = list(DataLoader(dataset, batch_size=4, num_workers=2))
    assert [len(b[DIK.FILENAME]) for b in batches] == [4, 2]
    assert batches[1][DIK.FILENAME] == ["00004", "00005"]
    for key in (DIK.IMAGE_IN, DIK.UV_RENDERED, DIK.MASK_FULL, DIK.R):
        assert batches[0][key].shape[0] == 4
        assert torch.equal(batches[1][key][1], dataset[5][key])


def test_arrays_are_memory_mapped_and_pickles_carry_none(quirks):
    dataset = NPYDataset(options(quirks), split="all")
    dataset[0]  # opens the memory maps
    assert all(isinstance(array, np.memmap) for array in dataset._arrays.values())
    payload = pickle.dumps(dataset)
    assert len(payload) < 8000 < (quirks / "pre" / "uv.npy").stat().st_size
    assert torch.equal(pickle.loads(payload)[0][DIK.IMAGE_IN], dataset[0][DIK.IMAGE_IN])


def test_importable_from_the_authors_readme_path():
    from varitex.data.hdf_dataset import NPYDataset as ReadmeNPYDataset
    assert ReadmeNPYDataset is NPYDataset


def test_image_cache_gives_identical_items_without_reading_the_png(quirks, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(quirks, root)
    flags = ("--image_cache", str(tmp_path / "cache"))
    cached = NPYDataset(options(root, *flags), split="all")
    reference = NPYDataset(options(root), split="all")[1]
    first = cached[1]
    (root / "images" / "00001.png").unlink()
    second = NPYDataset(options(root, *flags), split="all")[1]
    for key in reference:
        assert first[key] == reference[key] if key == DIK.FILENAME else torch.equal(first[key], reference[key])
    assert torch.equal(second[DIK.IMAGE_IN], reference[DIK.IMAGE_IN])
    assert len(list((tmp_path / "cache").glob("*/00001.npy"))) == 1


# ---- bad inputs -----------------------------------------------------------------------------------------

@pytest.fixture
def broken(quirks, tmp_path):
    """A writable copy of the quirks layout."""
    root = tmp_path / "broken"
    shutil.copytree(quirks, root)
    return root


def test_missing_array_file_is_named(broken):
    (broken / "pre" / "sp.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"dataset file .*pre/sp\.npy is missing"):
        NPYDataset(options(broken))


def test_missing_splits_file_is_named_unless_split_all(broken):
    (broken / "pre" / "dataset_splits.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"dataset_splits\.npz is missing"):
        NPYDataset(options(broken), split="val")
    assert len(NPYDataset(options(broken), split="all")) == N


def test_inconsistent_lengths_name_files_and_lengths(broken):
    np.save(broken / "pre" / "uv.npy", quirks_arrays()[0][:5])
    with pytest.raises(ValueError, match=r"inconsistent lengths \(R\.npy: 6, .*uv\.npy: 5, filename\.npy: 6\)"):
        NPYDataset(options(broken))


@pytest.mark.parametrize("name, array, message", [
    ("s", np.ones((N, 2)), r"s\.npy has shape \(6, 2\); expected \(N, 1\)"),
    ("R", np.ones((N, 9)), r"R\.npy has shape \(6, 9\); expected \(N, 3, 3\)"),
    ("segmentation", np.zeros((N, 16, 16), np.uint8), r"segmentation\.npy has shape \(6, 16, 16\); expected \(N, S, S\) with S = 32"),
    ("uv", np.zeros((N, S, S, 3), np.float32), r"uv\.npy has shape \(6, 32, 32, 3\); expected \(N, S, S, 2\)"),
    ("uv", np.zeros((N, S, S, 2), np.int16), r"uv\.npy has dtype int16; expected float"),
])
def test_wrong_array_shape_or_dtype_is_named(broken, name, array, message):
    np.save(broken / "pre" / f"{name}.npy", array)
    with pytest.raises(ValueError, match=message):
        NPYDataset(options(broken))


def test_unknown_split_lists_the_available_ones(quirks):
    with pytest.raises(ValueError, match=r"unknown split 'test' \(--dataset_split\); .*offers: train, val, all"):
        NPYDataset(options(quirks), split="test")


def test_split_indices_out_of_range_are_an_error(broken):
    np.savez(broken / "pre" / "dataset_splits.npz", train=np.array([0, 6]), val=np.array([1]))
    with pytest.raises(ValueError, match=r"split 'train' of .*dataset_splits\.npz has indices outside \[0, 6\)"):
        NPYDataset(options(broken), split="train")


def test_missing_png_names_path_and_index(broken):
    (broken / "images" / "00003.png").unlink()
    dataset = NPYDataset(options(broken), split="all")
    with pytest.raises(FileNotFoundError, match=r"image .*images/00003\.png of dataset index 3 .* does not exist"):
        dataset[3]


@pytest.mark.parametrize("content", [b"not a png at all", "truncated"])
def test_corrupt_png_names_path_and_index(broken, content):
    path = broken / "images" / "00002.png"
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] if content == "truncated" else content)
    dataset = NPYDataset(options(broken), split="all")
    with pytest.raises(ValueError, match=r"cannot decode image .*images/00002\.png of dataset index 2"):
        dataset[2]


def test_grayscale_and_rgba_pngs_are_read_as_rgb(broken):
    path = broken / "images" / "00001.png"
    rgb = np.array(Image.open(path))
    dataset = NPYDataset(options(broken, "--keep_background"), split="all")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])).save(path)  # alpha is dropped
    expected = NORMALIZE(halve_uint8(halve_uint8(rgb)))
    assert torch.equal(dataset[1][DIK.IMAGE_IN], expected)
    Image.fromarray(rgb[..., 0]).save(path)
    gray = np.repeat(rgb[..., :1], 3, -1)
    assert torch.equal(dataset[1][DIK.IMAGE_IN], NORMALIZE(halve_uint8(halve_uint8(gray))))


def test_uv_outside_range_names_file_row_and_image(broken):
    uv = quirks_arrays()[0]
    uv[4, 20, 20, 0] = 1.5
    np.save(broken / "pre" / "uv.npy", uv)
    dataset = NPYDataset(options(broken), split="val")
    with pytest.raises(ValueError, match=r"uv\.npy row 4 \(dataset index 0, image '00004'\) has values outside "
                                         r"\[-1, 1\]: min -1\.0, max 1\.5"):
        dataset[0]
    dataset[1]  # other rows still load


def test_non_square_image_size_is_an_error(quirks):
    with pytest.raises(ValueError, match=r"--image_h 16 != --image_w 32"):
        NPYDataset(TrainOptions().parse(["--dataroot_npy", str(quirks / "pre"), "--image_folder",
                                         str(quirks / "images"), "--image_h", "16", "--image_w", "32"]))


def test_missing_dataroot_option_names_flag_and_variable(quirks, monkeypatch):
    monkeypatch.delenv("DP", raising=False)
    opt = TrainOptions().parse(["--image_folder", str(quirks / "images")])
    with pytest.raises(MissingPathError, match=r"--dataroot_npy is not set.*DP"):
        NPYDataset(opt)

"""Hostile data files (docs/reliability.md, classes 1, 2, 5 and 6): no file runs code, names from data never
become paths outside their folder, garbage stops with a clear message naming the file, broken files say which
file is broken and how.
"""
import os
import pickle

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from test_data_npy_dataset import options, quirks_arrays, write_layout
from varitex.checkpoints import load_pipeline, read_checkpoint
from varitex.data.keys_enum import DIK
from varitex.data.npy_dataset import NPYDataset
from varitex.geometry.bfm import BFM2017, save_bfm2017
from varitex.geometry.uv_parameterization import load_uv_parameterization
from varitex.inference import load_latents
from varitex.modules.pipeline import PipelineModule
from varitex.safe_io import (DataFileError, atomic_write, check_stems, load_json, load_npy, load_npz,
                             load_string_array, replaced_folder, save_npy)

TINY_MODEL = dict(image_h=64, image_w=64, texture_dim=128, nc_feature2image=8, lambda_vgg=0.0, no_lpips=True,
                  lambda_gan=0.0)


class Payload:
    """Unpickling this creates the marker file (what an attacker's data file would do, less harmfully)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def layout(tmp_path):
    return write_layout(tmp_path / "data", *quirks_arrays())


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "code_ran"
    yield path
    assert not path.exists(), "unpickling ran code from a data file"


def evil_array(marker, n=6):
    return np.array([Payload(marker)] + [f"{i:05d}" for i in range(1, n)], dtype=object)


# ---- 1. no code from data --------------------------------------------------------------------------------

def test_pickle_in_filename_npy_is_refused_without_running(layout, marker):
    np.save(layout / "pre" / "filename.npy", evil_array(marker), allow_pickle=True)
    with pytest.raises(ValueError, match=r"filename\.npy holds a pickle that is not a plain array of strings "
                                         r"\(it references posix\.system\); it was not loaded"):
        NPYDataset(options(layout), split="train")


def test_authors_object_array_of_strings_still_loads(layout):
    stems = np.array([f"img{i}" for i in range(6)], dtype=object)
    np.save(layout / "pre" / "filename.npy", stems, allow_pickle=True)
    for i in range(6):
        os.rename(layout / "images" / f"{i:05d}.png", layout / "images" / f"img{i}.png")
    assert NPYDataset(options(layout), split="val")[0][DIK.FILENAME] == "img4"
    assert list(load_string_array(layout / "pre" / "filename.npy")) == list(stems)


@pytest.mark.parametrize("name", ["R", "sp", "uv"])
def test_pickle_in_a_numeric_array_is_refused_without_running(layout, marker, name):
    np.save(layout / "pre" / f"{name}.npy", evil_array(marker), allow_pickle=True)
    with pytest.raises(ValueError, match=rf"{name}\.npy stores Python objects .* it was not loaded"):
        NPYDataset(options(layout), split="train")


def test_pickle_in_the_splits_file_is_refused_without_running(layout, marker):
    np.savez(layout / "pre" / "dataset_splits.npz", train=evil_array(marker, 2), val=np.arange(4, 6))
    with pytest.raises(ValueError, match=r"member 'train' stores Python objects"):
        NPYDataset(options(layout), split="train")


def test_pickle_in_latents_and_in_a_checkpoint_is_refused_without_running(tmp_path, marker):
    save_path = tmp_path / "latents.npy"
    np.save(save_path, evil_array(marker), allow_pickle=True)
    with pytest.raises(ValueError, match="latents file .* stores Python objects"):
        load_latents(save_path, -1, 256)
    checkpoint = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hook": Payload(marker)}, checkpoint)
    with pytest.raises(ValueError) as error:
        read_checkpoint(checkpoint)
    message = str(error.value)
    assert "references posix.system" in message and "nothing in it was run" in message
    assert "weights_only=False" not in message and "trust" not in message


def test_pickle_in_face_model_json_and_png_is_never_run(tmp_path, marker):
    blob = pickle.dumps(Payload(marker))
    bfm = tmp_path / "bfm.h5"
    save_bfm2017(bfm, np.zeros(9), np.zeros((9, 2)), np.ones(2), np.zeros((9, 1)), np.ones(1), [[0, 1, 2]])
    with h5py.File(bfm, "a") as h5:
        del h5["shape/model/pcaVariance"]
        h5["shape/model/pcaVariance"] = np.void(blob)
        h5.attrs["note"] = np.void(blob)
    with pytest.raises(ValueError, match="'shape/model/pcaVariance' has dtype"):
        BFM2017(bfm)
    uv = tmp_path / "face12.json"
    uv.write_text('{"textureMapping": {"pointData": "%s", "triangles": [[0, 1, 2]]}}' % blob.hex())
    with pytest.raises(ValueError, match="pointData"):
        load_uv_parameterization(uv)
    png = tmp_path / "image.png"
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    info.add_text("payload", blob.decode("latin-1"))
    Image.new("RGB", (4, 4)).save(png, pnginfo=info)
    Image.open(png).load()


def test_a_pickled_image_cache_entry_is_ignored_not_run(layout, marker, tmp_path):
    dataset = NPYDataset(options(layout, "--image_cache", str(tmp_path / "cache")), split="train")
    reference = dataset[0][DIK.IMAGE_IN]
    cached = next((tmp_path / "cache").glob("*/00000.npy"))
    np.save(cached, evil_array(marker), allow_pickle=True)
    assert torch.equal(dataset[0][DIK.IMAGE_IN], reference)


def test_no_code_in_the_package_allows_pickle():
    root = os.path.join(os.path.dirname(__file__), "..", "varitex")
    offenders = [os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names
                 if name.endswith(".py") and "allow_pickle=True" in open(os.path.join(folder, name)).read()]
    assert not offenders


# ---- 2. names from data never become paths -----------------------------------------------------------------

@pytest.mark.parametrize("stem, problem", [
    ("../escape", "path separator"), ("/tmp/abs", "path separator"), ("a\\b", "path separator"),
    ("..", "names a folder"), ("a\0b", "NUL"), ("", "is empty"), ("x" * 300, "longer than"),
])
def test_unsafe_stems_are_refused_naming_the_row(layout, stem, problem):
    stems = np.array([f"{i:05d}" for i in range(6)], dtype=object)
    stems[3] = stem
    np.save(layout / "pre" / "filename.npy", stems, allow_pickle=True)
    with pytest.raises(ValueError, match=rf"filename\.npy row 3: image name .* {problem}"):
        NPYDataset(options(layout), split="train")


@pytest.mark.parametrize("second", ["00001", "IMG"])
def test_duplicate_stems_are_refused_naming_both_rows(second):
    with pytest.raises(DataFileError, match=r"rows 1 and 4 both name image"):
        check_stems(["00000", "00001" if second == "00001" else "img", "a", "b", second], "filename.npy")


# ---- 5. garbage stops with one clear line, or works ------------------------------------------------------

@pytest.mark.parametrize("name", ["sp", "ep", "R", "t", "s"])
def test_non_finite_coefficients_are_refused_naming_file_and_row(layout, name):
    array = np.load(layout / "pre" / f"{name}.npy")
    array.reshape(len(array), -1)[2, 0] = np.nan if name != "t" else np.inf
    np.save(layout / "pre" / f"{name}.npy", array)
    with pytest.raises(ValueError, match=rf"{name}\.npy row 2 \(image '00002'\) holds non-finite values"):
        NPYDataset(options(layout), split="train")


def test_non_finite_uv_row_is_refused_naming_it(layout):
    uv = np.load(layout / "pre" / "uv.npy")
    uv[4, 20, 8, 0] = np.nan
    np.save(layout / "pre" / "uv.npy", uv)
    with pytest.raises(ValueError, match=r"uv\.npy row 4 .* image '00004'\) has non-finite values"):
        NPYDataset(options(layout), split="val")[0]


def test_split_as_boolean_mask_works_and_floats_or_duplicates_are_refused(layout):
    mask = np.zeros(6, dtype=bool)
    mask[[1, 3]] = True
    np.savez(layout / "pre" / "dataset_splits.npz", train=mask, val=np.array([4.0, 5.0]), dup=np.array([1, 1]))
    assert list(NPYDataset(options(layout), split="train").indices) == [1, 3]
    with pytest.raises(ValueError, match=r"split 'val' of .* has dtype float64; expected integer row indices"):
        NPYDataset(options(layout), split="val")
    with pytest.raises(ValueError, match=r"split 'dup' .* lists row 1 more than once"):
        NPYDataset(options(layout), split="dup")
    np.savez(layout / "pre" / "dataset_splits.npz", train=np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match=r"boolean mask of 5 entries; .* \(6\)"):
        NPYDataset(options(layout), split="train")


def test_non_integer_labels_are_refused(layout):
    np.save(layout / "pre" / "segmentation.npy", np.load(layout / "pre" / "segmentation.npy").astype(np.float32))
    with pytest.raises(ValueError, match=r"segmentation\.npy has dtype float32; expected integer label ids"):
        NPYDataset(options(layout), split="train")


def test_regions_matching_no_label_are_refused(layout):
    with pytest.raises(ValueError, match=r"--semantic_regions 16 18 matches no label of .*segmentation\.npy"):
        NPYDataset(options(layout, "--semantic_regions", "16", "18"), split="train")
    NPYDataset(options(layout, "--semantic_regions", "17"), split="train")  # the neck label is present


def test_16_bit_grayscale_png_is_scaled_not_clipped(layout):
    reference = NPYDataset(options(layout), split="train")
    gray = np.asarray(Image.open(layout / "images" / "00000.png").convert("L"))
    Image.fromarray(gray.astype(np.uint16) * 257).save(layout / "images" / "00000.png")
    assert Image.open(layout / "images" / "00000.png").mode.startswith("I")
    image = reference._read_image(0, 0)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    Image.fromarray(gray).convert("RGB").save(layout / "images" / "00001.png")
    np.testing.assert_array_equal(image, reference._read_image(1, 1))


def test_non_square_images_are_refused_naming_the_file(layout):
    Image.new("RGB", (64, 48)).save(layout / "images" / "00002.png")
    with pytest.raises(ValueError, match=r"00002\.png of dataset index 2 \(row 2\) is 64x48; expected a square"):
        NPYDataset(options(layout), split="train")[2]


def test_non_finite_checkpoint_weights_are_refused_naming_the_weight(tmp_path):
    model = PipelineModule(TINY_MODEL)
    state = model.state_dict()
    state["generator.fc_mu.weight"][0, 0] = float("nan")
    torch.save({"state_dict": state, "varitex_opt": dict(TINY_MODEL)}, tmp_path / "nan.ckpt")
    with pytest.raises(ValueError, match=r"weight 'generator\.fc_mu\.weight' holds 1 non-finite values"):
        load_pipeline(tmp_path / "nan.ckpt")


@pytest.mark.parametrize("point_data, problem", [("[[0, 0], [NaN, 1], [1, 1]]", "holds non-finite UVs"),
                                                  ("[[0, 0], [3, 1], [1, 1]]", r"holds UVs outside \[0, 1\]"),
                                                  ('"0.5"', "are not arrays of numbers|must have shape")])
def test_non_finite_or_out_of_range_uvs_are_refused(tmp_path, point_data, problem):
    path = tmp_path / "uv.json"
    path.write_text('{"textureMapping": {"pointData": %s, "triangles": [[0, 1, 2]]}}' % point_data)
    with pytest.raises(ValueError, match=problem):
        load_uv_parameterization(path)


def test_non_finite_or_negative_face_model_values_are_refused(tmp_path):
    bfm = tmp_path / "bfm.h5"
    save_bfm2017(bfm, [0, 0, 0, 1, 0, 0, 0, 1, np.inf], np.zeros((9, 2)), np.ones(2), np.zeros((9, 1)), np.ones(1),
                 [[0, 1, 2]])
    with pytest.raises(ValueError, match="'shape/model/mean' holds non-finite values"):
        BFM2017(bfm)
    save_bfm2017(bfm, np.zeros(9), np.zeros((9, 2)), [1, -1], np.zeros((9, 1)), np.ones(1), [[0, 1, 2]])
    with pytest.raises(ValueError, match="negative variances"):
        BFM2017(bfm)


def test_wrong_coefficient_width_names_the_array_and_the_expected_width(layout):
    dataset = NPYDataset(options(layout), split="train")
    with pytest.raises(ValueError, match=r"sp\.npy has 199 shape coefficients per row, but the face model F has "
                                         r"150: expected shape \(N, 150\)"):
        dataset.check_coefficient_widths(150, 100, "F")


def test_empty_split_is_named(layout):
    np.savez(layout / "pre" / "dataset_splits.npz", train=np.arange(4), val=np.zeros(0, dtype=np.int64))
    dataset = NPYDataset(options(layout), split="val")
    with pytest.raises(ValueError, match=r"split 'val' of .*dataset_splits\.npz is empty: nothing to use for inference"):
        dataset.check_not_empty("inference")


# ---- 6. broken files say which file and how ----------------------------------------------------------------

def broken_variants(good):
    """name -> bytes: empty, truncated to half, random bytes, the first 10 bytes."""
    rng = np.random.default_rng(0)
    return {"empty": b"", "truncated": good[:len(good) // 2], "random": rng.bytes(len(good)),
            "header only": good[:10]}


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "header only"])
def test_broken_npy_files_name_the_file(layout, kind):
    path = layout / "pre" / "sp.npy"
    path.write_bytes(broken_variants(path.read_bytes())[kind])
    with pytest.raises(ValueError) as error:
        NPYDataset(options(layout), split="train")
    message = str(error.value)
    assert str(path) in message and "pickle" not in message
    assert any(word in message for word in ("empty", "truncated", "not a .npy file", "broken"))


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "header only"])
def test_broken_string_and_split_files_name_the_file(layout, kind):
    for name in ("filename.npy", "dataset_splits.npz"):
        path = layout / "pre" / name
        good = path.read_bytes()
        path.write_bytes(broken_variants(good)[kind])
        with pytest.raises(ValueError, match=name.replace(".", r"\.")) as error:
            NPYDataset(options(layout), split="train")
        assert "allow_pickle" not in str(error.value)
        path.write_bytes(good)


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "header only"])
def test_broken_face_model_and_uv_json_name_the_file(tmp_path, kind):
    bfm = save_bfm2017(tmp_path / "bfm.h5", np.zeros(9), np.zeros((9, 2)), np.ones(2), np.zeros((9, 1)), np.ones(1),
                       [[0, 1, 2]])
    bfm.write_bytes(broken_variants(bfm.read_bytes())[kind])
    with pytest.raises(ValueError, match=rf"face model file {bfm} is not a readable HDF5 file"):
        BFM2017(bfm)
    uv = tmp_path / "face12.json"
    uv.write_text('{"textureMapping": {"pointData": [[0, 0], [0, 1], [1, 1]], "triangles": [[0, 1, 2]]}}')
    uv.write_bytes(broken_variants(uv.read_bytes())[kind])
    with pytest.raises(ValueError, match=rf"UV parameterization file {uv} is (empty|not UTF-8|not valid JSON)"):
        load_uv_parameterization(uv)


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "header only", "bare tensor", "state_dict only"])
def test_broken_checkpoints_say_what_is_wrong_and_never_advise_pickle(tmp_path, kind):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"generator.x": torch.zeros(1000)}, "epoch": 3}, path)
    if kind == "bare tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "state_dict only":
        torch.save({"generator.fc_mu.weight": torch.zeros(2)}, path)
    else:
        path.write_bytes(broken_variants(path.read_bytes())[kind])
    expected = {"empty": "is empty", "truncated": "truncated or corrupted", "random": "is not a PyTorch checkpoint",
                "header only": "truncated or corrupted", "bare tensor": "holds a Tensor, not a checkpoint dictionary",
                "state_dict only": "is not a Lightning checkpoint: no 'state_dict'"}[kind]
    with pytest.raises(ValueError) as error:
        load_pipeline(path)
    message = str(error.value)
    assert str(path) in message and expected in message, message
    for misleading in ("unsafe", "weights_only=False", "trust", "pickle"):
        assert misleading not in message


def test_safe_io_messages_for_broken_json_and_npz(tmp_path):
    path = tmp_path / "opt.json"
    path.write_text('{"image_h": 64,')
    with pytest.raises(DataFileError, match=r"opt\.json is not valid JSON: .* line 1 column 16 \(the file ends early"):
        load_json(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataFileError, match="is not UTF-8 text"):
        load_json(path)
    archive = tmp_path / "splits.npz"
    archive.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(DataFileError, match=r"splits\.npz is a broken \.npz archive"):
        load_npz(archive)


# ---- atomic writes ------------------------------------------------------------------------------------------

def test_an_interrupted_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "latents.npy"
    save_npy(path, np.arange(4.0))
    before = path.read_bytes()

    def disk_full(file, array, allow_pickle=False):
        file.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_npy(path, np.arange(1000.0))
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["latents.npy"]
    np.testing.assert_array_equal(load_npy(path), np.arange(4.0))


def test_atomic_checkpoint_writer_keeps_the_previous_checkpoint_on_failure(tmp_path, monkeypatch):
    from varitex.checkpoints import AtomicCheckpointIO

    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)
    before = path.read_bytes()

    def interrupted(obj, file):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, path)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["last.ckpt"]


def test_replaced_folder_swaps_whole_folders_and_keeps_the_old_one_on_failure(tmp_path):
    folder = tmp_path / "reconstruction"
    folder.mkdir()
    (folder / "stale.png").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with replaced_folder(folder) as new:
            (tmp_path / new / "new.png").write_bytes(b"new")
            raise RuntimeError("interrupted")
    assert sorted(os.listdir(folder)) == ["stale.png"] and sorted(os.listdir(tmp_path)) == ["reconstruction"]
    with replaced_folder(folder) as new:
        (tmp_path / new / "new.png").write_bytes(b"new")
    assert sorted(os.listdir(folder)) == ["new.png"] and sorted(os.listdir(tmp_path)) == ["reconstruction"]
    with atomic_write(tmp_path / "x.txt", "w") as file:
        file.write("done")
    assert (tmp_path / "x.txt").read_text() == "done"

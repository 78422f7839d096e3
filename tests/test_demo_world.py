"""The embedded demo world: the authors' file layout, consistency with the geometry package, determinism."""
import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_fill_holes

from varitex.demo_world import world as synthetic
from varitex.data.keys_enum import DIK
from varitex.demo_world.appearance import LABELS
from varitex.data.npy_dataset import NPYDataset
from varitex.generation import uv_factory_from_options
from varitex.options import TrainOptions
from varitex.geometry import BFM2017

N_TINY, SIZE_TINY = 12, 64
FACE_LABELS = {LABELS[name] for name in ("skin", "nose", "left_eye", "right_eye", "left_brow", "right_brow",
                                          "upper_lip", "lower_lip", "hair")}


def _arrays(root):
    folder = root / synthetic.ARRAY_DIR
    arrays = {name: np.load(folder / f"{name}.npy") for name in synthetic.ARRAY_NAMES}  # no pickle needed
    arrays.update(np.load(folder / "dataset_splits.npz"))
    return arrays


def _factory(root, size):
    opt = argparse.Namespace(path_bfm=str(root / synthetic.BFM_FILE), path_uv=str(root / synthetic.UV_FILE),
                             image_h=size, image_w=size, device="cpu")
    return uv_factory_from_options(opt)


def test_world_has_the_authors_layout_shapes_and_dtypes(tiny_world):
    a = _arrays(tiny_world)
    n, s = N_TINY, SIZE_TINY
    expected = {"R": ((n, 3, 3), np.float32), "t": ((n, 3), np.float32), "s": ((n, 1), np.float32),
                "sp": ((n, 199), np.float32), "ep": ((n, 100), np.float32),
                "segmentation": ((n, s, s), np.uint8), "uv": ((n, s, s, 2), np.float32), "filename": ((n,), np.dtype("<U5"))}
    for name, (shape, dtype) in expected.items():
        assert a[name].shape == shape, name
        assert a[name].dtype == dtype, name
    assert list(a["filename"]) == [f"{i:05d}" for i in range(n)]
    assert a["uv"].min() == -1.0 and a["uv"].max() <= 1.0
    np.testing.assert_allclose(a["R"] @ a["R"].transpose(0, 2, 1), np.broadcast_to(np.eye(3), (n, 3, 3)), atol=1e-5)
    # Identity split: the last identity (4 images) is the validation set.
    assert a["train"].dtype == np.int64 and a["val"].dtype == np.int64
    assert list(a["train"]) == list(range(8)) and list(a["val"]) == [8, 9, 10, 11]
    for stem in a["filename"]:
        with Image.open(tiny_world / synthetic.IMAGE_DIR / f"{stem}.png") as image:
            assert image.mode == "RGB" and image.size == (s, s)
    manifest = json.loads((tiny_world / synthetic.MANIFEST).read_text())
    assert manifest["parameters"]["n_images"] == n and manifest["n_val"] == 4


def test_images_of_one_identity_share_shape_and_differ_in_pose_and_expression(tiny_world):
    a = _arrays(tiny_world)
    np.testing.assert_array_equal(a["sp"][0], a["sp"][3])
    assert not np.array_equal(a["sp"][3], a["sp"][4])
    assert not np.array_equal(a["ep"][0], a["ep"][1])
    yaw = np.degrees(np.arcsin(np.clip(a["R"][:, 0, 2], -1, 1)))
    assert np.abs(yaw).max() <= 30.0 + 1e-3
    assert np.ptp(yaw) > 5.0


def test_model_loads_through_bfm2017_with_the_bfm_component_counts(tiny_world):
    bfm = BFM2017(tiny_world / synthetic.BFM_FILE)
    assert (bfm.n_shape, bfm.n_expression) == (199, 100)
    manifest = json.loads((tiny_world / synthetic.MANIFEST).read_text())
    assert (bfm.n_vertices, bfm.n_faces) == (manifest["n_vertices"], manifest["n_faces"])


def test_default_pose_frames_the_mean_face_like_an_aligned_photo(tiny_world):
    factory = _factory(tiny_world, 128)
    uv = factory.render_pose_grid(torch.zeros(1, 199), torch.zeros(1, 100), [[0.0, 0.0, 0.0]])[0, 0]
    foreground = (uv != -1).any(dim=-1).numpy()
    rows, cols = np.nonzero(foreground)
    assert 0.2 < foreground.mean() < 0.45
    assert abs(cols.mean() / 128 - 0.5) < 0.02
    assert 0.5 < rows.mean() / 128 < 0.62
    assert 0.45 < np.ptp(cols) / 128 < 0.65


def test_rerendering_stored_pose_and_coefficients_reproduces_stored_uv(tiny_world):
    a = _arrays(tiny_world)
    uv = _factory(tiny_world, SIZE_TINY).getUV(a["R"], a["t"], a["s"], a["sp"], a["ep"]).numpy()
    stored_hit, hit = (a["uv"] != -1).any(-1), (uv != -1).any(-1)
    assert (stored_hit == hit).mean() >= 0.9999
    both = stored_hit & hit
    assert both.sum() > 0.2 * both.size
    assert np.abs(uv[both] - a["uv"][both]).max() < 1e-5


def test_segmentation_uses_celebamask_ids_and_agrees_with_the_uv_coverage(tiny_world):
    a = _arrays(tiny_world)
    present = set(np.unique(a["segmentation"]).tolist())
    assert present <= set(LABELS.values())
    assert {0, 1, 2, 4, 5, 6, 7, 11, 12, 13, 17} <= present
    on_face = (a["uv"] != -1).any(-1)
    face_labels = np.isin(a["segmentation"], sorted(FACE_LABELS))
    assert face_labels[on_face].all()
    assert (a["segmentation"][~on_face] != LABELS["nose"]).all()
    assert (a["segmentation"] == 0).mean() > 0.2
    # The inside of the mouth is only ever seen through the lips, never beside the face.
    for labels, face in zip(a["segmentation"], on_face):
        assert not ((labels == LABELS["mouth"]) & ~binary_fill_holes(face)).any()


def test_world_loads_through_npy_dataset(tiny_world):
    opt = TrainOptions().parse(["--dataroot_npy", str(tiny_world / synthetic.ARRAY_DIR),
                                "--image_folder", str(tiny_world / synthetic.IMAGE_DIR),
                                "--image_h", "64", "--image_w", "64"])
    train, val = NPYDataset(opt, split="train"), NPYDataset(opt, split="val")
    assert (len(train), len(val)) == (8, 4)
    item = val[0]
    assert item[DIK.FILENAME] == "00008"
    assert item[DIK.IMAGE_IN].shape == (3, 64, 64) and item[DIK.UV_RENDERED].shape == (64, 64, 2)
    assert item[DIK.COEFF_SHAPE].shape == (199,) and item[DIK.COEFF_EXPRESSION].shape == (100,)
    assert 0.15 < item[DIK.MASK_UV].mean() < 0.5
    # Hair and ears count as foreground (semantic regions 1..15), so the mask is larger than the uv's.
    assert item[DIK.SEGMENTATION_MASK].mean() > item[DIK.MASK_UV].mean() + 0.05


def test_generation_is_deterministic_in_the_seed_and_larger_worlds_extend_smaller_ones(tmp_path):
    kwargs = dict(image_size=48, array_size=32, images_per_identity=2)
    first = synthetic.generate_demo_world(tmp_path / "a", n_images=3, seed=5, **kwargs)
    larger = synthetic.generate_demo_world(tmp_path / "b", n_images=4, seed=5, **kwargs)
    other = synthetic.generate_demo_world(tmp_path / "c", n_images=3, seed=6, **kwargs)
    a, b, c = _arrays(first), _arrays(larger), _arrays(other)
    for name in synthetic.ARRAY_NAMES:
        np.testing.assert_array_equal(a[name], b[name][:3], err_msg=name)
    for stem in a["filename"]:
        assert (first / synthetic.IMAGE_DIR / f"{stem}.png").read_bytes() == \
            (larger / synthetic.IMAGE_DIR / f"{stem}.png").read_bytes()
    with Image.open(first / synthetic.IMAGE_DIR / "00000.png") as image:
        assert image.size == (48, 48)
    assert a["uv"].shape[1:3] == (32, 32)
    assert not np.array_equal(a["sp"], c["sp"]) and not np.array_equal(a["R"], c["R"])


def test_ensure_demo_world_reuses_a_complete_world_and_regenerates_otherwise(tmp_path):
    kwargs = dict(n_images=2, image_size=32, array_size=32)
    root = synthetic.ensure_demo_world(tmp_path / "world", **kwargs)
    manifest = root / synthetic.MANIFEST
    first = manifest.read_text()
    manifest_time = manifest.stat().st_mtime_ns
    assert synthetic.ensure_demo_world(root, **kwargs) == root
    assert manifest.stat().st_mtime_ns == manifest_time
    (root / synthetic.IMAGE_DIR / "00001.png").unlink()
    synthetic.ensure_demo_world(root, **kwargs)
    assert (root / synthetic.IMAGE_DIR / "00001.png").is_file()
    synthetic.ensure_demo_world(root, seed=3, **kwargs)
    assert json.loads(manifest.read_text())["parameters"]["seed"] == 3 != json.loads(first)["parameters"]["seed"]
    assert not list(root.glob(".generating-*"))
    # A world whose folders were being swapped when the process died is generated again.
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "status": "incomplete"}))
    synthetic.ensure_demo_world(root, seed=3, **kwargs)
    assert json.loads(manifest.read_text())["status"] == "complete"


def test_default_root_follows_varitex_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("VARITEX_CACHE", str(tmp_path))
    assert synthetic.default_demo_root() == tmp_path / "demo_world"
    monkeypatch.delenv("VARITEX_CACHE")
    assert synthetic.default_demo_root().parts[-3:] == (".cache", "varitex", "demo_world")


def test_refuses_to_overwrite_a_folder_that_is_not_a_demo_world(tmp_path):
    (tmp_path / "FFHQ").mkdir()
    with pytest.raises(ValueError, match="is not a demo world"):
        synthetic.generate_demo_world(tmp_path, n_images=2, image_size=32, array_size=32)
    assert (tmp_path / "FFHQ").is_dir()


@pytest.mark.parametrize("kwargs, name", [({"n_images": 1}, "n_images"), ({"array_size": 8}, "array_size"),
                                          ({"seed": -1}, "seed"), ({"val_fraction": 1.0}, "val_fraction")])
def test_invalid_arguments_name_the_argument(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        synthetic.generate_demo_world(tmp_path, **kwargs)


def test_command_line_writes_a_world_and_a_contact_sheet(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert synthetic.main(["--root", str(tmp_path / "w"), "--n_images", "2", "--image_size", "32",
                           "--array_size", "32", "--contact_sheet", str(sheet)]) == 0
    assert "demo world ready at" in capsys.readouterr().out
    # The demo world's default: 200 different people (one image each, as FFHQ), 20 of them held out.
    assert (synthetic.DEFAULTS["n_images"], synthetic.DEFAULTS["images_per_identity"]) == (200, 1)
    assert synthetic.world_is_complete(tmp_path / "w", synthetic._parameters(2, 32, 32, 0, 1, 0.1))
    with Image.open(sheet) as image:
        assert image.size == (2 * 256, 3 * 256)

"""The explorer's "Your photo" without a browser: a photo becomes the scene's identity and geometry, exactly as
varitex-preprocess then varitex-invert's library functions give them; bad files are refused with their reason.

The explorer tests' random-weight model on the tiny demo world; the photo is scikit-image's astronaut.
"""
import argparse
import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import world_paths
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.demo import Demo
from varitex.explore import photo as explore_photo
from varitex.explore.session import N_COMPONENTS, PHOTO_ITEM, Explorer, UploadError
from varitex.geometry import rotation_to_euler
from varitex.invert import photo_dataset
from varitex.inversion import encode, invert_batch
from varitex.preprocess import cli
from varitex.preprocess.writer import DATASET, IMAGES

STEPS = 1


@pytest.fixture(scope="module")
def demo(tiny_world, explore_checkpoint):
    return Demo(explore_checkpoint, device="cpu", **world_paths(tiny_world))


@pytest.fixture(scope="module")
def explorer(demo, face_landmarker):
    return Explorer(demo, landmarker=face_landmarker)


@pytest.fixture(scope="module")
def photo_path(astronaut_photo, tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(astronaut_photo).save(path)
    return path


@pytest.fixture(scope="module")
def start(explorer):
    return explorer.set_masked(explorer.initial_scene(), False)


@pytest.fixture(scope="module")
def scene(explorer, start, photo_path, tmp_path_factory):
    work = tmp_path_factory.mktemp("photo_work")
    scene = explorer.use_photo(start, str(photo_path), steps=STEPS, work_folder=str(work))
    assert list(work.iterdir()) == []  # the preprocessed arrays are removed once the photo is inverted
    return scene


@pytest.fixture(scope="module")
def expected(demo, face_landmarker, photo_path, tmp_path_factory):
    """The photo through the command-line tools' functions: varitex-preprocess's, then varitex-invert's."""
    out = tmp_path_factory.mktemp("cli")
    args = cli.parse_args([str(photo_path), "--output", str(out), "--path_bfm", demo.opt.path_bfm,
                           "--path_uv", demo.opt.path_uv, "--device", "cpu"])
    records, rows = cli.preprocess(args, landmarker=face_landmarker)
    assert rows == 1 and records[0]["status"] == "ok"
    opt = argparse.Namespace(**{**vars(demo.opt), "dataroot_npy": str(out / DATASET),
                                "image_folder": str(out / IMAGES), "dataset_split": "all", "image_cache": None})
    batch = torch.utils.data.default_collate([photo_dataset(opt)[0]])
    inversion = invert_batch(demo.pipeline, batch, STEPS)
    arrays = {name: np.load(out / DATASET / f"{name}.npy") for name in ("sp", "ep", "R")}
    return dict(inversion=inversion, batch=batch, **arrays)


def test_the_photo_becomes_the_identity_and_the_geometry(explorer, start, scene, expected):
    inversion = expected["inversion"]
    assert torch.equal(scene.identity.z, inversion.z[0]) and torch.equal(scene.identity.mu, inversion.z[0])
    assert torch.equal(scene.identity.std, inversion.std[0])
    mu, _ = encode(explorer.demo.pipeline, expected["batch"][DIK.IMAGE_IN_ENCODE])
    assert not torch.equal(scene.identity.z, mu[0])  # refined: not the encoder's mean
    assert scene.identity.label == f"astronaut.png (your photo, {STEPS} steps)"
    assert np.array_equal(scene.photo.sp.numpy(), expected["sp"][0])
    assert np.array_equal(scene.photo.ep.numpy(), expected["ep"][0])
    pose = rotation_to_euler(torch.from_numpy(expected["R"][0]))
    assert scene.pose == pytest.approx(pose.tolist()) and scene.photo.pose == scene.pose
    assert (scene.shape_item, scene.expression_item) == (PHOTO_ITEM, PHOTO_ITEM)
    sp, ep = explorer.coefficients(scene)
    assert np.array_equal(sp.numpy(), expected["sp"][0]) and np.array_equal(ep.numpy(), expected["ep"][0])
    assert scene.slots == start.slots and scene.masked == start.masked
    assert not np.array_equal(explorer.render(scene).uv, explorer.render(start).uv)


def test_pose_sliders_components_and_resets_act_on_the_photo(explorer, scene):
    pitch, _, roll = scene.pose
    turned = explorer.set_pose(scene, yaw=30)
    assert turned.pose == (pitch, 30.0, roll)
    before, after = explorer.render(scene), explorer.render(turned)
    assert np.abs(after.image.astype(int) - before.image).mean() > 0.5
    assert explorer.reset_pose(turned).pose == scene.pose  # back to the photo's pose, not frontal

    offsets = (1.0,) + (0.0,) * (N_COMPONENTS - 1)
    shaped = explorer.set_shape(scene, item=PHOTO_ITEM, components=offsets)
    sp, ep = explorer.coefficients(shaped)
    expected = scene.photo.sp.clone()
    expected[0] += explorer.shape_std[0]
    torch.testing.assert_close(sp, expected)
    assert torch.equal(ep, scene.photo.ep)
    assert torch.equal(explorer.coefficients(explorer.reset_shape(shaped))[0], scene.photo.sp)
    smiling = explorer.set_expression(explorer.set_expression(scene, item=-1), item=PHOTO_ITEM)
    assert torch.equal(explorer.coefficients(smiling)[1], scene.photo.ep)
    with pytest.raises(ValueError, match=r"expression -2 is not an item of the val split \(0\.\.3 or -1 for the "
                                         r"mean face\)"):
        explorer.set_expression(explorer.initial_scene(), item=PHOTO_ITEM)  # no photo in that scene


def test_identity_controls_work_on_the_photo(explorer, scene):
    assert torch.equal(explorer.sample_around(scene, 0.0, seed=1).identity.z, scene.identity.z)
    around = explorer.sample_around(scene, 1.0, seed=1)
    eps = torch.randn(len(scene.identity.z), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(around.identity.z, scene.identity.z + scene.identity.std * eps)
    kept = explorer.store_slot(scene, 0)
    assert kept.slots[0] is scene.identity
    assert torch.equal(explorer.interpolate(kept, 0.0).identity.z, scene.identity.z)


def write_text(path):
    path.write_text("hello, not a picture")


def write_blank(path):
    Image.new("RGB", (256, 256), (128, 128, 128)).save(path)


@pytest.mark.parametrize("name, write, message", [
    ("notes.txt", write_text, r"notes.txt: not a photo; upload an image file \(.png, .jpg"),
    ("fake.png", write_text, r"fake.png: not a readable image \(cannot identify image file"),
    ("blank.png", write_blank, "blank.png: no face found"),
])
def test_files_without_a_face_are_refused_with_the_reason(explorer, start, tmp_path, name, write, message):
    path = tmp_path / name
    write(path)
    with pytest.raises(UploadError, match=message):
        explorer.use_photo(start, str(path), steps=1)


def test_photos_over_the_limits_are_refused_before_reading(explorer, start, photo_path, tmp_path):
    with pytest.raises(UploadError, match=r"astronaut.png: 0.\d MiB is larger than the limit of 0 MiB"):
        explorer.use_photo(start, str(photo_path), max_bytes=10_000)
    huge = tmp_path / "huge.png"
    Image.new("1", (8000, 6000)).save(huge)  # a few kB, 48 megapixels
    with pytest.raises(UploadError, match="huge.png: 8000 x 6000 pixels is more than the 40 megapixels"):
        explorer.use_photo(start, str(huge))
    with pytest.raises(ValueError, match=r"refinement steps must be in 0\.\.500, got -1"):
        explorer.use_photo(start, str(photo_path), steps=-1)


@pytest.mark.parametrize("package", ["ai_edge_litert", "mediapipe"])
def test_without_the_preprocessing_models_one_line_says_how_to_install_them(demo, start, photo_path, monkeypatch,
                                                                           package):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else find_spec(name, *a))
    line = explore_photo.missing_preprocessing()
    assert 'pip install -e ".[preprocess]" && pip install --no-deps "mediapipe==0.10.21"' in line
    assert "\n" not in line
    with pytest.raises(UploadError) as refused:
        Explorer(demo).use_photo(start, str(photo_path))
    assert str(refused.value) == line


def test_the_page_without_the_preprocessing_models_says_so_in_the_tab(explorer, monkeypatch, tmp_path):
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("gradio (the app extra) is not installed")
    from varitex.explore import app

    monkeypatch.setattr(app, "missing_preprocessing", lambda: "Your photo needs ...: pip install ...")
    components = app.build(explorer, str(tmp_path)).config["components"]
    by_id = {component["props"].get("elem_id"): component for component in components}
    assert by_id["photo_missing"]["props"]["value"] == "⚠️ Your photo needs ...: pip install ..."
    assert "photo" not in by_id and "photo_steps" not in by_id and "yaw" in by_id
    monkeypatch.setattr(app, "missing_preprocessing", lambda: None)
    by_id = {component["props"].get("elem_id") for component in app.build(explorer, str(tmp_path)).config["components"]}
    assert {"photo", "photo_steps"} <= by_id and "photo_missing" not in by_id

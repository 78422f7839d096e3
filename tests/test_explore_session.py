"""The explorer's actions without a browser: each changes what it should and only that.

A random-weight model of the smallest architecture on the tiny demo world (val split: 4 items of one person).
"""
import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import world_paths
from varitex import visualization as vis
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.demo import Demo
from varitex.explore import session as explore_session
from varitex.explore.__main__ import parse_options
from varitex.explore.session import N_COMPONENTS, Explorer, TextureCache, UploadError, load_latents_file
from varitex.generation import decode_texture, generate

LATENT_DIM = 16


@pytest.fixture(scope="module")
def demo(tiny_world, explore_checkpoint):
    return Demo(explore_checkpoint, device="cpu", **world_paths(tiny_world))


@pytest.fixture(scope="module")
def explorer(demo):
    return Explorer(demo)


@pytest.fixture(scope="module")
def scene(explorer):
    return explorer.set_masked(explorer.initial_scene(), False)


@pytest.fixture(scope="module")
def view(explorer, scene):
    return explorer.render(scene)


def changed_fields(before, after):
    return {field.name for field in dataclasses.fields(before)
            if getattr(before, field.name) is not getattr(after, field.name)
            and getattr(before, field.name) != getattr(after, field.name)}


def test_generate_with_a_decoded_texture_gives_the_default_path_exactly(demo, explorer, scene):
    z = scene.identity.z
    sp, ep = explorer.coefficients(scene)
    texture = decode_texture(demo.pipeline, z)
    assert texture.shape == (1, 16, 128, 128)
    theta = [0.0, 20.0, 5.0]
    default = generate(demo.pipeline, demo.uv_factory, z, sp, ep, theta)
    cached = generate(demo.pipeline, demo.uv_factory, z, sp, ep, theta, texture=texture)
    assert default.keys() == cached.keys()
    for key in default:
        assert torch.equal(default[key], cached[key]), key
    # A batch of textures, one per pose (decoded at the same batch size as the default path does, since
    # convolution kernels may round differently with the batch size).
    thetas = [[0.0, 20.0, 5.0], [10.0, -30.0, 0.0]]
    default = generate(demo.pipeline, demo.uv_factory, z, sp, ep, thetas)
    cached = generate(demo.pipeline, demo.uv_factory, z, sp, ep, thetas,
                      texture=decode_texture(demo.pipeline, z.expand(2, -1)))
    for key in default:
        assert torch.equal(default[key], cached[key]), key
    assert not torch.equal(default[DIK.IMAGE_OUT][0], default[DIK.IMAGE_OUT][1])


def test_initial_scene_is_person_zero_frontal_with_their_own_geometry(explorer):
    scene = explorer.initial_scene()
    assert explorer.n_people == 4 and explorer.latent_dim == LATENT_DIM
    assert scene.identity.label == "val #0"
    assert (scene.shape_item, scene.expression_item, scene.pose, scene.masked) == (0, 0, (0.0, 0.0, 0.0), True)
    assert [slot.label for slot in scene.slots] == ["val #0", "val #1"]
    # No latents.npy in the world: the person is encoded from their image, z = mu of the encoder.
    latents = explorer.demo.encode_split("val", [0])
    assert torch.equal(scene.identity.z, latents[0, 0]) and torch.equal(scene.identity.std, latents[0, 1])


def test_view_shapes_and_value_ranges(view):
    assert view.image.shape == (64, 64, 3) and view.uv.shape == (64, 64, 3) and view.texture.shape == (128, 128, 3)
    assert view.image.dtype == np.uint8
    assert view.uv[0, 0].tolist() == [0, 0, 0]  # background of the UV render is black
    assert view.texture.min() == 0 and view.texture.max() == 255  # each channel stretched to the full range


def test_yaw_changes_uv_render_and_image_but_not_texture(explorer, scene, view):
    turned = explorer.set_pose(scene, yaw=30)
    assert turned.pose == (0.0, 30.0, 0.0)
    assert changed_fields(scene, turned) == {"pose"}
    after = explorer.render(turned)
    assert np.abs(after.uv.astype(int) - view.uv).mean() > 1
    assert np.abs(after.image.astype(int) - view.image).mean() > 0.5
    assert np.array_equal(after.texture, view.texture)


def test_pose_shape_and_expression_changes_hit_the_texture_cache(explorer, scene):
    explorer.render(scene)
    hits, misses = explorer.textures.hits, explorer.textures.misses
    explorer.render(explorer.set_pose(scene, pitch=10, roll=-5))
    explorer.render(explorer.set_shape(scene, components=(1.0,) + (0.0,) * (N_COMPONENTS - 1)))
    explorer.render(explorer.set_expression(scene, item=2))
    assert (explorer.textures.hits - hits, explorer.textures.misses - misses) == (3, 0)
    explorer.render(explorer.sample_prior(scene, seed=3))
    assert explorer.textures.misses - misses == 1


def test_texture_cache_drops_the_least_recently_used():
    decoded = []
    cache = TextureCache(lambda z: decoded.append(float(z[0])) or z * 2, capacity=2)
    a, b, c = torch.zeros(3), torch.ones(3), torch.full((3,), 2.0)
    cache(a), cache(b), cache(a), cache(c), cache(a), cache(b)
    assert decoded == [0.0, 1.0, 2.0, 1.0]  # b was dropped when c came, a stayed (used more recently)
    assert (cache.hits, cache.misses) == (2, 4)
    uncached = TextureCache(lambda z: decoded.append(float(z[0])) or z * 2, capacity=0)
    uncached(a), uncached(a)
    assert decoded[-2:] == [0.0, 0.0] and (uncached.hits, uncached.misses, len(uncached.entries)) == (0, 2, 0)


def test_prior_sample_is_deterministic_for_a_seed(explorer, scene):
    first = explorer.sample_prior(scene, seed=7)
    again = explorer.sample_prior(explorer.pick_person(scene, 2), seed=7)
    other = explorer.sample_prior(scene, seed=8)
    expected = torch.randn(LATENT_DIM, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first.identity.z, expected) and torch.equal(again.identity.z, expected)
    assert not torch.equal(other.identity.z, expected)
    assert torch.equal(first.identity.std, torch.ones(LATENT_DIM))
    assert first.identity.label == "prior sample (seed 7)"
    assert changed_fields(scene, first) == {"identity"}


def test_sample_around_scales_the_identity_std(explorer, scene):
    identity = scene.identity
    same = explorer.sample_around(scene, 0.0, seed=1)
    assert torch.equal(same.identity.z, identity.mu)
    wide = explorer.sample_around(scene, 2.5, seed=1)
    eps = torch.randn(LATENT_DIM, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(wide.identity.z, identity.mu + 2.5 * identity.std * eps)
    assert wide.identity.label == "val #0 ~ 2.5 std (seed 1)"
    # Sampling again draws around the same distribution, it does not drift from the last sample.
    again = explorer.sample_around(wide, 2.5, seed=1)
    assert torch.equal(again.identity.z, wide.identity.z) and again.identity.label == wide.identity.label
    assert changed_fields(scene, wide) == {"identity"}
    with pytest.raises(ValueError, match="std multiplier must be >= 0"):
        explorer.sample_around(scene, -1.0, seed=1)


def test_interpolation_endpoints_are_the_slots_and_the_midpoint_is_corrected(explorer, scene):
    prior = explorer.sample_prior(scene, seed=5)
    scene = explorer.store_slot(prior, 1)  # A stays person 0, B is the prior sample
    a, b = scene.slots
    assert a.label == "val #0" and b.label == "prior sample (seed 5)"
    assert torch.equal(explorer.interpolate(scene, 0.0).identity.z, a.z)
    assert torch.equal(explorer.interpolate(scene, 1.0).identity.z, b.z)
    middle = explorer.interpolate(scene, 0.5)
    weight = 0.5 / np.sqrt(0.5)  # the authors' correction: w / sqrt(w^2 + (1 - w)^2) = 0.7071
    torch.testing.assert_close(middle.identity.z, (1 - weight) * a.z + weight * b.z)
    assert middle.identity.label == "val #0 -> prior sample (seed 5) at 0.50"
    assert changed_fields(scene, middle) == {"identity"}
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        explorer.interpolate(scene, 1.5)


def test_expression_components_are_in_units_of_their_std(explorer, scene):
    neutral = explorer.set_expression(scene, item=-1)
    raised = explorer.set_expression(neutral, components=(0.0, 2.0) + (0.0,) * (N_COMPONENTS - 2))
    assert changed_fields(neutral, raised) == {"expression_components"}
    sp_neutral, ep_neutral = explorer.coefficients(neutral)
    sp, ep = explorer.coefficients(raised)
    assert torch.equal(sp, sp_neutral) and torch.equal(ep_neutral, torch.zeros_like(ep))
    std = explorer.demo.uv_factory.bfm.expression_variance.sqrt()
    assert ep[1] == pytest.approx(2 * float(std[1])) and ep[1] != 0
    assert torch.count_nonzero(ep) == 1
    assert np.abs(explorer.render(raised).uv.astype(int) - explorer.render(neutral).uv).sum() > 0


def test_shape_item_and_components_add_up(explorer, scene):
    changed = explorer.set_shape(scene, item=3, components=(-1.0,) + (0.0,) * (N_COMPONENTS - 1))
    assert changed_fields(scene, changed) == {"shape_item", "shape_components"}
    sp, _ = explorer.coefficients(changed)
    expected = explorer.sp_items[3].clone()
    expected[0] -= explorer.demo.uv_factory.bfm.shape_variance[0].sqrt()
    torch.testing.assert_close(sp, expected)


def test_resets_zero_only_their_controls(explorer, scene):
    moved = explorer.set_pose(explorer.set_shape(explorer.set_expression(
        scene, item=1, components=(1.0,) * N_COMPONENTS), item=2, components=(0.5,) * N_COMPONENTS), yaw=40)
    assert explorer.reset_pose(moved).pose == (0.0, 0.0, 0.0)
    assert changed_fields(moved, explorer.reset_pose(moved)) == {"pose"}
    reset = explorer.reset_shape(moved)
    assert changed_fields(moved, reset) == {"shape_components"}
    assert reset.shape_components == (0.0,) * N_COMPONENTS and reset.shape_item == 2
    reset = explorer.reset_expression(moved)
    assert changed_fields(moved, reset) == {"expression_components"} and reset.expression_item == 1


def test_items_outside_the_split_are_refused_with_the_range(explorer, scene):
    with pytest.raises(ValueError, match=r"person 4 is not an item of the val split \(0\.\.3\)"):
        explorer.pick_person(scene, 4)
    with pytest.raises(ValueError, match=r"expression -2 is not an item of the val split \(0\.\.3 or -1"):
        explorer.set_expression(scene, item=-2)
    with pytest.raises(ValueError, match="expected 5 component values, got 2"):
        explorer.set_shape(scene, components=(1.0, 2.0))


def test_masking_blacks_out_the_background_only(explorer, scene, view):
    masked = explorer.render(explorer.set_masked(scene, True))
    out, _ = explorer.outputs(scene)
    head = (out[DIK.SEGMENTATION_PREDICTED][0, 0] > vis.MASK_THRESHOLD).numpy()
    assert np.array_equal(masked.image[~head], np.zeros_like(masked.image[~head]))
    assert np.array_equal(masked.image[head], view.image[head])
    assert np.array_equal(masked.uv, view.uv) and np.array_equal(masked.texture, view.texture)


def test_person_latents_come_from_a_latents_file(demo, tmp_path):
    latents = np.random.default_rng(0).normal(size=(4, 2, LATENT_DIM)).astype(np.float32)
    latents[:, 1] = np.abs(latents[:, 1]) + 0.1
    np.save(tmp_path / "latents.npy", latents)
    explorer = Explorer(demo, latents_path=str(tmp_path / "latents.npy"))
    person = explorer.person(3)
    assert np.array_equal(person.z.numpy(), latents[3, 0]) and np.array_equal(person.std.numpy(), latents[3, 1])
    np.save(tmp_path / "short.npy", latents[:2])
    with pytest.raises(ValueError, match="short.npy: latents of shape .2, 16. do not match the 4 items"):
        Explorer(demo, latents_path=str(tmp_path / "short.npy"))


def test_uploaded_latents_become_identities(explorer, scene, tmp_path):
    codes = np.arange(3 * LATENT_DIM, dtype=np.float32).reshape(3, LATENT_DIM)
    np.save(tmp_path / "codes.npy", codes)
    uploaded = explorer.upload_latents(scene, str(tmp_path / "codes.npy"))
    assert changed_fields(scene, uploaded) == {"identity", "uploaded"}
    assert [identity.label for identity in uploaded.uploaded] == ["codes.npy #0", "codes.npy #1", "codes.npy #2"]
    picked = explorer.pick_uploaded(uploaded, 2)
    assert np.array_equal(picked.identity.z.numpy(), codes[2])
    assert torch.equal(picked.identity.std, torch.ones(LATENT_DIM))
    with pytest.raises(ValueError, match=r"the file has 0\.\.2"):
        explorer.pick_uploaded(uploaded, 3)
    with pytest.raises(ValueError, match="no latents file has been uploaded"):
        explorer.pick_uploaded(scene, 0)


@pytest.mark.parametrize("name, content, message", [
    ("notes.txt", b"hello", "notes.txt: not a .npy file"),
    ("fake.npy", b"\x89PNG\r\n\x1a\n" + bytes(64), "fake.npy: not a .npy array .the file does not start"),
    ("cut.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (9, 16), }",
     "cut.npy: not a readable .npy array"),
    ("pickled.npy", None, "pickled.npy: not a readable .npy array"),
    ("ints.npy", np.zeros((2, LATENT_DIM), dtype=np.int64), "ints.npy: expected floating-point values"),
    ("wide.npy", np.zeros((2, 3, LATENT_DIM), dtype=np.float32), r"wide.npy: shape \(2, 3, 16\) is neither"),
    ("nan.npy", np.full((1, LATENT_DIM), np.nan, dtype=np.float32), "nan.npy: has non-finite values"),
    ("empty.npy", np.zeros((0, LATENT_DIM), dtype=np.float32), "empty.npy: holds 0 identities"),
])
def test_bad_uploads_are_refused_with_the_file_and_reason(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        np.save(path, np.array([{"code": 1}], dtype=object), allow_pickle=True)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)
    with pytest.raises(UploadError, match=message):
        load_latents_file(str(path), LATENT_DIM)


def test_uploads_over_the_size_limit_are_refused_before_reading(tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, np.zeros((1000, LATENT_DIM), dtype=np.float32))  # 64 kB
    with pytest.raises(UploadError, match=r"big.npy: 0.1 MiB is larger than the limit of 0 MiB"):
        load_latents_file(str(path), LATENT_DIM, max_bytes=10_000)
    assert explore_session.MAX_UPLOAD_BYTES == 16 * 2 ** 20


def test_exports_write_the_current_image_and_a_yaw_sweep(explorer, scene, view, tmp_path):
    png = explorer.export_png(scene, str(tmp_path))
    assert png.endswith(".png") and np.array_equal(np.asarray(Image.open(png)), view.image)
    sweep = explorer.export_yaw_sweep(scene, str(tmp_path / "sweep"), video_format="gif", frames=3)
    with Image.open(sweep) as gif:
        # There and back: -45, 0, 45, 45, 0, -45 degrees (PIL may merge the two equal frames at the turn).
        assert sweep.endswith(".gif") and gif.n_frames in (5, 6)
        gif.seek(1)
        frontal = np.asarray(gif.convert("RGB"))
    assert np.abs(frontal.astype(int) - view.image).mean() < 8  # frame 1 of 3 is yaw 0 (GIF palette aside)
    with pytest.raises(ValueError, match="video format must be gif or mp4"):
        explorer.export_yaw_sweep(scene, str(tmp_path), video_format="avi")


def test_command_line_defaults_are_local_and_safe():
    opt = parse_options([])
    assert (opt.host, opt.port, opt.dataset_split, opt.max_upload_mb, opt.demo) == ("127.0.0.1", 7860, "val", 16.0,
                                                                                  False)
    opt = parse_options(["--host", "0.0.0.0", "--port", "8000", "--dataset_split", "train", "--demo"])
    assert (opt.host, opt.port, opt.dataset_split, opt.demo) == ("0.0.0.0", 8000, "train", True)
    with pytest.raises(ValueError, match="--max_upload_mb must be > 0"):
        parse_options(["--max_upload_mb", "0"])


def test_command_line_without_a_checkpoint_says_which_option_is_missing(monkeypatch):
    from varitex.explore.__main__ import load_explorer

    monkeypatch.delenv("CP", raising=False)
    with pytest.raises(ValueError, match="--checkpoint is not set: pass --checkpoint PATH or set .*CP"):
        load_explorer(parse_options(["--device", "cpu"]))

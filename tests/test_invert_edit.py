"""Own photos through the model: varitex-invert (encoder, then refinement of z) and the edits of varitex-edit.

A narrow generator (helpers.narrow_generator) trained for a few steps on the tiny demo world stands in for a
trained model; the val split (the last identity) is never seen in training: the held-out photos.
"""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from varitex import editing, invert, train
from varitex import edit as edit_cli
from varitex.checkpoints import load_pipeline
from varitex.data.image_ops import denormalize
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.generation import generate, uv_factory_from_options
from varitex.geometry import euler_to_rotation, rotation_to_euler
from varitex.inversion import encode, masked_l2, render_latents
from varitex.latents import load_latents, save_latents
from varitex.options import settings

from helpers import narrow_generator, one_thread, world_flags

TINY = ["--image_h", "64", "--image_w", "64", "--texture_dim", "128", "--nc_feature2image", "8", "--lambda_vgg",
        "0", "--lambda_gan", "0", "--no_lpips", "--num_workers", "0", "--device", "cpu", "--display_freq", "1000"]
STEPS = 30


@pytest.fixture(scope="module")
def trained(tiny_world, tmp_path_factory):
    """A narrow model trained 3 epochs (12 steps) on the 8 train images of the tiny world."""
    path_out = tmp_path_factory.mktemp("invert_runs")
    argv = world_flags(tiny_world, path_out) + TINY + ["--batch_size", "2", "--max_epochs", "3", "--lr", "5e-3",
                                                       "--experiment_name", "tiny", "--precise_bn", "8",
                                                       "--keep_checkpoints", "1"]
    run = settings.resolve("train", argv)
    with one_thread():
        train.train(run, generator_config=narrow_generator(run.opt))
    return dict(world=tiny_world, checkpoint=path_out / "tiny" / "checkpoints" / "last.ckpt", path_out=path_out)


def photo_flags(trained, *extra):
    return world_flags(trained["world"], trained["path_out"]) + ["--checkpoint", str(trained["checkpoint"]),
                                                                 "--num_workers", "0", *extra]


@pytest.fixture(scope="module")
def inverted(trained, tmp_path_factory):
    output = tmp_path_factory.mktemp("inverted")
    with one_thread():
        invert.main(photo_flags(trained, "--dataset_split", "val", "--steps", str(STEPS), "--output", str(output)))
    return dict(output=output, report=json.loads((output / "inversion_report.json").read_text()), **trained)


@pytest.fixture(scope="module")
def model(trained):
    run = settings.resolve("invert", photo_flags(trained, "--dataset_split", "val"))
    pipeline = load_pipeline(run.opt.checkpoint, run.opt, checkpoint=run.checkpoint).eval()
    return dict(pipeline=pipeline, uv_factory=uv_factory_from_options(run.opt), opt=run.opt)


def val_items(trained, opt):
    from varitex.data.npy_dataset import NPYDataset

    dataset = NPYDataset(opt, split="val", augmentation=False)
    return torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])


# ----- geometry and files -------------------------------------------------------------------------------

def test_rotation_to_euler_inverts_euler_to_rotation():
    theta = torch.tensor([[0.0, 0.0, 0.0], [10.0, -30.0, 5.0], [-60.0, 80.0, 170.0], [45.0, 15.0, -90.0]])
    assert torch.allclose(rotation_to_euler(euler_to_rotation(theta)), theta, atol=1e-4)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        rotation_to_euler(torch.zeros(2, 3))


def test_latents_file_has_the_authors_layout(tmp_path):
    mu, std = torch.randn(5, 256, dtype=torch.float64), torch.rand(5, 256) + 0.1
    save_latents(tmp_path / "latents.npy", mu, std)
    array = np.load(tmp_path / "latents.npy")
    assert array.shape == (5, 2, 256) and array.dtype == np.float32
    assert np.array_equal(array[:, 0], mu.float().numpy()) and np.array_equal(array[:, 1], std.numpy())
    read_mu, read_std = load_latents(tmp_path / "latents.npy", latent_dim=256, rows=5)
    assert torch.equal(read_mu, mu.float()) and torch.equal(read_std, std)
    np.save(tmp_path / "wrong.npy", np.zeros((5, 256), np.float32))
    with pytest.raises(ValueError, match=r"wrong\.npy has shape \(5, 256\); expected \(N, 2, 256\)"):
        load_latents(tmp_path / "wrong.npy", latent_dim=256)
    with pytest.raises(ValueError, match=r"expected \(4, 2, 256\)"):
        load_latents(tmp_path / "latents.npy", latent_dim=256, rows=4)


def test_masked_l2_counts_only_pixels_inside_the_mask():
    real = torch.zeros(2, 3, 4, 4)
    fake = torch.zeros(2, 3, 4, 4)
    fake[:, :, :2] = 2.0                      # wrong in the top half
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, :2] = 1.0                      # item 0 looks at the top half, item 1 at the bottom half
    mask[1, :, 2:] = 1.0
    assert torch.equal(masked_l2(fake, real, mask), torch.tensor([4.0, 0.0]))
    mask[0, :, 0] = 0.5                       # soft weights count proportionally
    assert torch.allclose(masked_l2(fake, real, mask), torch.tensor([4.0, 0.0]))


# ----- inversion ----------------------------------------------------------------------------------------

def test_refinement_lowers_the_masked_error_of_held_out_photos(inverted, model):
    report = inverted["report"]
    assert report["steps"] == STEPS and not report["perceptual"]  # no VGG weights here: L2 alone
    photos = report["photos"]
    assert len(photos) == 4
    for photo in photos:
        assert photo["masked_l2_refined"] < photo["masked_l2_encoder"], photo
    curve = report["mean_masked_l2_per_step"]
    assert len(curve) == STEPS + 1 and curve[-1] < curve[len(curve) // 2] < curve[0]
    # The numbers hold when measured again from the written codes.
    items = val_items(inverted, model["opt"])
    mu, std = encode(model["pipeline"], items[DIK.IMAGE_IN_ENCODE])
    z, written_std = load_latents(inverted["output"] / "latents.npy", latent_dim=256, rows=4)
    assert torch.equal(written_std, std)  # std: the encoder's, unchanged
    with torch.no_grad():
        errors = [masked_l2(render_latents(model["pipeline"], code, items[DIK.UV_RENDERED])[DIK.IMAGE_OUT],
                            items[DIK.IMAGE_IN], items[DIK.SEGMENTATION_MASK]) for code in (mu, z)]
    assert (errors[1] < errors[0]).all()
    assert errors[0].numpy() == pytest.approx([p["masked_l2_encoder"] for p in photos], abs=1e-5)


def test_inversion_writes_input_encoder_and_refined_pictures(inverted, model):
    items = val_items(inverted, model["opt"])
    inputs = (denormalize(items[DIK.IMAGE_IN]).clamp(0, 1) * 255).permute(0, 2, 3, 1).numpy()
    stems = [photo["filename"] for photo in inverted["report"]["photos"]]
    assert stems == list(items[DIK.FILENAME])
    for stem, expected in zip(stems, inputs):
        picture = np.asarray(Image.open(inverted["output"] / f"{stem}.png")).astype(np.float32)
        assert picture.shape == (64, 3 * 64, 3)
        assert np.abs(picture[:, :64] - expected).max() <= 0.5 + 1e-3   # the input, then the two outputs
        assert (picture[:, 64:] == 0).any()                             # outputs masked: a black background


def test_zero_steps_writes_the_encoder_mean(trained, model, tmp_path):
    invert.main(photo_flags(trained, "--dataset_split", "val", "--steps", "0", "--output", str(tmp_path)))
    z, std = load_latents(tmp_path / "latents.npy", latent_dim=256)
    mu, encoder_std = encode(model["pipeline"], val_items(trained, model["opt"])[DIK.IMAGE_IN_ENCODE])
    assert torch.equal(z, mu) and torch.equal(std, encoder_std)


# ----- edits --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def identity(inverted):
    """The first held-out photo: its code from varitex-invert, its geometry from the arrays."""
    root = inverted["world"] / "FFHQ" / "preprocessed_dataset"
    rows = np.load(root / "dataset_splits.npz")["val"]
    z, std = load_latents(inverted["output"] / "latents.npy")
    return dict(root=root, rows=rows, z=z, std=std, codes=editing.dataset_codes(root, rows[:1], z[:1]))


def assert_kept(variants, codes, fields):
    for field in fields:
        original = getattr(codes, field)
        assert torch.equal(getattr(variants, field), original.expand_as(getattr(variants, field))), field


def test_dataset_codes_give_the_photo_geometry(identity):
    codes, root, row = identity["codes"], identity["root"], identity["rows"][0]
    assert torch.allclose(euler_to_rotation(codes.theta)[0], torch.from_numpy(np.load(root / "R.npy")[row]), atol=1e-5)
    assert torch.equal(codes.sp[0], torch.from_numpy(np.load(root / "sp.npy")[row]))
    assert torch.equal(codes.t[0], torch.from_numpy(np.load(root / "t.npy")[row]))


def test_expression_transfer_keeps_identity_shape_and_pose_and_moves_the_mouth(identity, model):
    codes, root = identity["codes"], identity["root"]
    ep_b = torch.zeros(1, codes.ep.shape[1])
    ep_b[0, 0] = 3.0 * model["uv_factory"].bfm.expression_variance[0].sqrt()  # jaw open, 3 std
    variants = editing.transfer_expression(codes, torch.cat([codes.ep, ep_b]))
    assert_kept(variants, codes, ("z", "sp", "theta", "t", "s"))
    assert torch.equal(variants.ep[1], ep_b[0])
    out = editing.render(model["pipeline"], model["uv_factory"], variants)
    change = (out[DIK.IMAGE_OUT][1] - out[DIK.IMAGE_OUT][0]).abs().mean(0)
    labels = torch.from_numpy(np.load(root / "segmentation.npy")[identity["rows"][0]].astype(np.int64))
    labels = torch.nn.functional.interpolate(labels[None, None].float(), size=64, mode="nearest")[0, 0]
    mouth = (labels >= 10) & (labels <= 12)
    far = labels == 0
    assert mouth.sum() > 5
    assert change[mouth].mean() > 3 * change[far].mean()


def test_pose_sweep_changes_only_its_axis(identity, model):
    codes = identity["codes"]
    angles = torch.tensor([-30.0, 0.0, 30.0])
    variants = editing.pose_sweep(codes, "yaw", angles)
    assert_kept(variants, codes, ("z", "sp", "ep", "t", "s"))
    assert torch.equal(variants.theta[:, 1], angles)
    assert torch.equal(variants.theta[:, [0, 2]], codes.theta[:, [0, 2]].expand(3, 2))
    images = editing.render(model["pipeline"], model["uv_factory"], variants)[DIK.IMAGE_OUT]
    assert (images[0] - images[2]).abs().mean() > 0.05
    with pytest.raises(ValueError, match="unknown axis 'tilt'"):
        editing.pose_sweep(codes, "tilt", angles)


def test_shape_swap_keeps_code_expression_and_pose(identity):
    codes = identity["codes"]
    other = editing.dataset_codes(identity["root"], identity["rows"][1:3], identity["z"][1:3])
    variants = editing.swap_shape(codes, other.sp)
    assert_kept(variants, codes, ("z", "ep", "theta", "t", "s"))
    assert torch.equal(variants.sp, other.sp)


def test_interpolation_runs_from_a_to_b_with_the_gaussian_correction(identity):
    codes, z_b = identity["codes"], identity["z"][1]
    variants = editing.interpolate_identities(codes, z_b, 5)
    assert torch.equal(variants.z[0], codes.z[0]) and torch.equal(variants.z[-1], z_b)
    w = 0.5 / np.sqrt(0.5)                # w / sqrt(w^2 + (1 - w)^2) at w = 0.5
    assert torch.allclose(variants.z[2], (1 - w) * codes.z[0] + w * z_b, atol=1e-6)
    assert_kept(variants, codes, ("sp", "ep", "theta", "t", "s"))


def test_sampling_around_an_identity_scales_with_the_std_multiplier(identity):
    codes, std = identity["codes"], identity["std"][0]
    assert torch.equal(editing.sample_around(codes, std, 3, std_multiplier=0.0).z, codes.z.expand(3, -1))
    for multiplier in (1.0, 3.0):
        variants = editing.sample_around(codes, std, 64, multiplier, torch.Generator().manual_seed(0))
        spread = ((variants.z - codes.z) / std).std()
        assert spread == pytest.approx(multiplier, rel=0.05)
        assert_kept(variants, codes, ("sp", "ep", "theta", "t", "s"))


def test_render_in_chunks_equals_one_batch_of_generate(identity, model):
    variants = editing.pose_sweep(identity["codes"], "pitch", torch.tensor([-20.0, 0.0, 20.0]))
    chunked = editing.render(model["pipeline"], model["uv_factory"], variants, batch_size=2)
    whole = generate(model["pipeline"], model["uv_factory"], *variants)
    assert torch.allclose(chunked[DIK.IMAGE_OUT], whole[DIK.IMAGE_OUT], atol=1e-5)


# ----- command lines ------------------------------------------------------------------------------------

def test_edit_command_writes_a_grid_and_a_video_per_edit(inverted, tmp_path, capsys):
    stems = [photo["filename"] for photo in inverted["report"]["photos"]]
    edit_cli.main(photo_flags(inverted, "--dataset_split", "val", "--latents", str(inverted["output"] / "latents.npy"),
                              "--identity", stems[0], "--repose", "yaw", "--n_frames", "3", "--expression_from",
                              "00000", "00001", "--interpolate_to", "1", "--sample", "2", "--video", "gif",
                              "--output", str(tmp_path)))
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{name}.{ext}" for name in ("repose_yaw", "expression", "interpolation", "samples")
                             for ext in ("png", "gif"))
    grid = Image.open(tmp_path / "repose_yaw.png")
    assert grid.size == (3 * 66 + 2, 66 + 2)  # three 64-px images, 2-px borders
    assert Image.open(tmp_path / "expression.png").size == (2 * 66 + 2, 66 + 2)
    assert Image.open(tmp_path / "samples.png").size == (2 * 66 + 2, 66 + 2)


def run_error(main, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_bad_inputs_give_one_line_and_exit_code_2(inverted, tmp_path, capsys):
    flags = photo_flags(inverted, "--dataset_split", "val")
    line = run_error(invert.main, flags + ["--image_folder", str(tmp_path / "nowhere")], capsys)
    assert line == f"varitex-invert: error: --image_folder: folder not found: {tmp_path / 'nowhere'}"
    (tmp_path / "empty").mkdir()
    line = run_error(invert.main, flags + ["--dataroot_npy", str(tmp_path / "empty")], capsys)
    assert "dataset_splits.npz is missing" in line and str(tmp_path / "empty") in line
    line = run_error(invert.main, flags + ["--dataset_split", "all", "--dataroot_npy", str(tmp_path / "empty")], capsys)
    assert f"dataset file {tmp_path / 'empty' / 'R.npy'} is missing" in line
    (tmp_path / "images").mkdir()
    line = run_error(invert.main, flags + ["--image_folder", str(tmp_path / "images")], capsys)
    assert "lacks 4 of the 4 photos" in line
    np.save(tmp_path / "latents.npy", np.zeros((4, 256), np.float32))
    line = run_error(edit_cli.main, flags + ["--latents", str(tmp_path / "latents.npy"), "--repose", "yaw"], capsys)
    assert f"{tmp_path / 'latents.npy'} has shape (4, 256); expected (4, 2, 256)" in line
    line = run_error(edit_cli.main, flags + ["--latents", str(inverted["output"] / "latents.npy")], capsys)
    assert "no edit requested" in line
    line = run_error(edit_cli.main, flags + ["--latents", str(inverted["output"] / "latents.npy"), "--repose", "yaw",
                                             "--expression_from", "nobody"], capsys)
    assert "--expression_from 'nobody' is neither a file stem nor a row" in line

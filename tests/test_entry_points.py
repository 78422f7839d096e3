"""Entry points and the library around them on a small-width model: a training run with --precise_bn,
--keep_checkpoints and the wandb logger offline; inference modes posed and random on several images; the
Demo class; and the cells of the authors' notebook (their ``Demo(opt)`` dict and generator stage calls)."""
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from varitex import callbacks, train
from varitex import visualization as vis
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.data.npy_dataset import NPYDataset
from varitex.demo import Demo
from varitex.generation import generate
from varitex.inference import Inference, pose_table
from varitex.options import settings

from helpers import narrow_generator, one_thread, world_flags

SIZE = 32
SMALL = ["--image_h", str(SIZE), "--image_w", str(SIZE), "--texture_dim", "128", "--latent_dim", "16",
         "--nc_feature2image", "8", "--feature2image_num_layers", "3", "--nc_discriminator", "8", "--lambda_vgg",
         "0", "--no_lpips", "--batch_size", "4", "--num_workers", "0"]


@pytest.fixture(scope="module")
def trained(tiny_world, tmp_path_factory):
    """Two epochs on the tiny world (8 training images, batch 4), pictures after the last batch, logged to
    wandb in offline mode."""
    import wandb

    path_out = tmp_path_factory.mktemp("runs")
    argv = world_flags(tiny_world, path_out) + SMALL + [
        "--max_epochs", "2", "--precise_bn", "8", "--keep_checkpoints", "1", "--logger", "wandb",
        "--experiment_name", "small", "--display_freq", "4"]
    with pytest.MonkeyPatch.context() as patch, one_thread():
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        patch.setattr(callbacks, "POSE_GRID_DEG", (-30, 30))
        patch.setattr(callbacks, "N_INTERPOLATION", 2)
        patch.setattr(callbacks, "N_SHOWN", 1)
        run = settings.resolve("train", argv)
        trainer = train.train(run, generator_config=narrow_generator(run.opt))
        wandb.finish()
    run_dir = path_out / "small"
    return dict(world=tiny_world, run_dir=run_dir, trainer=trainer,
                checkpoint=run_dir / "checkpoints" / "last.ckpt")


def world_paths(world):
    return dict(dataroot_npy=str(world / "FFHQ" / "preprocessed_dataset"), image_folder=str(world / "FFHQ" / "images"),
                path_bfm=str(world / "basel_facemodel" / "model2017-1_face12_nomouth.h5"),
                path_uv=str(world / "basel_facemodel" / "face12.json"))


def test_keep_checkpoints_keeps_only_the_newest_epoch(trained):
    # 2 batches per epoch, a G and a D optimizer step each: epoch 1 ends at step 8.
    names = sorted(path.name for path in (trained["run_dir"] / "checkpoints").iterdir())
    assert names == ["epoch001-step8.ckpt", "last.ckpt"]


def test_precise_bn_replaces_the_running_statistics_by_one_pass_of_eight_images(trained):
    state = torch.load(trained["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    counts = {key: int(value) for key, value in state.items()
              if key.startswith("generator.") and key.endswith("num_batches_tracked")}
    # Training alone would have counted 2 forwards per batch (G step, D step) over 4 batches.
    assert len(counts) > 50 and set(counts.values()) == {1}
    assert not torch.equal(state["generator.encoder.encoder.bn1.running_var"], torch.ones(64))


def test_wandb_logger_writes_an_offline_run_with_losses_and_pictures(trained):
    runs = list((trained["run_dir"] / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    (record,) = runs[0].glob("run-*.wandb")
    content = record.read_bytes()
    for name in (b"train/reconstruction_l2", b"train/discriminator", b"val/psnr", b"train/posed"):
        assert name in content, name
    assert trained["trainer"].logger.__class__.__name__ == "WandbLogger"


@pytest.fixture(scope="module")
def inferred(trained, tmp_path_factory):
    """Modes posed and random for 2 val images in batches of 8 (so batches mix images and poses), written
    unmasked: two epochs of training do not yet predict a head above the 0.7 threshold."""
    path_out = tmp_path_factory.mktemp("inference")
    argv = world_flags(trained["world"], path_out) + [
        "--checkpoint", str(trained["checkpoint"]), "--n", "2", "--batch_size", "8", "--num_workers", "0",
        "--mode", "posed", "random"]
    inference = Inference(settings.resolve("inference", argv))
    torch.manual_seed(0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vis, "mask_output", lambda images, segmentation: images)
        root = inference.run(("posed", "random"))
    return dict(inference=inference, root=root)


def read_png(path):
    return np.asarray(Image.open(path)).astype(np.int16)


def test_inference_posed_renders_each_of_several_images_in_each_pose_as_alone(inferred):
    inference, root = inferred["inference"], inferred["root"]
    assert inference.opt.latent_dim == 16 and inference.opt.dataset_split == "val"  # from the checkpoint
    encoded = inference.encode(inference.dataset(2))
    stems = encoded["filenames"]
    assert len(stems) == 2 and not os.path.exists(os.path.join(root, "reconstruction"))
    names, thetas = pose_table("cpu")
    assert len(names) == 21
    for name in names:
        assert sorted(os.listdir(os.path.join(root, "posed", name))) == sorted(f"{stem}.png" for stem in stems)
    # Batches of 4 mix samples and poses; every image equals the sample rendered alone in that pose.
    for sample, pose in ((0, 0), (1, names.index("yaw_30")), (1, 20)):
        out = generate(inference.pipeline, inference.uv_factory, encoded["latents"][sample, 0],
                       encoded["sp"][sample], encoded["ep"][sample], thetas[pose])
        alone = vis.to_uint8(vis.unnormalize(out[DIK.IMAGE_OUT]))
        written = read_png(os.path.join(root, "posed", names[pose], f"{stems[sample]}.png"))
        assert np.abs(written - alone[0].astype(np.int16)).max() <= 1
    first = [read_png(os.path.join(root, "posed", name, f"{stems[0]}.png")) for name in ("yaw_-45", "yaw_45")]
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[1], read_png(os.path.join(root, "posed", "yaw_45", f"{stems[1]}.png")))


def test_inference_random_renders_each_latent_with_its_own_random_face_in_each_pose(inferred):
    root = inferred["root"]
    for name in pose_table("cpu")[0]:
        assert sorted(os.listdir(os.path.join(root, "random", name))) == ["00000.png", "00001.png"]
    rows = [read_png(os.path.join(root, "random", "pitch_0", f"{row:05d}.png")) for row in range(2)]
    assert not np.array_equal(rows[0], rows[1])
    assert rows[0].shape == (SIZE, SIZE, 3)


def test_demo_class_broadcasts_inputs_and_writes_pictures(trained, tmp_path):
    demo = Demo(trained["checkpoint"], device="cpu", **world_paths(trained["world"]))
    assert (demo.opt.latent_dim, demo.opt.image_h, demo.device.type) == (16, SIZE, "cpu")
    mu, std = demo.load_latents()  # no latents.npy in the world: the val split is encoded
    assert mu.shape == std.shape == (4, 16) and (std > 0).all()
    sp, ep = demo.load_shape_expressions()
    assert sp.shape == (4, demo.uv_factory.bfm.n_shape) and ep.shape == (4, demo.uv_factory.bfm.n_expression)
    out = demo.run(mu[0], sp[:3], ep[0], theta=[0, 20, 0])
    assert out[DIK.IMAGE_OUT].shape == (3, 3, SIZE, SIZE) and out[DIK.UV_RENDERED].shape == (3, SIZE, SIZE, 2)
    alone = demo.run(mu[0], sp[1], ep[0], theta=[0, 20, 0])
    # Batched and single convolutions may pick other CPU kernels: equal up to float rounding (~2e-5 seen).
    torch.testing.assert_close(out[DIK.IMAGE_OUT][1:2], alone[DIK.IMAGE_OUT], atol=1e-4, rtol=1e-4)
    assert not torch.equal(out[DIK.IMAGE_OUT][0], out[DIK.IMAGE_OUT][1])  # another shape, another image
    assert demo.to_image(out).size == (3 * SIZE, SIZE)
    assert demo.to_image([out, alone]).size == (4 * SIZE, SIZE)
    video = demo.to_video([alone, out], str(tmp_path / "sweep.mp4"), reverse=True)
    assert os.path.isfile(video) and os.path.getsize(video) > 0


def test_the_authors_notebook_cells_run_against_the_package(trained, tmp_path, monkeypatch):
    world = trained["world"]
    monkeypatch.setenv("DP", str(world))
    # Cell 1 of the authors' notebook (their opt dict; "cuda" falls back to the CPU without a GPU).
    opt = {
        "checkpoint": os.path.join(str(trained["checkpoint"])),
        "dataroot_npy": os.path.join(os.getenv("DP", ""), "FFHQ/preprocessed_dataset"),
        "path_bfm": os.path.join(str(world), "basel_facemodel/model2017-1_face12_nomouth.h5"),
        "path_uv": os.path.join(str(world), "basel_facemodel/face12.json"),
        "device": "cuda",
    }
    demo = Demo(opt)
    assert demo.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    # Their latents.npy cell, on latents written as the authors ship them.
    path_latent = tmp_path / "latents.npy"
    mu, std = demo.load_latents()
    np.save(path_latent, torch.stack([mu, std], 1).numpy())
    latent_distributions = np.load(path_latent)
    latent_mean = torch.Tensor(latent_distributions[:, 0])
    latent_std = torch.Tensor(latent_distributions[:, 1])
    # Their graphical-control cells: G(z, sp, ep, R(theta)) for one identity, then a sample around it.
    sp, ep = demo.load_shape_expressions()
    z = latent_mean[1]
    out = demo.run(z, sp[1], ep[1], theta=torch.Tensor([0, 30, 0]), t=torch.Tensor([0, -2, -57]))
    assert out[DIK.IMAGE_OUT].shape == (1, 3, SIZE, SIZE)
    sampled = demo.run(z + 2 * latent_std[1] * torch.randn_like(z), sp[1], ep[1], theta=torch.zeros(3))
    assert demo.to_image([out, sampled]).size == (2 * SIZE, SIZE)
    # Their stage calls with batch_idx, on a batch of the val set: equal to the pipeline's forward at z = mu.
    dataset = NPYDataset(demo.opt, split="val", augmentation=False)
    batch = {key: value.to(demo.device) if torch.is_tensor(value) else value
             for key, value in default_collate([dataset[0], dataset[1]]).items()}
    batch_idx = 0
    with torch.no_grad():
        expected = demo.pipeline(batch, std_multiplier=0)
        staged = demo.pipeline.forward_encode(dict(batch), batch_idx)
        staged = demo.pipeline.generator.forward_encoded2latent_distribution(staged)
        staged = demo.pipeline.forward_sample_style(staged, batch_idx, 0)
        staged = demo.pipeline.forward_latent2image(staged, batch_idx)
        generator = demo.pipeline.generator
        by_generator = generator.forward_latent2image(generator.forward_sample_style(
            generator.forward_encoded2latent_distribution(generator.forward_encode(dict(batch), batch_idx)),
            batch_idx, std_multiplier=0), batch_idx)
    assert torch.equal(staged[DIK.STYLE_LATENT], staged[DIK.STYLE_LATENT_MU])
    assert torch.equal(staged[DIK.IMAGE_OUT], expected[DIK.IMAGE_OUT])
    assert torch.equal(by_generator[DIK.IMAGE_OUT], expected[DIK.IMAGE_OUT])
    torch.testing.assert_close(staged[DIK.STYLE_LATENT_MU].cpu(), latent_mean[:2], atol=1e-5, rtol=1e-5)

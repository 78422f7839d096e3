"""The small pieces behind logging, inference and the demo: pictures, interpolation, poses, precise BatchNorm."""
from types import SimpleNamespace

import pytest
import torch

from varitex import visualization as vis
from varitex.callbacks import LossProgressBar, PreciseBatchNorm, pose_thetas
from varitex.inference import POSE_ANGLES, pose_table, selected_modes


def test_unnormalize_inverts_imagenet_normalization():
    image = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    mean, std = torch.tensor(vis.IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(vis.IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(vis.unnormalize((image - mean) / std), image, atol=1e-6)


def test_uv_background_is_black_and_uv_maps_to_red_green():
    uv = torch.full((1, 2, 2, 2), -1.0)
    uv[0, 0, 0] = torch.tensor([1.0, 0.0])
    rgb = vis.uv_to_rgb(uv)
    assert rgb.shape == (1, 3, 2, 2)
    assert rgb[0, :, 0, 0].tolist() == [1.0, 0.5, 0.0]
    assert (rgb[0, :, 1, 1] == 0).all()


def test_mask_output_keeps_only_segmentation_above_0_7():
    images = torch.full((1, 3, 1, 3), 0.5)
    segmentation = torch.tensor([0.69, 0.7, 0.71]).view(1, 1, 1, 3)
    assert vis.mask_output(images, segmentation)[0, 0, 0].tolist() == [0.0, 0.0, 0.5]


def test_interpolation_weights_are_the_authors_gaussian_correction():
    weights = vis.gaussian_interpolation_weights(5)
    w = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    assert torch.allclose(weights, w / torch.sqrt(w ** 2 + (1 - w) ** 2))
    assert weights[2].item() == pytest.approx(2 ** -0.5)
    z_from, z_to = torch.zeros(2, 4), torch.ones(2, 4)
    path = vis.interpolate_latents(z_from, z_to, 5)
    assert path.shape == (5, 2, 4)
    assert torch.equal(path[0], z_from) and torch.equal(path[-1], z_to)
    assert path[2, 0, 0].item() == pytest.approx(2 ** -0.5)


def test_normalize_channels_stretches_each_channel_to_unit_range():
    maps = torch.stack([torch.linspace(-3, 5, 4), torch.full((4,), 2.0)]).view(1, 2, 2, 2)
    normalized = vis.normalize_channels(maps)
    assert normalized[0, 0].flatten().tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert (normalized[0, 1] == 0).all()


def test_pose_grid_is_pitch_major():
    thetas = pose_thetas((-10, 10), (-20, 0, 20), "cpu")
    assert thetas.tolist() == [[-10, -20, 0], [-10, 0, 0], [-10, 20, 0], [10, -20, 0], [10, 0, 0], [10, 20, 0]]


def test_inference_poses_are_pitch_yaw_and_both_from_minus_45_to_45():
    names, thetas = pose_table("cpu")
    assert POSE_ANGLES == (-45, -30, -15, 0, 15, 30, 45)
    assert len(names) == 21 and names[0] == "pitch_-45" and names[7] == "yaw_-45" and names[-1] == "pitch_yaw_45"
    assert thetas[names.index("pitch_yaw_-30")].tolist() == [-30, -30, 0]
    assert thetas[names.index("yaw_15")].tolist() == [0, 15, 0]


def test_mode_selection_keeps_the_authors_order():
    assert selected_modes(["all"]) == ("reconstruction", "posed", "random")
    assert selected_modes(["random", "reconstruction"]) == ("reconstruction", "random")


class TinyPipeline(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.generator = torch.nn.BatchNorm1d(2)

    def forward(self, batch):
        return self.generator(batch)


def test_precise_batchnorm_uses_batches_of_8_and_restores_the_module():
    rows = [torch.tensor([float(i), float(i * i)]) for i in range(8)]
    pipeline = TinyPipeline().eval()
    trainer = SimpleNamespace(train_dataloader=SimpleNamespace(dataset=rows),
                              strategy=SimpleNamespace(batch_to_device=lambda b: b))
    precise = PreciseBatchNorm(n_images=8, batch_size=2)
    assert (precise.batch_size, precise.n_batches) == (8, 1)
    precise.recompute(trainer, pipeline)
    data = torch.stack(rows)
    bn = pipeline.generator
    assert torch.allclose(bn.running_mean, data.mean(0)) and torch.allclose(bn.running_var, data.var(0))
    assert bn.momentum == 0.1 and not pipeline.training


def test_progress_bar_shows_every_training_loss():
    trainer = SimpleNamespace(callback_metrics={"train/reconstruction_l2": torch.tensor(0.12345),
                                                "train/kl": torch.tensor(2.0), "val/psnr": torch.tensor(20.0)},
                              progress_bar_metrics={}, loggers=[])
    metrics = LossProgressBar().get_metrics(trainer, None)
    assert metrics["reconstruction_l2"] == "0.123" and metrics["kl"] == "2"
    assert "psnr" not in metrics and "val/psnr" not in metrics

"""Training callbacks: the progress bar with the losses, precise BatchNorm statistics, and image logging
(docs/architecture.md).

Image logging is what the authors logged, batched and on device.

Every ``display_freq`` training batches, and for the first batch of the next validation, rank 0 logs:

    <stage>/combined            per row: uv, target mask, input, encoder input, predicted mask, output, uv mask
    <stage>/posterior_std3      per row: 3 samples z = mu + 3 * std * eps on the item's geometry
    <stage>/prior_std2          per row: 3 samples z = 2 * eps (eps ~ N(0, 1)) on the item's geometry
    <stage>/posed               first item re-posed, pitch (rows) x yaw (columns) in -45..45 degrees, z = mu
    <stage>/interpolation       first item, per row: mu -> {posterior sample at std x4, 0, N(0, 1) sample}
    <stage>/neural_texture      first item: texture channels, sampled face and additive feature images
"""
import contextlib
import time

import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

from varitex import visualization as vis
from varitex.data.keys_enum import DataItemKey as DIK

N_SHOWN = 2                       # items of the batch shown (the authors showed the first one only)
POSE_GRID_DEG = (-45, -15, 15, 45)
N_INTERPOLATION = 5


class LossProgressBar(TQDMProgressBar):
    """Lightning's progress bar, showing the latest value of every ``train/*`` loss the module logs.

    Reading a loss on a GPU waits for the step to finish, so the values are read at most every
    LOSS_REFRESH_S seconds: every step when steps are slower (a CPU), without a host-device sync per step
    on a fast GPU.
    """

    LOSS_REFRESH_S = 0.5

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._losses, self._losses_read_at = {}, None

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        now = time.monotonic()
        if self._losses_read_at is None or now - self._losses_read_at >= self.LOSS_REFRESH_S:
            self._losses = {name[len("train/"):]: f"{float(value):.3g}"
                            for name, value in trainer.callback_metrics.items() if name.startswith("train/")}
            self._losses_read_at = now
        metrics.update(self._losses)
        return metrics


class PreciseBatchNorm(Callback):
    """Before each validation (and at the end of an epoch without one), replace the generator's BatchNorm
    running statistics by their exact average over ``n_images`` training images with the current weights
    ("precise BN", Wu & Johnson 2021). Training itself is unchanged (it normalizes with batch statistics);
    validation, checkpoints and inference then see statistics that match the weights.

    The averages are taken over batches of at least ``min_batch`` images even when training uses smaller
    ones: the layers below each BatchNorm run in training mode meanwhile, and with batches of 2 their
    outputs are too far from what they give in eval mode.

    Args:
        n_images: training images to average over (augmentation as in training).
        batch_size: the training batch size.
    """

    def __init__(self, n_images, batch_size, min_batch=8):
        self.batch_size = max(batch_size, min_batch)
        self.n_batches = max(1, n_images // self.batch_size)

    def on_validation_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.recompute(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        if not sum(trainer.num_val_batches):
            self.recompute(trainer, pl_module)

    @torch.no_grad()
    def recompute(self, trainer, pl_module):
        from torch.utils.data import DataLoader

        layers = [m for m in pl_module.generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        momenta = [layer.momentum for layer in layers]
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None  # cumulative average over the batches below
        was_training = pl_module.training
        pl_module.train()
        loader = DataLoader(trainer.train_dataloader.dataset, batch_size=self.batch_size, shuffle=True)
        for index, batch in enumerate(loader):
            if index == self.n_batches:
                break
            pl_module(trainer.strategy.batch_to_device(batch))
        pl_module.train(was_training)
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


@contextlib.contextmanager
def evaluating(module):
    """Eval mode and no gradients inside the block; restores the previous mode."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)


def select_items(batch, n):
    """The first ``n`` items of every tensor and list in a batch dict."""
    return {key: value[:n] for key, value in batch.items() if isinstance(value, (torch.Tensor, list))}


def pose_thetas(pitches, yaws, device):
    """All (pitch, yaw, roll=0) combinations in degrees, pitch-major: (len(pitches) * len(yaws), 3)."""
    pitch, yaw = torch.meshgrid(torch.tensor(pitches, dtype=torch.float32),
                                torch.tensor(yaws, dtype=torch.float32), indexing="ij")
    return torch.stack([pitch.flatten(), yaw.flatten(), torch.zeros(pitch.numel())], dim=1).to(device)


class ImageLogCallback(Callback):
    """Logs the authors' training visualizations to TensorBoard or Weights & Biases, on rank 0 only."""

    def __init__(self, opt):
        self.opt = opt
        self.display_freq = opt.display_freq
        self._uv_factory = None
        self._validation_due = False

    def uv_factory(self, device):
        """The BFM UV renderer on ``device``, built on first use (it holds the whole face model)."""
        if self._uv_factory is None:
            from varitex.generation import uv_factory_from_options
            self._uv_factory = uv_factory_from_options(self.opt, device=device)
        return self._uv_factory

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # After every display_freq batches of the run (the authors also logged before the first update).
        if trainer.is_global_zero and (trainer.fit_loop.epoch_loop.total_batch_idx + 1) % self.display_freq == 0:
            self.log_batch(trainer, pl_module, batch, "train")
            self._validation_due = True

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        # At most once per display_freq training batches: on a CPU the pictures cost as much as a few steps.
        if trainer.is_global_zero and batch_idx == 0 and self._validation_due and not trainer.sanity_checking:
            self.log_batch(trainer, pl_module, batch, "val")
            self._validation_due = False

    def log_batch(self, trainer, pl_module, batch, stage):
        """Compute every picture for (the first items of) ``batch`` and send them to the loggers.

        The sampled pictures share one generator pass: on a CPU a batch of 40 costs far less than 4 of 10.
        """
        with evaluating(pl_module):
            batch = pl_module(select_items(batch, N_SHOWN), std_multiplier=0)
            requests = {  # name -> (latents (N, D), uv (N, H, W, 2), images per row)
                "posterior_std3": self.posterior_samples(batch),
                "prior_std2": self.prior_samples(batch),
                "posed": self.pose_grid(batch),
                "interpolation": self.interpolations(batch),
            }
            images = self._render(pl_module, torch.cat([r[0] for r in requests.values()]),
                                  torch.cat([r[1] for r in requests.values()]))
            chunks = images.split([len(r[0]) for r in requests.values()])
            pictures = {name: vis.image_grid(chunk, nrow=nrow)
                        for (name, (_, _, nrow)), chunk in zip(requests.items(), chunks)}
            pictures["combined"] = self.combined(batch)
            pictures["neural_texture"] = self.neural_texture(batch)
        for name, picture in pictures.items():
            log_image(trainer, f"{stage}/{name}", picture)

    def combined(self, batch):
        columns = [
            vis.uv_to_rgb(batch[DIK.UV_RENDERED]),
            vis.gray_to_rgb(batch[DIK.SEGMENTATION_MASK]),
            vis.unnormalize(batch[DIK.IMAGE_IN]),
            vis.unnormalize(batch[DIK.IMAGE_IN_ENCODE]),
            vis.gray_to_rgb(batch[DIK.SEGMENTATION_PREDICTED]),
            vis.unnormalize(batch[DIK.IMAGE_OUT]),
            vis.gray_to_rgb(batch[DIK.MASK_UV].float()),
        ]
        return vis.image_grid(torch.stack(columns, dim=1).flatten(0, 1), nrow=len(columns))

    @staticmethod
    def _render(pl_module, latents, uv):
        """Images (B, 3, H, W) in [0, 1], masked with the predicted segmentation, for latents and UV renders."""
        out = pl_module.generator.forward_latent2image({DIK.STYLE_LATENT: latents, DIK.UV_RENDERED: uv})
        return vis.displayed_output(out)

    @staticmethod
    def posterior_samples(batch, n_samples=3, std_multiplier=3.0):
        """Per item (row): samples z = mu + 3 * std * eps on the item's geometry."""
        mu, std = (batch[key].repeat_interleave(n_samples, dim=0)
                   for key in (DIK.STYLE_LATENT_MU, DIK.STYLE_LATENT_STD))
        latents = mu + std * std_multiplier * torch.randn_like(mu)
        return latents, batch[DIK.UV_RENDERED].repeat_interleave(n_samples, dim=0), n_samples

    @staticmethod
    def prior_samples(batch, n_samples=3, std_multiplier=2.0):
        """Per item (row): samples z = 2 * eps from the prior on the item's geometry."""
        mu = batch[DIK.STYLE_LATENT_MU].repeat_interleave(n_samples, dim=0)
        uv = batch[DIK.UV_RENDERED].repeat_interleave(n_samples, dim=0)
        return torch.randn_like(mu) * std_multiplier, uv, n_samples

    def pose_grid(self, batch):
        """The first item (z = mu, its shape and expression) at pitch (rows) x yaw (columns) of POSE_GRID_DEG."""
        thetas = pose_thetas(POSE_GRID_DEG, POSE_GRID_DEG, batch[DIK.STYLE_LATENT_MU].device)
        uv_factory = self.uv_factory(thetas.device)
        uv = uv_factory.render_pose_grid(batch[DIK.COEFF_SHAPE][:1], batch[DIK.COEFF_EXPRESSION][:1], thetas)[0]
        return batch[DIK.STYLE_LATENT_MU][:1].expand(len(thetas), -1), uv, len(POSE_GRID_DEG)

    @staticmethod
    def interpolations(batch):
        """The first item's mu towards a posterior sample at std x4, towards 0, and towards a prior sample."""
        mu, std = batch[DIK.STYLE_LATENT_MU][0], batch[DIK.STYLE_LATENT_STD][0]
        targets = [mu + 4.0 * std * torch.randn_like(mu), torch.zeros_like(mu), torch.randn_like(mu)]
        latents = torch.cat([vis.interpolate_latents(mu, target, N_INTERPOLATION) for target in targets])
        return latents, batch[DIK.UV_RENDERED][:1].expand(len(latents), -1, -1, -1), N_INTERPOLATION

    def neural_texture(self, batch):
        """Channels of the first item: the texture in UV space, then the sampled face and additive features."""
        maps = [batch[key][:1] for key in (DIK.TEXTURE_PERSON, DIK.FACE_FEATUREIMAGE, DIK.ADDITIVE_FEATUREIMAGE)]
        size = maps[1].shape[-2:]
        maps[0] = torch.nn.functional.interpolate(maps[0], size=size, mode="bilinear", align_corners=False)
        channels = vis.normalize_channels(torch.cat(maps, dim=1)).transpose(0, 1)
        return vis.image_grid(vis.gray_to_rgb(channels), nrow=maps[0].shape[1])


def log_image(trainer, tag, picture):
    """Send one (3, H, W) picture in [0, 1] to every logger that takes images."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, picture, trainer.global_step)
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=tag, images=[vis.to_uint8(picture.unsqueeze(0))[0]], step=trainer.global_step)

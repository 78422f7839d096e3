"""PipelineModule: the generator, the discriminator, losses and metrics as one Lightning 2.x module.

Training follows the authors' alternating schedule (their Lightning-1.x two-optimizer ``training_step``),
written with manual optimization: per batch a generator step with the discriminator frozen, then a
discriminator step on a generator forward recomputed without gradients.

State: ``generator.*``, ``discriminator.*`` (lambda_gan > 0) and ``loss_vgg.*`` (lambda_vgg > 0), with the
authors' keys and shapes. The LPIPS metric is deliberately NOT part of the state_dict: it is a frozen
evaluation tool whose weights come from the lpips package and torchvision, not something training changes,
and the authors' ``metric_lpips.*`` entries (22 keys, 5 of them duplicates) would only bloat checkpoints.
It is kept as a plain attribute ``metric_lpips`` (moved to the data's device when used, always in eval mode);
``varitex.checkpoints.load_pipeline`` still fills it from a checkpoint that carries ``metric_lpips.*``.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import lightning.pytorch as pl
import torch
import torchvision
from lightning.pytorch.utilities import rank_zero_warn

from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules.discriminator import MultiscaleDiscriminator
from varitex.modules.configs import (complete_options, discriminator_arguments, options_to_dict,
                                     generator_config as default_generator_config)
from varitex.modules.generator import Generator, GeneratorConfig
from varitex.modules.loss import (VGG19Loss, feature_matching_loss, kl_divergence, l2_loss, multiscale_gan_loss,
                                  rgb_texture_loss, segmentation_loss)
from varitex.modules.metrics import LPIPSMetric, psnr, ssim
from varitex.modules.pretrained import MissingPretrainedWeightsError, torchvision_cache_file

# Generator loss terms -> (weighting option, name the authors log it under).
GENERATOR_TERMS = {
    "gan": ("lambda_gan", "train/generator"),
    "gan_features": ("lambda_discriminator_features", "train/gan_features"),
    "l2": ("lambda_l2", "train/reconstruction_l2"),
    "kl": ("lambda_kl", "train/kl"),
    "vgg": ("lambda_vgg", "train/vgg_l1"),
    "segmentation": ("lambda_segmentation", "train/segmentation"),
    "rgb_texture": ("lambda_rgb_texture", "train/rgb_texture"),
}

# --adam_implementation -> torch.optim.Adam keyword arguments ("auto" picks by device in configure_optimizers).
ADAM_IMPLEMENTATIONS = {"fused": dict(fused=True), "foreach": dict(foreach=True), "loop": dict(foreach=False)}


class PipelineModule(pl.LightningModule):
    """VariTex end to end. ``forward(batch)`` runs the generator; ``training_step`` the G and D steps.

    Args:
        opt: namespace (or mapping) with the options of ``TrainOptions``; missing ones take the training
            defaults, invalid values raise ValueError naming the option.
        random_perceptual_weights: let training and validation run with random VGG-19 / AlexNet weights when
            the ImageNet weights are not available (for tests of the plumbing; loss and metric values are
            then meaningless, and a warning says so). Default: refuse, with a message how to provide them.
        generator_config: the generator's constructor arguments; default ``generator_config(opt)`` (the
            authors' widths). Stored in checkpoints, so that ``load_pipeline`` rebuilds the same networks.
    """

    def __init__(self, opt: Any, random_perceptual_weights: bool = False,
                 generator_config: GeneratorConfig | None = None):
        super().__init__()
        self.automatic_optimization = False
        self.opt = complete_options(opt)
        self.random_perceptual_weights = random_perceptual_weights
        self.generator = Generator(generator_config or default_generator_config(self.opt))
        if self.opt.lambda_gan > 0:
            self.discriminator = MultiscaleDiscriminator(**discriminator_arguments(self.opt))
        if self.opt.lambda_vgg > 0:
            self.loss_vgg = VGG19Loss(self.opt.path_vgg)
        # object.__setattr__ keeps the metric out of the registered children (see the module docstring).
        object.__setattr__(self, "metric_lpips", None if self.opt.no_lpips else LPIPSMetric())
        self._lpips_notice_shown = False
        if random_perceptual_weights:
            rank_zero_warn("PipelineModule(random_perceptual_weights=True): VGG-19 loss and LPIPS may run with "
                           "RANDOM weights; their values are then meaningless")

    def forward(self, batch: dict, std_multiplier: float = 1.0) -> dict:
        """Generator forward on a shallow copy of ``batch`` (IMAGE_IN_ENCODE, UV_RENDERED needed).

        Returns:
            dict with the inputs and every generator output (IMAGE_OUT, SEGMENTATION_PREDICTED, MASK_UV, ...).
        """
        return self.generator(dict(batch), std_multiplier)

    # The generator's stages under the names the authors' scripts call on the pipeline.
    def forward_encode(self, batch: dict, batch_idx: int | None = None) -> dict:
        return self.generator.forward_encode(batch, batch_idx)

    def forward_sample_style(self, batch: dict, batch_idx: int | None = None, std_multiplier: float = 1.0) -> dict:
        return self.generator.forward_sample_style(batch, batch_idx, std_multiplier)

    def forward_latent2image(self, batch: dict, batch_idx: int | None = None) -> dict:
        return self.generator.forward_latent2image(batch, batch_idx)

    # ----- losses -----------------------------------------------------------------------------------------

    def _active_terms(self):
        """Generator terms the options switch on. As by the authors, KL is always computed (and logged), and
        feature matching whenever there is a discriminator, whatever their weights."""
        active = {name for name, (option, _) in GENERATOR_TERMS.items() if getattr(self.opt, option) > 0}
        active.add("kl")
        active.discard("gan_features")
        if self.opt.lambda_gan > 0:
            active.add("gan_features")
        return active

    def _discriminate(self, fake, real):
        """D on cat([fake, real]) in one batch (as SPADE) -> (fake outputs, real outputs), lists per scale."""
        outputs = self.discriminator(torch.cat([fake, real], dim=0))
        n = fake.shape[0]
        return ([[x[:n] for x in scale] for scale in outputs], [[x[n:] for x in scale] for scale in outputs])

    def generator_loss_terms(self, outputs: dict) -> dict:
        """Loss terms of a generator forward's ``outputs`` (needs IMAGE_IN and SEGMENTATION_MASK as well).

        Returns:
            dict of 0-dim tensors: gan, gan_features, l2, kl, vgg, segmentation, rgb_texture (0 when switched
            off) and loss = sum of lambda * term.
        """
        opt = self.opt
        image_out, image_in = outputs[DIK.IMAGE_OUT], outputs[DIK.IMAGE_IN]
        active = self._active_terms()
        terms = {name: image_out.new_zeros(()) for name in GENERATOR_TERMS}
        terms["kl"] = kl_divergence(outputs[DIK.STYLE_LATENT_MU], outputs[DIK.STYLE_LATENT_STD]).mean()
        if "gan" in active:
            pred_fake, pred_real = self._discriminate(image_out, image_in)
            terms["gan"] = multiscale_gan_loss(pred_fake, True, opt.gan_mode, for_discriminator=False)
            terms["gan_features"] = feature_matching_loss(pred_fake, pred_real)
        if "l2" in active:
            terms["l2"] = l2_loss(image_out, image_in)
        if "vgg" in active:
            terms["vgg"] = self.loss_vgg(image_out, image_in)
        if "segmentation" in active:
            terms["segmentation"] = segmentation_loss(outputs[DIK.SEGMENTATION_PREDICTED],
                                                      outputs[DIK.SEGMENTATION_MASK])
        if "rgb_texture" in active:
            terms["rgb_texture"] = rgb_texture_loss(outputs[DIK.FACE_FEATUREIMAGE], image_in, outputs[DIK.MASK_UV])
        terms["loss"] = sum(getattr(opt, option) * terms[name] for name, (option, _) in GENERATOR_TERMS.items())
        return terms

    def discriminator_loss_terms(self, fake: torch.Tensor, real: torch.Tensor) -> dict:
        """Discriminator loss on images (B, 3, H, W); ``fake`` is detached.

        Returns:
            dict of 0-dim tensors: real (D(real) -> real), fake (D(fake) -> fake), discriminator = (real + fake) / 2,
            loss = lambda_gan * discriminator.
        """
        if self.opt.lambda_gan <= 0:
            raise ValueError("the discriminator loss needs --lambda_gan > 0 (there is no discriminator)")
        pred_fake, pred_real = self._discriminate(fake.detach(), real)
        real_loss = multiscale_gan_loss(pred_real, True, self.opt.gan_mode, for_discriminator=True)
        fake_loss = multiscale_gan_loss(pred_fake, False, self.opt.gan_mode, for_discriminator=True)
        unweighted = (real_loss + fake_loss) / 2
        return {"real": real_loss, "fake": fake_loss, "discriminator": unweighted,
                "loss": self.opt.lambda_gan * unweighted}

    # ----- training ---------------------------------------------------------------------------------------

    def configure_optimizers(self):
        """Adam for the generator (lr) and, with a discriminator, Adam for it (lr_discriminator), in the
        implementation --adam_implementation names (fused, foreach or loop: equal up to float rounding; auto:
        fused on GPUs, foreach on the CPU, where the fused kernel is slower)."""
        name = self.opt.adam_implementation
        if name == "auto":
            name = "foreach" if self.device.type == "cpu" else "fused"
        implementation = ADAM_IMPLEMENTATIONS[name]
        optimizers = [torch.optim.Adam(self.generator.parameters(), lr=self.opt.lr, **implementation)]
        if self.opt.lambda_gan > 0:
            optimizers.append(torch.optim.Adam(self.discriminator.parameters(), lr=self.opt.lr_discriminator,
                                               **implementation))
        return optimizers

    def training_step(self, batch: dict, batch_idx: int) -> None:
        """The authors' schedule per batch: a generator step, then (with a discriminator) a discriminator step."""
        optimizers = self.optimizers()
        if not isinstance(optimizers, (list, tuple)):
            optimizers = [optimizers]  # Lightning hands out a lone optimizer unwrapped
        generator_optimizer = optimizers[0]
        discriminator_optimizer = optimizers[1] if len(optimizers) > 1 else None
        batch_size = batch[DIK.IMAGE_IN].shape[0]

        # 1. Generator step, the discriminator frozen (its spectral-norm u, v still take their power iteration,
        #    as in the authors' training, because it runs in training mode).
        with self.only_optimizing(generator_optimizer):
            outputs = self(batch)
            terms = self.generator_loss_terms(outputs)
            self._update(generator_optimizer, terms["loss"])
        active = self._active_terms()
        logged = {log_name: terms[name].detach() for name, (_, log_name) in GENERATOR_TERMS.items() if name in active}
        # Authors' quirk: train/loss is the UNWEIGHTED sum of the terms, not the optimized loss.
        logged["train/loss"] = sum(logged.values())
        self.log_dict(logged, batch_size=batch_size)
        if discriminator_optimizer is None:  # --lambda_gan 0: no discriminator
            return

        # 2. Discriminator step on a generator forward recomputed without gradients, the authors' way (in the
        #    module's current mode, so the generator's BatchNorm statistics see the batch a second time), or,
        #    with --reuse_generator_output, on the image of step 1 (one generator forward instead of two).
        if self.opt.reuse_generator_output:
            fake = outputs[DIK.IMAGE_OUT].detach()
        else:
            with torch.no_grad():
                fake = self(batch)[DIK.IMAGE_OUT]
        with self.only_optimizing(discriminator_optimizer):
            terms = self.discriminator_loss_terms(fake, batch[DIK.IMAGE_IN])
            self._update(discriminator_optimizer, terms["loss"])
        self.log("train/discriminator", terms["discriminator"].detach(), batch_size=batch_size)

    @contextlib.contextmanager
    def only_optimizing(self, optimizer: torch.optim.Optimizer):
        """Inside the block only the parameters of ``optimizer`` require gradients."""
        self.toggle_optimizer(optimizer)
        try:
            yield
        finally:
            self.untoggle_optimizer(optimizer)

    def _update(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()

    def on_train_start(self):
        """Refuse to train the perceptual loss with random VGG-19 weights (checked after checkpoint restore)."""
        vgg = getattr(self, "loss_vgg", None)
        if vgg is not None and vgg.pretrained_source is None and not self.random_perceptual_weights:
            raise MissingPretrainedWeightsError(
                f"--lambda_vgg {self.opt.lambda_vgg} needs the ImageNet weights of VGG-19 (torchvision "
                f"IMAGENET1K_V1), which are never downloaded here: {vgg.missing_reason}. Provide them with "
                f"--path_vgg FILE (torchvision's vgg19-dcbb9e9d.pth), or put that file at "
                f"{torchvision_cache_file(torchvision.models.VGG19_Weights.IMAGENET1K_V1)}, or start "
                f"from a checkpoint that carries loss_vgg.* weights (the authors' does), or train without the "
                f"perceptual loss: --lambda_vgg 0")

    # ----- validation -------------------------------------------------------------------------------------

    def on_validation_start(self):
        """Say once that LPIPS is off, or refuse to compute it with a random AlexNet."""
        if self.metric_lpips is None:
            if not self._lpips_notice_shown:
                rank_zero_warn("LPIPS is switched off (--no_lpips): val/lpips is not computed")
                self._lpips_notice_shown = True
        elif self.metric_lpips.pretrained_source is None and not self.random_perceptual_weights:
            raise MissingPretrainedWeightsError(
                f"val/lpips needs torchvision's AlexNet ImageNet weights, which are never downloaded here: "
                f"{self.metric_lpips.missing_reason}. Put alexnet-owt-7be5be79.pth there, or pass --no_lpips "
                f"to validate without LPIPS")

    def validation_step(self, batch, batch_idx):
        """Logs val/psnr, val/ssim (0..255 images) and val/lpips (0..1 images, unless --no_lpips)."""
        # Authors' choice: validation renders a posterior sample (std_multiplier 1), not z = mu.
        outputs = self(batch, std_multiplier=1.0)
        fake, real = outputs[DIK.IMAGE_OUT], outputs[DIK.IMAGE_IN]
        metrics = {"val/psnr": psnr(fake, real), "val/ssim": ssim(fake, real)}
        if self.metric_lpips is not None:
            metrics["val/lpips"] = self.metric_lpips.to(fake.device)(fake, real)
        self.log_dict(metrics, batch_size=fake.shape[0], sync_dist=True)

    # ----- checkpoints ------------------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store the options and the generator's constructor arguments, so that ``load_pipeline`` can rebuild
        the architecture."""
        checkpoint["varitex_opt"] = options_to_dict(self.opt)
        checkpoint["varitex_generator"] = options_to_dict(dataclasses.asdict(self.generator.config))

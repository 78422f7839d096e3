"""PipelineModule: the generator, the discriminator, losses and metrics as one Lightning 2.x module.

Training follows the authors' alternating schedule (their Lightning-1.x two-optimizer ``training_step``),
written with manual optimization: per batch a generator step with the discriminator frozen, then a
discriminator step on a generator forward recomputed without gradients.

State: ``generator.*``, ``discriminator.*`` (lambda_gan > 0) and ``loss_vgg.*`` (lambda_vgg > 0), with the
authors' keys and shapes. The LPIPS metric is deliberately NOT part of the state_dict: it is a frozen
evaluation tool whose weights come from the lpips package and torchvision, not something training changes,
and the authors' ``metric_lpips.*`` entries (22 keys, 5 of them duplicates) would only bloat checkpoints.
It is kept as a plain attribute ``metric_lpips`` (moved to the data's device when used, always in eval mode);
``checkpoint.load_pipeline`` still fills it from a checkpoint that carries ``metric_lpips.*``.
"""
import lightning.pytorch as pl
import torch
import torchvision
from lightning.pytorch.utilities import rank_zero_warn

from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules.discriminator import MultiscaleDiscriminator
from varitex.modules.generator import Generator
from varitex.modules.loss import (VGG19Loss, feature_matching_loss, kl_divergence, l2_loss, multiscale_gan_loss,
                                  rgb_texture_loss, segmentation_loss)
from varitex.modules.metrics import LPIPSMetric, psnr, ssim
from varitex.modules.configs import complete_options, options_to_dict
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
    """

    def __init__(self, opt, random_perceptual_weights=False):
        super().__init__()
        self.automatic_optimization = False
        self.opt = complete_options(opt)
        self.random_perceptual_weights = random_perceptual_weights
        self.generator = Generator(self.opt)
        if self.opt.lambda_gan > 0:
            self.discriminator = MultiscaleDiscriminator(self.opt)
        if self.opt.lambda_vgg > 0:
            self.loss_vgg = VGG19Loss(self.opt.path_vgg)
        # object.__setattr__ keeps the metric out of the registered children (see the module docstring).
        object.__setattr__(self, "metric_lpips", None if self.opt.no_lpips else LPIPSMetric())
        self._lpips_notice_shown = False
        if random_perceptual_weights:
            rank_zero_warn("PipelineModule(random_perceptual_weights=True): VGG-19 loss and LPIPS may run with "
                           "RANDOM weights; their values are then meaningless")

    def forward(self, batch, std_multiplier=1.0):
        """Generator forward on a shallow copy of ``batch`` (IMAGE_IN_ENCODE, UV_RENDERED needed).

        Returns:
            dict with the inputs and every generator output (IMAGE_OUT, SEGMENTATION_PREDICTED, MASK_UV, ...).
        """
        return self.generator(dict(batch), std_multiplier)

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

    def generator_loss_terms(self, outputs):
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

    def generator_losses(self, batch, std_multiplier=1.0):
        """Generator forward (sampling z with ``std_multiplier``) and its loss terms; see generator_loss_terms."""
        return self.generator_loss_terms(self(batch, std_multiplier))

    def discriminator_loss_terms(self, fake, real):
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

    def discriminator_loss(self, batch, std_multiplier=1.0):
        """Discriminator loss with the generator forward recomputed without gradients (the authors' D step).

        As in the authors' schedule this forward runs in the module's current mode, so in training the
        generator's BatchNorm statistics are updated a second time per batch.
        """
        with torch.no_grad():
            fake = self(batch, std_multiplier)[DIK.IMAGE_OUT]
        return self.discriminator_loss_terms(fake, batch[DIK.IMAGE_IN])

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

    def training_step(self, batch, batch_idx):
        """The authors' schedule per batch: a generator step, then (with a discriminator) a discriminator step.

        With --reuse_generator_output the discriminator step takes the generator step's image instead of
        recomputing the generator forward: one generator forward per batch instead of two (other numerics).
        """
        optimizers = self.optimizers()
        if not isinstance(optimizers, (list, tuple)):
            optimizers = [optimizers]
        fake = self._generator_step(batch, optimizers[0])
        if len(optimizers) > 1:
            self._discriminator_step(batch, optimizers[1], fake=fake if self.opt.reuse_generator_output else None)

    def _optimize(self, optimizer, loss_fn):
        """One step of ``optimizer`` on ``loss_fn()["loss"]`` with every other parameter frozen; returns the terms."""
        self.toggle_optimizer(optimizer)
        try:
            terms = loss_fn()
            optimizer.zero_grad()
            self.manual_backward(terms["loss"])
            optimizer.step()
        finally:
            self.untoggle_optimizer(optimizer)
        return terms

    def _generator_step(self, batch, optimizer):
        """Generator update; the discriminator is frozen (its spectral-norm u, v still take their power
        iteration, as in the authors' training, because it runs in training mode).

        Returns:
            IMAGE_OUT (B, 3, H, W) of this step's generator forward, detached.
        """
        outputs = {}

        def losses():
            outputs.update(self(batch))
            return self.generator_loss_terms(outputs)

        terms = self._optimize(optimizer, losses)
        active = self._active_terms()
        logged = {log_name: terms[name].detach() for name, (_, log_name) in GENERATOR_TERMS.items() if name in active}
        # Authors' quirk: train/loss is the UNWEIGHTED sum of the terms, not the optimized loss.
        logged["train/loss"] = sum(logged.values())
        self.log_dict(logged, batch_size=batch[DIK.IMAGE_IN].shape[0])
        return outputs[DIK.IMAGE_OUT].detach()

    def _discriminator_step(self, batch, optimizer, fake=None):
        """Discriminator update on a fresh generator sample, the authors' way, or on ``fake`` (B, 3, H, W) when
        given (--reuse_generator_output); no gradients into the generator either way."""
        if fake is None:
            terms = self._optimize(optimizer, lambda: self.discriminator_loss(batch))
        else:
            terms = self._optimize(optimizer, lambda: self.discriminator_loss_terms(fake, batch[DIK.IMAGE_IN]))
        self.log("train/discriminator", terms["discriminator"].detach(), batch_size=batch[DIK.IMAGE_IN].shape[0])
        return terms

    def require_pretrained_weights(self, validation=True):
        """Raise MissingPretrainedWeightsError (one message saying how to provide them) when training would
        use the VGG-19 perceptual loss, or (``validation``) LPIPS, with random weights. Train calls it before
        writing anything; the hooks below check again after a checkpoint was restored."""
        vgg = getattr(self, "loss_vgg", None)
        if vgg is not None and vgg.pretrained_source is None and not self.random_perceptual_weights:
            raise MissingPretrainedWeightsError(
                f"--lambda_vgg {self.opt.lambda_vgg} needs the ImageNet weights of VGG-19 (torchvision "
                f"IMAGENET1K_V1), which are never downloaded here: {vgg.missing_reason}. Provide them with "
                f"--path_vgg FILE (torchvision's vgg19-dcbb9e9d.pth), or put that file at "
                f"{torchvision_cache_file(torchvision.models.VGG19_Weights.IMAGENET1K_V1)}, or start "
                f"from a checkpoint that carries loss_vgg.* weights (the authors' does), or train without the "
                f"perceptual loss: --lambda_vgg 0")
        lpips = self.metric_lpips
        if validation and lpips is not None and lpips.pretrained_source is None and not self.random_perceptual_weights:
            raise MissingPretrainedWeightsError(
                f"val/lpips needs torchvision's AlexNet ImageNet weights, which are never downloaded here: "
                f"{lpips.missing_reason}. Put alexnet-owt-7be5be79.pth there, or pass --no_lpips "
                f"to validate without LPIPS")

    def on_train_start(self):
        """Refuse to train the perceptual loss with random VGG-19 weights (checked after checkpoint restore)."""
        self.require_pretrained_weights(validation=False)

    # ----- validation -------------------------------------------------------------------------------------

    def on_validation_start(self):
        """Say once that LPIPS is off, or refuse to compute it with a random AlexNet."""
        if self.metric_lpips is None:
            if not self._lpips_notice_shown:
                rank_zero_warn("LPIPS is switched off (--no_lpips): val/lpips is not computed")
                self._lpips_notice_shown = True
        else:
            self.require_pretrained_weights(validation=True)

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

    def on_save_checkpoint(self, checkpoint):
        """Store the options, so that ``checkpoint.load_pipeline`` can rebuild the architecture."""
        checkpoint["varitex_opt"] = options_to_dict(self.opt)

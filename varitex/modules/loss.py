"""Loss terms of VariTex (weights: the --lambda_* options): KL, L2, GAN (ls / original / hinge / w), feature matching,
segmentation BCE, RGB texture and the VGG-19 perceptual loss.

GAN losses are tiny pure functions of the discriminator's prediction maps; the multi-scale helpers average
them over scales as the authors (SPADE's GANLoss) do.
"""
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from varitex.modules.pretrained import load_torchvision_features


def kl_divergence(mu, std):
    """KL as the authors compute it: KL(N(0, 1) || N(mu, std)) per dimension, mean over dimensions.

    Note the argument order (prior first), the reverse of the usual VAE term; kept because the released
    model was trained with it. Equals log(std) + (1 + mu^2) / (2 std^2) - 1/2.

    Args:
        mu, std: (B, D) float, std > 0.
    Returns:
        (B,) float.
    """
    var_ratio = (1 / std) ** 2
    mean_term = (mu / std) ** 2
    return (0.5 * (var_ratio + mean_term - 1 - torch.log(var_ratio))).mean(1)


def l2_loss(fake, real):
    """Mean squared error over all elements -> 0-dim tensor."""
    return torch.mean((fake - real) ** 2)


def rgb_texture_loss(face_featureimage, image, mask_uv):
    """L2 between the first three feature channels and the image, both zeroed outside MASK_UV.

    Args:
        face_featureimage: (B, C >= 3, H, W); image: (B, 3, H, W); mask_uv: (B, 1, H, W) bool or float.
    """
    mask = mask_uv.to(image.dtype)
    return l2_loss(face_featureimage[:, :3] * mask, image * mask)


def segmentation_loss(predicted, target):
    """Binary cross-entropy of probabilities (B, 1, H, W) in (0, 1) against a (possibly soft) target in [0, 1].

    Always computed in float32: ``binary_cross_entropy`` is refused under autocast (the authors' BCELoss
    crashes in mixed precision).
    """
    with torch.autocast(device_type=predicted.device.type, enabled=False):
        return F.binary_cross_entropy(predicted.float(), target.float())


def ls_gan(pred, target_is_real, for_discriminator=True):
    """Least-squares GAN: mean((pred - target)^2), target 1 for real, 0 for fake."""
    return F.mse_loss(pred, torch.full_like(pred, float(target_is_real)))


def original_gan(pred, target_is_real, for_discriminator=True):
    """Non-saturating GAN: binary cross-entropy of logits against 1 (real) or 0 (fake)."""
    return F.binary_cross_entropy_with_logits(pred, torch.full_like(pred, float(target_is_real)))


def hinge_gan(pred, target_is_real, for_discriminator=True):
    """Hinge GAN: D: mean(relu(1 - pred)) for real, mean(relu(1 + pred)) for fake; G: -mean(pred)."""
    if not for_discriminator:
        if not target_is_real:
            raise ValueError("the generator's hinge loss must aim for real")
        return -pred.mean()
    return F.relu(1 - pred).mean() if target_is_real else F.relu(1 + pred).mean()


def wasserstein_gan(pred, target_is_real, for_discriminator=True):
    """Wasserstein GAN critic loss: -mean(pred) for real, mean(pred) for fake."""
    return -pred.mean() if target_is_real else pred.mean()


GAN_LOSSES = {"ls": ls_gan, "original": original_gan, "hinge": hinge_gan, "w": wasserstein_gan}


def multiscale_gan_loss(predictions, target_is_real, gan_mode, for_discriminator):
    """GAN loss on the final maps of a multi-scale discriminator, averaged over scales.

    Args:
        predictions: list (one per scale) of lists of D outputs; the last of each is the prediction map.
        gan_mode: a key of GAN_LOSSES.
    Returns:
        0-dim tensor.
    """
    if gan_mode not in GAN_LOSSES:
        raise ValueError(f"gan_mode must be one of {sorted(GAN_LOSSES)}, got '{gan_mode}'")
    loss_fn = GAN_LOSSES[gan_mode]
    return sum(loss_fn(outputs[-1], target_is_real, for_discriminator) for outputs in predictions) / len(predictions)


def feature_matching_loss(fake_outputs, real_outputs):
    """L1 between D features of fake and (detached) real images, every group but the last (the prediction),
    summed over groups, averaged over scales (pix2pixHD / SPADE)."""
    total = 0
    for fake_scale, real_scale in zip(fake_outputs, real_outputs):
        for fake, real in zip(fake_scale[:-1], real_scale[:-1]):
            total = total + F.l1_loss(fake, real.detach())
    return total / len(fake_outputs)


# torchvision vgg19().features indices of each slice; slices end after relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
VGG19_SLICES = (range(0, 2), range(2, 7), range(7, 12), range(12, 21), range(21, 30))
VGG19_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)  # features[:30]
VGG19_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def vgg19_feature_layers():
    """torchvision's vgg19().features[:30] as a list (3x3 convs with ReLU, 2x2 max-pools)."""
    layers, channels = [], 3
    for entry in VGG19_CONFIG:
        if entry == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, entry, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = entry
    return layers


class VGG19Features(nn.Module):
    """VGG-19 cut into ``slice1 .. slice5``; layers keep torchvision's indices as names (``slice2.5.weight``)."""

    def __init__(self):
        super().__init__()
        layers = vgg19_feature_layers()
        for number, indices in enumerate(VGG19_SLICES, start=1):
            block = nn.Sequential()
            for index in indices:
                block.add_module(str(index), layers[index])
            self.add_module(f"slice{number}", block)

    def forward(self, x):
        """x: (B, 3, H, W) -> list of the five slice outputs."""
        outputs = []
        for block in self.children():
            x = block(x)
            outputs.append(x)
        return outputs


class VGG19Loss(nn.Module):
    """Perceptual loss: sum_i w_i * L1(VGG_i(fake), VGG_i(real)), w = 1/32, 1/16, 1/8, 1/4, 1.

    Applied to the ImageNet-normalized images as they are (the authors' ``ImageNetVGG19Loss``). The VGG
    weights are frozen. They come from torchvision's ImageNet weights (``IMAGENET1K_V1``): ``weights_path``
    or torchvision's cache, never downloaded; or from a state_dict that carries them (a checkpoint with
    ``loss_vgg.*``). ``pretrained_source`` says where they came from; None means random weights, which
    ``PipelineModule`` refuses to train with.
    """

    def __init__(self, weights_path=None):
        super().__init__()
        self.vgg = VGG19Features()
        self.vgg.requires_grad_(False)
        self.pretrained_source, self.missing_reason = load_torchvision_features(
            self.vgg.children(), torchvision.models.VGG19_Weights.IMAGENET1K_V1, weights_path)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if any(key.startswith(prefix) for key in state_dict):
            self.pretrained_source = "state_dict"
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, fake, real):
        """fake, real: (B, 3, H, W) ImageNet-normalized -> 0-dim tensor; gradients flow into ``fake`` only."""
        fake_features = self.vgg(fake)
        with torch.no_grad():
            real_features = self.vgg(real)
        return sum(weight * F.l1_loss(f, r) for weight, f, r in zip(VGG19_LAYER_WEIGHTS, fake_features, real_features))

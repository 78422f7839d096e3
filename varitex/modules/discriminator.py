"""Multi-scale PatchGAN discriminator as in SPADE (Park et al. 2019), with the authors' module names."""
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

NORM_TYPES = ("instance", "batch", "none")
KERNEL_SIZE = 4
PADDING = 2          # ceil((kernel - 1) / 2), as in SPADE
MAX_FEATURES = 512


def parse_norm(norm):
    """'spectralinstance' -> (True, 'instance'); 'batch' -> (False, 'batch'); 'spectral' -> (True, 'none')."""
    spectral = norm.startswith("spectral")
    subnorm = norm[len("spectral"):] if spectral else norm
    if spectral and subnorm == "":
        subnorm = "none"
    if subnorm not in NORM_TYPES:
        raise ValueError(f"norm_discriminator must be [spectral]{{{'|'.join(NORM_TYPES)}}} "
                         f"(e.g. 'spectralinstance'), got '{norm}'")
    return spectral, subnorm


def normalized_conv(in_ch, out_ch, stride, norm):
    """4x4 conv with the requested normalization: ``Sequential(conv, norm)`` or a bare conv for 'none'.

    Old-style ``torch.nn.utils.spectral_norm`` (weight_orig / weight_u / weight_v), as in the authors'
    checkpoint: one power iteration per training forward, the stored u, v in eval mode.
    """
    spectral, subnorm = parse_norm(norm)
    # The conv bias is meaningless before a normalization layer, so it only exists without one.
    conv = nn.Conv2d(in_ch, out_ch, KERNEL_SIZE, stride=stride, padding=PADDING, bias=subnorm == "none")
    if spectral:
        conv = spectral_norm(conv)
    if subnorm == "none":
        return conv
    norm_layer = nn.InstanceNorm2d(out_ch, affine=False) if subnorm == "instance" else nn.BatchNorm2d(out_ch)
    return nn.Sequential(conv, norm_layer)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: groups ``model0 .. model<n_layers>``; returns every group's output (for feature matching).

    model0: conv 4x4/2 (3 -> nc) + LeakyReLU(0.2); model1..n-1: normalized conv (features doubling up to 512,
    stride 2 except the last, stride 1) + LeakyReLU(0.2); model<n_layers>: conv 4x4/1 -> 1 channel.
    """

    def __init__(self, nc=64, n_layers=4, norm="spectralinstance", input_channels=3):
        super().__init__()
        groups = [[nn.Conv2d(input_channels, nc, KERNEL_SIZE, stride=2, padding=PADDING), nn.LeakyReLU(0.2)]]
        features = nc
        for n in range(1, n_layers):
            previous, features = features, min(features * 2, MAX_FEATURES)
            stride = 1 if n == n_layers - 1 else 2
            groups.append([normalized_conv(previous, features, stride, norm), nn.LeakyReLU(0.2)])
        groups.append([nn.Conv2d(features, 1, KERNEL_SIZE, stride=1, padding=PADDING)])
        for index, group in enumerate(groups):
            self.add_module(f"model{index}", nn.Sequential(*group))

    def forward(self, image):
        """image: (B, 3, H, W) -> list of n_layers + 1 tensors; the last is the (B, 1, h, w) prediction map."""
        outputs = []
        x = image
        for group in self.children():
            x = group(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """``num_discriminators`` PatchGANs; discriminator_i sees the image average-pooled i times (3x3, stride 2).

    Args:
        num_discriminators: number of scales.
        nc: features of the first layer of each PatchGAN.
        n_layers: layers of each PatchGAN (groups model0 .. model<n_layers>).
        norm: normalization of the middle layers, e.g. "spectralinstance" (see parse_norm).
    """

    def __init__(self, num_discriminators: int, nc: int, n_layers: int, norm: str):
        super().__init__()
        parse_norm(norm)
        for index in range(num_discriminators):
            self.add_module(f"discriminator_{index}", NLayerDiscriminator(nc, n_layers, norm))

    def forward(self, image):
        """image: (B, 3, H, W) -> list (one per scale) of lists of intermediate outputs (see NLayerDiscriminator)."""
        results = []
        for index, discriminator in enumerate(self.children()):
            if index > 0:
                image = F.avg_pool2d(image, kernel_size=3, stride=2, padding=1, count_include_pad=False)
            results.append(discriminator(image))
        return results

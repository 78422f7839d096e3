"""U-Net (Ronneberger et al. 2015) in pl_bolts' layout:
``layers`` = [DoubleConv, Down x (L-1), Up x (L-1), 1x1 conv]."""
import torch
import torch.nn.functional as F
from torch import nn


class DoubleConv(nn.Module):
    """(3x3 conv with bias -> BatchNorm -> ReLU) x 2."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.net(x)


class Down(nn.Module):
    """2x2 max-pool, then DoubleConv."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.net = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2), DoubleConv(in_ch, out_ch))

    def forward(self, x):
        return self.net(x)


class Up(nn.Module):
    """Transposed conv (k2, s2) halving the channels, zero-pad to the skip's size, cat([skip, up]), DoubleConv."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_ch, in_ch // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_ch, out_ch)

    def forward(self, x, skip):
        x = self.upsample(x)
        diff_h = skip.shape[2] - x.shape[2]
        diff_w = skip.shape[3] - x.shape[3]
        x = F.pad(x, [diff_w // 2, diff_w - diff_w // 2, diff_h // 2, diff_h - diff_h // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """(B, input_channels, H, W) -> (B, output_channels, H, W), no output activation.

    Args:
        output_channels: channels of the output.
        input_channels: channels of the input.
        num_layers: levels; features double per level (features_start * 2**(num_layers-1) at the bottom).
        features_start: features of the top level.
    """

    def __init__(self, output_channels, input_channels, num_layers=5, features_start=64):
        super().__init__()
        self.num_layers = num_layers
        layers = [DoubleConv(input_channels, features_start)]
        features = features_start
        for _ in range(num_layers - 1):
            layers.append(Down(features, features * 2))
            features *= 2
        for _ in range(num_layers - 1):
            layers.append(Up(features, features // 2))
            features //= 2
        layers.append(nn.Conv2d(features, output_channels, kernel_size=1))
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        skips = [self.layers[0](x)]
        for down in self.layers[1:self.num_layers]:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.layers[self.num_layers:-1]:
            x = up(x, skips.pop())
        return self.layers[-1](x)

"""Neural renderer: the full feature image -> RGB image and foreground probability."""
import torch
from torch import nn

from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules.unet import UNet


class Feature2ImageRenderer(nn.Module):
    """FULL_FEATUREIMAGE (B, 2*texture_nc, H, W) -> IMAGE_OUT (B, 3, H, W) and SEGMENTATION_PREDICTED (B, 1, H, W).

    U-Net output channel 0 goes through a sigmoid (foreground probability in (0, 1)); channels 1..3 are the
    image in ImageNet-normalized space, without activation and without masking.

    Args:
        input_channels: channels of FULL_FEATUREIMAGE (2 * texture_nc).
        num_layers: U-Net levels.
        features_start: U-Net features at the top level.
    """

    def __init__(self, input_channels: int, num_layers: int, features_start: int):
        super().__init__()
        self.unet = UNet(output_channels=4, input_channels=input_channels, num_layers=num_layers,
                         features_start=features_start)

    def forward(self, batch):
        out = self.unet(batch[DIK.FULL_FEATUREIMAGE])
        batch[DIK.SEGMENTATION_PREDICTED] = torch.sigmoid(out[:, :1])
        batch[DIK.IMAGE_OUT] = out[:, 1:]
        return batch

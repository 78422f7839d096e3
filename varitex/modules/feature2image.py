"""Neural renderer: the full feature image -> RGB image and foreground probability."""
import torch
from torch import nn

from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules.unet import UNet


class Feature2ImageRenderer(nn.Module):
    """FULL_FEATUREIMAGE (B, 2*texture_nc, H, W) -> IMAGE_OUT (B, 3, H, W) and SEGMENTATION_PREDICTED (B, 1, H, W).

    U-Net output channel 0 goes through a sigmoid (foreground probability in (0, 1)); channels 1..3 are the
    image in ImageNet-normalized space, without activation and without masking.
    """

    def __init__(self, opt):
        super().__init__()
        self.unet = UNet(output_channels=4, input_channels=2 * opt.texture_nc,
                         num_layers=opt.feature2image_num_layers, features_start=opt.nc_feature2image)

    def forward(self, batch):
        out = self.unet(batch[DIK.FULL_FEATUREIMAGE])
        batch[DIK.SEGMENTATION_PREDICTED] = torch.sigmoid(out[:, :1])
        batch[DIK.IMAGE_OUT] = out[:, 1:]
        return batch

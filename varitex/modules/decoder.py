"""Texture decoder and additive decoder: ResNet-18 decoders run from a latent code up to an image.

Both follow pl_bolts' ``DecoderBlock`` (a ResNet basic block in reverse: the width change and the nearest x2
upsampling happen in the second conv) and the authors' stage layout ``initial, layer0 .. layer4``, each stage
doubling the resolution from 4x4 (the last one only for texture_dim 256).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules.encoder import conv1x1, conv3x3

STAGE_NAMES = ("initial", "layer0", "layer1", "layer2", "layer3", "layer4")
TEXTURE_STAGE_PLANES = (256, 256, 256, 128, 64, 64)    # face texture decoder
ADDITIVE_STAGE_PLANES = (512, 256, 256, 128, 64, 64)   # additive decoder
LATENT_CHANNELS = 512                                  # channels of the 4x4 map made from the latent code
TEXTURE_DIMS = (128, 256)


def resize_conv(conv, scale):
    """``conv`` preceded by nearest upsampling when ``scale`` != 1 (the conv then sits at index 1)."""
    if scale == 1:
        return conv
    return nn.Sequential(nn.Upsample(scale_factor=scale, mode="nearest"), conv)


class DecoderBlock(nn.Module):
    """Residual decoder block, optionally conditioned on an image.

    Args:
        inplanes: input channels (also the channels after conv1).
        planes: output channels.
        scale: 2 to double the resolution (in conv2 and in the shortcut), 1 to keep it.
        condition_channels: >0 makes the block conditioned: the condition image is bilinearly resized to the
            block input and concatenated after the features, before conv1 (the shortcut sees features only).
    """

    def __init__(self, inplanes, planes, scale=1, condition_channels=0):
        super().__init__()
        self.conv1 = conv3x3(inplanes + condition_channels, inplanes)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = resize_conv(conv3x3(inplanes, planes), scale)
        self.bn2 = nn.BatchNorm2d(planes)
        self.upsample = None
        if scale != 1 or inplanes != planes:
            self.upsample = nn.Sequential(resize_conv(conv1x1(inplanes, planes), scale), nn.BatchNorm2d(planes))

    def forward(self, x, condition=None):
        """x: (B, inplanes, h, w); condition: (B, condition_channels, H', W') or None -> (B, planes, h*s, w*s)."""
        out = x
        if condition is not None:
            condition = F.interpolate(condition, size=x.shape[-2:], mode="bilinear", align_corners=False)
            out = torch.cat([x, condition], dim=1)
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.bn2(self.conv2(out))
        identity = x if self.upsample is None else self.upsample(x)
        return self.relu(out + identity)


class DecoderStage(nn.ModuleList):
    """Two decoder blocks; the first changes width and resolution."""

    def __init__(self, inplanes, planes, scale, condition_channels=0):
        super().__init__([DecoderBlock(inplanes, planes, scale, condition_channels),
                          DecoderBlock(planes, planes, 1, condition_channels)])

    def forward(self, x, condition=None):
        for block in self:
            x = block(x, condition)
        return x


class ResNetDecoder(nn.Module):
    """Latent vector -> (B, out_channels, S, S) with S = 128 or 256.

    Args:
        latent_dim: size of the input vector.
        out_channels: channels of the output (texture_nc).
        stage_planes: output channels of the six stages.
        texture_dim: 256 (every stage doubles: 4 -> 256) or 128 (the last stage keeps the resolution).
        broadcast_latent: False: ``linear`` maps to C*4*4 values reshaped to (C, 4, 4) (texture decoder);
            True: ``linear`` maps to C values repeated over a 4x4 grid (additive decoder); C = latent_channels.
        condition_channels: channels of the condition image fed to every block (0: unconditioned).
        latent_channels: channels C of the 4x4 map made from the latent code.
    """

    def __init__(self, latent_dim: int, out_channels: int, stage_planes: tuple[int, ...], texture_dim: int,
                 broadcast_latent: bool = False, condition_channels: int = 0,
                 latent_channels: int = LATENT_CHANNELS):
        super().__init__()
        if texture_dim not in TEXTURE_DIMS:
            raise ValueError(f"texture_dim must be one of {TEXTURE_DIMS}, got {texture_dim}")
        if len(stage_planes) != len(STAGE_NAMES):
            raise ValueError(f"stage_planes needs {len(STAGE_NAMES)} widths ({', '.join(STAGE_NAMES)}), "
                             f"got {tuple(stage_planes)}")
        self.broadcast_latent = broadcast_latent
        self.latent_channels = latent_channels
        self.linear = nn.Linear(latent_dim, latent_channels * (1 if broadcast_latent else 16))
        inplanes = latent_channels
        for index, (name, planes) in enumerate(zip(STAGE_NAMES, stage_planes)):
            last = index == len(STAGE_NAMES) - 1
            scale = 1 if last and texture_dim == 128 else 2
            self.add_module(name, DecoderStage(inplanes, planes, scale, condition_channels))
            inplanes = planes
        self.conv1 = nn.Conv2d(inplanes, out_channels, kernel_size=3, padding=1, bias=False)

    def forward(self, latent, condition=None):
        """latent: (B, latent_dim); condition: (B, C, H, W) or None -> (B, out_channels, S, S)."""
        x = self.linear(latent)
        if self.broadcast_latent:
            x = x.view(x.shape[0], self.latent_channels, 1, 1).expand(-1, -1, 4, 4)
        else:
            x = x.view(x.shape[0], self.latent_channels, 4, 4)
        for name in STAGE_NAMES:
            x = getattr(self, name)(x, condition)
        return self.conv1(x)


class Decoder(nn.Module):
    """Face texture decoder: LATENT_INTERIOR (B, code_dim) -> TEXTURE_PERSON (B, texture_nc, T, T), T = texture_dim.

    Args:
        code_dim: size of LATENT_INTERIOR (half of the generator's latent_dim).
        texture_nc: channels of the neural texture.
        texture_dim: texture resolution T, 128 or 256.
        stage_planes: output channels of the six stages ``initial, layer0 .. layer4``.
        latent_channels: channels of the 4x4 map the code is reshaped to.
    """

    def __init__(self, code_dim: int, texture_nc: int, texture_dim: int,
                 stage_planes: tuple[int, ...] = TEXTURE_STAGE_PLANES, latent_channels: int = LATENT_CHANNELS):
        super().__init__()
        self.decoder = ResNetDecoder(code_dim, texture_nc, stage_planes, texture_dim,
                                     latent_channels=latent_channels)

    def forward(self, batch):
        batch[DIK.TEXTURE_PERSON] = self.decoder(batch[DIK.LATENT_INTERIOR])
        return batch


class AdditiveDecoder(nn.Module):
    """Additive decoder: LATENT_EXTERIOR (B, latent_dim/2), conditioned on FACE_FEATUREIMAGE (B, texture_nc, H, W)
    -> ADDITIVE_FEATUREIMAGE (B, texture_nc, H, W), the features of hair, ears, neck and background.

    Args: as ``Decoder`` (code_dim is the size of LATENT_EXTERIOR); every block is conditioned on the
        texture_nc channels of FACE_FEATUREIMAGE.
    """

    def __init__(self, code_dim: int, texture_nc: int, texture_dim: int,
                 stage_planes: tuple[int, ...] = ADDITIVE_STAGE_PLANES, latent_channels: int = LATENT_CHANNELS):
        super().__init__()
        self.decoder = ResNetDecoder(code_dim, texture_nc, stage_planes, texture_dim, broadcast_latent=True,
                                     condition_channels=texture_nc, latent_channels=latent_channels)

    def forward(self, batch):
        # Detached: the additive branch must not send gradients into the face texture decoder.
        condition = batch[DIK.FACE_FEATUREIMAGE].detach()
        features = self.decoder(batch[DIK.LATENT_EXTERIOR], condition)
        if features.shape[-2:] != condition.shape[-2:]:
            # The authors' decoder always outputs texture_dim x texture_dim and fails for other image sizes;
            # we resize to the image so that small demo images (e.g. 64x64 with texture_dim 128) work.
            features = F.interpolate(features, size=condition.shape[-2:], mode="bilinear", align_corners=False)
        batch[DIK.ADDITIVE_FEATUREIMAGE] = features
        return batch

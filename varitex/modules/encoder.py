"""Image encoder: a ResNet-18 without the stride-2 stem (pl_bolts' ``resnet18_encoder(False, False)``)."""
from __future__ import annotations

from torch import nn

from varitex.data.keys_enum import DataItemKey as DIK

STAGE_PLANES = (64, 128, 256, 512)   # output channels of layer1 .. layer4; the last is the code size


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block; a 1x1 conv + BN shortcut (``downsample``) where the shape changes."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Encoder(nn.Module):
    """ResNet-18 trunk with a 3x3 stride-1 first conv and no max-pool: the first stage runs at full resolution.

    The authors' network also has ``maxpool = MaxPool2d(kernel_size=1)``, an identity without state; it is
    left out here.

    Args:
        in_channels: image channels.
        stage_planes: output channels of the stem and layer1 (both the first entry), layer2, layer3, layer4.
    """

    def __init__(self, in_channels: int = 3, stage_planes: tuple[int, ...] = STAGE_PLANES):
        super().__init__()
        if len(stage_planes) != 4:
            raise ValueError(f"stage_planes needs 4 widths (layer1 .. layer4), got {tuple(stage_planes)}")
        self.conv1 = conv3x3(in_channels, stage_planes[0])
        self.bn1 = nn.BatchNorm2d(stage_planes[0])
        self.relu = nn.ReLU(inplace=True)
        inplanes = stage_planes[0]
        for index, planes in enumerate(stage_planes):
            self.add_module(f"layer{index + 1}", self._make_layer(inplanes, planes, stride=1 if index == 0 else 2))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    @staticmethod
    def _make_layer(inplanes, planes, stride):
        return nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes))

    def forward(self, image):
        """image: (B, 3, H, W) float -> (B, stage_planes[-1]) float, >= 0 (after ReLU and average pooling)."""
        x = self.relu(self.bn1(self.conv1(image)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


class Encoder(nn.Module):
    """Encodes IMAGE_IN_ENCODE (B, 3, H, W), ImageNet-normalized, into IMAGE_ENCODED (B, out_dim).

    Args:
        stage_planes: widths of the ResNet-18 stages; out_dim = stage_planes[-1] (512 for the authors').
    """

    def __init__(self, stage_planes: tuple[int, ...] = STAGE_PLANES):
        super().__init__()
        self.encoder = ResNet18Encoder(stage_planes=stage_planes)
        self.out_dim = stage_planes[-1]

    def forward(self, batch):
        batch[DIK.IMAGE_ENCODED] = self.encoder(batch[DIK.IMAGE_IN_ENCODE])
        return batch

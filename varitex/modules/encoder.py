"""Image encoder: a ResNet-18 without the stride-2 stem (pl_bolts' ``resnet18_encoder(False, False)``)."""
from torch import nn

from varitex.data.keys_enum import DataItemKey as DIK

ENCODER_OUT_DIM = 512


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
    """

    def __init__(self, in_channels=3):
        super().__init__()
        self.conv1 = conv3x3(in_channels, 64)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(64, 64, stride=1)
        self.layer2 = self._make_layer(64, 128, stride=2)
        self.layer3 = self._make_layer(128, 256, stride=2)
        self.layer4 = self._make_layer(256, ENCODER_OUT_DIM, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    @staticmethod
    def _make_layer(inplanes, planes, stride):
        return nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes))

    def forward(self, image):
        """image: (B, 3, H, W) float -> (B, 512) float, non-negative (after ReLU and average pooling)."""
        x = self.relu(self.bn1(self.conv1(image)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


class Encoder(nn.Module):
    """Encodes IMAGE_IN_ENCODE (B, 3, H, W), ImageNet-normalized, into IMAGE_ENCODED (B, 512).

    ``opt`` is accepted so that every network of the generator is built as ``Network(opt)``; no option
    changes the encoder.
    """

    def __init__(self, opt=None):
        super().__init__()
        self.encoder = ResNet18Encoder()

    def forward(self, batch):
        batch[DIK.IMAGE_ENCODED] = self.encoder(batch[DIK.IMAGE_IN_ENCODE])
        return batch

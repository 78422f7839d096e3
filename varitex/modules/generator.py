"""The VariTex generator: image -> variational latent -> neural face texture + additive features -> image.

Each stage method reads and adds keys of one batch dictionary (docs/architecture.md lists which stage makes
which key) and returns it; the dictionary passed in is modified in place. The stage methods take the
authors' ``batch_idx`` argument, which nothing uses.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from varitex.data.image_ops import uv_mask
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules import decoder, encoder
from varitex.modules.decoder import AdditiveDecoder, Decoder
from varitex.modules.encoder import Encoder
from varitex.modules.feature2image import Feature2ImageRenderer


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that shapes the generator; ``varitex.modules.configs.generator_config(opt)`` makes it from
    the authors' options. The widths default to the authors' networks."""

    latent_dim: int                   # size of z: z[:, :latent_dim/2] drives the face texture, the rest the additive decoder
    texture_nc: int                   # channels of the neural texture and of the additive feature image
    texture_dim: int                  # neural texture resolution, 128 or 256
    uv_mask_value: float              # feature value outside MASK_UV
    feature2image_num_layers: int     # U-Net levels
    nc_feature2image: int             # U-Net features at the top level
    encoder_planes: tuple[int, ...] = encoder.STAGE_PLANES                   # ResNet-18 stage widths
    texture_decoder_planes: tuple[int, ...] = decoder.TEXTURE_STAGE_PLANES   # face texture decoder stage widths
    additive_decoder_planes: tuple[int, ...] = decoder.ADDITIVE_STAGE_PLANES  # additive decoder stage widths
    decoder_latent_channels: int = decoder.LATENT_CHANNELS                  # channels of the decoders' 4x4 start


class Generator(nn.Module):
    """Generator G(z, uv): the encoder, the two decoders and the renderer.

    Module order matters for nothing but matches the authors' state_dict: fc_mu, fc_var come first.

    Args:
        config: GeneratorConfig.
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.latent_dim = config.latent_dim
        self.uv_mask_value = config.uv_mask_value
        code_dim = config.latent_dim // 2
        encoded_dim = config.encoder_planes[-1]
        self.fc_mu = nn.Linear(encoded_dim, config.latent_dim)
        self.fc_var = nn.Linear(encoded_dim, config.latent_dim)
        self.encoder = Encoder(config.encoder_planes)
        self.decoder = Decoder(code_dim, config.texture_nc, config.texture_dim, config.texture_decoder_planes,
                               config.decoder_latent_channels)
        self.decoder_exterior = AdditiveDecoder(code_dim, config.texture_nc, config.texture_dim,
                                                config.additive_decoder_planes, config.decoder_latent_channels)
        self.texture2image = Feature2ImageRenderer(2 * config.texture_nc, config.feature2image_num_layers,
                                                   config.nc_feature2image)

    def forward(self, batch: dict, std_multiplier: float = 1.0) -> dict:
        """All stages. Needs IMAGE_IN_ENCODE (B, 3, H, W) and UV_RENDERED (B, H, W, 2)."""
        batch = self.forward_encode(batch)
        batch = self.forward_encoded2latent_distribution(batch)
        batch = self.forward_sample_style(batch, std_multiplier=std_multiplier)
        return self.forward_latent2image(batch)

    def forward_encode(self, batch: dict, batch_idx: int | None = None) -> dict:
        """IMAGE_IN_ENCODE -> IMAGE_ENCODED (B, 512); not yet a distribution."""
        return self.encoder(batch)

    def forward_encoded2latent_distribution(self, batch: dict) -> dict:
        """IMAGE_ENCODED -> STYLE_LATENT_MU, STYLE_LATENT_STD (B, latent_dim); std = exp(log_var / 2) > 0."""
        encoded = batch[DIK.IMAGE_ENCODED]
        batch[DIK.STYLE_LATENT_MU] = self.fc_mu(encoded)
        batch[DIK.STYLE_LATENT_STD] = torch.exp(self.fc_var(encoded) / 2)
        return batch

    def forward_sample_style(self, batch: dict, batch_idx: int | None = None, std_multiplier: float = 1.0) -> dict:
        """STYLE_LATENT = mu + std * std_multiplier * eps, eps ~ N(0, I); std_multiplier = 0 gives exactly mu.

        (The authors sample ``Normal(mu, std * std_multiplier)``, which current PyTorch rejects for 0.)
        """
        mu, std = batch[DIK.STYLE_LATENT_MU], batch[DIK.STYLE_LATENT_STD]
        if std_multiplier == 0:
            batch[DIK.STYLE_LATENT] = mu
        else:
            batch[DIK.STYLE_LATENT] = mu + std * std_multiplier * torch.randn_like(mu)
        return batch

    def forward_latent2image(self, batch: dict, batch_idx: int | None = None) -> dict:
        """STYLE_LATENT (B, latent_dim) and UV_RENDERED (B, H, W, 2) -> every feature image, IMAGE_OUT and
        SEGMENTATION_PREDICTED. The output is not masked: the renderer learns the background itself."""
        batch = self.forward_latent2featureimage(batch)
        return self.texture2image(batch)

    def forward_texture2image(self, batch: dict) -> dict:
        """`forward_latent2image` from an already decoded identity: TEXTURE_PERSON (B, texture_nc, T, T),
        LATENT_EXTERIOR (B, latent_dim/2) and UV_RENDERED (B, H, W, 2) -> every feature image, IMAGE_OUT and
        SEGMENTATION_PREDICTED. The texture does not depend on the pose, so an identity shown in many poses
        needs `forward_latent2texture` once and this per pose; the numbers are those of `forward_latent2image`."""
        return self.texture2image(self.forward_texture2featureimage(batch))

    def forward_latent2featureimage(self, batch: dict) -> dict:
        """`forward_latent2texture`, then `forward_texture2featureimage`: adds LATENT_INTERIOR, LATENT_EXTERIOR,
        TEXTURE_PERSON, FACE_FEATUREIMAGE, MASK_UV, ADDITIVE_FEATUREIMAGE, FULL_FEATUREIMAGE."""
        return self.forward_texture2featureimage(self.forward_latent2texture(batch))

    def forward_latent2texture(self, batch: dict) -> dict:
        """The pose-independent part of G: `split_latent`, then TEXTURE_PERSON (B, texture_nc, T, T) decoded from
        LATENT_INTERIOR. Callers that render one identity in many poses can run this once and keep the three keys."""
        return self.decoder(self.split_latent(batch))

    def split_latent(self, batch: dict) -> dict:
        """STYLE_LATENT z (B, latent_dim) -> LATENT_INTERIOR = z[:, :n], LATENT_EXTERIOR = z[:, n:], n = latent_dim / 2."""
        z = batch[DIK.STYLE_LATENT]
        n = self.latent_dim // 2
        batch[DIK.LATENT_INTERIOR] = z[:, :n]
        batch[DIK.LATENT_EXTERIOR] = z[:, n:]
        return batch

    def forward_texture2featureimage(self, batch: dict) -> dict:
        """TEXTURE_PERSON, LATENT_EXTERIOR and UV_RENDERED -> the face features sampled at the UVs, the additive
        features and their merge: adds FACE_FEATUREIMAGE, MASK_UV, ADDITIVE_FEATUREIMAGE, FULL_FEATUREIMAGE."""
        batch = self.sample_texture(batch)
        batch = self.decoder_exterior(batch)
        return self.forward_merge_textures(batch)

    def sample_texture(self, batch: dict) -> dict:
        """TEXTURE_PERSON (B, C, T, T) sampled at UV_RENDERED (B, H, W, 2) in [-1, 1] (u indexes texture width)
        -> FACE_FEATUREIMAGE (B, C, H, W) and MASK_UV (B, 1, H, W) bool (the authors' dtype; the dataset's is
        float32).

        Bilinear, border padding, align_corners=False. A pixel is outside the face only if u AND v are exactly
        -1 (the authors' generator rule, ``uv_mask(uv, both_valid=False)``; it replaces the dataset's stricter
        MASK_UV); such pixels are set to uv_mask_value.
        """
        uv = batch[DIK.UV_RENDERED]
        texture = batch[DIK.TEXTURE_PERSON]
        sampled = F.grid_sample(texture, uv, mode="bilinear", padding_mode="border",
                                align_corners=False)
        mask = uv_mask(uv, both_valid=False).unsqueeze(1)
        batch[DIK.MASK_UV] = mask
        batch[DIK.FACE_FEATUREIMAGE] = torch.where(mask, sampled, torch.full_like(sampled, self.uv_mask_value))
        return batch

    def forward_merge_textures(self, batch: dict) -> dict:
        """FULL_FEATUREIMAGE = cat([FACE_FEATUREIMAGE, ADDITIVE_FEATUREIMAGE], channels): (B, 2*texture_nc, H, W)."""
        batch[DIK.FULL_FEATUREIMAGE] = torch.cat([batch[DIK.FACE_FEATUREIMAGE], batch[DIK.ADDITIVE_FEATUREIMAGE]], 1)
        return batch


def he_initialize(module: nn.Module) -> nn.Module:
    """He-initialize the (transposed) convolutions of ``module`` in place and return it.

    For untrained stand-ins of a trained generator (tests, timing): with PyTorch's default initialization the
    activations fade through the decoders and the U-Net into subnormal floats, which are many times slower on
    CPUs, and the picture hardly depends on the pose; a trained model's does not behave like that.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    return module

"""The VariTex generator: image -> variational latent -> neural face texture + additive features -> image.

Each stage method reads and adds keys of one batch dictionary (DESIGN.md section 1) and returns it; the
dictionary passed in is modified in place.
"""
import torch
import torch.nn.functional as F
from torch import nn

from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules.decoder import AdditiveDecoder, Decoder
from varitex.modules.encoder import ENCODER_OUT_DIM, Encoder
from varitex.modules.feature2image import Feature2ImageRenderer


class Generator(nn.Module):
    """Generator G(z, uv): the encoder, the two decoders and the renderer.

    Module order matters for nothing but matches the authors' state_dict: fc_mu, fc_var come first.
    """

    def __init__(self, opt):
        super().__init__()
        self.latent_dim = opt.latent_dim
        self.uv_mask_value = opt.uv_mask_value
        self.fc_mu = nn.Linear(ENCODER_OUT_DIM, opt.latent_dim)
        self.fc_var = nn.Linear(ENCODER_OUT_DIM, opt.latent_dim)
        self.encoder = Encoder(opt)
        self.decoder = Decoder(opt)
        self.decoder_exterior = AdditiveDecoder(opt)
        self.texture2image = Feature2ImageRenderer(opt)

    def forward(self, batch, std_multiplier=1.0):
        """All stages. Needs IMAGE_IN_ENCODE (B, 3, H, W) and UV_RENDERED (B, H, W, 2)."""
        batch = self.forward_encode(batch)
        batch = self.forward_encoded2latent_distribution(batch)
        batch = self.forward_sample_style(batch, std_multiplier)
        return self.forward_latent2image(batch)

    def forward_encode(self, batch):
        """IMAGE_IN_ENCODE -> IMAGE_ENCODED (B, 512); not yet a distribution."""
        return self.encoder(batch)

    def forward_encoded2latent_distribution(self, batch):
        """IMAGE_ENCODED -> STYLE_LATENT_MU, STYLE_LATENT_STD (B, latent_dim); std = exp(log_var / 2) > 0."""
        encoded = batch[DIK.IMAGE_ENCODED]
        batch[DIK.STYLE_LATENT_MU] = self.fc_mu(encoded)
        batch[DIK.STYLE_LATENT_STD] = torch.exp(self.fc_var(encoded) / 2)
        return batch

    def forward_sample_style(self, batch, std_multiplier=1.0):
        """STYLE_LATENT = mu + std * std_multiplier * eps, eps ~ N(0, I); std_multiplier = 0 gives exactly mu.

        (The authors sample ``Normal(mu, std * std_multiplier)``, which current PyTorch rejects for 0.)
        """
        mu, std = batch[DIK.STYLE_LATENT_MU], batch[DIK.STYLE_LATENT_STD]
        if std_multiplier == 0:
            batch[DIK.STYLE_LATENT] = mu
        else:
            batch[DIK.STYLE_LATENT] = mu + std * std_multiplier * torch.randn_like(mu)
        return batch

    def forward_latent2image(self, batch):
        """STYLE_LATENT (B, latent_dim) and UV_RENDERED (B, H, W, 2) -> every feature image, IMAGE_OUT and
        SEGMENTATION_PREDICTED. The output is not masked: the renderer learns the background itself."""
        batch = self.forward_latent2featureimage(batch)
        return self.texture2image(batch)

    def forward_texture2image(self, batch):
        """`forward_latent2image` from an already decoded identity: TEXTURE_PERSON (B, texture_nc, T, T),
        LATENT_EXTERIOR (B, latent_dim/2) and UV_RENDERED (B, H, W, 2) -> every feature image, IMAGE_OUT and
        SEGMENTATION_PREDICTED. The texture does not depend on the pose, so an identity shown in many poses
        needs `forward_latent2texture` once and this per pose; the numbers are those of `forward_latent2image`."""
        return self.texture2image(self.forward_texture2featureimage(batch))

    def forward_latent2featureimage(self, batch):
        """`forward_latent2texture`, then `forward_texture2featureimage`: adds LATENT_INTERIOR, LATENT_EXTERIOR,
        TEXTURE_PERSON, FACE_FEATUREIMAGE, MASK_UV, ADDITIVE_FEATUREIMAGE, FULL_FEATUREIMAGE."""
        return self.forward_texture2featureimage(self.forward_latent2texture(batch))

    def forward_latent2texture(self, batch):
        """The pose-independent part of G: `split_latent`, then TEXTURE_PERSON (B, texture_nc, T, T) decoded from
        LATENT_INTERIOR. Callers that render one identity in many poses can run this once and keep the three keys."""
        return self.decoder(self.split_latent(batch))

    def split_latent(self, batch):
        """STYLE_LATENT z (B, latent_dim) -> LATENT_INTERIOR = z[:, :n], LATENT_EXTERIOR = z[:, n:], n = latent_dim / 2."""
        z = batch[DIK.STYLE_LATENT]
        n = self.latent_dim // 2
        batch[DIK.LATENT_INTERIOR] = z[:, :n]
        batch[DIK.LATENT_EXTERIOR] = z[:, n:]
        return batch

    def forward_texture2featureimage(self, batch):
        """TEXTURE_PERSON, LATENT_EXTERIOR and UV_RENDERED -> the face features sampled at the UVs, the additive
        features and their merge: adds FACE_FEATUREIMAGE, MASK_UV, ADDITIVE_FEATUREIMAGE, FULL_FEATUREIMAGE."""
        batch = self.sample_texture(batch)
        batch = self.decoder_exterior(batch)
        return self.forward_merge_textures(batch)

    def sample_texture(self, batch):
        """TEXTURE_PERSON (B, C, T, T) sampled at UV_RENDERED (B, H, W, 2) in [-1, 1] (u indexes texture width)
        -> FACE_FEATUREIMAGE (B, C, H, W) and MASK_UV (B, 1, H, W) bool.

        Bilinear, border padding, align_corners=False. A pixel is outside the face only if u AND v are exactly
        -1 (the authors' rule here; their dataset's MASK_UV uses "u or v" and is overwritten by this one);
        such pixels are set to uv_mask_value.
        """
        uv = batch[DIK.UV_RENDERED]
        texture = batch[DIK.TEXTURE_PERSON]
        sampled = F.grid_sample(texture, uv, mode="bilinear", padding_mode="border",
                                align_corners=False)
        mask = ((uv[..., 0] != -1) | (uv[..., 1] != -1)).unsqueeze(1)
        batch[DIK.MASK_UV] = mask
        batch[DIK.FACE_FEATUREIMAGE] = torch.where(mask, sampled, torch.full_like(sampled, self.uv_mask_value))
        return batch

    def forward_merge_textures(self, batch):
        """FULL_FEATUREIMAGE = cat([FACE_FEATUREIMAGE, ADDITIVE_FEATUREIMAGE], channels): (B, 2*texture_nc, H, W)."""
        batch[DIK.FULL_FEATUREIMAGE] = torch.cat([batch[DIK.FACE_FEATUREIMAGE], batch[DIK.ADDITIVE_FEATUREIMAGE]], 1)
        return batch

"""The generator G(z, sp, ep, theta), batched: the one function inference, the notebook and later tools call.

    uv_factory = uv_factory_from_options(opt)                 # face model + UV renderer from the options
    out = generate(pipeline, uv_factory, z, sp, ep, theta)    # IMAGE_OUT, SEGMENTATION_PREDICTED, UV_RENDERED

Conventions of z, sp, ep, theta, t and s: docs/conventions.md.
"""
from __future__ import annotations

from typing import Any

import torch

from varitex.data.keys_enum import DataItemKey as DIK
from varitex.data.paths import require_path
from varitex.geometry import DEFAULT_S, DEFAULT_T, BFMUVFactory, euler_to_rotation


def uv_factory_from_options(opt: Any, device: str | torch.device | None = None) -> BFMUVFactory:
    """BFMUVFactory from the authors' options ``path_bfm``, ``path_uv``, ``image_h`` (= ``image_w``), ``device``.

    Args:
        opt: namespace with the fields above.
        device: overrides ``opt.device``.
    Raises:
        MissingPathError: --path_bfm or --path_uv unset; ValueError: non-square images, CUDA absent.
    """
    path_bfm, path_uv = require_path(opt, "path_bfm"), require_path(opt, "path_uv")
    image_w = getattr(opt, "image_w", opt.image_h)
    if opt.image_h != image_w:
        raise ValueError(f"UV maps are rendered square: --image_h {opt.image_h} and --image_w {image_w} differ")
    return BFMUVFactory(path_bfm, path_uv, opt.image_h, device=opt.device if device is None else device)


def _batched(x: Any, n: int, width: int) -> torch.Tensor:
    """(width,) or (1, width) or (n, width) -> (n, width) float32."""
    x = torch.as_tensor(x, dtype=torch.float32).reshape(-1, width)
    return x.expand(n, width) if x.shape[0] == 1 else x


@torch.no_grad()
def decode_texture(pipeline: torch.nn.Module, z: Any) -> torch.Tensor:
    """The pose-independent part of G: the neural face texture of latent codes, to pass to `generate` again.

    Args:
        pipeline: PipelineModule (or anything with ``.generator``) in eval mode.
        z: (B, latent_dim) or (latent_dim,).
    Returns:
        TEXTURE_PERSON (B, texture_nc, texture_dim, texture_dim) on the generator's device.
    """
    generator = pipeline.generator
    device = next(generator.parameters()).device
    z = torch.as_tensor(z, dtype=torch.float32).reshape(-1, generator.latent_dim).to(device)
    return generator.forward_latent2texture({DIK.STYLE_LATENT: z})[DIK.TEXTURE_PERSON]


@torch.no_grad()
def generate(pipeline: torch.nn.Module, uv_factory: BFMUVFactory, z: Any, sp: Any, ep: Any, theta: Any,
             t: Any = None, s: Any = None, texture: torch.Tensor | None = None) -> dict:
    """G(z, sp, ep, R(theta)): render posed BFM faces and decode them with latent codes, in one batch.

    Inputs with a batch dimension of 1 (or none) are broadcast to the largest batch.

    Args:
        pipeline: PipelineModule (or anything with ``.generator``) in eval mode, on ``uv_factory.device``.
        uv_factory: BFMUVFactory.
        z: (B, latent_dim); sp: (B, K_shape); ep: (B, K_expr); theta: (B, 3) Euler angles in degrees
            (pitch, yaw, roll); t: (B, 3) translation (default DEFAULT_T); s: (B, 1) scale (default DEFAULT_S).
        texture: None (default) decodes the face texture from z; or TEXTURE_PERSON (B or 1, texture_nc, T, T)
            that `decode_texture` returned for these z, which skips the texture decoder (the texture does not
            depend on sp, ep or theta; the images are those of the default path).
    Returns:
        dict with IMAGE_OUT (B, 3, H, W) ImageNet-normalized, SEGMENTATION_PREDICTED (B, 1, H, W) in [0, 1]
        and UV_RENDERED (B, H, W, 2) in [-1, 1], on the pipeline's device.
    """
    widths = dict(z=torch.as_tensor(z).shape[-1], sp=uv_factory.bfm.n_shape, ep=uv_factory.bfm.n_expression,
                  theta=3, t=3, s=1)
    values = dict(z=z, sp=sp, ep=ep, theta=theta, t=DEFAULT_T if t is None else t, s=DEFAULT_S if s is None else s)
    flat = {name: torch.as_tensor(value, dtype=torch.float32).reshape(-1, widths[name])
            for name, value in values.items()}
    n = max(value.shape[0] for value in flat.values())
    x = {name: _batched(value, n, widths[name]).to(uv_factory.device) for name, value in flat.items()}
    uv = uv_factory.getUV(euler_to_rotation(x["theta"]), x["t"], x["s"], x["sp"], x["ep"])
    batch = {DIK.STYLE_LATENT: x["z"], DIK.UV_RENDERED: uv}
    if texture is None:
        out = pipeline.generator.forward_latent2image(batch)
    else:
        batch = pipeline.generator.split_latent(batch)
        batch[DIK.TEXTURE_PERSON] = texture.to(uv_factory.device).expand(n, -1, -1, -1)
        out = pipeline.generator.forward_texture2image(batch)
    return {DIK.IMAGE_OUT: out[DIK.IMAGE_OUT], DIK.SEGMENTATION_PREDICTED: out[DIK.SEGMENTATION_PREDICTED],
            DIK.UV_RENDERED: uv}

"""The one place where the authors' options become networks: defaults filled in, values checked, the
constructor arguments of the generator and discriminator, and the rule for options stored in a checkpoint.

``PipelineModule(opt)`` accepts namespaces that did not come from the parser (an EvalOptions namespace, a
notebook's ``argparse.Namespace``, a checkpoint's stored dict), so the checks of the parser are repeated here,
with messages naming the option.
"""
from __future__ import annotations

import argparse
import math
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

from varitex.modules.decoder import TEXTURE_DIMS
from varitex.modules.discriminator import parse_norm
from varitex.modules.generator import GeneratorConfig
from varitex.modules.loss import GAN_LOSSES
from varitex.options import varitex_default_options

# Options that change parameter shapes: a checkpoint's stored values for these win over the caller's.
ARCHITECTURE_OPTIONS = ("latent_dim", "texture_nc", "texture_dim", "nc_feature2image", "feature2image_num_layers",
                        "nc_discriminator", "num_discriminator", "n_layers_discriminator", "norm_discriminator")
POSITIVE_INT_OPTIONS = ("latent_dim", "texture_nc", "image_h", "image_w", "nc_feature2image",
                        "feature2image_num_layers", "nc_discriminator", "num_discriminator", "n_layers_discriminator")
LAMBDA_OPTIONS = ("lambda_gan", "lambda_discriminator_features", "lambda_l2", "lambda_kl", "lambda_vgg",
                  "lambda_segmentation", "lambda_rgb_texture")
LEARNING_RATE_OPTIONS = ("lr", "lr_discriminator")
# Options that describe this machine or this invocation, never taken over from a checkpoint's options.
NOT_INHERITED = frozenset({
    "dataroot_npy", "image_folder", "path_out", "path_bfm", "path_uv", "checkpoint", "path_opt",
    "device", "num_workers", "debug", "demo", "logger", "dataset_split", "n", "mode",
    "devices", "num_nodes", "strategy", "precision", "compile", "compile_mode", "channels_last",
})


def as_dict(opt: Any) -> dict:
    """A namespace or mapping -> a new dict."""
    return dict(opt) if isinstance(opt, Mapping) else dict(vars(opt))


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def validate_options(opt: argparse.Namespace) -> None:
    """Raise ValueError naming the first option of ``opt`` (a namespace) with an invalid value."""
    for name in POSITIVE_INT_OPTIONS:
        value = getattr(opt, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise ValueError(f"--{name} must be a positive integer, got {value!r}")
    if opt.latent_dim % 2:
        raise ValueError(f"--latent_dim must be even (z is split into a face and an additive half), "
                         f"got {opt.latent_dim}")
    smallest = 2 ** (opt.feature2image_num_layers - 1)
    if min(opt.image_h, opt.image_w) < smallest:
        raise ValueError(f"--image_h/--image_w must be >= {smallest} for --feature2image_num_layers "
                         f"{opt.feature2image_num_layers} (the U-Net halves the image "
                         f"{opt.feature2image_num_layers - 1} times), got {opt.image_h}x{opt.image_w}")
    if opt.texture_dim not in TEXTURE_DIMS:
        raise ValueError(f"--texture_dim must be one of {TEXTURE_DIMS}, got {opt.texture_dim!r}")
    if opt.gan_mode not in GAN_LOSSES:
        raise ValueError(f"--gan_mode must be one of {sorted(GAN_LOSSES)}, got {opt.gan_mode!r}")
    try:
        parse_norm(opt.norm_discriminator)
    except (ValueError, AttributeError):
        raise ValueError(f"--norm_discriminator must be [spectral]instance, [spectral]batch, [spectral]none or "
                         f"spectral, got {opt.norm_discriminator!r}") from None
    for name in LAMBDA_OPTIONS:
        value = getattr(opt, name)
        if not _is_real(value) or value < 0:
            raise ValueError(f"--{name} must be a finite number >= 0, got {value!r}")
    for name in LEARNING_RATE_OPTIONS:
        value = getattr(opt, name)
        if not _is_real(value) or value <= 0:
            raise ValueError(f"--{name} must be a finite number > 0, got {value!r}")
    if not _is_real(opt.uv_mask_value):
        raise ValueError(f"--uv_mask_value must be a finite number, got {opt.uv_mask_value!r}")
    if opt.lambda_rgb_texture > 0 and opt.texture_nc < 3:
        raise ValueError(f"--lambda_rgb_texture > 0 compares the first 3 texture channels with RGB: "
                         f"it needs --texture_nc >= 3, got {opt.texture_nc}")


def complete_options(opt: Any) -> argparse.Namespace:
    """``opt`` (namespace or mapping) over the training defaults, validated -> a new argparse.Namespace."""
    values = varitex_default_options()
    values.update(as_dict(opt))
    options = argparse.Namespace(**values)
    validate_options(options)
    return options


def options_to_dict(opt: Any) -> dict:
    """A plain dict of str/int/float/bool/None/lists, safe for ``torch.load(weights_only=True)`` and JSON."""
    def plain(value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return str(value)
    return {name: plain(value) for name, value in as_dict(opt).items()}


def merge_saved_options(opt: Any, saved: Mapping, explicit: set[str]) -> Any:
    """Take over the options a checkpoint was trained with (architecture, losses, schedule).

    Options in NOT_INHERITED and options in ``explicit`` keep their current value, except the
    ARCHITECTURE_OPTIONS: a trained model's shapes cannot change, so the saved values win, with a warning
    when ``explicit`` asked for another value.

    Args:
        opt: argparse.Namespace (modified in place and returned) or dict (a new dict is returned).
        saved: dict of options stored in the checkpoint (or read from opt.json).
        explicit: names of the options the user gave.
    """
    values = as_dict(opt)
    for name, value in saved.items():
        if name in ARCHITECTURE_OPTIONS and name in explicit and values.get(name, value) != value:
            warnings.warn(f"--{name} {values[name]} is ignored: the checkpoint was trained with --{name} {value}")
        if name in ARCHITECTURE_OPTIONS or (name not in NOT_INHERITED and name not in explicit):
            values[name] = value
    if isinstance(opt, Mapping):
        return values
    vars(opt).update(values)
    return opt


def generator_config(opt: argparse.Namespace) -> GeneratorConfig:
    """The generator's constructor arguments from the authors' options (widths: the authors')."""
    return GeneratorConfig(latent_dim=opt.latent_dim, texture_nc=opt.texture_nc, texture_dim=opt.texture_dim,
                           uv_mask_value=opt.uv_mask_value, feature2image_num_layers=opt.feature2image_num_layers,
                           nc_feature2image=opt.nc_feature2image)


def discriminator_arguments(opt: argparse.Namespace) -> dict:
    """MultiscaleDiscriminator's keyword arguments from the authors' options."""
    return dict(num_discriminators=opt.num_discriminator, nc=opt.nc_discriminator,
                n_layers=opt.n_layers_discriminator, norm=opt.norm_discriminator)

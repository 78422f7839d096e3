"""Helpers shared by the tests: the reference folder ``../shared``, a tiny training configuration and
small-width generators.

Tests of the training machinery (precision, DDP, compile, step schedule) check how training runs, not the
architecture, so they build generators with narrow decoders (``narrow_generator``): with the authors' widths
one CPU training step takes tens of seconds, and a bf16 one minutes (CPUs without bf16 convolution kernels).
They also run torch on one thread: on a loaded 2-core machine two OpenMP threads make small ops 15x slower.
"""
import contextlib
import dataclasses
import os
from pathlib import Path

import pytest
import torch

from varitex.modules.configs import generator_config

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"

NARROW_WIDTHS = dict(texture_decoder_planes=(32, 32, 16, 16, 8, 8), additive_decoder_planes=(32, 32, 16, 16, 8, 8),
                     decoder_latent_channels=32)


def shared_path(*parts):
    """Path inside ``../shared``; skips the test when the folder is absent (fails in CI, where it must exist)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        unavailable(f"reference data {path} is not available (it lives in ../shared beside the project)")
    return path


def unavailable(message):
    """Skip the test for a missing prerequisite, or fail it in CI (CI=true), which must provide everything."""
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; CI=true requires it")
    pytest.skip(message)


def narrow_generator(opt):
    """GeneratorConfig of ``opt`` with decoders of 8..32 channels instead of 64..512."""
    return dataclasses.replace(generator_config(opt), **NARROW_WIDTHS)


def world_flags(root, path_out):
    """Command-line flags pointing every path option at the demo world ``root`` and outputs at ``path_out``."""
    paths = [flag for name, value in world_paths(root).items() for flag in (f"--{name}", value)]
    return paths + ["--path_out", str(path_out), "--device", "cpu"]


@contextlib.contextmanager
def one_thread():
    """torch on one CPU thread inside the block."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# The explorer's tests: the smallest model the architecture allows (the decoders keep their widths).
EXPLORE_MODEL_OPTIONS = dict(image_h=64, image_w=64, texture_dim=128, nc_feature2image=8, feature2image_num_layers=3,
                             latent_dim=16, lambda_gan=0.0, lambda_vgg=0.0, no_lpips=True)


def write_random_checkpoint(path, **options):
    """A checkpoint of ours (state_dict + varitex_opt) with random generator weights; returns ``path``.

    The convolutions are He-initialized (variance-preserving through ReLUs): with PyTorch's default
    initialization the signal fades through the decoders and the U-Net, and the picture hardly depends on the
    pose; with these weights it does, as a trained model's does, and about 70% of the pixels count as head.
    """
    from varitex.checkpoints import save_weights
    from varitex.modules.generator import he_initialize
    from varitex.modules.pipeline import PipelineModule

    torch.manual_seed(0)
    pipeline = PipelineModule(options)
    he_initialize(pipeline.generator)
    return save_weights(pipeline, path)


def world_paths(root):
    """Path options of a demo world rooted at ``root`` (DP = FP = root)."""
    return dict(dataroot_npy=str(root / "FFHQ" / "preprocessed_dataset"), image_folder=str(root / "FFHQ" / "images"),
                path_bfm=str(root / "basel_facemodel" / "model2017-1_face12_nomouth.h5"),
                path_uv=str(root / "basel_facemodel" / "face12.json"))

"""Shared test helpers: the read-only reference folder ``../shared`` beside the project, a tiny demo world."""
import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU, skipped without one (run by benchmarks/gpu_check.sh)")


def shared_path(*parts):
    """Path inside ``../shared``; skips the test when the folder is absent (fails in CI, where it must exist)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"reference data {path} is not available (it lives in ../shared beside the project)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """Root of a tiny synthetic demo world: 12 images (3 identities x 4 poses), 64x64 PNGs and arrays.

    Layout as the authors' data (DP=root, FP=root); split train 8 images / val 4 (the last identity).
    """
    from varitex.data.synthetic import ensure_demo_world

    return ensure_demo_world(tmp_path_factory.mktemp("tiny_world"), n_images=12, image_size=64, array_size=64,
                             images_per_identity=4)


# The explorer's tests: the smallest model the architecture allows (the decoders keep their widths).
EXPLORE_MODEL_OPTIONS = dict(image_h=64, image_w=64, texture_dim=128, nc_feature2image=8, feature2image_num_layers=3,
                             latent_dim=16, lambda_gan=0.0, lambda_vgg=0.0, no_lpips=True)


def write_random_checkpoint(path, **options):
    """A checkpoint of ours (state_dict + varitex_opt) with random generator weights; returns ``path``.

    The convolutions are He-initialized (variance-preserving through ReLUs): with PyTorch's default
    initialization the signal fades through the decoders and the U-Net, and the picture hardly depends on the
    pose; with these weights it does, as a trained model's does, and about 70% of the pixels count as head.
    """
    import torch

    from varitex.modules.model_options import options_to_dict
    from varitex.modules.pipeline import PipelineModule

    torch.manual_seed(0)
    pipeline = PipelineModule(options)
    for module in pipeline.generator.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save({"state_dict": pipeline.state_dict(), "varitex_opt": options_to_dict(pipeline.opt)}, path)
    return path


@pytest.fixture(scope="session")
def explore_checkpoint(tmp_path_factory):
    """A random-weight checkpoint of EXPLORE_MODEL_OPTIONS."""
    return write_random_checkpoint(tmp_path_factory.mktemp("explore") / "random.ckpt", **EXPLORE_MODEL_OPTIONS)


def world_paths(root):
    """Path options of a demo world rooted at ``root`` (DP = FP = root)."""
    return dict(dataroot_npy=str(root / "FFHQ" / "preprocessed_dataset"), image_folder=str(root / "FFHQ" / "images"),
                path_bfm=str(root / "basel_facemodel" / "model2017-1_face12_nomouth.h5"),
                path_uv=str(root / "basel_facemodel" / "face12.json"))

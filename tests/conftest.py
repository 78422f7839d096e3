"""pytest configuration: markers and the tiny demo world shared by the tests (helpers live in helpers.py)."""
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU, skipped without one (run by benchmarks/gpu_check.sh)")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """Root of a tiny synthetic demo world: 12 images (3 identities x 4 poses), 64x64 PNGs and arrays.

    Layout as the authors' data (DP=root, FP=root); split train 8 images / val 4 (the last identity).
    """
    from varitex.demo_world import ensure_demo_world

    return ensure_demo_world(tmp_path_factory.mktemp("tiny_world"), n_images=12, image_size=64, array_size=64,
                             images_per_identity=4)


@pytest.fixture(scope="session")
def explore_checkpoint(tmp_path_factory):
    """A random-weight checkpoint of the explorer tests' small model (helpers.EXPLORE_MODEL_OPTIONS)."""
    from helpers import EXPLORE_MODEL_OPTIONS, write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp("explore") / "random.ckpt", **EXPLORE_MODEL_OPTIONS)

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
        unavailable(f"reference data {path} is not available (it lives in ../shared beside the project)")
    return path


def unavailable(message):
    """Skip the test for a missing prerequisite, or fail it in CI (CI=true), which must provide everything."""
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; CI=true requires it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def face_landmarker():
    """One FaceLandmarker for the session (MediaPipe models run by ai-edge-litert, the preprocess install)."""
    try:
        from varitex.preprocess.landmarks import FaceLandmarker

        return FaceLandmarker()
    except (ImportError, FileNotFoundError) as error:
        unavailable(f"the preprocessing models are not installed: {error}")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """Root of a tiny synthetic demo world: 12 images (3 identities x 4 poses), 64x64 PNGs and arrays.

    Layout as the authors' data (DP=root, FP=root); split train 8 images / val 4 (the last identity).
    """
    from varitex.data.synthetic import ensure_demo_world

    return ensure_demo_world(tmp_path_factory.mktemp("tiny_world"), n_images=12, image_size=64, array_size=64,
                             images_per_identity=4)


@pytest.fixture(scope="session")
def astronaut_photo():
    """scikit-image's astronaut: (512, 512, 3) uint8 RGB, a real photo with one face (the test extra)."""
    try:
        from skimage.data import astronaut
    except ImportError as error:
        unavailable(f"scikit-image (the test extra) is not installed: {error}")
    return astronaut()

"""pytest configuration: markers and the tiny demo world shared by the tests (helpers live in helpers.py)."""
import pytest

from helpers import unavailable


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU, skipped without one (run by benchmarks/gpu_check.sh)")


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
    from varitex.demo_world import ensure_demo_world

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

"""pytest configuration: markers, temporary-file clean-up and the fixtures shared by the test modules (helpers
live in helpers.py)."""
import shutil

import pytest
import torch

from helpers import unavailable

# tmp_path_factory folders of session-scoped fixtures start with this; the others belong to one test module.
SESSION_PREFIX = "session_"


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU, skipped without one (run by benchmarks/gpu_check.sh)")


@pytest.fixture(scope="module", autouse=True)
def module_temporary_folders(request, tmp_path_factory):
    """Deletes the folders a test module's fixtures made with tmp_path_factory when the module is done, if all
    its tests passed (a failure keeps them for inspection). The suite writes dozens of checkpoints of 20-550 MB
    and CI's disk is small; pytest itself would keep them all until the session ends."""
    base = tmp_path_factory.getbasetemp()
    before, failures = set(base.iterdir()), request.session.testsfailed
    yield
    if request.session.testsfailed == failures:
        for path in set(base.iterdir()) - before:
            if not path.name.startswith(SESSION_PREFIX):
                shutil.rmtree(path, ignore_errors=True)


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

    return ensure_demo_world(tmp_path_factory.mktemp(SESSION_PREFIX + "tiny_world"), n_images=12, image_size=64, array_size=64,
                             images_per_identity=4)


@pytest.fixture(scope="session")
def explore_checkpoint(tmp_path_factory):
    """A random-weight checkpoint of the explorer tests' small model (helpers.EXPLORE_MODEL_OPTIONS)."""
    from helpers import EXPLORE_MODEL_OPTIONS, write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp(SESSION_PREFIX + "explore") / "random.ckpt", **EXPLORE_MODEL_OPTIONS)


@pytest.fixture(scope="session")
def astronaut_photo():
    """scikit-image's astronaut: (512, 512, 3) uint8 RGB, a real photo with one face (the test extra)."""
    try:
        from skimage.data import astronaut
    except ImportError as error:
        unavailable(f"scikit-image (the test extra) is not installed: {error}")
    return astronaut()


@pytest.fixture(scope="session")
def random_inception_file(tmp_path_factory):
    """torch-fidelity's Inception-v3 with random weights, saved like the real weights file (the real one cannot
    be downloaded here): tests the FID plumbing, not FID values."""
    try:
        from torch_fidelity import feature_extractor_inceptionv3 as inception
    except ImportError:
        unavailable("torch-fidelity is not installed (pip install -e '.[evaluate]')")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inception, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        torch.manual_seed(0)
        model = inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    from varitex.modules.generator import he_initialize

    he_initialize(model)  # keeps the activations' scale through the 20 layers
    path = tmp_path_factory.mktemp(SESSION_PREFIX + "inception") / "random_inception.pth"
    torch.save(model.state_dict(), path)
    return path

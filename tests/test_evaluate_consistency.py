"""Geometric and identity consistency measured on ground-truth demo-world renders of known geometry: the
fitter's floor is within the own-photos thresholds, a known pose offset shows up as that error, and dlib's
descriptor tells identical renders from different people."""
import numpy as np
import pytest
import torch

from varitex.demo_world import render_reposed
from varitex.evaluation import pose_consistency as pc
from varitex.geometry import BFM2017

from helpers import unavailable

# Poses within the own-photos round trip's range (the demo world: pitch within +-20, yaw within +-30).
POSES = ((0.0, 0.0), (-10.0, -30.0), (10.0, 30.0), (0.0, -15.0), (-10.0, 15.0), (10.0, 0.0))
ROWS = (0, 4, 8)            # one image of each of the tiny world's three people
RENDER_SIZE = 128


@pytest.fixture(scope="module")
def face_descriptor():
    from varitex.evaluation.identity import FaceDescriptor, IdentityModelUnavailable

    try:
        return FaceDescriptor()
    except IdentityModelUnavailable as error:
        unavailable(f"the identity model is not installed: {error}")


@pytest.fixture(scope="module")
def ground_truth(tiny_world, face_landmarker, face_descriptor):
    """Renders of three people in POSES with their own expressions, detections with dlib descriptors, and
    the fitter of the world's face model."""
    conditions = [pc.Condition(f"pitch {p:+.0f} yaw {y:+.0f}", p, y) for p, y in POSES]
    arrays = tiny_world / "FFHQ" / "preprocessed_dataset"
    rows = np.array(ROWS)
    requests = pc.build_requests(np.load(arrays / "sp.npy")[rows], np.load(arrays / "ep.npy")[rows], conditions)
    images = np.concatenate([render_reposed(tiny_world, np.full(len(POSES), row), requests.theta[requests.identity == i],
                                            image_size=RENDER_SIZE) for i, row in enumerate(rows)])
    images = (images * 255 + 0.5).astype(np.uint8)
    detections = pc.detect_faces(images, face_landmarker, face_descriptor)
    bfm = BFM2017(tiny_world / "basel_facemodel" / "model2017-1_face12_nomouth.h5")
    measurer = pc.PoseMeasurer(bfm, face_landmarker)
    return dict(images=images, requests=requests, detections=detections, measurer=measurer, conditions=conditions)


def test_ground_truth_renders_have_the_requested_pose_and_expression(tiny_world):
    arrays = tiny_world / "FFHQ" / "preprocessed_dataset"
    ep = np.load(arrays / "ep.npy")[[4]]
    own = render_reposed(tiny_world, [4], [[0.0, 20.0, 0.0]], image_size=64)
    mirrored = render_reposed(tiny_world, [4], [[0.0, -20.0, 0.0]], image_size=64)
    neutral = render_reposed(tiny_world, [4], [[0.0, 20.0, 0.0]], ep=np.zeros_like(ep), image_size=64)
    assert own.shape == (1, 64, 64, 3) and own.dtype == np.float32
    assert np.abs(own - mirrored).mean() > 0.02 and np.abs(own - neutral).mean() > 1e-3
    assert np.array_equal(own, render_reposed(tiny_world, [4], [[0.0, 20.0, 0.0]], image_size=64))
    with pytest.raises(ValueError, match="image indices must be in"):
        render_reposed(tiny_world, [12], [[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="not a complete demo world"):
        render_reposed(tiny_world / "FFHQ", [0], [[0.0, 0.0, 0.0]])


def test_fitter_floor_on_ground_truth_is_within_the_own_photos_thresholds(ground_truth):
    measured = ground_truth["measurer"].measure(ground_truth["detections"], ground_truth["requests"], RENDER_SIZE)
    stats = pc.error_statistics(measured)
    assert stats["detection_rate"] == 1.0
    assert stats["rotation_error_deg_median"] <= 3.0 and stats["rotation_error_deg_p90"] <= 8.0
    assert abs(stats["yaw_bias_deg"]) < 2.0 and abs(stats["pitch_bias_deg"]) < 3.0
    assert stats["landmark_nme_median"] < 0.08
    ground_truth["floor"] = stats


def test_a_known_pose_offset_shows_up_as_that_error(ground_truth):
    requests = ground_truth["requests"]
    # Claim every image was requested 10 degrees further left than it was rendered.
    shifted = requests._replace(theta=requests.theta - torch.tensor([0.0, 10.0, 0.0]))
    stats = pc.error_statistics(ground_truth["measurer"].measure(ground_truth["detections"], shifted, RENDER_SIZE))
    assert stats["yaw_bias_deg"] == pytest.approx(10.0, abs=2.0)
    assert stats["rotation_error_deg_median"] == pytest.approx(10.0, abs=3.0)


def test_identity_descriptor_same_render_is_one_different_people_lower(ground_truth, face_descriptor):
    from varitex.evaluation.identity import cosine_similarity, identity_consistency

    detections, requests = ground_truth["detections"], ground_truth["requests"]
    image, box = pc.upscaled(ground_truth["images"][0])[0], detections.boxes[0] * pc.DETECTION_SIZE / RENDER_SIZE
    assert cosine_similarity(face_descriptor(image, box), face_descriptor(image, box)) == pytest.approx(1.0, abs=1e-6)
    result = identity_consistency(detections.embeddings, requests.identity, requests.condition,
                                  [c.name for c in ground_truth["conditions"]], 0)
    frontal, turned = result["per_condition"][0], result["per_condition"][1:]
    assert frontal["cosine_similarity"] == pytest.approx(1.0, abs=1e-6) and frontal["pairs"] == 3
    different = result["different_identities"]
    assert different["pairs"] == 3
    assert different["cosine_similarity"] < 0.99
    assert different["cosine_similarity"] < np.mean([row["cosine_similarity"] for row in turned])

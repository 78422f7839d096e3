"""CelebAMask-HQ segmentation (varitex.preprocess.segmentation) and label maps from external parsers."""
import numpy as np
import pytest
from PIL import Image

from varitex.preprocess import landmarks as lm
from varitex.preprocess.segmentation import (HEAD_LABELS, LABELS, MAX_LABEL, polygon_mask, read_label_png,
                                             segment_face)


def _head(labels):
    return np.isin(labels, HEAD_LABELS)


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_label_ids_are_celebamask_hq_and_the_head_is_1_to_15():
    assert LABELS["background"] == 0 and LABELS["skin"] == 1 and LABELS["nose"] == 2
    assert (LABELS["left_eye"], LABELS["right_eye"], LABELS["left_brow"], LABELS["right_brow"]) == (4, 5, 6, 7)
    assert (LABELS["mouth"], LABELS["upper_lip"], LABELS["lower_lip"], LABELS["hair"]) == (10, 11, 12, 13)
    assert (LABELS["neck"], LABELS["cloth"]) == (17, 18) and MAX_LABEL == 18
    assert HEAD_LABELS == tuple(range(1, 16))


@pytest.fixture(scope="module")
def demo_segmentations(face_landmarker, tiny_world):
    """(predicted with the true face mask, predicted with the face oval, true) labels of the tiny world."""
    arrays = tiny_world / "FFHQ" / "preprocessed_dataset"
    uv, truth = np.load(arrays / "uv.npy"), np.load(arrays / "segmentation.npy")
    out = []
    for index, path in enumerate(sorted((tiny_world / "FFHQ" / "images").glob("*.png"))):
        image = np.asarray(Image.open(path).convert("RGB"))
        landmarks = face_landmarker.detect(image)[0].landmarks
        out.append((segment_face(image, landmarks, uv[index, ..., 0] != -1), segment_face(image, landmarks),
                    truth[index]))
    return out


def test_demo_world_head_region_matches_the_true_labels(demo_segmentations):
    with_mask = [_iou(_head(ours), _head(truth)) for ours, _, truth in demo_segmentations]
    with_oval = [_iou(_head(ours), _head(truth)) for _, ours, truth in demo_segmentations]
    assert np.median(with_mask) >= 0.97 and min(with_mask) >= 0.95
    assert np.median(with_oval) >= 0.93 and min(with_oval) >= 0.9


def test_demo_world_parts_match_the_true_labels(demo_segmentations):
    for ours, _, truth in demo_segmentations:
        assert ours.dtype == np.uint8 and ours.shape == truth.shape and ours.max() <= MAX_LABEL
        assert (ours == truth).mean() >= 0.9
        for name, least in (("neck", 0.85), ("hair", 0.7), ("nose", 0.55)):   # measured: >= .92, .80, .68
            label = LABELS[name]
            assert _iou(ours == label, truth == label) >= least, name


@pytest.fixture(scope="module")
def astronaut(face_landmarker, astronaut_photo):
    image = astronaut_photo
    landmarks = face_landmarker.detect(image)[0].landmarks
    return image, landmarks, segment_face(image, landmarks)


def test_astronaut_labels_are_in_range_and_the_head_covers_the_face(astronaut):
    image, landmarks, labels = astronaut
    assert labels.shape == image.shape[:2] and labels.dtype == np.uint8 and labels.max() <= MAX_LABEL
    oval = polygon_mask(landmarks[list(lm.FACE_OVAL), :2], labels.shape)
    assert _head(labels)[oval].mean() >= 0.98
    # Her hair above the forehead, her neck below the chin, the background in the top corners, her suit.
    assert labels[30, 225] == LABELS["hair"]
    chin = landmarks[152, :2]
    assert labels[int(chin[1]) + 8, int(chin[0])] == LABELS["neck"]
    assert labels[5, 5] == labels[5, 506] == LABELS["background"]
    assert labels[400, 100] == LABELS["cloth"]
    for name in ("nose", "left_eye", "right_eye", "upper_lip", "lower_lip", "left_brow", "right_brow"):
        assert (labels == LABELS[name]).sum() >= 30, name


def test_astronaut_left_parts_are_on_the_image_right(astronaut):
    _, _, labels = astronaut
    columns = {name: np.nonzero(labels == LABELS[name])[1].mean() for name in
               ("left_eye", "right_eye", "left_brow", "right_brow")}
    assert columns["left_eye"] > columns["right_eye"] + 30 and columns["left_brow"] > columns["right_brow"] + 30


def test_precomputed_person_mask_is_used(astronaut):
    image, landmarks, _ = astronaut
    nobody = segment_face(image, landmarks, hair_and_person=np.zeros(image.shape[:2], np.float32))
    oval = polygon_mask(landmarks[list(lm.FACE_OVAL), :2], image.shape[:2])
    assert not _head(nobody)[~oval].any() and (nobody[~oval] == 0).all()   # only the face is a person


@pytest.mark.parametrize("kwargs, message", [
    ({"face_mask": np.ones((10, 10), bool)}, r"face_mask must have the image's shape \(512, 512\)"),
    ({"face_mask": np.ones((512, 512), np.float32)}, "face_mask must be a bool mask, got dtype float32"),
    ({"hair_and_person": np.ones((512, 512), np.int64)}, "hair_and_person must be a bool mask or float"),
])
def test_bad_masks_are_rejected(astronaut, kwargs, message):
    image, landmarks, _ = astronaut
    with pytest.raises(ValueError, match=message):
        segment_face(image, landmarks, **kwargs)


def test_bad_landmarks_are_rejected(astronaut):
    image, landmarks, _ = astronaut
    with pytest.raises(ValueError, match=r"landmarks must be \(468, 2 or 3\), got \(10, 3\)"):
        segment_face(image, landmarks[:10])


def _png(path, array):
    Image.fromarray(array).save(path)
    return path


def test_label_png_round_trips_and_resizes_nearest(tmp_path):
    labels = np.arange(16, dtype=np.uint8).reshape(4, 4) % 19
    path = _png(tmp_path / "a.png", labels)
    np.testing.assert_array_equal(read_label_png(path, (4, 4)), labels)
    np.testing.assert_array_equal(read_label_png(path, (8, 8)), labels.repeat(2, 0).repeat(2, 1))


def test_label_png_palette_indices_are_the_labels(tmp_path):
    image = Image.fromarray(np.array([[0, 13], [17, 18]], np.uint8)).convert("P")
    image.putpalette([value for index in range(256) for value in (index, 255 - index, 0)])
    image.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "p.png", (2, 2)), [[0, 13], [17, 18]])


def test_label_png_with_an_rgb_image_names_the_file_and_mode(tmp_path):
    path = _png(tmp_path / "rgb.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"rgb\.png: must be an 8-bit single-channel PNG.*got mode RGB"):
        read_label_png(path, (4, 4))


def test_label_png_with_unknown_ids_names_the_file_and_ids(tmp_path):
    path = _png(tmp_path / "ids.png", np.array([[0, 19], [200, 1]], np.uint8))
    with pytest.raises(ValueError, match=r"ids\.png: ids must be CelebAMask-HQ ids 0\.\.18, found \[19, 200\]"):
        read_label_png(path, (2, 2))


def test_label_png_of_another_aspect_ratio_names_the_file(tmp_path):
    path = _png(tmp_path / "wide.png", np.zeros((4, 8), np.uint8))
    with pytest.raises(ValueError, match=r"wide\.png: size 8x4 does not match the image 4x4"):
        read_label_png(path, (4, 4))


def test_label_png_that_is_not_an_image_names_the_file(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"broken\.png: cannot read it as an image"):
        read_label_png(path, (4, 4))
    with pytest.raises(ValueError, match=r"missing\.png: cannot read it as an image"):
        read_label_png(tmp_path / "missing.png", (4, 4))

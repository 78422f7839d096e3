"""Face detection and the 468-point face mesh (varitex.preprocess.landmarks) on a real photo and the demo world."""
import importlib.util

import numpy as np
import pytest
from PIL import Image

from varitex.preprocess import landmarks as lm
from varitex.preprocess import models

# The astronaut's face (512 x 512 photo), measured once and checked by eye on an overlay: detector box and
# eye centres / mouth corners (person's left eye on the image's right).
ASTRONAUT_BOX = np.array([177.2, 79.1, 272.9, 174.8])
ASTRONAUT_POINTS = np.array([[247.3, 104.2], [203.7, 101.7], [246.2, 141.8], [201.3, 139.2]])
LEFT_EYE_LABEL, RIGHT_EYE_LABEL = 4, 5     # CelebAMask-HQ ids, the person's left / right


@pytest.fixture(scope="module")
def astronaut_face(face_landmarker, astronaut_photo):
    faces = face_landmarker.detect(astronaut_photo)
    assert len(faces) == 1
    return faces[0]


def test_astronaut_has_one_face_with_its_box_and_score(astronaut_face):
    face = astronaut_face
    assert face.box.dtype == np.float32 and face.box.shape == (4,)
    np.testing.assert_allclose(face.box, ASTRONAUT_BOX, atol=4.0)
    assert 0.8 < face.score <= 1.0


def test_astronaut_landmarks_lie_on_the_face(astronaut_face):
    landmarks = astronaut_face.landmarks
    assert landmarks.dtype == np.float32 and landmarks.shape == (468, 3)
    x0, y0, x1, y1 = astronaut_face.box
    margin = 0.15 * (x1 - x0)
    inside = ((landmarks[:, 0] > x0 - margin) & (landmarks[:, 0] < x1 + margin)
              & (landmarks[:, 1] > y0 - margin) & (landmarks[:, 1] < y1 + margin))
    assert inside.all()
    # Relative depth: the nose tip (1) is closer to the camera (smaller z) than the face outline (234, 454).
    assert landmarks[1, 2] < landmarks[234, 2] - 10 and landmarks[1, 2] < landmarks[454, 2] - 10


def test_astronaut_eye_and_mouth_points_where_a_face_has_them(astronaut_face):
    points = lm.eye_mouth_points(astronaut_face.landmarks)
    assert points.shape == (4, 2)
    np.testing.assert_allclose(points, ASTRONAUT_POINTS, atol=3.0)
    eye_left, eye_right, mouth_left, mouth_right = points
    assert eye_left[0] > eye_right[0] and mouth_left[0] > mouth_right[0]   # person's left on the image's right
    assert min(mouth_left[1], mouth_right[1]) > max(eye_left[1], eye_right[1]) + 25


def test_landmarks_follow_the_photo_when_it_is_moved_or_enlarged(face_landmarker, astronaut_photo, astronaut_face):
    """Pixel conventions: a shifted photo shifts the landmarks, a k x enlarged one scales them by k (a
    half-pixel slip would show as a mean offset of 0.25 px at k = 2)."""
    base = astronaut_face.landmarks[:, :2]
    padded = np.zeros((600, 640, 3), np.uint8)
    padded[37:549, 51:563] = astronaut_photo
    moved = face_landmarker.detect(padded)[0].landmarks[:, :2] - np.float32([51, 37])
    enlarged = np.asarray(Image.fromarray(astronaut_photo).resize((1024, 1024), Image.Resampling.BICUBIC))
    scaled = face_landmarker.detect(enlarged)[0].landmarks[:, :2] / 2
    for landmarks in (moved, scaled):
        assert np.abs((landmarks - base).mean(axis=0)).max() < 0.15
        assert np.median(np.abs(landmarks - base)) < 0.3


def test_demo_world_faces_are_found_with_eyes_on_the_true_eyes(face_landmarker, tiny_world):
    """Every 64 x 64 demo image has its face found; eye centres within 2 px of the true eye regions."""
    images = sorted((tiny_world / "FFHQ" / "images").glob("*.png"))
    segmentation = np.load(tiny_world / "FFHQ" / "preprocessed_dataset" / "segmentation.npy")
    assert len(images) == 12
    checked = 0
    for path, labels in zip(images, segmentation):
        faces = face_landmarker.detect(np.asarray(Image.open(path).convert("RGB")))
        assert len(faces) == 1, path.name
        eye_left, eye_right = lm.eye_mouth_points(faces[0].landmarks)[:2]
        for label, point in ((LEFT_EYE_LABEL, eye_left), (RIGHT_EYE_LABEL, eye_right)):
            rows, cols = np.nonzero(labels == label)
            if len(rows) >= 2:          # an eye turned away may be hidden
                centre = np.array([cols.mean() + 0.5, rows.mean() + 0.5])
                assert np.linalg.norm(point - centre) < 2.0, (path.name, label, point, centre)
                checked += 1
    assert checked >= 20


@pytest.mark.parametrize("name", ["coffee", "chelsea", "black"])
def test_images_without_a_face_give_no_faces(face_landmarker, astronaut_photo, name):  # scikit-image present
    import skimage.data

    image = np.zeros((300, 400, 3), np.uint8) if name == "black" else getattr(skimage.data, name)()
    assert face_landmarker.detect(image) == []


def test_several_faces_sorted_largest_first_and_capped(face_landmarker, astronaut_photo):
    face = Image.fromarray(astronaut_photo[40:220, 140:310])
    canvas = Image.new("RGB", (720, 400), (128, 128, 128))
    canvas.paste(face.resize((180, 190)), (40, 100))
    canvas.paste(face.resize((300, 318)), (380, 40))
    image = np.asarray(canvas)
    faces = face_landmarker.detect(image)
    assert len(faces) == 2
    assert faces[0].box[0] > 360 and faces[1].box[2] < 240   # the big face (right) first
    only = lm.FaceLandmarker(max_faces=1).detect(image)
    assert len(only) == 1


def test_a_face_too_small_for_the_whole_photo_is_found_in_tiles(face_landmarker, astronaut_photo):
    canvas = Image.new("RGB", (1600, 1200), (128, 128, 128))
    canvas.paste(Image.fromarray(astronaut_photo[40:220, 140:310]).resize((120, 127)), (1000, 700))
    image = np.asarray(canvas)
    assert len(face_landmarker._detect_in_squares(image, [((800, 600), 1600)])[2]) == 0   # whole photo: missed
    (face,) = face_landmarker.detect(image)
    assert 1000 < face.box[0] < face.box[2] < 1120 and 700 < face.box[1] < face.box[3] < 827


def test_overlapping_meshes_count_as_one_face(astronaut_face):
    landmarks = astronaut_face.landmarks
    width = np.ptp(landmarks[:, 0])
    assert lm._same_face(landmarks, landmarks + np.float32([0.3 * width, 0, 0]))            # 70% overlap
    assert not lm._same_face(landmarks, landmarks + np.float32([0.6 * width, 0, 0]))        # 40% overlap
    assert lm._same_face(landmarks[:200], landmarks)                                         # part of it


def test_detect_rejects_images_that_are_not_rgb_uint8(face_landmarker):
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 RGB, got shape \(20, 20\)"):
        face_landmarker.detect(np.zeros((20, 20), np.uint8))
    with pytest.raises(ValueError, match="dtype float32"):
        face_landmarker.detect(np.zeros((20, 20, 3), np.float32))


@pytest.mark.parametrize("kwargs, message", [({"min_score": 1.5}, "min_score must be in"),
                                             ({"max_faces": 0}, "max_faces must be an integer >= 1")])
def test_landmarker_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lm.FaceLandmarker(**kwargs)


def test_ssd_anchor_layouts_match_the_models():
    short, full = lm.ssd_anchors(lm.SHORT_RANGE), lm.ssd_anchors(lm.FULL_RANGE)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    np.testing.assert_allclose(short[:3], [[0.5 / 16, 0.5 / 16]] * 2 + [[1.5 / 16, 0.5 / 16]])
    np.testing.assert_allclose(short[512:518], [[0.5 / 8, 0.5 / 8]] * 6)   # 3 stride-16 layers share a map
    np.testing.assert_allclose(full[-1], [47.5 / 48, 47.5 / 48])


def test_weighted_nms_blends_overlapping_detections_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    keypoints = np.array([[[0, 0]], [[3, 3]], [[55, 55]]], np.float32)
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    out_boxes, out_keypoints, out_scores = lm.weighted_nms(boxes, keypoints, scores)
    np.testing.assert_allclose(out_scores, [0.9, 0.7])
    np.testing.assert_allclose(out_boxes[0], [0.6, 0.6, 10.6, 10.6], atol=1e-5)   # weights 0.4 / 0.6
    np.testing.assert_allclose(out_keypoints[0, 0], [1.8, 1.8], atol=1e-5)
    np.testing.assert_allclose(out_boxes[1], boxes[2])


def test_sample_square_maps_output_pixels_to_the_documented_points():
    image = np.zeros((40, 60, 3), np.uint8)
    image[10, 30] = 255                                   # pixel centre (30.5, 10.5)
    # Side 8 at size 8: output pixel (i, j) samples centre + (j - 3.5) axis_x + (i - 3.5) axis_y.
    upright = lm.sample_square(image, (31.0, 11.0), (1.0, 0.0), 8, 8)
    assert upright[3, 3, 0] == 255 and upright.sum() == 3 * 255
    turned = lm.sample_square(image, (31.0, 11.0), (0.0, 1.0), 8, 8)   # axis_y = (-1, 0)
    assert turned[4, 3, 0] == 255 and turned.sum() == 3 * 255


def test_missing_model_file_names_the_file_and_the_install_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"face_landmark\.tflite is missing.*pip install --no-deps "
                                                r"\"mediapipe==0\.10\.21\""):
        models.model_file(models.FACE_LANDMARK, folder=tmp_path)


def test_missing_mediapipe_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"package 'mediapipe' not found.*pip install --no-deps"):
        models.mediapipe_folder()

"""Preprocessing benchmark: CPU ms per image for each stage of varitex-preprocess at FFHQ size.

The input is a real photo (scikit-image's astronaut, upscaled to ``--size``, 1024 x 1024 by default, an
in-the-wild photo at FFHQ size). One process, one thread per model (the per-core cost: large runs use one
process per core). Prints JSON lines:
  {"bench": "preprocess_stage", "stage": S, "image_size": N, "cpu_ms": ..., "wall_ms": ..., "repeats": R}
      detection          FaceLandmarker.detect on the photo (two detectors, face mesh twice)
      alignment          align_ffhq of the photo to size x size
      detection_aligned  FaceLandmarker.detect on the aligned image (what --aligned inputs cost)
      person_mask        MediaPipe selfie segmentation at the array size (512)
      segmentation       segment_face at the array size, person mask given
  {"bench": "preprocess_total", "stages": [...], "cpu_ms": ..., "hours_70k_16_cores": ...}

    python benchmarks/bm_preprocess.py            # 1024 x 1024, 10 repeats
    python benchmarks/bm_preprocess.py --smoke    # 256 x 256, 2 repeats
"""
import argparse
import json
import statistics
import time

import numpy as np
from PIL import Image

from varitex.preprocess.alignment import align_ffhq
from varitex.preprocess.landmarks import FACE_OVAL, FaceLandmarker, eye_mouth_points
from varitex.preprocess.segmentation import person_probability, polygon_mask, segment_face

ARRAY_SIZE = 512            # uv / segmentation side in the authors' layout
FFHQ_IMAGES = 70_000
CORES = 16


def measure(function, repeats):
    """Median CPU and wall milliseconds of ``function()`` over ``repeats`` calls after one warm-up call.

    Returns:
        (result of the last call, {"cpu_ms", "wall_ms", "repeats"}).
    """
    result = function()
    cpu, wall = [], []
    for _ in range(repeats):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        result = function()
        cpu.append(time.process_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
    return result, {"cpu_ms": round(1000 * statistics.median(cpu), 2),
                    "wall_ms": round(1000 * statistics.median(wall), 2), "repeats": repeats}


def test_photo(size):
    """The astronaut photo resized to size x size (uint8 RGB): a real face at a known place."""
    from skimage.data import astronaut

    return np.asarray(Image.fromarray(astronaut()).resize((size, size), Image.Resampling.BICUBIC))


def detection_stages(photo, size, repeats, landmarker):
    """Detection, alignment and segmentation of one photo: yields (stage name, timing) per stage."""
    faces, timing = measure(lambda: landmarker.detect(photo), repeats)
    yield "detection", timing
    points = eye_mouth_points(faces[0].landmarks)
    (aligned, _), timing = measure(lambda: align_ffhq(photo, *points, size=size), repeats)
    yield "alignment", timing
    faces, timing = measure(lambda: landmarker.detect(aligned), repeats)
    yield "detection_aligned", timing

    # Segmentation runs at the array size on the aligned image; the face oval stands in for the fitted mask.
    scale = ARRAY_SIZE / size
    small = np.asarray(Image.fromarray(aligned).resize((ARRAY_SIZE, ARRAY_SIZE), Image.Resampling.BILINEAR))
    landmarks = faces[0].landmarks * np.float32([scale, scale, scale])
    face_mask = polygon_mask(landmarks[list(FACE_OVAL), :2], small.shape[:2])
    person, timing = measure(lambda: person_probability(small), repeats)
    yield "person_mask", timing
    _, timing = measure(lambda: segment_face(small, landmarks, face_mask, person), repeats)
    yield "segmentation", timing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="photo and aligned image side (FFHQ: 1024)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="256 x 256, 2 repeats: a quick check that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.repeats = 256, 2

    landmarker = FaceLandmarker(num_threads=1)
    photo = test_photo(args.size)
    total, stages = 0.0, []
    for stage, timing in detection_stages(photo, args.size, args.repeats, landmarker):
        print(json.dumps({"bench": "preprocess_stage", "stage": stage, "image_size": args.size, **timing}),
              flush=True)
        if stage != "detection_aligned":     # an in-the-wild photo is detected once, before alignment
            total += timing["cpu_ms"]
            stages.append(stage)
    hours = total / 1000 * FFHQ_IMAGES / CORES / 3600
    print(json.dumps({"bench": "preprocess_total", "stages": stages, "image_size": args.size,
                      "cpu_ms": round(total, 2), f"hours_{FFHQ_IMAGES // 1000}k_{CORES}_cores": round(hours, 3)}))


if __name__ == "__main__":
    main()

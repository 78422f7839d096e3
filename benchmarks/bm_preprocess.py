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
      fit                fit_landmarks per image, the photo's landmarks (jittered) fitted in a batch of --fit_batch,
                         with the embedded demo face model (the fit's cost depends on the landmark and
                         coefficient counts, 468 x (199 + 100), not on the mesh size)
      uv                 render_uv at the array size per image in batches of 8, the demo mesh subdivided to
                         148,288 faces (at least BFM's 56,572: an upper bound of the face12 model's cost)
      write              one item into the output folder: the aligned PNG and the work-folder arrays
  {"bench": "preprocess_total", "stages": [...], "cpu_ms": ..., "hours_70k_16_cores": ...}

    python benchmarks/bm_preprocess.py            # 1024 x 1024, 10 repeats
    python benchmarks/bm_preprocess.py --smoke    # 256 x 256, 2 repeats
"""
import argparse
import itertools
import json
import statistics
import time

import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from varitex.preprocess.alignment import align_ffhq
from varitex.preprocess.landmarks import FACE_OVAL, FaceLandmarker, eye_mouth_points
from varitex.preprocess.segmentation import person_probability, polygon_mask, segment_face
from varitex.demo_world.face_model import build_face_model
from varitex.demo_world.world import save_demo_face_model
from varitex.geometry import BFM2017, DEFAULT_S, DEFAULT_T, pose_vertices, render_uv
from varitex.preprocess.correspondence import load_correspondence
from varitex.preprocess.fitting import LandmarkFaceModel, fit_landmarks
from varitex.preprocess.pipeline import FaceItem, InputResult
from varitex.preprocess.writer import OutputFolder

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


def subdivided(vertices, faces, min_faces):
    """Midpoint-subdivide a triangle mesh (each face -> 4) until it has at least ``min_faces`` faces."""
    vertices, faces = np.asarray(vertices, dtype=np.float64), np.asarray(faces)
    while len(faces) < min_faces:
        edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
        unique, inverse = np.unique(edges, axis=0, return_inverse=True)
        mid = len(vertices) + inverse.reshape(3, -1)
        vertices = np.concatenate([vertices, vertices[unique].mean(axis=1)])
        a, b, c = faces.T
        faces = np.concatenate([np.stack(f, axis=1) for f in ((a, mid[0], mid[2]), (mid[0], b, mid[1]),
                                                                (mid[2], mid[1], c), (mid[0], mid[1], mid[2]))])
    return vertices, faces


def fit_and_write_stages(aligned, landmarks, size, fit_batch, repeats, landmarker):
    """Fit, uv and write of the aligned photo: yields (stage name, per-image timing) per stage."""
    model = build_face_model()
    with tempfile.TemporaryDirectory() as folder:
        bfm = BFM2017(save_demo_face_model(Path(folder) / "model.h5", model))
        correspondence = load_correspondence(bfm, lambda: landmarker, cache_dir=Path(folder) / "cache")
        face_model = LandmarkFaceModel(bfm, correspondence.vertex_ids, correspondence.barycentrics)
        rng = np.random.default_rng(0)
        batch = landmarks[None, :, :2] + rng.normal(0, size / 512, (fit_batch, len(landmarks), 2))
        fit, timing = measure(lambda: fit_landmarks(face_model, batch, size, weights=correspondence.weights),
                              max(1, repeats // 5))
        yield "fit", per_image(timing, fit_batch)

        vertices, faces = subdivided(model.mean, model.faces, 56_572)
        mesh = torch.from_numpy(vertices).float()[None].expand(8, -1, -1)
        posed = pose_vertices(mesh, fit.R[:1].expand(8, 3, 3), torch.tensor(DEFAULT_T).repeat(8, 1),
                              torch.full((8, 1), DEFAULT_S))
        faces = torch.from_numpy(faces)
        uv, timing = measure(lambda: render_uv(posed, faces, torch.rand(len(vertices), 2), faces, ARRAY_SIZE),
                             max(1, repeats // 5))
        yield "uv", {**per_image(timing, 8), "faces": len(faces)}

        output = OutputFolder(Path(folder) / "out", {"bench": True})
        source = Path(folder) / "photo.png"
        Image.fromarray(aligned).save(source)
        item = FaceItem(stem="photo", image=aligned, R=fit.R[0].numpy(), t=fit.t[0].numpy(), s=fit.s[0].numpy(),
                        sp=fit.sp[0].numpy(), ep=fit.ep[0].numpy(), uv=uv[0].numpy(),
                        segmentation=np.zeros((ARRAY_SIZE, ARRAY_SIZE), np.uint8), reprojection_error_px=0.0,
                        fit_seconds=0.0)
        _, timing = measure(lambda: output.save(InputResult(path=str(source), stems=["photo"], faces=[item])),
                            repeats)
        yield "write", timing


def per_image(timing, n):
    """A batch timing divided by the batch size n."""
    return {"cpu_ms": round(timing["cpu_ms"] / n, 2), "wall_ms": round(timing["wall_ms"] / n, 2),
            "repeats": timing["repeats"], "batch": n}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="photo and aligned image side (FFHQ: 1024)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--fit_batch", type=int, default=32, help="photos per fit (varitex-preprocess --batch_size)")
    parser.add_argument("--smoke", action="store_true", help="256 x 256, 2 repeats: a quick check that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.repeats, args.fit_batch = 256, 2, 4
    torch.set_num_threads(1)  # the per-core cost, as varitex-preprocess runs on a CPU

    landmarker = FaceLandmarker(num_threads=1)
    photo = test_photo(args.size)
    total, stages = 0.0, []
    points = eye_mouth_points(landmarker.detect(photo)[0].landmarks)
    aligned, _ = align_ffhq(photo, *points, size=args.size)
    landmarks = landmarker.detect(aligned)[0].landmarks
    stages_timed = itertools.chain(detection_stages(photo, args.size, args.repeats, landmarker),
                                   fit_and_write_stages(aligned, landmarks, args.size, args.fit_batch, args.repeats,
                                                        landmarker))
    for stage, timing in stages_timed:
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

"""varitex-evaluate benchmark: seconds per image of each stage of the consistency evaluation, and the projected
time of the evaluation of 100 identities x the pose grid (7 x 7 poses + 2 expressions = 51 images each).

Measured on a subset (``--identities`` people x the full grid) and extrapolated linearly (every stage is
per image or batched per image); the JSON says so. Stages:
    generate        G(z, sp, ep, theta) at the authors' architecture and image size (random weights: the
                    cost does not depend on them), batches of --batch_size
    detect          FaceLandmarker on each image (CPU, TensorFlow Lite), on ground-truth demo-world renders
                    (the generator's random outputs contain no face and would skip the mesh stage)
    identity        dlib's face descriptor of each detected face (when installed)
    fit             the own-photos fitter on all detected faces at once (the device)
    ground_truth    demo-world renders of the floor (per image; --n_floor identities x 51 in the command)

    python benchmarks/bm_evaluate.py                  # image 256, 1 identity x 51 conditions, CPU (+ GPU)
    python benchmarks/bm_evaluate.py --smoke          # image 64, narrow model, 3 x 3 grid
Prints JSON lines {"bench": "evaluate_stage", ...} and {"bench": "evaluate_projection", ...}.
"""
import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import device_facts, synchronize  # noqa: E402

from varitex.demo_world import ensure_demo_world, render_reposed  # noqa: E402
from varitex.evaluation import pose_consistency as pc  # noqa: E402
from varitex.generation import generate, uv_factory_from_options  # noqa: E402
from varitex.geometry import BFM2017  # noqa: E402
from varitex.modules.configs import generator_config  # noqa: E402
from varitex.modules.pipeline import PipelineModule  # noqa: E402
from varitex.options import TrainOptions  # noqa: E402

PROJECTED_IDENTITIES = 100
NARROW = dict(texture_decoder_planes=(32, 32, 16, 16, 8, 8), additive_decoder_planes=(32, 32, 16, 16, 8, 8),
              decoder_latent_channels=32)


def timed(function, device):
    synchronize(device)
    start = time.perf_counter()
    value = function()
    synchronize(device)
    return value, time.perf_counter() - start


def run(device, args, world):
    image_size = 64 if args.smoke else 256
    conditions = pc.condition_grid(45, 45 if args.smoke else 15)
    flags = ["--image_h", str(image_size), "--image_w", str(image_size), "--device", str(device), "--lambda_vgg", "0",
             "--no_lpips", "--path_bfm", str(world / "basel_facemodel" / "model2017-1_face12_nomouth.h5"),
             "--path_uv", str(world / "basel_facemodel" / "face12.json")]
    if args.smoke:
        flags += ["--texture_dim", "128", "--nc_feature2image", "8"]
    opt = TrainOptions().parse(flags)
    config = generator_config(opt)
    if args.smoke:
        config = dataclasses.replace(config, **NARROW)
    pipeline = PipelineModule(opt, generator_config=config).to(device).eval()
    uv_factory = uv_factory_from_options(opt)
    arrays = world / "FFHQ" / "preprocessed_dataset"
    rows = np.arange(args.identities) % len(np.load(arrays / "sp.npy"))
    requests = pc.build_requests(np.load(arrays / "sp.npy")[rows], np.load(arrays / "ep.npy")[rows], conditions)
    n = len(requests.identity)
    z = torch.randn(args.identities, opt.latent_dim, device=device)

    def generate_all():
        for start in range(0, n, args.batch_size):
            chunk = slice(start, start + args.batch_size)
            generate(pipeline, uv_factory, z[requests.identity[chunk]], requests.sp[chunk], requests.ep[chunk],
                     requests.theta[chunk])

    generate_all() if device.type == "cuda" else None  # warm-up on the GPU
    _, seconds = timed(generate_all, device)
    stages = {"generate": seconds}
    images, stages["ground_truth"] = timed(lambda: np.concatenate([
        render_reposed(world, np.full(int((requests.identity == i).sum()), row), requests.theta[requests.identity == i],
                       image_size=image_size) for i, row in enumerate(rows)]), torch.device("cpu"))
    images = (images * 255 + 0.5).astype(np.uint8)
    from varitex.preprocess.landmarks import FaceLandmarker

    landmarker = FaceLandmarker()
    detections, stages["detect"] = timed(lambda: pc.detect_faces(images, landmarker), torch.device("cpu"))
    try:
        from varitex.evaluation.identity import FaceDescriptor

        descriptor = FaceDescriptor()
        found = np.flatnonzero(detections.found)
        large = [pc.upscaled(images[i]) for i in found]
        _, stages["identity"] = timed(lambda: [descriptor(image, detections.boxes[i] / scale)
                                               for (image, scale), i in zip(large, found)], torch.device("cpu"))
    except ImportError as error:
        print(f"identity stage skipped: {error}", file=sys.stderr)
    measurer = pc.PoseMeasurer(BFM2017(world / "basel_facemodel" / "model2017-1_face12_nomouth.h5"), landmarker, device)
    measured, stages["fit"] = timed(lambda: measurer.measure(detections, requests, image_size), device)
    facts = device_facts(device)
    for stage, seconds in stages.items():
        print(json.dumps({"bench": "evaluate_stage", "stage": stage, "image_size": image_size, "images": n,
                          "seconds_per_image": round(seconds / n, 4), **facts}))
    per_identity = sum(stages[s] for s in stages if s != "ground_truth") / args.identities
    print(json.dumps({
        "bench": "evaluate_projection", "identities": PROJECTED_IDENTITIES, "conditions": len(conditions),
        "images": PROJECTED_IDENTITIES * len(conditions), "image_size": image_size,
        "projected_minutes": round(PROJECTED_IDENTITIES * per_identity / 60, 1),
        "ground_truth_floor_minutes_per_8_identities": round(8 * stages["ground_truth"] / args.identities / 60, 1),
        "extrapolated_from_identities": args.identities, "detection_rate": float(detections.found.mean()),
        "floor_rotation_error_deg_median": pc.error_statistics(measured)["rotation_error_deg_median"], **facts}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="image 64, narrow model, 3 x 3 pose grid")
    parser.add_argument("--identities", type=int, default=1, help="identities measured (then extrapolated)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    args = parser.parse_args()
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    with tempfile.TemporaryDirectory() as folder:
        size = 64 if args.smoke else 256
        world = ensure_demo_world(Path(folder) / "world", n_images=4, image_size=size, array_size=64,
                                  images_per_identity=1)
        for device in devices:
            run(torch.device(device), args, world)


if __name__ == "__main__":
    main()

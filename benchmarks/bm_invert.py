"""Benchmark: seconds per refinement step of varitex-invert (Adam on z through the generator), one JSON line
per model, loss and batch size.

Models (--models):
    authors   the authors' architecture at 256x256 (texture 256, U-Net 64 features)
    demo      the --demo preset (64x64, texture 128, U-Net 16 features): what the notebook and README use
Losses: l2 (the masked L2 alone, what runs without VGG weights) and l2+vgg (plus the VGG-19 perceptual loss;
random VGG weights here cost the same time as ImageNet ones). Random generator weights and inputs; eval mode.
A step is the difference of two timed refinements (n + 1 and 1 steps) divided by n, so the final evaluation
does not count; cpu_s_per_step is the process CPU time of a step (on a loaded machine, wall time over-states
the cost; CPU time / threads is the wall time on idle cores). Each line also projects seconds per photo for the default --steps:

    {"bench": "invert", "model": "demo", "loss": "l2", "batch": 1, "s_per_step": ..., "default_steps": 60,
     "s_per_photo_default_steps": ..., "device": "cpu", ...}

    python benchmarks/bm_invert.py --smoke            # CPU: demo model, batch 1, 3 timed steps
    python benchmarks/bm_invert.py                    # both models, batches 1 and 8, on the GPU when present
"""
import argparse
import json
import os
import sys
import time
import types

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import default_device, device_facts, peak_memory_gib, random_batch, reset_peak_memory, synchronize  # noqa: E402,I001

from varitex.data.keys_enum import DataItemKey as DIK  # noqa: E402
from varitex.inversion import refine_latents  # noqa: E402
from varitex.modules.configs import generator_config  # noqa: E402
from varitex.modules.generator import Generator, he_initialize  # noqa: E402
from varitex.modules.loss import VGG19Loss  # noqa: E402
from varitex.options import TrainOptions  # noqa: E402
from varitex.options.eval_options import DEFAULT_INVERT_STEPS  # noqa: E402
from varitex.options.settings import DEMO_ARCHITECTURE, DEMO_OPTIONS  # noqa: E402

MODEL_FLAGS = {
    "authors": [],
    "demo": [f"--{name}={DEMO_OPTIONS[name]}" for name in DEMO_ARCHITECTURE],
}


def timed_refinement(pipeline, batch, z, steps, perceptual):
    """(wall seconds, process CPU seconds) of one refinement of ``steps`` steps."""
    synchronize(z.device)
    start, cpu_start = time.perf_counter(), time.process_time()
    refine_latents(pipeline, z, batch[DIK.UV_RENDERED], batch[DIK.IMAGE_IN], batch[DIK.SEGMENTATION_MASK], steps,
                   perceptual=perceptual)
    synchronize(z.device)
    return np.array([time.perf_counter() - start, time.process_time() - cpu_start])


def measure(model, loss, batch_size, steps, device):
    opt = TrainOptions().parse(MODEL_FLAGS[model])
    torch.manual_seed(0)
    pipeline = types.SimpleNamespace(generator=he_initialize(Generator(generator_config(opt))).to(device).eval())
    perceptual = VGG19Loss().to(device).eval() if loss == "l2+vgg" else None
    batch = random_batch(batch_size, opt.image_h, device)
    z = torch.randn(batch_size, opt.latent_dim, device=device)
    reset_peak_memory(device)
    timed_refinement(pipeline, batch, z, 1, perceptual)  # warm-up
    seconds, cpu_seconds = (timed_refinement(pipeline, batch, z, steps + 1, perceptual)
                            - timed_refinement(pipeline, batch, z, 1, perceptual)) / steps
    return {"bench": "invert", "model": model, "image_size": opt.image_h, "loss": loss, "batch": batch_size,
            "timed_steps": steps, "s_per_step": round(seconds, 4), "cpu_s_per_step": round(cpu_seconds, 4), "s_per_step_per_photo": round(seconds / batch_size, 4),
            "default_steps": DEFAULT_INVERT_STEPS,
            "s_per_photo_default_steps": round(seconds / batch_size * DEFAULT_INVERT_STEPS, 2),
            "peak_memory_gib": peak_memory_gib(device), **device_facts(device)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="demo model, batch 1, 3 timed steps, CPU")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--models", nargs="+", default=list(MODEL_FLAGS), choices=list(MODEL_FLAGS))
    parser.add_argument("--losses", nargs="+", default=["l2", "l2+vgg"], choices=["l2", "l2+vgg"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.smoke:
        args.device, args.models, args.losses, args.batches, args.steps = "cpu", ["demo"], ["l2"], [1], 3
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else default_device()
    for model in args.models:
        for loss in args.losses:
            for batch_size in args.batches:
                print(json.dumps(measure(model, loss, batch_size, args.steps, device)), flush=True)


if __name__ == "__main__":
    main()

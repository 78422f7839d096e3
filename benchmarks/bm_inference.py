"""Benchmark: inference throughput of the generator, one JSON line per function, configuration and batch.

Functions (--functions):
    forward_latent2image   latent + UV map -> image (what G(z, sp, ep, theta) runs after the UV render)
    forward_z_mu           the whole generator from an image with z = mu (encoder, both decoders, U-Net);
                           the authors' implementation took 9.8 s for batch 2 at 256x256 on 2 CPU threads

Default architecture (256x256, texture 256), eval mode, no gradients, random inputs already on the device;
the UV rendering itself is benchmarks/bm_render.py. For each configuration and batch size: warm-up calls,
then timed calls between device synchronizations. One JSON line each:

    {"bench": "inference", "function": "forward_latent2image", "config": "bf16-cl", "batch": 32,
     "images_per_s": ..., "s_per_batch_median": ..., "peak_memory_gib": ..., "device": "cuda", ...}

A configuration is a precision (fp32; bf16 or fp16: autocast) with any of -cl (channels-last weights) and
-compile (torch.compile of the function, --compile_mode).

    python benchmarks/bm_inference.py --smoke         # CPU: 64x64, texture 128, batches 1 and 4
    python benchmarks/bm_inference.py                 # full size, batches 1 and 32, every configuration
    python benchmarks/bm_inference.py --device cpu --threads 2 --functions forward_z_mu --configs fp32 --batches 2
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (SMOKE_FLAGS, default_device, device_facts, parse_config, peak_memory_gib,  # noqa: E402
                    random_batch, reset_peak_memory, synchronize)

from varitex.data.keys_enum import DataItemKey as DIK  # noqa: E402
from varitex.modules.configs import generator_config  # noqa: E402
from varitex.modules.generator import Generator  # noqa: E402
from varitex.options import TrainOptions  # noqa: E402

DEFAULT_CONFIGS = ("fp32", "fp32-cl", "bf16", "bf16-cl", "bf16-cl-compile")
AUTOCAST = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


FUNCTIONS = ("forward_latent2image", "forward_z_mu")


def make_inputs(opt, batch_size, device):
    """STYLE_LATENT (B, latent_dim) ~ N(0, 1), IMAGE_IN_ENCODE (B, 3, H, W) and UV_RENDERED (B, H, W, 2) with a
    face-shaped foreground."""
    torch.manual_seed(batch_size)
    batch = random_batch(batch_size, opt.image_h, device)
    return {DIK.STYLE_LATENT: torch.randn(batch_size, opt.latent_dim, device=device),
            DIK.IMAGE_IN_ENCODE: batch[DIK.IMAGE_IN_ENCODE], DIK.UV_RENDERED: batch[DIK.UV_RENDERED]}


def generator_function(generator, name):
    """The timed call: inputs dict -> outputs dict."""
    if name == "forward_z_mu":
        return lambda inputs: generator(inputs, std_multiplier=0)
    return generator.forward_latent2image


def time_config(opt, function, config, batch_sizes, device, warmup, repeats, compile_mode):
    settings = parse_config(config, switches=("cl", "compile"))
    torch.manual_seed(0)
    generator = Generator(generator_config(opt)).to(device).eval()
    if settings["channels_last"]:
        generator.to(memory_format=torch.channels_last)
    forward = generator_function(generator, function)
    if settings["compile"]:
        forward = torch.compile(forward, mode=compile_mode)
    dtype = AUTOCAST[settings["precision"]]
    for batch_size in batch_sizes:
        inputs = make_inputs(opt, batch_size, device)
        reset_peak_memory(device)
        seconds = []
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            for call in range(warmup + repeats):
                synchronize(device)
                start = time.perf_counter()
                forward(dict(inputs))
                synchronize(device)
                if call >= warmup:
                    seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        yield {"bench": "inference", "function": function, "config": config, **settings,
               "compile_mode": compile_mode if settings["compile"] else None, "batch": batch_size,
               "image_size": opt.image_h, "texture_dim": opt.texture_dim,
               "images_per_s": round(batch_size / median, 2), "s_per_batch_median": round(median, 5),
               "s_per_batch_min": round(min(seconds), 5), "timed_calls": repeats,
               "peak_memory_gib": peak_memory_gib(device), **device_facts(device)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="64x64, texture 128, batches 1 and 4, fp32 and fp32-cl")
    parser.add_argument("--functions", nargs="+", default=["forward_latent2image"], choices=FUNCTIONS)
    parser.add_argument("--configs", nargs="+", default=None, help=f"default: {' '.join(DEFAULT_CONFIGS)}")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="default 1 32 (smoke: 1 4)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 5, smoke 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (default 20, smoke 2)")
    parser.add_argument("--compile_mode", default="default",
                        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"])
    parser.add_argument("--device", default=None, help="default: cuda when available")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else default_device()
    opt = TrainOptions().parse(SMOKE_FLAGS if args.smoke else [])
    configs = args.configs or (("fp32", "fp32-cl") if args.smoke else DEFAULT_CONFIGS)
    for config in configs:
        parse_config(config, switches=("cl", "compile"))
    batch_sizes = args.batches or ([1, 4] if args.smoke else [1, 32])
    warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 5)
    repeats = args.repeats or (2 if args.smoke else 20)
    for function in args.functions:
        for config in configs:
            for line in time_config(opt, function, config, batch_sizes, device, warmup, repeats, args.compile_mode):
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

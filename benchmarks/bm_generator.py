"""Benchmark: one generator forward (encode, latent, both decoders, UV sampling, U-Net) with z = mu.

Default architecture, eval mode, no_grad; prints one JSON line per configuration, e.g.
    python benchmarks/bm_generator.py                      # CPU, batch 2, 256x256 (the reference's setting)
    python benchmarks/bm_generator.py --device cuda --batch 2 7 32
The authors' implementation took 9.8 s (best of 3) on CPU for batch 2 with 2 threads (shared/reference).
"""
import argparse
import json
import os
import time

import torch

from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules.generator import Generator
from varitex.options import TrainOptions


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(generator, batch_size, size, device, repeats):
    generator_ = torch.Generator().manual_seed(0)
    batch = {DIK.IMAGE_IN_ENCODE: torch.randn(batch_size, 3, size, size, generator=generator_).to(device),
             DIK.UV_RENDERED: (torch.rand(batch_size, size, size, 2, generator=generator_) * 2 - 1).to(device)}
    seconds, cpu_seconds = [], []
    with torch.no_grad():
        generator(dict(batch), std_multiplier=0)  # warm-up (allocator, kernels)
        for _ in range(repeats):
            synchronize(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            generator(dict(batch), std_multiplier=0)
            synchronize(device)
            seconds.append(time.perf_counter() - start)
            cpu_seconds.append(time.process_time() - start_cpu)
    return seconds, cpu_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[2])
    parser.add_argument("--size", type=int, default=256, help="image and texture size (128 or 256)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    opt = TrainOptions().parse(["--image_h", str(args.size), "--image_w", str(args.size),
                                "--texture_dim", str(args.size)])
    generator = Generator(opt).to(device).eval()
    for batch_size in args.batch:
        seconds, cpu_seconds = time_forward(generator, batch_size, args.size, device, args.repeats)
        print(json.dumps({
            "benchmark": "generator_forward_z_mu", "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "threads": torch.get_num_threads(), "batch": batch_size, "size": args.size,
            "seconds_best": round(min(seconds), 4), "seconds_all": [round(s, 4) for s in seconds],
            "images_per_second": round(batch_size / min(seconds), 2),
            # On a shared machine wall time depends on the neighbours; process CPU time (all threads) less so.
            "cpu_seconds_best": round(min(cpu_seconds), 4), "load_average_1min": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()

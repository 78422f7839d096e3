"""Benchmark: end-to-end training throughput, data pipeline + G+D step, as ``varitex-train`` runs it.

Writes a dataset in the authors' layout with FFHQ-size files (bm_data.write_dataset: 1024x1024 PNGs,
512x512 uv/segmentation arrays; the arrays tiled to ``--rows`` items so that epochs are long), builds the
training DataLoader with varitex.train.make_dataloaders (augmentation on, --num_workers workers, pinned
memory on CUDA, persistent workers) and trains default options (VGG-19 loss with RANDOM weights) in the
given configurations. Each batch is timed from the end of the previous one (so waiting for data counts)
after ``warmup`` batches. One JSON line per configuration:

    {"bench": "end_to_end", "config": "bf16-reuse", "workers": 8, "images_per_s": ...,
     "images_per_s_mean": ..., "step_only_images_per_s": ..., "data_wait_fraction": ..., ...}

``images_per_s`` is from the median batch, ``images_per_s_mean`` from the whole timed window (the one to
compare when data loading stalls now and then), ``step_only_images_per_s`` excludes the wait for data.

    python benchmarks/bm_end_to_end.py --smoke                    # CPU: small files and network
    python benchmarks/bm_end_to_end.py --configs bf16-reuse --workers 8
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bm_data import write_dataset  # noqa: E402
from common import (SMOKE_FLAGS, IterationTimer, default_device, device_facts, parse_config,  # noqa: E402
                    peak_memory_gib, reset_peak_memory)

from varitex import performance, train  # noqa: E402
from varitex.modules.pipeline import PipelineModule  # noqa: E402
from varitex.options import TrainOptions  # noqa: E402
from varitex.safe_io import load_string_array  # noqa: E402

PER_ROW_ARRAYS = ("R", "t", "s", "sp", "ep", "segmentation", "uv")


def tile_rows(data, rows):
    """Repeat every per-item array (and filename.npy) of ``data`` to ``rows`` rows; all rows go to 'train'."""
    for name in PER_ROW_ARRAYS + ("filename",):
        array = load_string_array(data / "filename.npy") if name == "filename" else np.load(data / f"{name}.npy")
        np.save(data / f"{name}.npy", array[np.arange(rows) % len(array)])
    np.savez(data / "dataset_splits.npz", train=np.arange(rows), val=np.arange(0))


def options(args, config, data, images, device):
    flags = (SMOKE_FLAGS if args.smoke else []) + [
        "--dataroot_npy", str(data), "--image_folder", str(images), "--no_lpips",
        "--batch_size", str(args.batch_size), "--num_workers", str(args.workers), "--device", device.type]
    opt = TrainOptions().parse(flags)
    for name, value in parse_config(config).items():
        setattr(opt, name, value)
    return opt


def run_config(args, config, data, images, device):
    opt = options(args, config, data, images, device)
    train_loader, _ = train.make_dataloaders(opt)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random VGG-19 weights: intended here
        model = PipelineModule(opt, random_perceptual_weights=True)
    performance.prepare_networks(model, opt)
    with_wait, step_only = IterationTimer(args.warmup, include_data_wait=True), IterationTimer(args.warmup)
    trainer = pl.Trainer(accelerator=device.type, devices=1, precision=opt.precision, max_epochs=1,
                         limit_train_batches=args.warmup + args.iterations, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, callbacks=[with_wait, step_only])
    reset_peak_memory(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, train_loader)
    median, total = statistics.median(with_wait.seconds), sum(with_wait.seconds)
    timed_images = len(with_wait.seconds) * opt.batch_size
    return {"bench": "end_to_end", "config": config, **parse_config(config), "workers": opt.num_workers,
            "pin_memory": train_loader.pin_memory, "batch": opt.batch_size, "image_size": opt.image_h,
            "augmentation": True, "images_per_s": round(opt.batch_size / median, 2),
            "images_per_s_mean": round(timed_images / total, 2),
            "step_only_images_per_s": round(opt.batch_size / statistics.median(step_only.seconds), 2),
            "data_wait_fraction": round(1 - sum(step_only.seconds) / total, 3),
            "s_per_iteration_median": round(median, 5), "timed_iterations": len(with_wait.seconds),
            "cpu_s_per_iteration": round(statistics.median(with_wait.cpu_seconds), 5),
            "peak_memory_gib": peak_memory_gib(device), "host_cpus": os.cpu_count(), **device_facts(device)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="256 PNGs, 128 arrays, small network at 64x64, batch 1, 1 + 3 batches, fp32-reuse")
    parser.add_argument("--configs", nargs="+", default=None, help="default: bf16-reuse bf16 fp32 (smoke: fp32-reuse)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: --num_workers')")
    parser.add_argument("--batch_size", type=int, default=None, help="default 7 (smoke 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed batches first (default 10, smoke 1)")
    parser.add_argument("--iterations", type=int, default=None, help="timed batches (default 40, smoke 3)")
    parser.add_argument("--n_images", type=int, default=None, help="distinct PNGs written (default 48, smoke 8)")
    parser.add_argument("--device", default=None, help="default: cuda when available")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads of the training process")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.workers = args.workers if args.workers is not None else TrainOptions().parse([]).num_workers
    args.batch_size = args.batch_size or (1 if args.smoke else 7)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 10)
    args.iterations = args.iterations or (3 if args.smoke else 40)
    configs = args.configs or (("fp32-reuse",) if args.smoke else ("bf16-reuse", "bf16", "fp32"))
    device = torch.device(args.device) if args.device else default_device()
    png_size, array_size = (256, 128) if args.smoke else (1024, 512)
    n_images = args.n_images or (8 if args.smoke else 48)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        data, images = write_dataset(tmp, n_images, png_size, array_size)
        tile_rows(Path(data), (args.warmup + args.iterations + 2) * args.batch_size)
        setup_s = round(time.perf_counter() - start, 1)
        for config in configs:
            result = run_config(args, config, data, images, device)
            print(json.dumps({**result, "png_size": png_size, "array_size": array_size, "distinct_pngs": n_images,
                              "dataset_write_s": setup_s}), flush=True)


if __name__ == "__main__":
    main()

"""Data-pipeline benchmark: NPYDataset ms per item and DataLoader images/s on FFHQ-size synthetic files.

Writes a synthetic dataset in the authors' layout to a temporary folder (default: 1024x1024 PNGs with
photo-like content and compression, 512x512 uv/segmentation arrays, image_h 256) and prints JSON lines:
  {"bench": "png_decode", "cpu_ms": ...}                       PIL decode of one PNG
  {"bench": "item", "augmentation": ..., "image_cache": ..., "ms_per_item": ..., "cpu_ms_per_item": ...}
                                                                one process, one thread
  {"bench": "dataloader", "workers": W, "images_per_s": ...}                      batch 7, augmentation on

    python benchmarks/bm_data.py                 # FFHQ sizes
    python benchmarks/bm_data.py --smoke         # small and quick
    python benchmarks/bm_data.py --workers 4 8 16  # adds DataLoader runs with 4, 8 and 16 workers
"""
import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from varitex.data.npy_dataset import NPYDataset
from varitex.options import TrainOptions


def write_dataset(root, n_images, png_size, array_size, seed=0):
    """A dataset in the authors' layout with FFHQ-like statistics: a face-shaped uv region, CelebAMask-HQ
    labels (skin, hair, neck, background) and smooth noisy RGB images that PNG compresses about 2:1."""
    rng = np.random.default_rng(seed)
    data, images = Path(root, "preprocessed_dataset"), Path(root, "images")
    data.mkdir(parents=True)
    images.mkdir()
    y, x = np.mgrid[0:array_size, 0:array_size] / array_size - 0.5
    face = (x / 0.28) ** 2 + ((y - 0.05) / 0.36) ** 2 < 1
    head = (x / 0.36) ** 2 + ((y + 0.02) / 0.45) ** 2 < 1
    uv = np.full((n_images, array_size, array_size, 2), -1, dtype=np.float32)
    uv[:, face] = np.stack([x[face] / 0.3, (y[face] - 0.05) / 0.4], -1).astype(np.float32)
    segmentation = np.zeros((n_images, array_size, array_size), dtype=np.uint8)
    segmentation[:, head] = 13
    segmentation[:, face] = 1
    segmentation[:, (y > 0.38) & (np.abs(x) < 0.15)] = 17
    np.save(data / "uv.npy", uv)
    np.save(data / "segmentation.npy", segmentation)
    np.save(data / "R.npy", np.tile(np.eye(3, dtype=np.float32), (n_images, 1, 1)))
    np.save(data / "t.npy", np.tile(np.float32([0, -2, -57]), (n_images, 1)))
    np.save(data / "s.npy", np.full((n_images, 1), 0.1, dtype=np.float32))
    np.save(data / "sp.npy", rng.normal(size=(n_images, 199)).astype(np.float32))
    np.save(data / "ep.npy", rng.normal(size=(n_images, 100)).astype(np.float32))
    names = np.array([f"{i:05d}" for i in range(n_images)], dtype=object)
    np.save(data / "filename.npy", names)
    np.savez(data / "dataset_splits.npz", train=np.arange(n_images), val=np.arange(0))
    py, px = np.mgrid[0:png_size, 0:png_size] / png_size
    for i, name in enumerate(names):
        phase = rng.uniform(0, 6, 3)
        smooth = np.stack([np.sin(5 * px + 3 * py + phase[c]) for c in range(3)], -1) * 90 + 128
        pixels = np.clip(smooth + rng.normal(0, 4, smooth.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"{name}.png")
    return data, images


def ms_per_item(dataset, repeats):
    """(median wall ms, mean CPU ms) of dataset[i] over ``repeats`` passes after one warm-up pass.

    The CPU time of this single-threaded process is the per-core cost, and stays meaningful when other
    processes share the machine; the wall time is what one worker delivers.
    """
    for i in range(len(dataset)):
        dataset[i]
    times = []
    cpu_start = time.process_time()
    for _ in range(repeats):
        for i in range(len(dataset)):
            start = time.perf_counter()
            dataset[i]
            times.append(time.perf_counter() - start)
    cpu = (time.process_time() - cpu_start) / len(times)
    return 1e3 * statistics.median(times), 1e3 * cpu


def loader_images_per_s(dataset, workers, batch_size, n_batches):
    """Images/s of a shuffling DataLoader, timed from the first batch (worker start-up excluded)."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=True, drop_last=True,
                        persistent_workers=workers > 0)
    done, start = -1, None
    while done < n_batches:
        for _ in loader:
            if done < 0:
                start = time.perf_counter()
            done += 1
            if done == n_batches:
                break
    return n_batches * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small files (256 PNGs, 128 arrays), fewer items")
    parser.add_argument("--workers", type=int, nargs="+", default=[os.cpu_count()],
                        help="further DataLoader runs with these numbers of workers (default: the CPU count)")
    parser.add_argument("--n_images", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    png_size, array_size, image_h = (256, 128, 64) if args.smoke else (1024, 512, 256)
    n_images = args.n_images or (14 if args.smoke else 42)
    repeats = 1 if args.smoke else 3
    with tempfile.TemporaryDirectory() as tmp:
        data, images = write_dataset(tmp, n_images, png_size, array_size)
        sizes = {"png": png_size, "arrays": array_size, "image_h": image_h, "n_images": n_images}
        png = images / "00000.png"
        decode = []
        for _ in range(5):
            start = time.process_time()
            Image.open(png).load()
            decode.append(time.process_time() - start)
        print(json.dumps({"bench": "png_decode", "cpu_ms": round(1e3 * min(decode), 2), **sizes}), flush=True)

        def dataset(augmentation, cache=None):
            flags = ["--dataroot_npy", str(data), "--image_folder", str(images), "--image_h", str(image_h),
                     "--image_w", str(image_h)] + (["--image_cache", cache] if cache else [])
            return NPYDataset(TrainOptions().parse(flags), split="train", augmentation=augmentation)

        cache = str(Path(tmp, "cache"))
        for augmentation in (False, True):
            for cached in (False, True):
                wall, cpu = ms_per_item(dataset(augmentation, cache if cached else None), repeats)
                print(json.dumps({"bench": "item", "augmentation": augmentation, "image_cache": cached,
                                  "ms_per_item": round(wall, 2), "cpu_ms_per_item": round(cpu, 2),
                                  "load_average": os.getloadavg()[0], **sizes}), flush=True)
        n_batches = 4 if args.smoke else 12
        for workers in sorted({1, 2, *args.workers}):
            for cached in (False, True):
                rate = loader_images_per_s(dataset(True, cache if cached else None), workers, 7, n_batches)
                print(json.dumps({"bench": "dataloader", "workers": workers, "batch_size": 7, "augmentation": True,
                                  "image_cache": cached, "images_per_s": round(rate, 1),
                                  "load_average": os.getloadavg()[0], **sizes}), flush=True)


if __name__ == "__main__":
    main()

"""Shared parts of the training and inference benchmarks (bm_train_step, bm_end_to_end, bm_inference).

    parse_config("bf16-cl")       -> {"precision": "bf16-mixed", "channels_last": True, ...}
    device_facts(device)          -> {"device", "gpu", "torch", "threads"} for every JSON line
    IterationTimer(warmup)        -> Lightning callback: wall seconds of each training batch after warm-up
    summarize(seconds, batch)     -> images/s (from the median), median / min seconds
    peak_memory_gib(device)       -> peak GPU memory allocated (CUDA) or the process' peak RSS (CPU)
    random_batch(...)             -> a batch dict with the keys the training step reads, on a device
"""
import os
import resource
import statistics
import sys
import time

import torch
from lightning.pytorch.callbacks import Callback

from varitex.data.keys_enum import DataItemKey as DIK

# Configuration names: a precision, then any of the switches, e.g. "bf16-cl-reuse".
PRECISIONS = {"fp32": "32", "bf16": "bf16-mixed", "fp16": "16-mixed"}
SWITCHES = {"cl": "channels_last", "reuse": "reuse_generator_output", "compile": "compile"}

# --smoke: a small network and image for a quick CPU run (the decoders keep their fixed widths).
SMOKE_FLAGS = ["--image_h", "64", "--image_w", "64", "--texture_dim", "128", "--nc_feature2image", "8",
               "--feature2image_num_layers", "3", "--nc_discriminator", "16"]


def parse_config(name, switches=tuple(SWITCHES)):
    """'bf16-cl-reuse' -> {"precision": "bf16-mixed", "channels_last": True, "reuse_generator_output": True, ...}
    (Lightning precision names; every switch of ``switches`` present as a bool)."""
    precision, *given = name.split("-")
    if precision not in PRECISIONS or any(switch not in switches for switch in given):
        raise ValueError(f"configuration {name!r}: expected one of {sorted(PRECISIONS)} followed by any of "
                         f"{['-' + switch for switch in switches]}")
    return {"precision": PRECISIONS[precision], **{SWITCHES[switch]: switch in given for switch in switches}}


def default_device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def device_facts(device):
    device = torch.device(device)
    return {"device": device.type, "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "load_average": round(os.getloadavg()[0], 2)}


def reset_peak_memory(device):
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device):
    """Peak GPU memory allocated by tensors since the last reset_peak_memory (CUDA); on the CPU the peak
    resident memory of this whole process (it cannot be reset, so it only grows across configurations)."""
    if torch.device(device).type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 3)
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / 2 ** 20 if sys.platform != "darwin" else kib / 2 ** 30, 3)


def summarize(seconds, batch_size):
    """Per-iteration wall seconds -> images/s of the median iteration, and the median and minimum."""
    median = statistics.median(seconds)
    return {"images_per_s": round(batch_size / median, 2), "s_per_iteration_median": round(median, 5),
            "s_per_iteration_min": round(min(seconds), 5), "timed_iterations": len(seconds)}


class IterationTimer(Callback):
    """Wall time of every training batch after ``warmup`` batches, from the end of the previous batch (so the
    wait for data counts) or, with ``include_data_wait=False``, from the batch's start; synchronizes the
    device at both ends. ``seconds`` holds the timed batches, ``cpu_seconds`` their process CPU time."""

    def __init__(self, warmup, include_data_wait=False):
        self.warmup = warmup
        self.include_data_wait = include_data_wait
        self.seconds, self.cpu_seconds = [], []
        self._batches = 0
        self._start = self._cpu_start = None

    def _now(self, pl_module):
        synchronize(pl_module.device)
        return time.perf_counter(), time.process_time()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._start is None or not self.include_data_wait:
            self._start, self._cpu_start = self._now(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        end, cpu_end = self._now(pl_module)
        if self._batches >= self.warmup:
            self.seconds.append(end - self._start)
            self.cpu_seconds.append(cpu_end - self._cpu_start)
        self._batches += 1
        self._start, self._cpu_start = end, cpu_end


def random_batch(batch_size, size, device, seed=0):
    """Random inputs of the training step: IMAGE_IN, IMAGE_IN_ENCODE (B, 3, S, S) normal; UV_RENDERED (B, S, S, 2)
    uniform in [-1, 1] with a background of exactly -1 outside a centred disc; SEGMENTATION_MASK (B, 1, S, S) 0/1."""
    generator = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    face = (x ** 2 + y ** 2 < 0.5)[None, :, :, None]
    uv = torch.where(face, torch.rand(batch_size, size, size, 2, generator=generator) * 2 - 1, torch.tensor(-1.0))
    batch = {DIK.IMAGE_IN: torch.randn(batch_size, 3, size, size, generator=generator),
             DIK.IMAGE_IN_ENCODE: torch.randn(batch_size, 3, size, size, generator=generator),
             DIK.UV_RENDERED: uv,
             DIK.SEGMENTATION_MASK: (torch.rand(batch_size, 1, size, size, generator=generator) > 0.5).float()}
    return {key: value.to(device) for key, value in batch.items()}

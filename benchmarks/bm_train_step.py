"""Benchmark: training throughput of the G+D step (the authors' schedule) under a Lightning Trainer.

Default options (batch 7, 256x256, VGG-19 loss on with RANDOM weights: the timing is the same, the loss
value meaningless), random inputs already on the device (data loading excluded).
Each configuration trains a fresh model for ``warmup`` + ``iterations`` batches; each batch is timed between
device synchronizations. One JSON line per configuration:

    {"bench": "train_step", "config": "bf16-reuse", "precision": "bf16-mixed", "reuse_generator_output": true,
     "compile": false, "channels_last": false, "images_per_s": ..., "s_per_iteration_median": ...,
     "g_step_s": ..., "d_step_s": ..., "peak_memory_gib": ..., "device": "cuda", "gpu": "NVIDIA H100 ...", ...}

A configuration name is a precision (fp32, bf16, fp16) with any of -cl (--channels_last), -reuse
(--reuse_generator_output) and -compile (--compile).

    python benchmarks/bm_train_step.py --smoke                      # CPU: small network, a few iterations
    python benchmarks/bm_train_step.py                              # every configuration, full size
    python benchmarks/bm_train_step.py --configs fp32 bf16-cl-reuse --deadline_s 120
    python benchmarks/bm_train_step.py --smoke --profile 3          # torch.profiler table of 3 iterations
"""
import argparse
import contextlib
import json
import math
import os
import sys
import time
import warnings

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (SMOKE_FLAGS, IterationTimer, default_device, device_facts, parse_config,  # noqa: E402
                    peak_memory_gib, random_batch, reset_peak_memory, summarize, synchronize)

from varitex import performance  # noqa: E402
from varitex.modules.pipeline import PipelineModule  # noqa: E402
from varitex.options import TrainOptions  # noqa: E402

DEFAULT_CONFIGS = ("fp32", "fp32-reuse", "bf16", "bf16-reuse", "bf16-cl", "bf16-cl-reuse",
                   "fp32-compile", "fp32-reuse-compile", "bf16-compile", "bf16-reuse-compile", "bf16-cl-reuse-compile")


class TimedPipeline(PipelineModule):
    """PipelineModule that marks the start and end of its G and D steps (CUDA events: no extra syncs)."""

    marks = None

    def _mark(self, name):
        if self.marks is None:
            return
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks[name] = event
        else:
            self.marks[name] = time.perf_counter()

    @contextlib.contextmanager
    def only_optimizing(self, optimizer):
        """Marks around each step's update; the first optimizer is the generator's."""
        step = "g" if getattr(optimizer, "optimizer", optimizer) is self.trainer.optimizers[0] else "d"
        self._mark(f"{step}_start")
        with torch.profiler.record_function(f"varitex/{step}_step"), super().only_optimizing(optimizer):
            yield
        self._mark(f"{step}_end")

    def step_seconds(self):
        """(G step, D step) seconds of the last batch; call after a device synchronization. The D step counts
        from the end of the G step, so it includes the recomputed generator forward."""
        def elapsed(start, end):
            if self.device.type == "cuda":
                return self.marks[start].elapsed_time(self.marks[end]) / 1e3
            return self.marks[end] - self.marks[start]
        return elapsed("g_start", "g_end"), elapsed("g_end", "d_end") if "d_end" in self.marks else 0.0


class StepSplit(IterationTimer):
    """IterationTimer that also collects the G and D step times of the timed batches, and, with
    ``sync_debug`` on CUDA, warns about every implicit host-device synchronization in them."""

    def __init__(self, warmup, sync_debug=False):
        super().__init__(warmup)
        self.g_seconds, self.d_seconds = [], []
        self.sync_debug = sync_debug

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        pl_module.marks = {}
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
        if self.sync_debug and self._batches == self.warmup and pl_module.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_end(self, trainer, pl_module):
        if self.sync_debug and pl_module.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        timed = self._batches >= self.warmup
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if timed:
            g, d = pl_module.step_seconds()
            self.g_seconds.append(g)
            self.d_seconds.append(d)


class Profile(pl.Callback):
    """torch.profiler over the last ``n`` batches; prints the operator table to stderr at the end."""

    def __init__(self, start, n):
        self.start, self.n, self.profiler = start, n, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.start:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if pl_module.device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profiler = torch.profiler.profile(activities=activities, record_shapes=False)
            self.profiler.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.profiler is not None and batch_idx == self.start + self.n - 1:
            synchronize(pl_module.device)
            self.profiler.__exit__(None, None, None)
            sort = "self_cuda_time_total" if pl_module.device.type == "cuda" else "self_cpu_time_total"
            print(self.profiler.key_averages().table(sort_by=sort, row_limit=30), file=sys.stderr)
            self.profiler = None


def adam_kind(optimizer):
    """'fused', 'foreach' or 'loop': the implementation an Adam instance runs."""
    return "fused" if optimizer.defaults.get("fused") else "foreach" if optimizer.defaults.get("foreach") else "loop"


def options(args, config):
    flags = (SMOKE_FLAGS if args.smoke else []) + ["--batch_size", str(args.batch_size), "--no_lpips",
                                                   "--compile_mode", args.compile_mode]
    opt = TrainOptions().parse(flags)
    for name, value in parse_config(config).items():
        setattr(opt, name, value)
    return opt


def run_config(args, config, device):
    opt = options(args, config)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning about random VGG-19 weights: intended here
        model = TimedPipeline(opt, random_perceptual_weights=True)
    performance.prepare_networks(model, opt)
    batches = [random_batch(opt.batch_size, opt.image_h, device, seed=i) for i in range(2)]
    n_batches = args.warmup + args.iterations
    loader = DataLoader([batches[i % 2] for i in range(n_batches)], batch_size=None)
    split = StepSplit(args.warmup, args.sync_debug)
    callbacks = [split] + ([Profile(args.warmup, args.profile)] if args.profile else [])
    trainer = pl.Trainer(accelerator=device.type, devices=1, precision=opt.precision, max_epochs=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, callbacks=callbacks)
    reset_peak_memory(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, loader)
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
    losses = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith("train/")}
    result = {"bench": "train_step", "config": config, **parse_config(config), "batch": opt.batch_size,
              "image_size": opt.image_h, "lambda_vgg": opt.lambda_vgg, "vgg_weights": "random",
              "adam": adam_kind(trainer.optimizers[0]), **summarize(split.seconds, opt.batch_size),
              "g_step_s": round(sorted(split.g_seconds)[len(split.g_seconds) // 2], 5),
              "d_step_s": round(sorted(split.d_seconds)[len(split.d_seconds) // 2], 5),
              "cpu_s_per_iteration": round(sorted(split.cpu_seconds)[len(split.cpu_seconds) // 2], 5),
              "peak_memory_gib": peak_memory_gib(device),
              "peak_memory_kind": "cuda_max_allocated" if device.type == "cuda" else "process_max_rss",
              "losses_finite": all(math.isfinite(value) for value in losses.values()),
              "train_loss": round(losses.get("train/loss", float("nan")), 4),
              "compile_mode": opt.compile_mode if opt.compile else None, "warmup": args.warmup,
              **device_facts(device)}
    if args.sync_debug:
        result["implicit_syncs_per_iteration"] = len(syncs) / len(split.seconds)
        result["implicit_sync_examples"] = sorted(set(message.splitlines()[0][:160] for message in syncs))[:5]
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="small network and 64x64 images, batch 1, 1 + 2 iterations, fp32 and fp32-reuse")
    parser.add_argument("--configs", nargs="+", default=None, help=f"default: {' '.join(DEFAULT_CONFIGS)}")
    parser.add_argument("--batch_size", type=int, default=None, help="default 7 (smoke: 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed batches first (default 10, smoke 1)")
    parser.add_argument("--iterations", type=int, default=None, help="timed batches (default 30, smoke 2)")
    parser.add_argument("--device", default=None, help="default: cuda when available")
    parser.add_argument("--deadline_s", type=float, default=None,
                        help="skip the configurations that would start after this many seconds")
    parser.add_argument("--profile", type=int, default=0, help="profile this many batches after warm-up")
    parser.add_argument("--compile_mode", default="default",
                        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
                        help="torch.compile mode of the -compile configurations")
    parser.add_argument("--sync_debug", action="store_true",
                        help="CUDA: count implicit host-device synchronizations per timed iteration")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; 1 is much faster on a loaded shared CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.batch_size = args.batch_size or (1 if args.smoke else 7)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 10)
    args.iterations = args.iterations or (2 if args.smoke else 30)
    # No bf16 in the CPU smoke run: CPUs without bf16 convolution kernels take minutes per step.
    configs = args.configs or (("fp32", "fp32-reuse") if args.smoke else DEFAULT_CONFIGS)
    for config in configs:
        parse_config(config)
    device = torch.device(args.device) if args.device else default_device()
    start = time.perf_counter()
    for config in configs:
        if args.deadline_s is not None and time.perf_counter() - start > args.deadline_s:
            print(json.dumps({"bench": "train_step", "config": config, "skipped": "deadline",
                              "deadline_s": args.deadline_s}), flush=True)
            continue
        print(json.dumps(run_config(args, config, device)), flush=True)


if __name__ == "__main__":
    main()

"""Benchmark: latency of the explorer (`varitex.explore.session`) per slider change.

A slider change (pose, shape or expression) is `Explorer.render` of the changed scene: BFM vertices, UV render,
the cached neural texture sampled at the new UVs, the additive decoder and the U-Net, then the three pictures
as uint8 arrays. Measured for the demo model (64x64, texture 128, the --demo architecture) and for the default
256x256 model (texture 256), with random He-initialized weights (latency does not depend on the values; the
default initialization makes activations fade into subnormal floats, which are slow on CPUs and not what a
trained model computes), on the embedded demo world's face model, on the CPU and on CUDA when available.

One JSON line per (model, device):

    {"bench": "explore", "model": "demo", "device": "cpu", "threads": 2,
     "s_per_change_median": ..., "s_per_change_min": ..., "cpu_s_per_change": ...,
     "s_per_change_without_cache_median": ..., "s_identity_change_median": ..., "gflop_per_change": ..., ...}

    python benchmarks/bm_explore.py --smoke      # demo model, CPU, 2 changes
    python benchmarks/bm_explore.py              # demo and full model, CPU and CUDA, 10 changes each
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import device_facts, synchronize  # noqa: E402

from varitex.demo_world import ensure_demo_world  # noqa: E402
from varitex.demo import Demo  # noqa: E402
from varitex.explore.session import N_COMPONENTS, Explorer, TextureCache  # noqa: E402
from varitex.checkpoints import save_weights  # noqa: E402
from varitex.modules.generator import he_initialize  # noqa: E402
from varitex.modules.pipeline import PipelineModule  # noqa: E402
from varitex.options.settings import DEMO_ARCHITECTURE, DEMO_OPTIONS  # noqa: E402

MODELS = {
    "demo": {name: DEMO_OPTIONS[name] for name in DEMO_ARCHITECTURE},
    "full": dict(image_h=256, image_w=256, texture_dim=256, nc_feature2image=64),
}
TARGETS_S = {("demo", "cpu"): 0.150, ("full", "cpu"): 1.5, ("full", "cuda"): 0.030}  # targets per slider change (CPU: 2 cores)


def random_checkpoint(path, options):
    """Write a checkpoint of ours with He-initialized random weights for ``options``."""
    torch.manual_seed(0)
    pipeline = PipelineModule(dict(options, lambda_gan=0.0, lambda_vgg=0.0, no_lpips=True))
    he_initialize(pipeline.generator)
    save_weights(pipeline, path)


def timed(function, device):
    """(wall seconds, process CPU seconds) of one call, the device synchronized at both ends."""
    synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    function()
    synchronize(device)
    return time.perf_counter() - start, time.process_time() - cpu_start


def slider_scenes(explorer, scene, n):
    """n scenes, each one slider away from the previous: yaw, an expression component, pitch, a shape one."""
    scenes = []
    for i in range(n):
        value = (-1) ** i * (10 + i)
        if i % 4 == 0:
            scene = explorer.set_pose(scene, yaw=value)
        elif i % 4 == 1:
            scene = explorer.set_expression(scene, components=(value / 10,) + (0.0,) * (N_COMPONENTS - 1))
        elif i % 4 == 2:
            scene = explorer.set_pose(scene, pitch=value / 2)
        else:
            scene = explorer.set_shape(scene, components=(0.0, value / 10) + (0.0,) * (N_COMPONENTS - 2))
        scenes.append(scene)
    return scenes


def measure(model, device, changes, folder):
    checkpoint = os.path.join(folder, f"{model}.ckpt")
    random_checkpoint(checkpoint, MODELS[model])
    world = ensure_demo_world()
    paths = dict(dataroot_npy=str(world / "FFHQ" / "preprocessed_dataset"), image_folder=str(world / "FFHQ" / "images"),
                 path_bfm=str(world / "basel_facemodel" / "model2017-1_face12_nomouth.h5"),
                 path_uv=str(world / "basel_facemodel" / "face12.json"))
    explorer = Explorer(Demo(checkpoint, device=device, **paths))
    scene = explorer.initial_scene()
    explorer.render(scene)  # warm-up (allocations, kernel selection)
    identities = [explorer.sample_prior(scene, seed) for seed in range(max(2, changes // 4))]
    identity_s = [timed(lambda s=s: explorer.render(s), device)[0] for s in identities]
    results = [timed(lambda s=s: explorer.render(s), device) for s in slider_scenes(explorer, scene, changes)]
    cached = explorer.textures
    explorer.textures = TextureCache(cached.decode, capacity=0)  # the same renders, decoding every time
    uncached_s = [timed(lambda s=s: explorer.render(s), device)[0] for s in slider_scenes(explorer, scene, changes)]
    explorer.textures = cached
    with FlopCounterMode(display=False) as flops:
        explorer.render(explorer.set_pose(scene, yaw=33))
    seconds = [wall for wall, _ in results]
    median = statistics.median(seconds)
    target = TARGETS_S.get((model, torch.device(device).type))
    return {"bench": "explore", "model": model, **MODELS[model],
            "changes": changes, "s_per_change_median": round(median, 4), "s_per_change_min": round(min(seconds), 4),
            "cpu_s_per_change": round(statistics.median(cpu for _, cpu in results), 4),
            "s_per_change_without_cache_median": round(statistics.median(uncached_s), 4),
            "s_identity_change_median": round(statistics.median(identity_s), 4),
            "gflop_per_change": round(flops.get_total_flops() / 1e9, 2),
            "mesh_faces": int(explorer.demo.uv_factory.faces.shape[0]),
            "target_s": target, "meets_target": None if target is None else median < target,
            **device_facts(device)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="demo model on the CPU, 2 changes")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=None)
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--changes", type=int, default=None, help="slider changes timed (default 10, smoke 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.models or (["demo"] if args.smoke else ["demo", "full"])
    devices = args.devices or (["cpu"] if args.smoke or not torch.cuda.is_available() else ["cpu", "cuda"])
    changes = args.changes or (2 if args.smoke else 10)
    with tempfile.TemporaryDirectory() as folder:
        for device in devices:
            for model in models:
                print(json.dumps(measure(model, device, changes, folder)), flush=True)


if __name__ == "__main__":
    main()

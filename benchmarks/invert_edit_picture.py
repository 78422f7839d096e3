"""The picture of the README's "Your photo in the model": the astronaut through varitex-preprocess,
varitex-invert and varitex-edit.

    python benchmarks/invert_edit_picture.py --checkpoint outputs/demo/checkpoints/last.ckpt [--steps 60]
                                             [--picture docs/invert_edit.png]

Tiles (each 256 px): the aligned, masked photo | encoder only (z = mu) | refined | re-posed to yaw -30 and +30
| the expressions of two items of the demo world's val split. Uses the embedded demo world's face model; the
commands run exactly as a user runs them.
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from varitex import editing, invert
from varitex import visualization as vis
from varitex.checkpoints import load_pipeline
from varitex.demo_world.world import ensure_demo_world
from varitex.generation import uv_factory_from_options
from varitex.latents import load_latents
from varitex.options import settings
from varitex.preprocess.writer import DATASET, IMAGES

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from own_photos_picture import preprocessed_astronaut  # noqa: E402

TILE = 256


def resized(images):
    """(N, H, W, 3) uint8 -> list of TILE x TILE arrays."""
    return [np.asarray(Image.fromarray(image).resize((TILE, TILE), Image.Resampling.BILINEAR)) for image in images]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="the model, e.g. the demo model of varitex-train --demo")
    parser.add_argument("--steps", default=None, help="refinement steps (default: varitex-invert's)")
    parser.add_argument("--picture", default=os.path.join("docs", "invert_edit.png"))
    args = parser.parse_args(argv)
    world = ensure_demo_world()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        out, paths = preprocessed_astronaut(folder, "--val_fraction", "0")
        argv = ["--checkpoint", args.checkpoint, "--dataroot_npy", str(out / DATASET), "--image_folder",
                str(out / IMAGES), "--num_workers", "0", "--output", str(folder / "inverted")] + paths
        invert.main(argv + (["--steps", args.steps] if args.steps else []))
        strip = np.asarray(Image.open(folder / "inverted" / "astronaut.png").convert("RGB"))
        tiles = resized(np.stack(np.split(strip, 3, axis=1)))
        # Two demo-world people of the val split lend their expressions (any dataset item works the same).
        world_data = world / "FFHQ" / "preprocessed_dataset"
        ep = np.load(world_data / "ep.npy")[np.load(world_data / "dataset_splits.npz")["val"][[1, 3]]]
        tiles += resized(edited(settings.resolve("edit", argv + ["--latents", str(folder / "inverted" / "latents.npy")]),
                                torch.as_tensor(ep)))
        Image.fromarray(np.concatenate(tiles, axis=1)).save(args.picture)
    print(f"wrote {args.picture}")


def edited(run, ep):
    """The photo re-posed to yaw -30 and +30, then with the expressions ``ep`` (K, K_expr): (2 + K, H, W, 3)."""
    opt = run.opt
    pipeline = load_pipeline(opt.checkpoint, opt, checkpoint=run.checkpoint).eval()
    z, _ = load_latents(opt.latents)
    codes = editing.dataset_codes(opt.dataroot_npy, [0], z[:1])
    variants = [editing.pose_sweep(codes, "yaw", [-30.0, 30.0]), editing.transfer_expression(codes, ep)]
    uv_factory = uv_factory_from_options(opt)
    return np.concatenate([vis.to_uint8(vis.displayed_output(editing.render(pipeline, uv_factory, v)))
                           for v in variants])


if __name__ == "__main__":
    main()

"""Does the embedded demo learn? Reconstruction L2 on the demo's val split before and after training.

    varitex-train --demo                             # first: the demo run (about 6 minutes on a 2-core CPU)
    python benchmarks/demo_learning_curve.py [--checkpoint outputs/demo/checkpoints/last.ckpt]
                                             [--picture docs/demo_outputs.png]

"Before" is the network the demo run starts from (same options, same seed); "after" is the checkpoint.
Both run in eval mode with z = mu. Prints JSON lines:

    {"model": "initial", "val_l2": ..., "n_images": ...}
    {"model": "trained", "val_l2": ..., "n_images": ..., "global_step": ..., "epoch": ...}
    {"val_l2_ratio": trained / initial}

and writes a picture: per val image (rows) the input, the initial output and the trained output as the
generator draws them (IMAGE_OUT, unmasked), the trained output masked like inference, and the trained model
re-posed at yaw -45, -15, 15, 45 degrees (masked).
"""
import argparse
import json
import os
import sys

import lightning as L
import torch
from torch.utils.data import DataLoader

from varitex import SEED
from varitex import visualization as vis
from varitex.checkpoints import load_pipeline
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.data.npy_dataset import NPYDataset
from varitex.generation import generate, uv_factory_from_options
from varitex.modules.pipeline import PipelineModule
from varitex.options import settings

YAWS = (-45.0, -15.0, 15.0, 45.0)


@torch.no_grad()
def evaluate(pipeline, loader):
    """Mean squared error between IMAGE_OUT and IMAGE_IN over the loader (z = mu), and the outputs."""
    total, count, outputs = 0.0, 0, []
    for batch in loader:
        out = pipeline(batch, std_multiplier=0)
        total += torch.nn.functional.mse_loss(out[DIK.IMAGE_OUT], out[DIK.IMAGE_IN], reduction="sum").item()
        count += out[DIK.IMAGE_IN].numel()
        outputs.append(out)
    return total / count, outputs


def masked(out):
    return vis.mask_output(vis.unnormalize(out[DIK.IMAGE_OUT]), out[DIK.SEGMENTATION_PREDICTED])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None, help="default: the demo run's last.ckpt under ./outputs")
    parser.add_argument("--picture", default=os.path.join("docs", "demo_outputs.png"))
    parser.add_argument("--n_shown", type=int, default=6, help="val images in the picture")
    args = parser.parse_args(argv)

    checkpoint = args.checkpoint or settings.demo_checkpoint_path(settings.resolve("train", ["--demo"]).opt)
    opt, stored = settings.resolve("train", ["--demo", "--device", "cpu", "--checkpoint", checkpoint])

    L.seed_everything(SEED, verbose=False)  # the initialisation of the demo run
    initial = PipelineModule(opt).eval()
    trained = load_pipeline(checkpoint, opt, checkpoint=stored).eval()
    loader = DataLoader(NPYDataset(opt, split="val", augmentation=False), batch_size=opt.batch_size)

    l2_initial, out_initial = evaluate(initial, loader)
    l2_trained, out_trained = evaluate(trained, loader)
    n_images = len(loader.dataset)
    print(json.dumps({"model": "initial", "val_l2": round(l2_initial, 5), "n_images": n_images}))
    print(json.dumps({"model": "trained", "val_l2": round(l2_trained, 5), "n_images": n_images,
                      "global_step": stored["global_step"], "epoch": stored["epoch"]}))
    print(json.dumps({"val_l2_ratio": round(l2_trained / l2_initial, 4)}))

    first = {key: torch.cat([out[key] for out in out_trained])[:args.n_shown]
             for key in (DIK.IMAGE_IN, DIK.STYLE_LATENT_MU, DIK.COEFF_SHAPE, DIK.COEFF_EXPRESSION)}
    n = first[DIK.IMAGE_IN].shape[0]
    thetas = torch.tensor([[0.0, yaw, 0.0] for yaw in YAWS]).repeat(n, 1)
    posed = generate(trained, uv_factory_from_options(opt), first[DIK.STYLE_LATENT_MU].repeat_interleave(len(YAWS), 0),
                     first[DIK.COEFF_SHAPE].repeat_interleave(len(YAWS), 0),
                     first[DIK.COEFF_EXPRESSION].repeat_interleave(len(YAWS), 0), thetas)
    columns = [vis.unnormalize(first[DIK.IMAGE_IN]),
               torch.cat([vis.unnormalize(out[DIK.IMAGE_OUT]) for out in out_initial])[:n],
               torch.cat([vis.unnormalize(out[DIK.IMAGE_OUT]) for out in out_trained])[:n],
               torch.cat([masked(out) for out in out_trained])[:n]]
    columns = [column.unsqueeze(1) for column in columns]
    columns.append(masked(posed).view(n, len(YAWS), *posed[DIK.IMAGE_OUT].shape[1:]))
    grid = vis.image_grid(torch.cat(columns, dim=1).flatten(0, 1), nrow=4 + len(YAWS))
    os.makedirs(os.path.dirname(os.path.abspath(args.picture)), exist_ok=True)
    vis.save_png(grid, args.picture)
    print(json.dumps({"picture": args.picture}), file=sys.stderr)


if __name__ == "__main__":
    main()

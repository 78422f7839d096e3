"""Does the embedded demo learn? Reconstruction L2 and identity retrieval on the demo's val split, before and
after training.

    varitex-train --demo                             # first: the demo run (about 9 minutes on a 2-core CPU)
    python benchmarks/demo_learning_curve.py [--checkpoint outputs/demo/checkpoints/last.ckpt]
                                             [--picture docs/demo_outputs.png] [--unseen_people 40]

"Before" is the network the demo run starts from (same options, same seed); "after" is the checkpoint.
Both run in eval mode with z = mu.

Identity retrieval (does the model tell people apart?): every val image's latent mean mu_i is rendered with
every val image j's own UV render, and we ask which latent reconstructs image j best inside j's head mask
(MASK_FULL). ``top1``: the share of images j whose own latent wins (chance 1/N). ``person_top1``: leaving
image j's own latent out, the share for which the winner is another image of the same person, i.e. the latent
carries the person rather than the image's light or expression (chance: the share of same-person candidates).

Prints JSON lines:

    {"model": "initial", "val_l2": ..., "top1": ..., "chance": ..., "person_top1": ..., "person_chance": ...,
     "n_images": ..., "n_people": ...}
    {"model": "trained", ... the same ..., "global_step": ..., "epoch": ...}
    {"val_l2_ratio": trained / initial}
    {"model": "trained", "unseen_people": 40, "unseen_seed": 7, "expected_top1_at_20": ..., "chance": 0.05}

The last line (with ``--unseen_people N``) is a steadier measure than top-1 over the 20 val people: the
expected top-1 among 20 of N people of another demo world (seed ``UNSEEN_SEED``, one image each, none seen in
training), exact over every gallery of 20 (``metrics.expected_top1``). About 1.5 minutes for 40 on 2 CPU cores.

and writes a picture: per val person (rows, one image each) the input, the initial output and the trained
output as the generator draws them (IMAGE_OUT, unmasked), the trained output masked like inference, and the
trained model re-posed at yaw -45, -15, 15, 45 degrees (masked).
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
from varitex.demo_world.world import default_demo_root, ensure_demo_world, person_of_images
from varitex.generation import generate, uv_factory_from_options
from varitex.modules.metrics import expected_top1, identity_errors, identity_retrieval
from varitex.modules.pipeline import PipelineModule
from varitex.options import settings

YAWS = (-45.0, -15.0, 15.0, 45.0)
UNSEEN_SEED = 7     # the demo world's own seed is 0
GALLERY = 20        # people per gallery of the unseen-people measure: as many as the demo's val split


@torch.no_grad()
def outputs_and_errors(pipeline, loader):
    """The outputs of every batch (z = mu) concatenated into one dict of (N, ...) tensors, and the (N, N)
    identity errors (``identity_errors``) of the N images."""
    outputs = [pipeline(batch, std_multiplier=0) for batch in loader]
    out = {key: torch.cat([o[key] for o in outputs]) for key in outputs[0] if isinstance(outputs[0][key], torch.Tensor)}
    errors = identity_errors(pipeline.generator, out[DIK.STYLE_LATENT_MU], out[DIK.UV_RENDERED], out[DIK.IMAGE_IN],
                             out[DIK.MASK_FULL])
    return out, errors


def evaluate(pipeline, loader, person):
    """Val L2 (mean squared error between IMAGE_OUT and IMAGE_IN, z = mu) and identity retrieval.

    Returns:
        (figures dict, the outputs of every batch concatenated into one dict of (N, ...) tensors).
    """
    out, errors = outputs_and_errors(pipeline, loader)
    l2 = torch.nn.functional.mse_loss(out[DIK.IMAGE_OUT], out[DIK.IMAGE_IN]).item()
    figures = {"val_l2": l2, **identity_retrieval(errors, person)}
    return {name: round(value, 5) for name, value in figures.items()}, out


def unseen_retrieval(pipeline, opt, n_people):
    """Expected top-1 among GALLERY of ``n_people`` people of another demo world (seed UNSEEN_SEED, one image
    each, all but one person in its val split), generated on first use next to the demo world."""
    root = ensure_demo_world(default_demo_root().with_name(f"demo_world_unseen{n_people}"), n_images=n_people + 1,
                             seed=UNSEEN_SEED, val_fraction=n_people / (n_people + 1))
    unseen = argparse.Namespace(**vars(opt))
    unseen.dataroot_npy = str(root / "FFHQ" / "preprocessed_dataset")
    unseen.image_folder = str(root / "FFHQ" / "images")
    dataset = NPYDataset(unseen, split="val", augmentation=False)
    _, errors = outputs_and_errors(pipeline, DataLoader(dataset, batch_size=opt.batch_size))
    return {"unseen_people": len(dataset), "unseen_seed": UNSEEN_SEED,
            f"expected_top1_at_{GALLERY}": round(expected_top1(errors, GALLERY), 5), "chance": 1.0 / GALLERY}


def masked(out):
    return vis.mask_output(vis.unnormalize(out[DIK.IMAGE_OUT]), out[DIK.SEGMENTATION_PREDICTED])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None, help="default: the demo run's last.ckpt under ./outputs")
    parser.add_argument("--picture", default=os.path.join("docs", "demo_outputs.png"))
    parser.add_argument("--n_shown", type=int, default=6, help="val images in the picture")
    parser.add_argument("--unseen_people", type=int, default=0,
                        help=f"also the trained model's expected top-1 among {GALLERY} of this many people of "
                             f"another demo world (at least {GALLERY}; 0: not measured)")
    args = parser.parse_args(argv)
    if 0 < args.unseen_people < GALLERY:
        parser.error(f"--unseen_people must be 0 or at least {GALLERY}")

    checkpoint = args.checkpoint or settings.demo_checkpoint_path(settings.resolve("train", ["--demo"]).opt)
    opt, stored = settings.resolve("train", ["--demo", "--device", "cpu", "--checkpoint", checkpoint])

    L.seed_everything(SEED, verbose=False)  # the initialisation of the demo run
    initial = PipelineModule(opt).eval()
    trained = load_pipeline(checkpoint, opt, checkpoint=stored).eval()
    dataset = NPYDataset(opt, split="val", augmentation=False)
    loader = DataLoader(dataset, batch_size=opt.batch_size)
    person = torch.as_tensor(person_of_images(os.path.dirname(os.path.dirname(opt.dataroot_npy)), dataset.indices))

    counts = {"n_images": len(dataset), "n_people": len(person.unique())}
    initial_figures, out_initial = evaluate(initial, loader, person)
    trained_figures, out_trained = evaluate(trained, loader, person)
    print(json.dumps({"model": "initial", **initial_figures, **counts}))
    print(json.dumps({"model": "trained", **trained_figures, **counts, "global_step": stored["global_step"],
                      "epoch": stored["epoch"]}))
    print(json.dumps({"val_l2_ratio": round(trained_figures["val_l2"] / initial_figures["val_l2"], 4)}))
    if args.unseen_people:
        print(json.dumps({"model": "trained", **unseen_retrieval(trained, opt, args.unseen_people)}))

    # One row per person: each person's first val image.
    shown = torch.tensor([int(torch.nonzero(person == p)[0]) for p in person.unique()])[:args.n_shown]
    first = {key: out_trained[key][shown]
             for key in (DIK.IMAGE_IN, DIK.STYLE_LATENT_MU, DIK.COEFF_SHAPE, DIK.COEFF_EXPRESSION)}
    n = len(shown)
    thetas = torch.tensor([[0.0, yaw, 0.0] for yaw in YAWS]).repeat(n, 1)
    posed = generate(trained, uv_factory_from_options(opt), first[DIK.STYLE_LATENT_MU].repeat_interleave(len(YAWS), 0),
                     first[DIK.COEFF_SHAPE].repeat_interleave(len(YAWS), 0),
                     first[DIK.COEFF_EXPRESSION].repeat_interleave(len(YAWS), 0), thetas)
    columns = [vis.unnormalize(first[DIK.IMAGE_IN]), vis.unnormalize(out_initial[DIK.IMAGE_OUT][shown]),
               vis.unnormalize(out_trained[DIK.IMAGE_OUT][shown]), masked(out_trained)[shown]]
    columns = [column.unsqueeze(1) for column in columns]
    columns.append(masked(posed).view(n, len(YAWS), *posed[DIK.IMAGE_OUT].shape[1:]))
    grid = vis.image_grid(torch.cat(columns, dim=1).flatten(0, 1), nrow=4 + len(YAWS))
    os.makedirs(os.path.dirname(os.path.abspath(args.picture)), exist_ok=True)
    vis.save_png(grid, args.picture)
    print(json.dumps({"picture": args.picture}), file=sys.stderr)


if __name__ == "__main__":
    main()

"""varitex-invert: preprocessed photos -> identity codes the model renders (encoder, then refinement).

    varitex-invert --checkpoint CP --dataroot_npy DIR/preprocessed_dataset --image_folder DIR/images
    varitex-invert --demo --dataset_split val --steps 100 --output inverted/

DIR is what ``varitex-preprocess --output DIR`` writes; every photo of --dataset_split (default: all) is
inverted. Writes into --output (default ``<path_out>/inversion_<split>``):

    latents.npy             (N, 2, latent_dim) float32 in the authors' layout, rows in split order:
                            [:, 0] the refined code (in place of mu), [:, 1] the encoder's std
    <filename>.png          input | encoder only (z = mu) | refined, outputs masked like inference's
    inversion_report.json   per photo the masked L2 of z = mu and of the refined z; the mean curve per step
"""
from __future__ import annotations

import json
import os
import sys
import time

import lightning as L
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from varitex import SEED
from varitex import visualization as vis
from varitex.data.batches import batch_to_device
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.inversion import invert_batch, perceptual_loss, render_latents
from varitex.latents import LATENTS_FILE, save_latents
from varitex.options import settings
from varitex.options.settings import RunSettings

REPORT_FILE = "inversion_report.json"


def output_folder(opt) -> str:
    """--output, else ``<path_out>/inversion_<dataset_split>`` (created, checked writable)."""
    if opt.output:
        return settings.ensure_writable_dir(opt.output, "output")
    return settings.ensure_writable_dir(os.path.join(opt.path_out, f"inversion_{opt.dataset_split}"))


def photo_dataset(opt):
    """The photos of ``opt.dataset_split`` without augmentation; every image file checked up front.

    Raises:
        FileNotFoundError: naming --image_folder and the missing files; ValueError: an empty split.
    """
    from varitex.data.npy_dataset import NPYDataset

    dataset = NPYDataset(opt, split=opt.dataset_split, augmentation=False)
    stems = [str(dataset.filenames[row]) for row in dataset.indices]
    if not stems:
        raise ValueError(f"--dataset_split {opt.dataset_split} of {opt.dataroot_npy} has no photos")
    missing = [stem for stem in stems if not os.path.isfile(os.path.join(opt.image_folder, f"{stem}.png"))]
    if missing:
        raise FileNotFoundError(f"--image_folder {opt.image_folder} lacks {len(missing)} of the {len(stems)} "
                                f"photos of {opt.dataroot_npy} (first: {missing[0]}.png); is it the images/ "
                                f"folder of the same varitex-preprocess output?")
    return dataset


def refinement_perceptual(pipeline: torch.nn.Module, steps: int, lambda_perceptual: float,
                          path_vgg: str | None = None):
    """The VGG-19 perceptual loss the refinement adds (see `varitex.inversion.perceptual_loss`), or None.

    None for 0 steps or a weight of 0, and when the ImageNet weights are not found; a note on stderr then
    says that the refinement uses the masked L2 alone and where the weights were looked for.
    """
    if steps == 0 or lambda_perceptual == 0:
        return None
    perceptual, reason = perceptual_loss(pipeline, path_vgg)
    if perceptual is None:
        print(f"note: refining with the masked L2 alone: the VGG-19 perceptual loss needs torchvision's "
              f"ImageNet weights and {reason}; pass --path_vgg vgg19-dcbb9e9d.pth to use it", file=sys.stderr)
    return perceptual


def invert(run: RunSettings, log=print) -> str:
    """Invert every photo of the run's split; returns the output folder (see the module docstring)."""
    from varitex.checkpoints import load_pipeline

    opt = run.opt
    dataset = photo_dataset(opt)
    output = output_folder(opt)
    device = torch.device(opt.device)
    pipeline = load_pipeline(opt.checkpoint, opt, checkpoint=run.checkpoint).to(device).eval()
    perceptual = refinement_perceptual(pipeline, opt.steps, opt.lambda_perceptual, opt.path_vgg)
    loader = DataLoader(dataset, batch_size=opt.batch_size, shuffle=False, num_workers=opt.num_workers)
    filenames, mu, std, z, curves = [], [], [], [], []
    start = time.perf_counter()
    for batch in tqdm(loader, desc="inverting", unit="batch"):
        batch = batch_to_device(batch, device)
        inversion = invert_batch(pipeline, batch, opt.steps, opt.lr_invert, perceptual, opt.lambda_perceptual)
        write_pictures(pipeline, batch, inversion, output)
        filenames += list(batch[DIK.FILENAME])
        mu.append(inversion.mu), std.append(inversion.std), z.append(inversion.z), curves.append(inversion.curve)
    seconds = time.perf_counter() - start
    mu, std, z, curves = torch.cat(mu), torch.cat(std), torch.cat(z), torch.cat(curves, dim=1)
    save_latents(os.path.join(output, LATENTS_FILE), z, std)
    report = dict(
        checkpoint=os.path.abspath(opt.checkpoint), dataroot_npy=os.path.abspath(opt.dataroot_npy),
        dataset_split=opt.dataset_split, steps=opt.steps, lr_invert=opt.lr_invert,
        perceptual=perceptual is not None, lambda_perceptual=opt.lambda_perceptual if perceptual else 0.0,
        seconds_per_photo=seconds / len(filenames),
        mean_masked_l2_per_step=[round(float(v), 6) for v in curves.mean(dim=1)],
        photos=[dict(filename=name, row=row, masked_l2_encoder=round(float(before), 6),
                     masked_l2_refined=round(float(after), 6))
                for row, (name, before, after) in enumerate(zip(filenames, curves[0], curves[-1]))],
    )
    with open(os.path.join(output, REPORT_FILE), "w") as file:
        json.dump(report, file, indent=1)
    log(f"{len(filenames)} photos, {opt.steps} steps: masked L2 {curves[0].mean():.4f} (encoder) -> "
        f"{curves[-1].mean():.4f} (refined), {seconds / len(filenames):.1f} s per photo")
    return output


@torch.no_grad()
def write_pictures(pipeline, batch, inversion, output):
    """``output/<filename>.png`` per item: input | encoder only | refined (outputs masked like inference)."""
    uv = batch[DIK.UV_RENDERED]
    device = uv.device
    columns = [vis.unnormalize(batch[DIK.IMAGE_IN])]
    for z in (inversion.mu, inversion.z):
        columns.append(vis.displayed_output(render_latents(pipeline, z.to(device), uv)))
    for name, *images in zip(batch[DIK.FILENAME], *columns):
        vis.save_png(torch.cat(images, dim=2), os.path.join(output, f"{name}.png"))


def main(argv=None):
    """Console entry point ``varitex-invert``."""
    with settings.user_errors("varitex-invert"):
        run = settings.resolve("invert", argv)
        L.seed_everything(SEED, verbose=False)
        output = invert(run)
    print(f"Results in {output}")


if __name__ == "__main__":
    main()

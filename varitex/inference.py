"""Inference with a trained VariTex model: the authors' three modes, batched.

    python varitex/inference.py --checkpoint $CP --dataset_split val     # the authors' command
    varitex-inference --demo                                             # on the embedded demo
    varitex-inference --checkpoint CP --dataset_split val --mode posed --n 100 --batch_size 32

Writes into ``path_out/inference_<split>/`` (the authors' folder in brackets):

    reconstruction/<filename>.png, latents.npy   z = mu of each sample; latents (N, 2, latent_dim): mu, std
                                                 [inference_ffhq]
    posed/<axis>_<angle>/<filename>.png          each sample with its own shape and expression, posed with
                                                 pitch, yaw and pitch_yaw at -45..45 degrees in steps of 15
                                                 [inference_posed_ffhq/axis[..]_theta..]
    random/<axis>_<angle>/<row>.png              the latent means of latents.npy (row 00000, 00001, ...) with
                                                 random BFM shapes and expressions, same poses
                                                 [inference_posed_random]

Every image is masked where SEGMENTATION_PREDICTED <= 0.7 (black background). Each mode's folder is written
anew: it replaces the folder of an earlier run as a whole once the mode has finished (no stale images stay
beside new ones; an interrupted run leaves the earlier results as they were).
"""
from __future__ import annotations

import contextlib
import os
import sys

if __name__ == "__main__" and not __package__:
    # Run as a script (`python varitex/inference.py`): import the package from this checkout.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import lightning as L
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from varitex import SEED
from varitex import visualization as vis
from varitex.data.batches import batch_to_device
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.generation import generate, uv_factory_from_options
from varitex.latents import LATENTS_FILE, latents_array
from varitex.latents import load_latents as read_latents
from varitex.options import settings
from varitex.options.settings import RunSettings
from varitex.safe_io import replaced_folder, save_npy

MODES = ("reconstruction", "posed", "random")
POSE_ANGLES = tuple(range(-45, 46, 15))
POSE_AXES = {"pitch": (1.0, 0.0), "yaw": (0.0, 1.0), "pitch_yaw": (1.0, 1.0)}  # (pitch, yaw) factors


def pose_table(device):
    """Every pose of modes 2 and 3: names ``<axis>_<angle>`` and Euler angles (P, 3) in degrees."""
    names, thetas = [], []
    for axis, (pitch, yaw) in POSE_AXES.items():
        for angle in POSE_ANGLES:
            names.append(f"{axis}_{angle}")
            thetas.append((pitch * angle, yaw * angle, 0.0))
    return names, torch.tensor(thetas, device=device)


class Inference:
    """A trained pipeline plus the BFM UV renderer on one device; each mode is one method.

    Args:
        run: ``settings.resolve("inference", argv)``: the options and the checkpoint, read once.
    """

    def __init__(self, run: RunSettings):
        from varitex.checkpoints import load_pipeline

        opt = self.opt = run.opt
        self.device = torch.device(opt.device)
        self.pipeline = load_pipeline(opt.checkpoint, opt, checkpoint=run.checkpoint).to(self.device).eval()
        self.uv_factory = uv_factory_from_options(opt)
        self.pose_names, self.thetas = pose_table(self.device)

    def dataset(self, n):
        """The first ``n`` items of ``opt.dataset_split`` (all for n < 0), without augmentation."""
        from varitex.data.npy_dataset import NPYDataset

        dataset = NPYDataset(self.opt, split=self.opt.dataset_split, augmentation=False)
        dataset.check_not_empty("inference")
        bfm = self.uv_factory.bfm
        dataset.check_coefficient_widths(bfm.n_shape, bfm.n_expression, bfm.path)
        count = len(dataset) if n < 0 else min(n, len(dataset))
        return Subset(dataset, range(count))

    def loader(self, dataset):
        return DataLoader(dataset, batch_size=self.opt.batch_size, shuffle=False,
                          num_workers=self.opt.num_workers)

    @torch.no_grad()
    def encode(self, dataset, folder=None):
        """One pass over ``dataset`` with z = mu (mode 1 when ``folder`` is given).

        Writes ``folder/<filename>.png`` and ``folder/latents.npy`` when ``folder`` is not None.

        Returns:
            dict with filenames (N names), latents (N, 2, latent_dim) float32 numpy (mu, std),
            sp (N, 199) and ep (N, 100) tensors on the CPU.
        """
        result = dict(filenames=[], mu=[], std=[], sp=[], ep=[])
        for batch in tqdm(self.loader(dataset), desc="reconstruction" if folder else "encoding", unit="batch"):
            batch = self.pipeline(batch_to_device(batch, self.device), std_multiplier=0)
            if folder is not None:
                images = vis.displayed_output(batch)
                for image, name in zip(images, batch[DIK.FILENAME]):
                    vis.save_png(image, os.path.join(folder, f"{name}.png"))
            result["filenames"] += list(batch[DIK.FILENAME])
            result["mu"].append(batch[DIK.STYLE_LATENT_MU].cpu())
            result["std"].append(batch[DIK.STYLE_LATENT_STD].cpu())
            result["sp"].append(batch[DIK.COEFF_SHAPE].cpu())
            result["ep"].append(batch[DIK.COEFF_EXPRESSION].cpu())
        result["latents"] = latents_array(torch.cat(result.pop("mu")), torch.cat(result.pop("std")))
        result["sp"], result["ep"] = torch.cat(result["sp"]), torch.cat(result["ep"])
        if folder is not None:
            save_npy(os.path.join(folder, LATENTS_FILE), result["latents"])
        return result

    @torch.no_grad()
    def posed(self, filenames, mu, sp, ep, folder, desc):
        """Render every (sample, pose) pair, ``batch_size`` images per forward pass.

        Args:
            filenames: N output names; mu: (N, D) latents; sp: (N, 199); ep: (N, 100).
            folder: output root; images go to ``folder/<axis>_<angle>/<name>.png``.
        """
        for name in self.pose_names:
            os.makedirs(os.path.join(folder, name), exist_ok=True)
        n_poses = len(self.pose_names)
        mu, sp, ep = (torch.as_tensor(x, dtype=torch.float32).to(self.device) for x in (mu, sp, ep))
        jobs = torch.arange(len(filenames) * n_poses, device=self.device)
        for chunk in tqdm(jobs.split(self.opt.batch_size), desc=desc, unit="batch"):
            sample, pose = chunk // n_poses, chunk % n_poses
            out = generate(self.pipeline, self.uv_factory, mu[sample], sp[sample], ep[sample], self.thetas[pose])
            images = vis.displayed_output(out)
            for image, i, p in zip(images, sample.tolist(), pose.tolist()):
                vis.save_png(image, os.path.join(folder, self.pose_names[p], f"{filenames[i]}.png"))

    def run(self, modes):
        """Run the selected modes (a subset of MODES) in order; returns the output root folder."""
        # The data is checked before the first folder is made: a refused input leaves nothing behind.
        dataset = self.dataset(self.opt.n) if "reconstruction" in modes or "posed" in modes else None
        root = settings.ensure_writable_dir(os.path.join(self.opt.path_out, f"inference_{self.opt.dataset_split}"))
        recon_folder = os.path.join(root, "reconstruction")
        encoded = None
        if dataset is not None:
            with replaced_folder(recon_folder) if "reconstruction" in modes else contextlib.nullcontext() as folder:
                encoded = self.encode(dataset, folder)
        if "posed" in modes:
            # Mode 2: each sample's own shape, expression and latent mean.
            with replaced_folder(os.path.join(root, "posed")) as folder:
                self.posed(encoded["filenames"], encoded["latents"][:, 0], encoded["sp"], encoded["ep"], folder,
                           desc="posed")
        if "random" in modes:
            # Mode 3: the latent means of mode 1 (latents.npy) with random BFM shapes and expressions.
            latents = encoded["latents"] if encoded else load_latents(os.path.join(recon_folder, LATENTS_FILE),
                                                                      self.opt.n, self.opt.latent_dim)
            n = latents.shape[0]
            sp = self.uv_factory.bfm.sample_shape(n)
            ep = self.uv_factory.bfm.sample_expression(n)
            names = [f"{i:05d}" for i in range(n)]  # authors' naming: the row of latents.npy
            with replaced_folder(os.path.join(root, "random")) as folder:
                self.posed(names, latents[:, 0], sp, ep, folder, desc="random")
        return root


def load_latents(path, n, latent_dim):
    """The first ``n`` rows (all for n < 0) of a latents.npy written by mode reconstruction: (n, 2, D)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: --mode random uses the latents of mode reconstruction; "
                                f"run --mode reconstruction first (or --mode all)")
    latents = latents_array(*read_latents(path, latent_dim))
    return latents if n < 0 else latents[:n]


def selected_modes(mode_option):
    """--mode values -> the modes to run, in the authors' order (MODES)."""
    return MODES if "all" in mode_option else tuple(m for m in MODES if m in mode_option)


def main(argv=None):
    """Console entry point ``varitex-inference``."""
    with settings.user_errors("varitex-inference"):
        run = settings.resolve("inference", argv)
        L.seed_everything(SEED, verbose=False)
        root = Inference(run).run(selected_modes(run.opt.mode))
    print(f"Results in {root}")


if __name__ == "__main__":
    main()

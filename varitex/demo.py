"""The generator G(z, sp, ep, theta) of the demo notebook, batched, with the data to drive it.

    demo = Demo(opt)                        # the authors' notebook: a dict of options with "checkpoint", ...
    demo = Demo("last.ckpt", device="cpu", dataroot_npy=...)   # or a checkpoint and keyword options
    demo = Demo.from_environment()          # $CP, $DP, $FP; or the embedded demo when $CP is unset
    mu, std = demo.load_latents()           # identities of the val split
    sp, ep = demo.load_shape_expressions()  # BFM coefficients of the val split
    out = demo.run(mu[0], sp[0], ep[0], theta=[0, 30, 0])
    demo.to_image(out)                      # PIL image
    demo.to_video([demo.run(...) for ...], "sweep.mp4")   # mp4 with imageio-ffmpeg, else a GIF

``demo.pipeline`` is the PipelineModule: the authors' stage calls ``forward_encode(batch, batch_idx)``,
``forward_sample_style(batch, batch_idx, std_multiplier)`` and ``forward_latent2image(batch, batch_idx)``
work on it and on ``demo.pipeline.generator``.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from varitex import visualization as vis
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.data.paths import require_path
from varitex.generation import generate, uv_factory_from_options
from varitex.options import settings
from varitex.safe_io import load_npy


class Demo:
    """A trained VariTex model with its face model, for interactive use.

    Args:
        opt: the authors' notebook dict (or a namespace) of options, with ``checkpoint``, ``dataroot_npy``,
            ``path_bfm``, ``path_uv``, ``device`` ...; or the path of a checkpoint (ours or the authors').
        device: "cuda", "cpu", ...; default: ``opt``'s, else cuda when available (CPU when it is not).
        **options: any option of EvalOptions. Unset path options fall back to $CP / $DP / $FP, the
            architecture to the options stored in the checkpoint.
    """

    def __init__(self, opt: Mapping | argparse.Namespace | str | os.PathLike | None = None,
                 device: str | None = None, **options: Any):
        if isinstance(opt, (str, os.PathLike)):
            options["checkpoint"] = os.fspath(opt)
        elif opt is not None:
            options = {**(opt if isinstance(opt, Mapping) else vars(opt)), **options}
        if device is not None:
            options["device"] = device
        options.setdefault("device", "cuda" if torch.cuda.is_available() else "cpu")
        run = settings.resolve("demo", overrides=options)
        from varitex.checkpoints import load_pipeline

        self.opt = run.opt
        self.device = torch.device(self.opt.device)
        self.pipeline = load_pipeline(self.opt.checkpoint, self.opt, checkpoint=run.checkpoint).to(self.device)
        self.pipeline.eval()
        self.uv_factory = uv_factory_from_options(self.opt)

    @classmethod
    def from_environment(cls, device: str | None = None) -> Demo:
        """The model of $CP with the data of $DP and face model of $FP; the embedded demo when $CP is unset.

        For the embedded demo, the synthetic world is generated on first use and the demo checkpoint
        (``outputs/demo/checkpoints/last.ckpt``, as written by ``varitex-train --demo``) is trained if
        it is missing, which takes about 6 minutes on a 2-core CPU.
        """
        if os.environ.get("CP"):
            return cls(device=device)
        return cls.from_demo(device)

    @classmethod
    def from_demo(cls, device: str | None = None) -> Demo:
        """The embedded demo: its synthetic world (generated on first use) and the checkpoint of
        ``varitex-train --demo`` below ./outputs, trained now if it is missing."""
        from varitex import train

        run = settings.resolve("train", ["--demo"])
        checkpoint = settings.demo_checkpoint_path(run.opt)
        if not os.path.isfile(checkpoint):
            print(f"$CP is not set and there is no demo checkpoint at {checkpoint}: training the demo model "
                  f"(about 6 minutes on a 2-core CPU) ...", file=sys.stderr)
            train.train(run)
        opt = run.opt
        return cls(checkpoint, device=device, dataroot_npy=opt.dataroot_npy, image_folder=opt.image_folder,
                   path_bfm=opt.path_bfm, path_uv=opt.path_uv)

    def run(self, z: Any, sp: Any, ep: Any, theta: Any, t: Any = None, s: Any = None) -> dict:
        """G(z, sp, ep, theta): see ``varitex.generation.generate``; returns the output dict with CPU tensors."""
        out = generate(self.pipeline, self.uv_factory, z, sp, ep, theta, t, s)
        return {key: value.cpu() for key, value in out.items()}

    def to_image(self, outputs, mask=True):
        """All images of one output dict, or of a list of them, side by side as one PIL image.

        Args:
            outputs: dict from `run` or a list of such dicts.
            mask: black out pixels with SEGMENTATION_PREDICTED <= 0.7, as inference does.
        """
        from PIL import Image

        frames = self._frames(outputs if isinstance(outputs, list) else [outputs], mask)
        return Image.fromarray(np.concatenate(list(frames), axis=1))

    def _frames(self, outputs, mask):
        """(N, H, W, 3) uint8: every image of every output dict, in order."""
        return vis.to_uint8(torch.cat([vis.displayed_output(out, mask) for out in outputs]))

    def to_video(self, outputs, path, fps=15, reverse=False, mask=True):
        """Write the images of ``outputs`` (list of dicts from `run`) as a video; returns the path written.

        An .mp4 needs the imageio-ffmpeg package; without it the video is written as a GIF next to
        ``path`` (same name, .gif). ``reverse`` appends the frames backwards (a back-and-forth loop).
        """
        frames = list(self._frames(outputs, mask))
        if reverse:
            frames = frames + frames[::-1]
        return vis.write_video(frames, path, fps)

    def load_shape_expressions(self, split="val"):
        """BFM coefficients of a split of the preprocessed dataset: sp (N, K_shape), ep (N, K_expr) tensors."""
        from varitex.data.npy_dataset import split_indices

        root = require_path(self.opt, "dataroot_npy")
        bfm = self.uv_factory.bfm
        coefficients = {}
        for name, width in (("sp", bfm.n_shape), ("ep", bfm.n_expression)):
            path = os.path.join(root, f"{name}.npy")
            array = load_npy(path, mmap=True, what="dataset file")
            if array.ndim != 2 or array.shape[1] != width:
                raise ValueError(f"{path} has shape {array.shape}; the face model {bfm.path} needs (N, {width})")
            coefficients[name] = array
        indices = split_indices(root, split, len(coefficients["sp"]))
        sp, ep = (np.asarray(coefficients[name][indices]) for name in ("sp", "ep"))
        for name, values in (("sp", sp), ("ep", ep)):
            if not np.isfinite(values).all():
                raise ValueError(f"{os.path.join(root, name + '.npy')} holds non-finite values in split '{split}'")
        return torch.as_tensor(np.asarray(sp), dtype=torch.float32), torch.as_tensor(np.asarray(ep), dtype=torch.float32)

    def load_latents(self, path=None, split="val"):
        """Latent distributions of a split: mu (N, latent_dim), std (N, latent_dim).

        Read from ``path`` (a latents.npy of inference, shape (N, 2, latent_dim)) or from
        ``dataroot_npy/latents.npy`` (where the authors ship theirs); otherwise the split is encoded now.
        """
        path = path or os.path.join(require_path(self.opt, "dataroot_npy"), "latents.npy")
        if os.path.isfile(path):
            from varitex.inference import load_latents
            latents = torch.as_tensor(load_latents(path, -1, self.opt.latent_dim), dtype=torch.float32)
        else:
            latents = self.encode_split(split)
        return latents[:, 0], latents[:, 1]

    @torch.no_grad()
    def encode_split(self, split="val", indices=None):
        """(N, 2, latent_dim): mu and std of the items ``indices`` of ``split`` (default: all), images through
        the encoder."""
        from torch.utils.data import DataLoader, Subset

        from varitex.data.npy_dataset import NPYDataset

        dataset = NPYDataset(self.opt, split=split, augmentation=False)
        if indices is not None:
            dataset = Subset(dataset, list(indices))
        generator = self.pipeline.generator
        latents = []
        for batch in DataLoader(dataset, batch_size=self.opt.batch_size):
            # Only the encoder and the latent heads: the decoders are not needed for mu and std.
            batch = generator.forward_encode({DIK.IMAGE_IN_ENCODE: batch[DIK.IMAGE_IN_ENCODE].to(self.device)})
            batch = generator.forward_encoded2latent_distribution(batch)
            latents.append(torch.stack([batch[DIK.STYLE_LATENT_MU], batch[DIK.STYLE_LATENT_STD]], 1).cpu())
        return torch.cat(latents)

"""The generator G(z, sp, ep, theta) of the demo notebook (DESIGN.md section 5), batched.

    demo = Demo.from_environment()          # $CP, $DP, $FP; or the embedded demo when $CP is unset
    mu, std = demo.load_latents()           # identities of the val split
    sp, ep = demo.load_shape_expressions()  # BFM coefficients of the val split
    out = demo.run(mu[0], sp[0], ep[0], theta=[0, 30, 0])
    demo.to_image(out)                      # PIL image
    demo.to_video([demo.run(...) for ...], "sweep.mp4")   # mp4 with imageio-ffmpeg, else a GIF
"""
import importlib.util
import os
import sys

import numpy as np
import torch

from varitex import cli
from varitex import visualization as vis
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.options import EvalOptions, require_path


def _batched(x, n, width):
    """(width,) or (1, width) or (n, width) -> (n, width) float32."""
    x = torch.as_tensor(x, dtype=torch.float32).reshape(-1, width)
    return x.expand(n, width) if x.shape[0] == 1 else x


def decode_texture(pipeline, z):
    """The pose-independent part of G: the neural face texture of latent codes, to pass to `generate` again.

    Args:
        pipeline: PipelineModule in eval mode.
        z: (B, latent_dim) or (latent_dim,).
    Returns:
        TEXTURE_PERSON (B, texture_nc, texture_dim, texture_dim) on the pipeline's device.
    """
    z = torch.as_tensor(z, dtype=torch.float32).reshape(-1, pipeline.generator.latent_dim).to(pipeline.device)
    with torch.no_grad():
        return pipeline.generator.forward_latent2texture({DIK.STYLE_LATENT: z})[DIK.TEXTURE_PERSON]


def generate(pipeline, uv_factory, z, sp, ep, theta, t=None, s=None, texture=None):
    """G(z, sp, ep, R(theta)): render posed BFM faces and decode them with latent codes, in one batch.

    Inputs with a batch dimension of 1 (or none) are broadcast to the largest batch.

    Args:
        pipeline: PipelineModule in eval mode; uv_factory: BFMUVFactory on the same device.
        z: (B, latent_dim); sp: (B, K_shape); ep: (B, K_expr); theta: (B, 3) Euler angles in degrees
            (pitch, yaw, roll); t: (B, 3) translation (default DEFAULT_T); s: (B, 1) scale (default DEFAULT_S).
        texture: None (default) decodes the face texture from z; or TEXTURE_PERSON (B or 1, texture_nc, T, T)
            that `decode_texture` returned for these z, which skips the texture decoder (the texture does
            not depend on sp, ep or theta; the images are those of the default path).
    Returns:
        dict with IMAGE_OUT (B, 3, H, W) ImageNet-normalized, SEGMENTATION_PREDICTED (B, 1, H, W) in [0, 1]
        and UV_RENDERED (B, H, W, 2), on the pipeline's device.
    """
    from varitex.geometry import DEFAULT_S, DEFAULT_T, euler_to_rotation

    widths = dict(z=torch.as_tensor(z).shape[-1], sp=uv_factory.bfm.n_shape, ep=uv_factory.bfm.n_expression,
                  theta=3, t=3, s=1)
    values = dict(z=z, sp=sp, ep=ep, theta=theta, t=DEFAULT_T if t is None else t, s=DEFAULT_S if s is None else s)
    flat = {name: torch.as_tensor(value, dtype=torch.float32).reshape(-1, widths[name])
            for name, value in values.items()}
    n = max(value.shape[0] for value in flat.values())
    device = uv_factory.device
    x = {name: _batched(value, n, widths[name]).to(device) for name, value in flat.items()}
    with torch.no_grad():
        uv = uv_factory.getUV(euler_to_rotation(x["theta"]), x["t"], x["s"], x["sp"], x["ep"])
        batch = {DIK.STYLE_LATENT: x["z"], DIK.UV_RENDERED: uv}
        if texture is None:
            out = pipeline.generator.forward_latent2image(batch)
        else:
            batch = pipeline.generator.split_latent(batch)
            batch[DIK.TEXTURE_PERSON] = texture.to(device).expand(n, -1, -1, -1)
            out = pipeline.generator.forward_texture2image(batch)
    return {DIK.IMAGE_OUT: out[DIK.IMAGE_OUT], DIK.SEGMENTATION_PREDICTED: out[DIK.SEGMENTATION_PREDICTED],
            DIK.UV_RENDERED: uv}


class Demo:
    """A trained VariTex model with its face model, for interactive use.

    Args:
        checkpoint: .ckpt file (ours or the authors').
        device: "cuda", "cpu", ...; default: cuda when available.
        **options: any option of EvalOptions (dataroot_npy, path_bfm, path_uv, ...); unset path options fall
            back to $DP / $FP, the architecture to the options stored in the checkpoint.
    """

    def __init__(self, checkpoint, device=None, **options):
        from varitex.geometry import BFMUVFactory
        from varitex.modules.checkpoint import load_pipeline, read_checkpoint

        opt = EvalOptions().parse([])
        opt.checkpoint = cli.require_file(checkpoint, "checkpoint")
        saved = read_checkpoint(checkpoint).get("varitex_opt") or {}
        cli.merge_saved_options(opt, saved, explicit=set(options))
        for name, value in options.items():
            setattr(opt, name, value)
        opt.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.opt = cli.resolve_device(opt)
        self.device = torch.device(self.opt.device)
        self.pipeline = load_pipeline(checkpoint, self.opt).to(self.device).eval()
        self.uv_factory = BFMUVFactory(self.opt)

    @classmethod
    def from_environment(cls, device=None):
        """The model of $CP with the data of $DP and face model of $FP; the embedded demo when $CP is unset.

        For the embedded demo, the synthetic world is generated on first use and the demo checkpoint
        (``outputs/demo/checkpoints/last.ckpt``, as written by ``varitex-train --demo``) is trained if
        it is missing, which takes about 6 minutes on a 2-core CPU.
        """
        if os.environ.get("CP"):
            opt = EvalOptions().parse([])
            for option in ("dataroot_npy", "path_bfm", "path_uv"):
                require_path(opt, option)
            return cls(opt.checkpoint, device=device, dataroot_npy=opt.dataroot_npy,
                       image_folder=opt.image_folder, path_bfm=opt.path_bfm, path_uv=opt.path_uv)
        return cls.from_demo(device)

    @classmethod
    def from_demo(cls, device=None):
        """The embedded demo: its synthetic world (generated on first use) and the checkpoint of
        ``varitex-train --demo`` below ./outputs, trained now if it is missing."""
        from varitex import train

        opt = train.parse_options(["--demo"])
        checkpoint = cli.demo_checkpoint_path(opt)
        if not os.path.isfile(checkpoint):
            print(f"$CP is not set and there is no demo checkpoint at {checkpoint}: training the demo model "
                  f"(about 6 minutes on a 2-core CPU) ...", file=sys.stderr)
            train.train(opt)
        return cls(checkpoint, device=device, dataroot_npy=opt.dataroot_npy, image_folder=opt.image_folder,
                   path_bfm=opt.path_bfm, path_uv=opt.path_uv)

    def run(self, z, sp, ep, theta, t=None, s=None):
        """G(z, sp, ep, theta): see `generate`; returns the output dict with CPU tensors."""
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
        images = []
        for out in outputs:
            image = vis.unnormalize(out[DIK.IMAGE_OUT])
            images.append(vis.mask_output(image, out[DIK.SEGMENTATION_PREDICTED]) if mask else image)
        return vis.to_uint8(torch.cat(images))

    def to_video(self, outputs, path, fps=15, reverse=False, mask=True):
        """Write the images of ``outputs`` (list of dicts from `run`) as a video; returns the path written.

        An .mp4 needs the imageio-ffmpeg package; without it the video is written as a GIF next to
        ``path`` (same name, .gif). ``reverse`` appends the frames backwards (a back-and-forth loop).
        """
        frames = list(self._frames(outputs, mask))
        if reverse:
            frames = frames + frames[::-1]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        root, extension = os.path.splitext(path)
        if extension.lower() == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is not None:
            import imageio
            imageio.mimwrite(path, frames, fps=fps, macro_block_size=1)
            return path
        from PIL import Image
        path = root + ".gif"
        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return path

    def load_shape_expressions(self, split="val"):
        """BFM coefficients of a split of the preprocessed dataset: sp (N, K_shape), ep (N, K_expr) tensors."""
        root = require_path(self.opt, "dataroot_npy")
        indices = np.load(os.path.join(root, "dataset_splits.npz"))[split]
        sp = np.load(os.path.join(root, "sp.npy"), mmap_mode="r")[indices]
        ep = np.load(os.path.join(root, "ep.npy"), mmap_mode="r")[indices]
        return torch.as_tensor(np.asarray(sp), dtype=torch.float32), torch.as_tensor(np.asarray(ep), dtype=torch.float32)

    def load_latents(self, path=None, split="val"):
        """Latent distributions of a split: mu (N, latent_dim), std (N, latent_dim).

        Read from ``path`` (a latents.npy of inference, shape (N, 2, latent_dim)) or from
        ``dataroot_npy/latents.npy`` (where the authors ship theirs); otherwise the split is encoded now.
        """
        path = path or os.path.join(require_path(self.opt, "dataroot_npy"), "latents.npy")
        if os.path.isfile(path):
            latents = torch.as_tensor(np.load(path), dtype=torch.float32)
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

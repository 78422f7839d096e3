"""Evaluate a trained VariTex model: the paper's claims as numbers, in one command.

    varitex-evaluate --demo --n 4                                        # the demo model on the demo world
    varitex-evaluate --checkpoint CP --dataset_split val --n 100 --path_inception FILE --output DIR

Writes ``DIR/evaluation.json`` (every number), ``DIR/evaluation.md`` (tables) and pose-sweep pictures:

1. reconstruction of the split's first ``--n`` images: PSNR, SSIM, LPIPS for z = mu and a seeded posterior
   sample, on the whole image and on the head (varitex.evaluation.reconstruction);
2. geometric consistency: ``--n`` identities of the split rendered on a pitch x yaw grid (``--max_angle``,
   ``--pose_step``) and with other expressions, each image re-fitted with the own-photos landmark fitter:
   rotation error, pitch/yaw bias, landmark error and detection rate per condition; the same measurement
   on ground-truth demo-world renders (``--n_floor`` identities) is the fitter's error floor
   (varitex.evaluation.pose_consistency);
3. identity consistency across poses with dlib's face descriptor (varitex.evaluation.identity);
4. FID of prior samples against the split's real images (``--n_fid``, ``--path_inception``;
   varitex.evaluation.fid).

A part whose optional weights or packages are missing (LPIPS' AlexNet, Inception, dlib, the MediaPipe models)
is skipped with one line saying what to install; the rest is reported.
"""
from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from varitex import SEED
from varitex import visualization as vis
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.data.paths import require_path
from varitex.evaluation import pose_consistency as pc
from varitex.evaluation import report as rep
from varitex.data.batches import batch_to_device
from varitex.evaluation.reconstruction import evaluate_reconstruction
from varitex.generation import generate, uv_factory_from_options
from varitex.geometry import rotation_to_euler
from varitex.options import settings
from varitex.options.settings import RunSettings


def to_uint8_images(images):
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8 numpy."""
    return (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class Evaluation:
    """A trained pipeline, its face model and the split, on one device; each part of the report is a method.

    Args:
        run: ``settings.resolve("evaluate", argv)``.
    """

    def __init__(self, run: RunSettings):
        from varitex.checkpoints import load_pipeline
        from varitex.data.npy_dataset import NPYDataset

        opt = self.opt = run.opt
        self.device = torch.device(opt.device)
        self.pipeline = load_pipeline(opt.checkpoint, opt, checkpoint=run.checkpoint).to(self.device).eval()
        self.uv_factory = uv_factory_from_options(opt)
        self.dataset = NPYDataset(opt, split=opt.dataset_split, augmentation=False)
        self.conditions = pc.condition_grid(opt.max_angle, opt.pose_step)
        self.notes = []
        self.seconds = {}

    def note(self, part, reason):
        """Record and print one line for a part that is skipped."""
        line = f"{part}: skipped: {reason}"
        self.notes.append(line)
        print(f"varitex-evaluate: {line}", file=sys.stderr)

    def _count(self, n):
        return len(self.dataset) if n < 0 else min(n, len(self.dataset))

    def _loader(self, n):
        return DataLoader(Subset(self.dataset, range(self._count(n))), batch_size=self.opt.batch_size,
                          shuffle=False, num_workers=self.opt.num_workers)

    def _timed(self, name, function, *args):
        start = time.perf_counter()
        value = function(*args)
        self.seconds[name] = round(time.perf_counter() - start, 2)
        return value

    # 1. Reconstruction -----------------------------------------------------------------------------------
    def reconstruction(self):
        from varitex.modules.metrics import LPIPSMetric

        lpips = LPIPSMetric(self.opt.path_lpips)
        if lpips.pretrained_source is None:
            self.note("LPIPS", f"no AlexNet ImageNet weights ({lpips.missing_reason}); pass --path_lpips "
                               "alexnet-owt-7be5be79.pth")
            lpips = None
        else:
            lpips = lpips.to(self.device).eval()
        metrics, n = evaluate_reconstruction(self.pipeline, self._loader(self.opt.n), self.device, lpips, SEED)
        return {"n_images": n, "metrics": metrics}

    # 2. and 3. Geometric and identity consistency ---------------------------------------------------------
    def identities(self, dataset, n):
        """Positions in ``dataset`` of up to ``n`` different people: one image per person of a demo world
        (its people have several consecutive images), else the first ``n`` images (FFHQ: one per person)."""
        from varitex.demo_world import world_parameters

        parameters = world_parameters(Path(dataset.dataroot).parents[1])
        per_identity = parameters["images_per_identity"] if parameters else 1
        people = np.asarray(dataset.indices) // per_identity
        _, first = np.unique(people, return_index=True)
        positions = np.sort(first)
        return positions if n < 0 else positions[:n]

    def render_generated(self, requests, z):
        """Masked generator outputs (N, S, S, 3) uint8 for the requests, latents z (I, D) per identity."""
        images = []
        for start in tqdm(range(0, len(requests.identity), self.opt.batch_size), desc="rendering pose grid",
                          unit="batch", leave=False):
            chunk = slice(start, start + self.opt.batch_size)
            out = generate(self.pipeline, self.uv_factory, z[requests.identity[chunk]], requests.sp[chunk],
                           requests.ep[chunk], requests.theta[chunk], requests.t[chunk], requests.s[chunk])
            images.append(to_uint8_images(vis.mask_output(vis.unnormalize(out[DIK.IMAGE_OUT]),
                                                          out[DIK.SEGMENTATION_PREDICTED])))
        return np.concatenate(images)

    def encode_identities(self, positions):
        """Latent means (I, D) of the dataset images at ``positions`` and their sp, ep."""
        loader = DataLoader(Subset(self.dataset, positions.tolist()), batch_size=self.opt.batch_size,
                            shuffle=False, num_workers=self.opt.num_workers)
        z, sp, ep = [], [], []
        with torch.no_grad():
            for batch in loader:
                batch = batch_to_device(batch, self.device)
                out = self.pipeline(batch, std_multiplier=0)
                z.append(out[DIK.STYLE_LATENT_MU])
                sp.append(batch[DIK.COEFF_SHAPE].cpu())
                ep.append(batch[DIK.COEFF_EXPRESSION].cpu())
        return torch.cat(z), torch.cat(sp), torch.cat(ep)

    def measure(self, name, images, requests, measurer, landmarker, embed, output):
        """Detection, fit and errors of one image set; returns its geometry and identity report parts."""
        detections = pc.detect_faces(images, landmarker, embed, desc=f"{name}: faces")
        measured = measurer.measure(detections, requests, images.shape[1])
        names = [c.name for c in self.conditions]
        geometry = {"per_condition": pc.summarize(measured, requests.condition, names),
                    "overall": pc.error_statistics(measured)}
        grid = [i for i, c in enumerate(self.conditions) if c.expression == "own"]
        first = np.flatnonzero((requests.identity == 0) & np.isin(requests.condition, grid))
        picture = rep.pose_sweep_picture(images[first], [self.conditions[c] for c in requests.condition[first]],
                                         measured["theta_fit"][first],
                                         measurer.requested_landmarks(pc.Requests(*(
                                             part[first] for part in requests)), images.shape[1]).numpy(),
                                         os.path.join(output, f"pose_sweep_{name}.png"))
        identity = None
        if embed is not None:
            from varitex.evaluation.identity import identity_consistency

            identity = identity_consistency(detections.embeddings, requests.identity, requests.condition, names,
                                            pc.frontal_index(self.conditions))
        return geometry, identity, picture

    def consistency(self, output):
        """Geometric (and identity) consistency of the generated images and of ground-truth renders."""
        try:
            from varitex.preprocess.landmarks import FaceLandmarker

            landmarker = FaceLandmarker()
        except (ImportError, FileNotFoundError) as error:
            self.note("geometric and identity consistency", str(error).splitlines()[0])
            return None, None
        embed = self.identity_model()
        positions = self.identities(self.dataset, self.opt.n)
        z, sp, ep = self.encode_identities(positions)
        requests = pc.build_requests(sp, ep, self.conditions)
        measurer = pc.PoseMeasurer(self.uv_factory.bfm, landmarker, self.device)
        images = self._timed("render_generated", self.render_generated, requests, z)
        start = time.perf_counter()
        geometry, identity, picture = self.measure("generated", images, requests, measurer, landmarker, embed, output)
        self.seconds["measure_generated"] = round(time.perf_counter() - start, 2)
        geometry = {"n_identities": len(positions), "conditions": [c.__dict__ for c in self.conditions],
                    "generated": geometry, "pictures": [picture]}
        identity = {"generated": identity} if identity is not None else None
        if self.opt.n_floor != 0:
            start = time.perf_counter()
            floor = self.ground_truth(landmarker, embed, output)
            self.seconds["ground_truth"] = round(time.perf_counter() - start, 2)
            geometry["ground_truth"], floor_identity, floor_picture, geometry["ground_truth_world"] = floor
            geometry["pictures"].append(floor_picture)
            if identity is not None:
                identity["ground_truth"] = floor_identity
        return geometry, identity

    def ground_truth(self, landmarker, embed, output):
        """The same measurement on demo-world renders of exactly the requested geometry (the floor)."""
        from varitex.data.npy_dataset import NPYDataset
        from varitex.demo_world import ensure_demo_world, render_reposed, world_parameters
        from varitex.geometry import BFM2017

        root = Path(require_path(self.opt, "dataroot_npy")).parents[1]
        if world_parameters(root) is None:
            root = ensure_demo_world()  # not a demo world: the default one measures the fitter
        world_opt = copy.copy(self.opt)
        world_opt.dataroot_npy = str(root / "FFHQ" / "preprocessed_dataset")
        world_opt.image_folder = str(root / "FFHQ" / "images")
        dataset = NPYDataset(world_opt, split="val" if self.opt.dataset_split == "all" else self.opt.dataset_split,
                             augmentation=False)
        rows = np.asarray(dataset.indices)[self.identities(dataset, self.opt.n_floor)]
        sp = np.load(root / "FFHQ" / "preprocessed_dataset" / "sp.npy", mmap_mode="r")[rows]
        ep = np.load(root / "FFHQ" / "preprocessed_dataset" / "ep.npy", mmap_mode="r")[rows]
        requests = pc.build_requests(sp, ep, self.conditions)
        size = self.opt.image_h
        images = []
        for identity in tqdm(range(len(rows)), desc="rendering ground truth", unit="identity", leave=False):
            chosen = requests.identity == identity
            rendered = render_reposed(root, np.full(chosen.sum(), rows[identity]), requests.theta[chosen],
                                      requests.ep[chosen])
            # As the dataset does: the world's renders resized to the model's image size.
            rendered = torch.nn.functional.interpolate(torch.from_numpy(rendered).permute(0, 3, 1, 2), size=size,
                                                       mode="bilinear", antialias=True, align_corners=False)
            images.append(to_uint8_images(rendered))
        images = np.concatenate(images)
        bfm = BFM2017(root / "basel_facemodel" / "model2017-1_face12_nomouth.h5")
        measurer = pc.PoseMeasurer(bfm, landmarker, self.device)
        geometry, identity, picture = self.measure("ground_truth", images, requests, measurer, landmarker, embed,
                                                   output)
        return geometry, identity, picture, str(root)

    def identity_model(self):
        from varitex.evaluation.identity import FaceDescriptor, IdentityModelUnavailable

        try:
            return FaceDescriptor()
        except IdentityModelUnavailable as error:
            self.note("identity consistency", str(error))
            return None

    # 4. FID ----------------------------------------------------------------------------------------------
    def fid(self):
        from varitex.evaluation.fid import FIDUnavailable, FrechetInceptionDistance

        try:
            metric = FrechetInceptionDistance(self.opt.path_inception, self.device)
        except FIDUnavailable as error:
            self.note("FID", str(error))
            return None
        n_fid = self.opt.n if self.opt.n_fid is None else self.opt.n_fid
        generator = torch.Generator(device="cpu").manual_seed(SEED)
        n = 0
        for batch in tqdm(self._loader(n_fid), desc="FID", unit="batch", leave=False):
            real = vis.unnormalize(batch[DIK.IMAGE_IN])
            z = torch.randn(real.shape[0], self.opt.latent_dim, generator=generator)
            theta = rotation_to_euler(batch[DIK.R])
            out = generate(self.pipeline, self.uv_factory, z, batch[DIK.COEFF_SHAPE], batch[DIK.COEFF_EXPRESSION],
                           theta, batch[DIK.T], batch[DIK.SCALE])
            metric.update(real, real=True)
            metric.update(vis.mask_output(vis.unnormalize(out[DIK.IMAGE_OUT]), out[DIK.SEGMENTATION_PREDICTED]),
                          real=False)
            n += real.shape[0]
        if n < 2:
            self.note("FID", f"needs at least 2 images, the split gave {n}")
            return None
        return {"value": metric.compute(), "n_real": n, "n_generated": n}

    def run(self):
        """Every part; writes the report files and returns the output folder."""
        opt = self.opt
        output = opt.output or os.path.join(require_path(opt, "path_out"), f"evaluation_{opt.dataset_split}")
        output = settings.ensure_writable_dir(output, "output")
        start = time.perf_counter()
        report = {"checkpoint": str(opt.checkpoint), "dataset_split": opt.dataset_split, "image_size": opt.image_h,
                  "device": str(self.device), "seed": SEED,
                  "options": {k: getattr(opt, k) for k in ("n", "n_floor", "n_fid", "max_angle", "pose_step",
                                                           "batch_size", "path_inception", "path_lpips")}}
        report["reconstruction"] = self._timed("reconstruction", self.reconstruction)
        report["geometry"], report["identity"] = self.consistency(output)
        report["n_identities"] = report["geometry"]["n_identities"] if report["geometry"] else 0
        report["fid"] = self._timed("fid", self.fid)
        self.seconds["total"] = round(time.perf_counter() - start, 2)
        report["seconds"], report["notes"] = self.seconds, self.notes
        rep.write_json(report, os.path.join(output, "evaluation.json"))
        with open(os.path.join(output, "evaluation.md"), "w", encoding="utf-8") as handle:
            handle.write(rep.markdown(rep.json_safe(report)))
        return output


def main(argv=None):
    """Console entry point ``varitex-evaluate``."""
    with settings.user_errors("varitex-evaluate"):
        run = settings.resolve("evaluate", argv)
        L.seed_everything(SEED, verbose=False)
        output = Evaluation(run).run()
    print(f"Report in {os.path.join(output, 'evaluation.md')}")


if __name__ == "__main__":
    main()

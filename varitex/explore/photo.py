"""Your photo in the explorer: an image file -> its identity code and its fitted geometry.

    photos = PhotoInverter(demo)                         # the preprocessing models load on the first photo
    z, std, photo = photos.invert("me.jpg", steps=20)    # (latent_dim,) code and std; Photo: sp, ep, pose

The chain of the own-photo commands, through their library functions: `varitex.preprocess.pipeline.Preprocessor`
(landmarks, FFHQ alignment, BFM fit, UV render, segmentation; varitex-preprocess's default settings) writes a
one-photo dataset in the authors' layout with `varitex.preprocess.writer.OutputFolder`, which is read back as
varitex-invert reads its photos (`varitex.invert.photo_dataset`, the model's own data options) and inverted
with `varitex.inversion.invert_batch` (z = the encoder's mu, refined for ``steps`` Adam steps inside the head
mask). The preprocessing models are the optional extra ``preprocess``; `missing_preprocessing` says whether
they are installed.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import tempfile
from pathlib import Path

import torch

from varitex.data.batches import batch_to_device
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.geometry import rotation_to_euler
from varitex.options.eval_options import DEFAULT_LAMBDA_PERCEPTUAL

PHOTO_STEM = "photo"  # the photo's name inside its one-photo dataset (any upload name is fine outside it)
PREPROCESS_INSTALL = 'pip install -e ".[preprocess]" && pip install --no-deps "mediapipe==0.10.21"'


@dataclasses.dataclass(frozen=True, eq=False)
class Photo:
    """The fitted geometry of an uploaded photo (varitex-preprocess's BFM fit).

    Fields:
        name: the file name, e.g. "astronaut.png".
        sp: (K_shape,) float32 shape coefficients.
        ep: (K_expr,) float32 expression coefficients.
        pose: (pitch, yaw, roll) in degrees, the Euler angles of the fitted rotation R.
    """
    name: str
    sp: torch.Tensor
    ep: torch.Tensor
    pose: tuple


def missing_preprocessing() -> str | None:
    """None when the preprocessing models can run here; else one line saying what is missing and how to
    install it (the TensorFlow Lite runtime ai-edge-litert, the MediaPipe model files)."""
    from varitex.preprocess.models import FACE_LANDMARK, model_file

    if importlib.util.find_spec("ai_edge_litert") is None:
        return f"Your photo needs the preprocessing models, which are not installed: {PREPROCESS_INSTALL}"
    try:
        model_file(FACE_LANDMARK)
    except FileNotFoundError:
        return f"Your photo needs the MediaPipe model files, which are not installed: {PREPROCESS_INSTALL}"
    return None


class PhotoInverter:
    """Photos -> (identity code, Photo) with the model of a `varitex.demo.Demo`.

    Args:
        demo: the model (pipeline, options: path_bfm, path_uv, device and the data options of its training).
        landmarker: a `varitex.preprocess.landmarks.FaceLandmarker` to use; default: loaded with the other
            preprocessing models on the first photo.
    """

    def __init__(self, demo, landmarker=None):
        self.demo = demo
        self.landmarker = landmarker
        self._preprocessor = None
        self._perceptual = None
        self._perceptual_found = False

    def preprocessor(self):
        """The `Preprocessor` of the model's face model, loaded on first use.

        Raises:
            ValueError: the preprocessing models are not installed (the message says how to install them).
        """
        if self._preprocessor is None:
            missing = missing_preprocessing()
            if missing:
                raise ValueError(missing)
            from varitex.preprocess.pipeline import Preprocessor, Settings

            settings = Settings(path_bfm=self.demo.opt.path_bfm, path_uv=self.demo.opt.path_uv)
            self._preprocessor = Preprocessor(settings, device=self.demo.opt.device, landmarker=self.landmarker)
        return self._preprocessor

    def perceptual(self, steps: int):
        """varitex-invert's perceptual loss for ``steps`` refinement steps (looked for once), or None."""
        from varitex.invert import refinement_perceptual

        if steps == 0:
            return None
        if not self._perceptual_found:
            self._perceptual = refinement_perceptual(self.demo.pipeline, steps, DEFAULT_LAMBDA_PERCEPTUAL,
                                                     getattr(self.demo.opt, "path_vgg", None))
            self._perceptual_found = True
        return self._perceptual

    def invert(self, path: str, steps: int,
               work_folder: str | None = None) -> tuple[torch.Tensor, torch.Tensor, Photo]:
        """Preprocess and invert one photo file (its largest face).

        Args:
            path: the photo; its file name names the identity.
            steps: Adam steps refining z (0: the encoder's mu).
            work_folder: where the one-photo dataset is written (in a temporary folder removed before this
                returns); default: the system's temporary folder.
        Returns:
            (z (latent_dim,) the refined code, std (latent_dim,) the encoder's, Photo with the fitted sp, ep and
            pose); CPU float32.
        Raises:
            ValueError: the photo gave no usable face (e.g. "no face found"), the message names the file.
        """
        from torch.utils.data import default_collate

        from varitex.invert import photo_dataset
        from varitex.inversion import invert_batch
        from varitex.preprocess.writer import DATASET, IMAGES, OutputFolder

        name = os.path.basename(path)
        preprocessor = self.preprocessor()
        (result,) = preprocessor.run_batch([(Path(path), [PHOTO_STEM])])
        if result.status != "ok":
            raise ValueError(f"{name}: {result.reason}")
        if work_folder is not None:
            os.makedirs(work_folder, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="photo-", dir=work_folder) as folder:
            output = OutputFolder(folder, dataclasses.asdict(preprocessor.settings))
            output.publish([output.save(result)], val_fraction=0.0)
            opt = argparse.Namespace(**{**vars(self.demo.opt), "dataroot_npy": os.path.join(folder, DATASET),
                                        "image_folder": os.path.join(folder, IMAGES), "dataset_split": "all",
                                        "image_cache": None})
            item = photo_dataset(opt)[0]
        batch = batch_to_device(default_collate([item]), self.demo.device)
        inversion = invert_batch(self.demo.pipeline, batch, steps, perceptual=self.perceptual(steps))
        pose = tuple(float(angle) for angle in rotation_to_euler(item[DIK.R]))
        photo = Photo(name=name, sp=item[DIK.COEFF_SHAPE], ep=item[DIK.COEFF_EXPRESSION], pose=pose)
        return inversion.z[0], inversion.std[0], photo

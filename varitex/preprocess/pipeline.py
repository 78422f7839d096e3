"""Photos -> the arrays of one preprocessed dataset item each: detect, align, fit, render uv, segment.

    Preprocessor(settings).run_batch(inputs) -> list[InputResult]

Stages per batch (each timed, see ``InputResult.seconds`` and benchmarks/bm_preprocess.py):

    read        decode the file (RGB)                                     per image, CPU
    detect      face boxes + 468 landmarks (FaceLandmarker)               per image, CPU (TFLite)
    align       FFHQ crop from eye centres and mouth corners (1024)       per face, CPU; skipped with --aligned
    fit         sp, ep, R, t, s to the landmarks (fitting.fit_landmarks)   all faces of the batch at once, device
    uv          render_uv of the fitted meshes at the array size (512)    batched, device
    segment     CelebAMask-HQ labels (segmentation.segment_face) or a label PNG from --segmentation_dir

A file that cannot be used (not an image, no face, face too small, not square with --aligned) gives an
InputResult with status "failed" and the reason; it never stops the batch.
"""
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image, ImageOps

from varitex.geometry import BFMUVFactory
from varitex.preprocess.correspondence import load_correspondence
from varitex.preprocess.fitting import LandmarkFaceModel, fit_landmarks

STAGES = ("read", "detect", "align", "fit", "uv", "segment")


@dataclass
class Settings:
    """What a preprocessing run does; every field changes the output (stored with the work folder).

    path_bfm, path_uv: the face model (BFM 2017 HDF5) and its UV parameterization (face12.json layout).
    aligned: inputs are already FFHQ-aligned squares: used as they are (no alignment crop).
    all_faces: one item per detected face (else the largest face only).
    image_size: side of the aligned photo written to images/ (FFHQ: 1024).
    array_size: side of uv and segmentation (the authors' data: 512).
    min_face_size: faces whose detector box is smaller than this many input pixels are refused.
    segmentation_dir: folder of label PNGs ``<stem>.png`` (CelebAMask-HQ ids) to use instead of our parser.
    """
    path_bfm: str
    path_uv: str
    aligned: bool = False
    all_faces: bool = False
    image_size: int = 1024
    array_size: int = 512
    min_face_size: int = 64
    segmentation_dir: Optional[str] = None


@dataclass
class FaceItem:
    """One dataset row: the aligned photo and all arrays of section 4 of the data layout, float32/uint8."""
    stem: str
    image: np.ndarray              # (S_img, S_img, 3) uint8, written to images/<stem>.png
    R: np.ndarray                  # (3, 3) float32
    t: np.ndarray                  # (3,) float32
    s: np.ndarray                  # (1,) float32
    sp: np.ndarray                 # (K_shape,) float32
    ep: np.ndarray                 # (K_expr,) float32
    uv: np.ndarray                 # (S, S, 2) float32 in [-1, 1], background exactly -1
    segmentation: np.ndarray       # (S, S) uint8 label ids
    reprojection_error_px: float   # weighted mean landmark error, pixels of the aligned photo
    fit_seconds: float             # this face's share of its batch's fit time


@dataclass
class InputResult:
    """What became of one input file: status "ok" with its faces, or "failed" with the reason."""
    path: str
    stems: list
    status: str = "ok"
    reason: str = ""
    faces: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)


class InputError(Exception):
    """An input file that cannot be used; the message is the reason shown and recorded."""


def read_rgb(path):
    """(H, W, 3) uint8 RGB of an image file, turned upright by its EXIF orientation (phones store portraits
    sideways with a tag); InputError naming the reason when it is not a readable image."""
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"not a readable image ({error})") from error


def resize_square(image, size, resample=Image.Resampling.BILINEAR):
    """A square uint8 image resized to ``size`` (unchanged when it already has that size)."""
    if image.shape[0] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), resample))


class Preprocessor:
    """The models of a run (landmarker, face model, correspondence, uv renderer), loaded once.

    Args:
        settings: Settings.
        device: torch device of the fit and the uv renders.
        landmarker: a FaceLandmarker (default: varitex.preprocess.landmarks.FaceLandmarker()).
    """

    def __init__(self, settings, device="cpu", landmarker=None):
        self.settings = settings
        self.device = torch.device(device)
        if landmarker is None:
            from varitex.preprocess.landmarks import FaceLandmarker
            landmarker = FaceLandmarker()
        self.landmarker = landmarker
        self.uv_factory = BFMUVFactory(settings.path_bfm, settings.path_uv, settings.array_size, device=self.device)
        self.correspondence = load_correspondence(self.uv_factory.bfm, lambda: self.landmarker)
        self.face_model = LandmarkFaceModel(self.uv_factory.bfm, self.correspondence.vertex_ids,
                                            self.correspondence.barycentrics, device=self.device)

    def run_batch(self, inputs):
        """Preprocess a batch of files.

        Args:
            inputs: list of (path, stems): the file and the stems its faces get (first face: stems[0]; with
                all_faces, further faces ``<stems[0]>_<k>``).

        Returns:
            list of InputResult in input order.
        """
        threads = torch.get_num_threads()
        if self.device.type == "cpu":
            # One intra-op thread: the fit's tensors are small, and with more threads torch's synchronization
            # made the fit 5-10x slower on a shared 2-core machine. Large runs use one process per core.
            torch.set_num_threads(1)
        try:
            return self._run_batch(inputs)
        finally:
            torch.set_num_threads(threads)

    def _run_batch(self, inputs):
        results, faces = [], []
        for path, stems in inputs:
            result = InputResult(path=str(path), stems=list(stems))
            try:
                faces += [(result, *face) for face in self._faces_of(path, result)]
            except (InputError, ValueError) as error:  # ValueError: a stage refused this photo (e.g. too small)
                result.status, result.reason = "failed", str(error)
            results.append(result)
        if faces:
            self._fit_render_segment(faces)
        return results

    def _timed(self, result, stage, function, *args):
        start = time.perf_counter()
        value = function(*args)
        result.seconds[stage] = result.seconds.get(stage, 0.0) + time.perf_counter() - start
        return value

    def _faces_of(self, path, result):
        """(stem, aligned image, landmarks (468, 2) in aligned pixels) of the faces kept from one file."""
        from varitex.preprocess.alignment import align_ffhq
        from varitex.preprocess.landmarks import eye_mouth_points

        settings = self.settings
        image = self._timed(result, "read", read_rgb, path)
        if settings.aligned and image.shape[0] != image.shape[1]:
            raise InputError(f"not square ({image.shape[1]} x {image.shape[0]}): --aligned expects FFHQ-aligned "
                             "square photos; leave out --aligned to align it")
        detected = self._timed(result, "detect", self.landmarker.detect, image)
        if not detected:
            raise InputError("no face found")
        detected = detected if settings.all_faces else detected[:1]
        kept = []
        for k, face in enumerate(detected):
            side = float(max(face.box[2] - face.box[0], face.box[3] - face.box[1]))
            if side < settings.min_face_size:
                if k == 0:
                    raise InputError(f"face too small ({side:.0f} px < --min_face_size {settings.min_face_size})")
                continue
            stem = result.stems[0] if k == 0 else f"{result.stems[0]}_{k}"
            landmarks = face.landmarks[:, :2].astype(np.float64)
            if settings.aligned:
                kept.append((stem, image, landmarks))
                continue
            aligned, transform = self._timed(result, "align", align_ffhq, image, *eye_mouth_points(landmarks),
                                             settings.image_size)
            landmarks = landmarks @ transform[:2, :2].T + transform[:2, 2]
            kept.append((stem, aligned, landmarks))
        return kept

    def _fit_render_segment(self, faces):
        """Fit all faces jointly, render their uv maps in one batch, segment each; fills result.faces."""
        # Faces are fitted in the pixel frame of their photo, which may differ per face with --aligned.
        sizes = [image.shape[0] for _, _, image, _ in faces]
        reference = max(sizes)
        landmarks = np.stack([lm * (reference / size) for (_, _, _, lm), size in zip(faces, sizes)])
        start = time.perf_counter()
        fit = fit_landmarks(self.face_model, landmarks, reference, weights=self.correspondence.weights)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        uv = self.uv_factory.getUV(fit.R, fit.t, fit.s, fit.sp, fit.ep).cpu().numpy()
        uv_seconds = time.perf_counter() - start
        results = {id(result): result for result, *_ in faces}
        for result in results.values():
            share = sum(r is result for r, *_ in faces) / len(faces)
            result.seconds["fit"] = fit_seconds * share
            result.seconds["uv"] = uv_seconds * share
        for i, (result, stem, image, lm) in enumerate(faces):
            if result.status != "ok":
                continue
            try:
                segmentation = self._timed(result, "segment", self._segment, stem, image, lm, uv[i])
            except InputError as error:
                result.status, result.reason, result.faces = "failed", str(error), []
                continue
            result.faces.append(FaceItem(
                stem=stem, image=image, R=fit.R[i].numpy(), t=fit.t[i].numpy(), s=fit.s[i].numpy(),
                sp=fit.sp[i].numpy(), ep=fit.ep[i].numpy(), uv=uv[i], segmentation=segmentation,
                reprojection_error_px=float(fit.error_px[i]) * sizes[i] / reference,
                fit_seconds=fit_seconds / len(faces)))

    def _segment(self, stem, image, landmarks, uv):
        """(S, S) uint8 CelebAMask-HQ labels of one face at the array size."""
        from varitex.preprocess.segmentation import read_label_png, segment_face

        size = self.settings.array_size
        if self.settings.segmentation_dir:
            path = Path(self.settings.segmentation_dir) / f"{stem}.png"
            if not path.is_file():
                raise InputError(f"no label PNG {path} in --segmentation_dir")
            try:
                return read_label_png(path, (size, size))
            except ValueError as error:
                raise InputError(str(error)) from error
        scale = size / image.shape[0]
        return segment_face(resize_square(image, size), landmarks * scale, (uv != -1).any(axis=-1))

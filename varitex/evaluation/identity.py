"""Identity consistency across poses with dlib's ResNet face descriptor (128-d, offline).

The network and the 5-point landmark model that aligns the face chip come from the ``face-recognition-models``
package (model files only; its Python module is never imported, it needs the removed ``pkg_resources``), and
run with a binary dlib (the ``dlib-bin`` wheel)::

    pip install -e ".[evaluate]"        # dlib-bin, face-recognition-models, torch-fidelity

Two descriptors of one person are at Euclidean distance < 0.6 in dlib's calibration (99.38% on LFW).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

EVALUATE_INSTALL = 'pip install -e ".[evaluate]"  (dlib-bin, face-recognition-models)'
DESCRIPTOR_FILE = "models/dlib_face_recognition_resnet_model_v1.dat"
FIVE_POINT_FILE = "models/shape_predictor_5_face_landmarks.dat"
SAME_PERSON_DISTANCE = 0.6  # dlib's threshold for "same person"


class IdentityModelUnavailable(ImportError):
    """dlib or the face-recognition model files are not installed; the message says what to install."""


def model_folder():
    """Folder of the face-recognition-models package, located without importing it."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise IdentityModelUnavailable(f"the dlib face-recognition model files are not installed "
                                       f"(package 'face_recognition_models' not found): {EVALUATE_INSTALL}")
    return Path(list(spec.submodule_search_locations)[0])


class FaceDescriptor:
    """``descriptor(image, box) -> (128,) float32``: dlib's descriptor of the face in ``box``.

    Args:
        folder: folder holding the two model files (default: the installed face-recognition-models package).
    Raises:
        IdentityModelUnavailable: dlib or a model file is missing (one line with the install command).
    """

    def __init__(self, folder=None):
        try:
            import dlib
        except ImportError as error:
            raise IdentityModelUnavailable(f"dlib is not installed: {EVALUATE_INSTALL}") from error
        folder = model_folder() if folder is None else Path(folder)
        paths = [folder / DESCRIPTOR_FILE, folder / FIVE_POINT_FILE]
        for path in paths:
            if not path.is_file():
                raise IdentityModelUnavailable(f"dlib model file {path} is missing: {EVALUATE_INSTALL}")
        self._dlib = dlib
        self._network = dlib.face_recognition_model_v1(str(paths[0]))
        self._five_points = dlib.shape_predictor(str(paths[1]))

    def __call__(self, image, box):
        """image: (H, W, 3) uint8 RGB; box: (4,) x0, y0, x1, y1 pixels of the face -> (128,) float32."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        shape = self._five_points(image, self._dlib.rectangle(x0, y0, x1, y1))
        return np.asarray(self._network.compute_face_descriptor(image, shape), dtype=np.float32)


def cosine_similarity(a, b):
    """Row-wise cosine similarity of (..., D) arrays (NaN rows give NaN)."""
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def identity_consistency(embeddings, identity, condition, names, reference):
    """Similarity of each render to the same identity's reference render (the frontal one), per condition.

    Args:
        embeddings: (N, D) descriptors, NaN rows where no face was found.
        identity, condition: (N,) int identity and condition of each row.
        names: condition names; reference: the reference condition's index.
    Returns:
        dict: ``per_condition`` (list of dicts: name, pairs, cosine_similarity mean, distance mean,
        same_person_rate = share of distances < 0.6), and ``different_identities`` (the same statistics over
        pairs of different identities' reference renders: what "not the same person" scores).
    """
    n_identities = int(identity.max()) + 1 if len(identity) else 0
    reference_rows = np.full((n_identities, embeddings.shape[1]), np.nan, np.float32)
    chosen = condition == reference
    reference_rows[identity[chosen]] = embeddings[chosen]

    def statistics(a, b):
        valid = ~(np.isnan(a).any(-1) | np.isnan(b).any(-1))
        a, b = a[valid], b[valid]
        distance = np.linalg.norm(a - b, axis=-1)
        return {"pairs": int(valid.sum()),
                "cosine_similarity": float(cosine_similarity(a, b).mean()) if len(a) else None,
                "distance": float(distance.mean()) if len(a) else None,
                "same_person_rate": float((distance < SAME_PERSON_DISTANCE).mean()) if len(a) else None}

    per_condition = [{"name": name, **statistics(embeddings[condition == c], reference_rows[identity[condition == c]])}
                     for c, name in enumerate(names)]
    first, second = np.triu_indices(n_identities, k=1)
    return {"per_condition": per_condition,
            "different_identities": statistics(reference_rows[first], reference_rows[second])}

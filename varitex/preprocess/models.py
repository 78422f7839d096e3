"""The pretrained MediaPipe models used by preprocessing: where their files are and how they run.

The .tflite files come from the ``mediapipe`` wheel (versions up to 0.10.21 ship them in the package
folder; later versions do not). We only *read* those files, never import the MediaPipe runtime, and run
them with ``ai-edge-litert`` (the TensorFlow Lite interpreter). So the mediapipe wheel is installed
without its dependencies (its ``protobuf < 5`` pin would break tensorboard), see docs/own_photos.md::

    pip install -e ".[preprocess]"                  # ai-edge-litert
    pip install --no-deps "mediapipe==0.10.21"      # the model files only

Nothing is downloaded at run time.
"""
import importlib.util
from pathlib import Path

import numpy as np

MEDIAPIPE_INSTALL = 'pip install --no-deps "mediapipe==0.10.21"'
LITERT_INSTALL = 'pip install -e ".[preprocess]"  (or: pip install ai-edge-litert)'

# Model files, relative to the mediapipe package folder.
FACE_DETECTION_SHORT_RANGE = "modules/face_detection/face_detection_short_range.tflite"
FACE_DETECTION_FULL_RANGE = "modules/face_detection/face_detection_full_range_sparse.tflite"
FACE_LANDMARK = "modules/face_landmark/face_landmark.tflite"
SELFIE_SEGMENTATION = "modules/selfie_segmentation/selfie_segmentation.tflite"


def mediapipe_folder():
    """The installed ``mediapipe`` package folder, located without importing (running) the package.

    Raises:
        FileNotFoundError: mediapipe is not installed; the message gives the install command.
    """
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the MediaPipe model files are not installed (package 'mediapipe' not found); "
                                f"install them with: {MEDIAPIPE_INSTALL}")
    return Path(list(spec.submodule_search_locations)[0])


def model_file(relative, folder=None):
    """Path of one model file inside the mediapipe package folder (or inside ``folder``).

    Args:
        relative: path relative to the package folder, e.g. ``FACE_LANDMARK``.
        folder: where to look instead of the installed package (tests, unpacked wheels).

    Raises:
        FileNotFoundError: the file is missing; one line naming it, the package and the install command.
    """
    folder = mediapipe_folder() if folder is None else Path(folder)
    path = folder / relative
    if not path.is_file():
        raise FileNotFoundError(f"MediaPipe model file {path} is missing (mediapipe versions after 0.10.21 no "
                                f"longer ship it); install the model files with: {MEDIAPIPE_INSTALL}")
    return path


class TFLiteModel:
    """One .tflite model on the CPU: ``model(x) -> [outputs]`` for a single float32 input tensor.

    Args:
        path: the .tflite file.
        num_threads: interpreter threads (1: the per-core cost; data-parallel runs use one process per core).
    """

    def __init__(self, path, num_threads=1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:
            raise ImportError(f"running {Path(path).name} needs the TensorFlow Lite runtime 'ai-edge-litert', "
                              f"which is not installed: {LITERT_INSTALL}") from error
        self.path = Path(path)
        self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        (self._input,) = self._interpreter.get_input_details()
        self._outputs = self._interpreter.get_output_details()

    @property
    def input_shape(self):
        """Shape of the input tensor, e.g. (1, 192, 192, 3)."""
        return tuple(int(n) for n in self._input["shape"])

    def __call__(self, tensor):
        """Run the model on ``tensor`` (input_shape, float32); returns the output arrays in model order."""
        tensor = np.ascontiguousarray(tensor, dtype=np.float32)
        if tensor.shape != self.input_shape:
            raise ValueError(f"{self.path.name} takes input of shape {self.input_shape}, got {tensor.shape}")
        self._interpreter.set_tensor(self._input["index"], tensor)
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(output["index"]).copy() for output in self._outputs]

"""The authors' command-line options, and ``settings.resolve``: options -> the settings of one run.

    TrainOptions().parse([])          -> argparse.Namespace with every default
    varitex_default_options()         -> the model defaults as a dict
    require_path(opt, "dataroot_npy") -> the value, or a clear error naming the flag and env var
"""
from varitex.data.paths import MissingPathError, require_path
from varitex.options.base_options import BaseOptions
from varitex.options.eval_options import EvalOptions
from varitex.options.train_options import TrainOptions


def varitex_default_options():
    """All defaults of the training options (model, loss and data options) as a dict.

    Paths are filled from the environment variables when set, else None.
    """
    return vars(TrainOptions().parse([]))


__all__ = ["BaseOptions", "TrainOptions", "EvalOptions", "varitex_default_options", "require_path",
           "MissingPathError"]

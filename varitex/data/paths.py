"""Where the data lives: the environment variables of the authors' setup and the files below them.

    $DP  data root:        FFHQ/preprocessed_dataset (arrays), FFHQ/images (PNGs)
    $FP  face-model root:  basel_facemodel/model2017-1_face12_nomouth.h5, basel_facemodel/face12.json
    $OP  output root
    $CP  checkpoint file
"""
import os

# Path options whose defaults come from environment variables: option -> (env var, sub path).
ENV_PATH_DEFAULTS = dict(
    dataroot_npy=("DP", "FFHQ/preprocessed_dataset"),
    image_folder=("DP", "FFHQ/images"),
    path_out=("OP", ""),
    path_bfm=("FP", "basel_facemodel/model2017-1_face12_nomouth.h5"),
    path_uv=("FP", "basel_facemodel/face12.json"),
    checkpoint=("CP", ""),
)


class MissingPathError(ValueError):
    """A path option is needed but neither its flag nor its environment variable was given."""


def env_default(option):
    """Default of a path option from its environment variable, or None when the variable is unset."""
    env_var, sub_path = ENV_PATH_DEFAULTS[option]
    root = os.environ.get(env_var)
    if not root:
        return None
    return os.path.join(root, sub_path) if sub_path else root


def require_path(opt, option):
    """Return ``opt.<option>``; raise MissingPathError naming the flag and env var when it is unset."""
    value = getattr(opt, option, None)
    if value:
        return value
    env_var, sub_path = ENV_PATH_DEFAULTS[option]
    where = f"${env_var}/{sub_path}" if sub_path else f"${env_var}"
    raise MissingPathError(
        f"--{option} is not set: pass --{option} PATH or set the environment variable {env_var} "
        f"(the default is {where}). To try VariTex without data, use --demo.")

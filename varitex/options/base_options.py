"""Options shared by training, inference and the demo; names and defaults are the authors'."""
import argparse

from varitex.data.paths import env_default

def _positive_int(value):
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def _non_negative_int(value):
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return number


def _non_negative_float(value):
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a value >= 0, got {value}")
    return number


class BaseOptions:
    """Options for the data, the model architecture and the run (authors' names and defaults)."""

    def __init__(self):
        self.parser = argparse.ArgumentParser(
            description="VariTex: Variational Neural Face Textures",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        self.initialize(self.parser)

    def initialize(self, parser):
        # Data and paths. Defaults come from $DP, $FP, $OP and $CP (None when unset).
        parser.add_argument("--dataroot_npy", default=env_default("dataroot_npy"),
                            help="folder of the preprocessed .npy arrays ($DP/FFHQ/preprocessed_dataset)")
        parser.add_argument("--image_folder", default=env_default("image_folder"),
                            help="folder of the FFHQ PNG images ($DP/FFHQ/images)")
        parser.add_argument("--path_out", default=env_default("path_out"), help="output root ($OP)")
        parser.add_argument("--path_bfm", default=env_default("path_bfm"),
                            help="Basel Face Model 2017 HDF5 ($FP/basel_facemodel/model2017-1_face12_nomouth.h5)")
        parser.add_argument("--path_uv", default=env_default("path_uv"),
                            help="UV parameterization json ($FP/basel_facemodel/face12.json)")
        parser.add_argument("--device", default="cuda", help="device for rendering and inference")
        parser.add_argument("--dataset", default="FFHQ")
        parser.add_argument("--keep_background", action="store_true",
                            help="keep the image background instead of filling it")
        parser.add_argument("--bg_color", default="black", choices=["black", "zero"],
                            help="background fill: the image minimum (black) or 0")
        parser.add_argument("--transform_mode", default="all",
                            help="augmentations: any of the letters d (rotation), t (translation), "
                                 "s (scale), f (flip), or 'all'")
        parser.add_argument("--logger", default="tensorboard", choices=["tensorboard", "wandb"])
        parser.add_argument("--checkpoint", default=env_default("checkpoint"),
                            help="checkpoint to load or resume from ($CP)")
        parser.add_argument("--dataset_split", default="train", help="train, val or all")
        parser.add_argument("--image_cache", default=None,
                            help="folder for a cache of the decoded PNGs resized to the uv/segmentation size "
                                 "(uint8 .npy, 0.8 MB per FFHQ image, 55 GB for all of FFHQ): skips PNG "
                                 "decoding, the largest cost of a dataset item; values are unchanged. Off when unset")
        # Architecture.
        parser.add_argument("--texture_nc", default=16, type=_positive_int, help="neural texture channels")
        parser.add_argument("--texture_dim", default=256, type=int, choices=[128, 256],
                            help="neural texture resolution")
        parser.add_argument("--image_h", default=256, type=_positive_int)
        parser.add_argument("--image_w", default=256, type=_positive_int)
        parser.add_argument("--batch_size", default=7, type=_positive_int, help="batch size per device")
        parser.add_argument("--uv_mask_value", default=0.0, type=float,
                            help="feature value outside the face (MASK_UV)")
        parser.add_argument("--latent_dim", default=256, type=_positive_int,
                            help="size of z; the first half drives the face texture, the second the additive decoder")
        parser.add_argument("--network_width", default=1.0, type=float,
                            help="fraction (0, 1] of the authors' channel counts in the encoder and both texture "
                                 "decoders; 1 is the authors' network (the U-Net's width is --nc_feature2image)")
        parser.add_argument("--nc_feature2image", default=64, type=_positive_int,
                            help="U-Net features at the top level")
        parser.add_argument("--feature2image_num_layers", default=5, type=_positive_int, help="U-Net levels")
        parser.add_argument("--nc_decoder", default=32, type=int,
                            help="unused; kept because the authors' option files contain it")
        parser.add_argument("--semantic_regions", default=list(range(1, 16)), type=int, nargs="+",
                            help="segmentation label ids that count as foreground")
        # Run.
        parser.add_argument("--experiment_name", default="default")
        parser.add_argument("--project", default="varitex")
        parser.add_argument("--debug", action="store_true", help="a fast dev run")
        parser.add_argument("--demo", action="store_true",
                            help="run on the embedded synthetic demo world with small demo settings "
                                 "(no data or checkpoint needed; explicit flags still win)")
        return parser

    def parse(self, args=None):
        """Parse ``args`` (a list of strings; None reads sys.argv) into an argparse.Namespace."""
        return self.parser.parse_args(args)

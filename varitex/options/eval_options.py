"""Inference and demo options, and those of the own-photo commands varitex-invert and varitex-edit."""
from varitex.options.base_options import BaseOptions, _non_negative_float, _non_negative_int, _positive_int

# Refinement steps of varitex-invert. Measured on the demo model's 20 val people, the masked L2 falls from 0.356
# (encoder) to 0.326, 0.315, 0.298, 0.281 after 10, 20, 50, 100 steps, with no knee: 20 steps get more than half
# of the gain of 100 for a fifth of the time (1.6 s per photo on 2 CPU cores; the authors' 256 px model costs
# about 10 s per step there). README, "Your photo in the model".
DEFAULT_INVERT_STEPS = 20
DEFAULT_LAMBDA_PERCEPTUAL = 2.0  # the refinement's VGG-19 weight: training's default --lambda_vgg


class EvalOptions(BaseOptions):
    def initialize(self, parser):
        super().initialize(parser)
        parser.add_argument("--path_opt", default=None,
                            help="opt.json of the training run (defaults to the one beside the checkpoint)")
        parser.add_argument("--n", default=30, type=int,
                            help="samples of the split per inference mode (-1: the whole split)")
        parser.add_argument("--mode", default=["all"], nargs="+",
                            choices=["all", "reconstruction", "posed", "random"],
                            help="inference modes: reconstruction (z = mu, writes latents.npy), posed "
                                 "(re-posed with the sample's shape and expression), random (random BFM "
                                 "shapes and expressions with the latents of reconstruction)")
        parser.add_argument("--num_workers", default=2, type=int, help="data-loading workers")
        return parser


class InvertOptions(EvalOptions):
    """varitex-invert: photos of a preprocessed folder -> latent codes (encoder, then gradient refinement)."""

    def initialize(self, parser):
        super().initialize(parser)
        parser.add_argument("--steps", default=DEFAULT_INVERT_STEPS, type=_non_negative_int,
                            help="Adam steps refining z on the masked reconstruction loss (0: encoder only)")
        parser.add_argument("--lr_invert", default=0.05, type=float, help="Adam learning rate of the refinement")
        parser.add_argument("--lambda_perceptual", default=DEFAULT_LAMBDA_PERCEPTUAL, type=_non_negative_float,
                            help="weight of the VGG-19 perceptual loss in the refinement (the training "
                                 "default of --lambda_vgg); used when VGG-19 ImageNet weights are found "
                                 "(--path_vgg or torchvision's cache), else the refinement uses L2 alone")
        parser.add_argument("--path_vgg", default=None,
                            help="torchvision VGG-19 IMAGENET1K_V1 state_dict (vgg19-dcbb9e9d.pth); default: "
                                 "the checkpoint's loss_vgg weights, else torchvision's cache. Never downloaded")
        parser.add_argument("--output", default=None,
                            help="results folder (latents.npy, a picture per photo, inversion_report.json); "
                                 "default <path_out>/inversion_<dataset_split>")
        return parser


class EditOptions(EvalOptions):
    """varitex-edit: re-pose, expression transfer, shape swap, interpolation and sampling of one identity."""

    def initialize(self, parser):
        super().initialize(parser)
        parser.add_argument("--latents", default=None,
                            help="latents.npy (N, 2, latent_dim) of varitex-invert (or of inference mode "
                                 "reconstruction) for the rows of --dataset_split; default: the one "
                                 "varitex-invert writes, <path_out>/inversion_<dataset_split>/latents.npy")
        parser.add_argument("--identity", default="0",
                            help="the identity to edit: a file stem of the split, or its row in the split")
        parser.add_argument("--repose", default=[], nargs="+", choices=["yaw", "pitch", "roll"],
                            help="pose sweeps about these axes, from -max_angle to +max_angle")
        parser.add_argument("--max_angle", default=45.0, type=float, help="largest angle of a sweep (degrees)")
        parser.add_argument("--expression_from", default=[], nargs="+",
                            help="file stems (or rows) of ANY dataset item whose expression the identity takes")
        parser.add_argument("--shape_from", default=[], nargs="+",
                            help="file stems (or rows) of any dataset item whose face-model shape it takes")
        parser.add_argument("--interpolate_to", default=None,
                            help="a second identity of the split (stem or row): latent interpolation to it")
        parser.add_argument("--sample", default=0, type=_non_negative_int,
                            help="codes drawn around the identity: z = mu + std_multiplier * std * eps")
        parser.add_argument("--std_multiplier", default=1.0, type=_non_negative_float)
        parser.add_argument("--n_frames", default=9, type=_positive_int,
                            help="images per pose sweep and per interpolation")
        parser.add_argument("--video", default="mp4", choices=["mp4", "gif", "none"],
                            help="a video per edit besides the PNG grid (mp4 needs imageio-ffmpeg, else GIF)")
        parser.add_argument("--fps", default=8, type=_positive_int)
        parser.add_argument("--seed", default=0, type=int, help="seed of --sample")
        parser.add_argument("--output", default=None,
                            help="results folder; default <path_out>/edits_<identity>")
        return parser


class EvaluateOptions(EvalOptions):
    """varitex-evaluate: the inference options plus what the evaluation measures and where it writes."""

    def initialize(self, parser):
        super().initialize(parser)
        parser.add_argument("--output", default=None,
                            help="folder for evaluation.json, evaluation.md and the pictures "
                                 "(default: path_out/evaluation_<split>)")
        parser.add_argument("--path_inception", default=None,
                            help="torch-fidelity's Inception-v3 weights (weights-inception-2015-12-05-6726825d.pth) "
                                 "for FID; never downloaded. Without it FID is skipped with a note")
        parser.add_argument("--path_lpips", default=None,
                            help="torchvision AlexNet IMAGENET1K_V1 state_dict (alexnet-owt-7be5be79.pth) for LPIPS; "
                                 "default: torchvision's cache. Without it LPIPS is skipped with a note")
        parser.add_argument("--max_angle", default=45.0, type=float,
                            help="pose grid: pitch and yaw from -max_angle to max_angle degrees")
        parser.add_argument("--pose_step", default=15.0, type=float, help="pose grid step in degrees")
        parser.add_argument("--n_floor", default=8, type=int,
                            help="demo-world identities rendered as ground truth for the fitter's error floor "
                                 "(0: skip)")
        parser.add_argument("--n_fid", default=None, type=int,
                            help="real images and prior samples for FID (default: --n; -1: the whole split)")
        return parser

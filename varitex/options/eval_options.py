"""Inference and demo options."""
from varitex.options.base_options import BaseOptions


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

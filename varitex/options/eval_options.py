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

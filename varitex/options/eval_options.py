"""Inference and demo options."""
from varitex.options.base_options import BaseOptions


class EvalOptions(BaseOptions):
    def initialize(self, parser):
        super().initialize(parser)
        parser.add_argument("--path_opt", default=None,
                            help="opt.json of the training run (defaults to the one beside the checkpoint)")
        return parser

"""VariTex in the browser: `varitex-explore [--checkpoint CP | --demo] [--host 127.0.0.1] [--port 7860]`.

    varitex-explore --demo                        # the embedded demo; its model is trained first if missing
    varitex-explore --checkpoint CP               # data and face model from $DP / $FP or the path flags
    python -m varitex.explore --checkpoint CP --dataset_split train --port 8000

Needs the optional extra: ``pip install -e ".[app]"``. Takes the path options and environment variables of
the other commands (``--dataroot_npy``, ``--path_bfm``, ``--path_uv``, ``--device``; $CP, $DP, $FP); the
people, shapes and expressions offered are those of ``--dataset_split`` (default val).
"""
import importlib.util
import sys

from varitex.options import BaseOptions, require_path, settings

PROGRAM = "varitex-explore"


class ExploreOptions(BaseOptions):
    """The base options (paths, device, split, --demo) and the server's."""

    def initialize(self, parser):
        super().initialize(parser)
        parser.add_argument("--host", default="127.0.0.1",
                            help="address to bind; 0.0.0.0 makes the page reachable from other machines")
        parser.add_argument("--port", default=7860, type=int)
        parser.add_argument("--latents", default=None,
                            help="latents.npy (N, 2, latent_dim) of the split, as varitex-inference writes it "
                                 "(default: dataroot_npy/latents.npy when present, else people are encoded "
                                 "from their images when picked)")
        parser.add_argument("--max_upload_mb", default=16.0, type=float,
                            help="largest latents file the page accepts, in MiB")
        return parser


def parse_options(argv=None):
    opt = ExploreOptions().parse(argv)
    explicit = settings.explicit_flags(ExploreOptions, argv)
    if "dataset_split" not in explicit:
        opt.dataset_split = "val"  # like inference and the notebook
    if opt.max_upload_mb <= 0:
        raise ValueError(f"--max_upload_mb must be > 0, got {opt.max_upload_mb}")
    return opt


def load_explorer(opt):
    """The Explorer of the options: the embedded demo (--demo) or --checkpoint with the data of the path options."""
    from varitex.demo import Demo
    from varitex.explore.session import Explorer

    if opt.demo:
        demo = Demo.from_demo(device=opt.device)
    else:
        require_path(opt, "checkpoint")
        paths = {option: require_path(opt, option) for option in ("dataroot_npy", "path_bfm", "path_uv")}
        demo = Demo(opt.checkpoint, device=opt.device, image_folder=require_path(opt, "image_folder"), **paths)
    demo.opt.dataset_split = opt.dataset_split
    settings.check_split(demo.opt)
    return Explorer(demo, split=opt.dataset_split, latents_path=opt.latents)


def main(argv=None):
    if importlib.util.find_spec("gradio") is None:
        print(f'{PROGRAM}: error: the explorer needs gradio: pip install -e ".[app]"', file=sys.stderr)
        sys.exit(2)
    from varitex.explore.app import serve

    with settings.user_errors(PROGRAM):
        opt = parse_options(argv)
        explorer = load_explorer(opt)
    serve(explorer, host=opt.host, port=opt.port, max_upload_bytes=int(opt.max_upload_mb * 2 ** 20))


if __name__ == "__main__":
    main()

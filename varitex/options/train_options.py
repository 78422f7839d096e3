"""Training options: losses, optimizers, discriminator and logging (authors' names and defaults), and the
switches for speed and scale (defaults keep the authors' numerics)."""
import os

from varitex.options.base_options import BaseOptions, _non_negative_float, _positive_int

DEFAULT_NUM_WORKERS = min(8, os.cpu_count() or 1)


class TrainOptions(BaseOptions):
    def initialize(self, parser):
        super().initialize(parser)
        parser.add_argument("--lr", default=1e-3, type=float, help="generator learning rate (Adam)")
        parser.add_argument("--lr_discriminator", default=1e-3, type=float,
                            help="discriminator learning rate (Adam)")
        parser.add_argument("--lambda_l2", default=1.0, type=_non_negative_float)
        parser.add_argument("--lambda_kl", default=0.1, type=_non_negative_float)
        parser.add_argument("--lambda_vgg", default=2.0, type=_non_negative_float,
                            help="VGG-19 perceptual loss; needs ImageNet weights (see --path_vgg)")
        parser.add_argument("--path_vgg", default=None,
                            help="torchvision VGG-19 IMAGENET1K_V1 state_dict (vgg19-dcbb9e9d.pth) for the "
                                 "perceptual loss; default: torchvision's cache ($TORCH_HOME/hub/checkpoints). "
                                 "Never downloaded")
        parser.add_argument("--no_lpips", action="store_true",
                            help="do not compute val/lpips (it needs torchvision's AlexNet ImageNet weights, "
                                 "alexnet-owt-7be5be79.pth, in torchvision's cache)")
        parser.add_argument("--lambda_segmentation", default=1.0, type=_non_negative_float)
        parser.add_argument("--lambda_rgb_texture", default=0.0, type=_non_negative_float)
        parser.add_argument("--gan_mode", default="ls", choices=["ls", "original", "hinge", "w"])
        parser.add_argument("--lambda_gan", default=1.0, type=_non_negative_float,
                            help="0 disables the discriminator")
        parser.add_argument("--lambda_discriminator_features", default=1.0, type=_non_negative_float)
        parser.add_argument("--nc_discriminator", default=64, type=_positive_int)
        parser.add_argument("--num_discriminator", default=2, type=_positive_int)
        parser.add_argument("--n_layers_discriminator", default=4, type=_positive_int)
        parser.add_argument("--norm_discriminator", default="spectralinstance")
        parser.add_argument("--num_workers", default=DEFAULT_NUM_WORKERS, type=int,
                            help="data-loading worker processes per device process, with pinned memory (CUDA) "
                                 "and persistent workers; default min(8, CPU count). The authors used 1, "
                                 "which bounds their training to about 14 images/s")
        parser.add_argument("--display_freq", default=1000, type=_positive_int, help="image logging every N steps")
        parser.add_argument("--max_epochs", default=44, type=_positive_int)
        parser.add_argument("--overwrite", action="store_true",
                            help="delete the run already in path_out/experiment_name (opt.json, checkpoints, logs) "
                                 "and train again; without it such a folder is refused unless --checkpoint resumes "
                                 "that run")
        parser.add_argument("--keep_checkpoints", default=-1, type=int,
                            help="newest epoch checkpoints to keep (-1: all); last.ckpt links to the newest")
        parser.add_argument("--precise_bn", default=0, type=int,
                            help="before each validation, recompute the generator's BatchNorm statistics as the "
                                 "average over this many training images (in batches of at least 8) with the "
                                 "current weights (0: off, as the authors). Short runs such as --demo need it: "
                                 "their running statistics lag the fast-changing weights and eval-mode outputs "
                                 "diverge")
        # Speed and scale (docs/performance.md). Defaults reproduce the authors' numerics.
        parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed", "16-mixed"],
                            help="Lightning precision; 32 reproduces the authors' training. bf16-mixed: autocast "
                                 "to bfloat16 (GPUs from Ampere on, and CPUs); 16-mixed: float16 with a gradient "
                                 "scaler (one host-device sync per optimizer step)")
        parser.add_argument("--devices", default="auto",
                            help="devices per node for Lightning (e.g. 1, 4, '0,1', or auto); --batch_size is per "
                                 "device: the global batch is batch_size x devices x num_nodes")
        parser.add_argument("--num_nodes", default=1, type=_positive_int, help="machines for multi-node training")
        parser.add_argument("--strategy", default="auto",
                            help="Lightning strategy, e.g. ddp (also ddp_spawn, ddp_fork, ddp_notebook). DDP "
                                 "variants run with unused-parameter detection, which the alternating G/D steps "
                                 "need; 'auto' with several devices is DDP")
        parser.add_argument("--compile", action="store_true",
                            help="torch.compile the generator, the discriminator and the VGG-19 loss network "
                                 "(the first steps, and the first validation, are slow while compiling)")
        parser.add_argument("--compile_mode", default="default",
                            choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
                            help="torch.compile mode with --compile; reduce-overhead uses CUDA graphs")
        parser.add_argument("--channels_last", action="store_true",
                            help="keep convolution weights (and so activations) in channels-last memory format; "
                                 "faster convolutions on tensor-core GPUs, results equal up to float rounding")
        parser.add_argument("--reuse_generator_output", action="store_true",
                            help="the discriminator step uses the generator step's output (detached) instead of "
                                 "recomputing the generator forward, as the authors do: one generator forward per "
                                 "batch instead of two. Changes numerics: the D step then sees the image from "
                                 "before the generator update and the same latent sample, and the generator's "
                                 "BatchNorm statistics are updated once per batch instead of twice")
        parser.add_argument("--adam_implementation", default="auto", choices=["auto", "fused", "foreach", "loop"],
                            help="torch.optim.Adam implementation: fused (one kernel for all parameters), foreach, "
                                 "or loop (per parameter); they differ by float rounding only. auto: fused on "
                                 "GPUs, foreach on the CPU (where fused is slower)")
        return parser

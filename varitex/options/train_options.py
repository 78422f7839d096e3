"""Training options: losses, optimizers, discriminator and logging (authors' names and defaults)."""
from varitex.options.base_options import BaseOptions, _non_negative_float, _positive_int


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
        parser.add_argument("--num_workers", default=1, type=int, help="data-loading workers")
        parser.add_argument("--display_freq", default=1000, type=_positive_int, help="image logging every N steps")
        parser.add_argument("--max_epochs", default=44, type=_positive_int)
        parser.add_argument("--keep_checkpoints", default=-1, type=int,
                            help="epoch checkpoints to keep besides last.ckpt (-1: all)")
        parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed", "16-mixed"],
                            help="Lightning precision; 32 reproduces the authors' training")
        parser.add_argument("--devices", default="auto",
                            help="devices per node for Lightning (e.g. 1, 4, or auto); batch_size is per device")
        parser.add_argument("--num_nodes", default=1, type=_positive_int, help="machines for multi-node training")
        parser.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp")
        return parser

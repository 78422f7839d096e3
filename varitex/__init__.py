"""VariTex: Variational Neural Face Textures (Bühler et al., ICCV 2021) on PyTorch and Lightning 2.x.

Pipeline, in folder order:
    varitex.data      -> datasets (the authors' NPYDataset) and the embedded synthetic demo world
    varitex.geometry  -> Basel Face Model, posing, camera and the pure-PyTorch UV rasterizer
    varitex.modules   -> networks, losses, metrics and the LightningModule (PipelineModule)
    varitex.options   -> the authors' command-line options
    varitex.train / varitex.inference / varitex.demo -> entry points
"""

__version__ = "0.1.0"

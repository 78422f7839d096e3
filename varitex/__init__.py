"""VariTex: Variational Neural Face Textures (Bühler et al., ICCV 2021) on PyTorch and Lightning 2.x.

Pipeline, in folder order (docs/architecture.md):
    varitex.data        -> the authors' dataset (NPYDataset), augmentation, image operations, batch keys
    varitex.geometry    -> Basel Face Model, posing, camera and the pure-PyTorch UV rasterizer
    varitex.modules     -> networks, losses, metrics and the LightningModule (PipelineModule)
    varitex.generation  -> G(z, sp, ep, theta), batched
    varitex.checkpoints -> reading checkpoints (ours and the authors') and rebuilding the pipeline
    varitex.options     -> the authors' options and the one function that turns them into a run's settings
    varitex.demo_world  -> the embedded synthetic face model and data set
    varitex.train / varitex.inference / varitex.demo -> entry points
"""

__version__ = "0.1.0"
SEED = 1234  # the authors' global seed (training, inference and the notebook)

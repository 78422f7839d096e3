"""Networks, losses, metrics and the LightningModule of VariTex (docs/architecture.md).

Where each batch key is made (DataItemKey members):
    encoder.Encoder                          -> IMAGE_ENCODED
    generator.Generator (stage methods)      -> STYLE_LATENT_MU/STD, STYLE_LATENT, LATENT_INTERIOR/EXTERIOR,
                                                FACE_FEATUREIMAGE, MASK_UV, FULL_FEATUREIMAGE
    decoder.Decoder                          -> TEXTURE_PERSON
    decoder.AdditiveDecoder                  -> ADDITIVE_FEATUREIMAGE
    feature2image.Feature2ImageRenderer      -> IMAGE_OUT, SEGMENTATION_PREDICTED
Training: pipeline.PipelineModule; networks from the authors' options: configs.py; loading checkpoints:
varitex.checkpoints.load_pipeline.
"""

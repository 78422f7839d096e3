"""Networks, losses, metrics and the LightningModule of VariTex (DESIGN.md sections 2 and 3).

Where each batch key is made (DataItemKey members):
    encoder.Encoder                          -> IMAGE_ENCODED
    generator.Generator (stage methods)      -> STYLE_LATENT_MU/STD, STYLE_LATENT, LATENT_INTERIOR/EXTERIOR,
                                                FACE_FEATUREIMAGE, MASK_UV, FULL_FEATUREIMAGE
    decoder.Decoder                          -> TEXTURE_PERSON
    decoder.AdditiveDecoder                  -> ADDITIVE_FEATUREIMAGE
    feature2image.Feature2ImageRenderer      -> IMAGE_OUT, SEGMENTATION_PREDICTED
Training: pipeline.PipelineModule; loading checkpoints (ours and the authors'): checkpoint.load_pipeline.
"""

"""Keys of the batch dictionary that flows through the pipeline (docs/architecture.md: which stage adds which).

Each stage adds entries under these keys; grep for a member name to find where a tensor is made.
"""
from enum import Enum


class DataItemKey(Enum):
    IMAGE_IN = "image_in"                            # (B,3,H,W) ImageNet-normalized, augmented target image
    IMAGE_ENCODED = "image_encoded"                  # (B,512) encoder output
    STYLE_LATENT = "style_latent"                    # (B,latent_dim) sampled z
    TEXTURE_PRIOR = "texture_prior"
    TEXTURE_PERSON = "texture_person"                # (B,texture_nc,texture_dim,texture_dim) neural texture
    FACE_FEATUREIMAGE = "face_featureimage"          # (B,texture_nc,H,W) texture sampled with UV_RENDERED
    ADDITIVE_FEATUREIMAGE = "additive_featureimage"  # (B,texture_nc,H,W) additive decoder output
    IMAGE_OUT = "image_out"                          # (B,3,H,W) rendered image, ImageNet-normalized space
    UV_RENDERED = "uv_rendered"                      # (B,H,W,2) in [-1,1], background exactly -1
    MASK_UV = "mask_uv"                              # (B,1,H,W) face pixels (uv_mask): dataset float32, generator bool
    STYLE_LATENT_MU = "style_latent_mu"              # (B,latent_dim)
    STYLE_LATENT_STD = "style_latent_std"            # (B,latent_dim)
    FILENAME = "filename"                            # list of image stems
    COEFF_SHAPE = "coeff_shape"                      # (B,199) BFM shape coefficients
    COEFF_EXPRESSION = "coeff_expression"            # (B,100) BFM expression coefficients
    SEGMENTATION_MASK = "segmentation_mask"          # (B,1,H,W) float target in [0,1]
    SEGMENTATION_PREDICTED = "segmentation_predicted"  # (B,1,H,W) sigmoid output in [0,1]
    FULL_FEATUREIMAGE = "full_featureimage"          # (B,2*texture_nc,H,W) cat(face, additive)
    MASK_FULL = "mask_full"                          # (B,1,H,W) hole-filled union of uv and segmentation masks
    IMAGE_IN_ENCODE = "image_in_encode"              # (B,3,H,W) un-augmented image fed to the encoder
    LATENT_INTERIOR = "latent_interior"              # (B,latent_dim/2) z_face
    LATENT_EXTERIOR = "latent_exterior"              # (B,latent_dim/2) z_additive
    R = "R"                                          # (B,3,3) rotation
    T = "t"                                          # (B,3) translation
    SCALE = "s"                                      # (B,1) scale


DIK = DataItemKey

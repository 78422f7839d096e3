"""Own photos -> the preprocessed dataset layout: detection, alignment, fitting, segmentation, writer."""

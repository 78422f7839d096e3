"""Datasets: the authors' preprocessed FFHQ layout (NPYDataset) and the embedded synthetic demo world."""

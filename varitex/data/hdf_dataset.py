"""The module path the authors' README documents for NPYDataset (their code calls it npy_dataset)."""
from varitex.data.npy_dataset import NPYDataset

__all__ = ["NPYDataset"]

"""Dataset batches (dicts of DataItemKey -> tensor or list of file names) on their way to a model."""
import torch


def batch_to_device(batch: dict, device) -> dict:
    """A new batch with its tensors moved to ``device``; file names and other values are passed through."""
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}

"""ImageNet weights of torchvision networks, found offline and never downloaded.

The VGG-19 perceptual loss and the LPIPS metric use torchvision's ImageNet weights. This project must build
and load checkpoints without network access, so weights are only looked up: an explicit file, or the file
torchvision itself would have cached (``$TORCH_HOME/hub/checkpoints/<name>.pth``).
"""
import os
from pathlib import Path

import torch


class MissingPretrainedWeightsError(RuntimeError):
    """Pretrained weights that a run needs (VGG-19 for the loss, AlexNet for LPIPS) are not available."""


def torchvision_cache_file(weights):
    """Where torchvision caches ``weights`` (a WeightsEnum member, e.g. ``VGG19_Weights.IMAGENET1K_V1``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def locate_weights(weights, explicit_path=None):
    """Find the weight file of ``weights`` without downloading.

    Args:
        weights: a torchvision WeightsEnum member.
        explicit_path: a file given by the user; when set, it is the only candidate.
    Returns:
        (path, None) when found, else (None, reason) with a sentence naming the places looked at.
    """
    if explicit_path:
        path = Path(explicit_path)
        return (path, None) if path.is_file() else (None, f"the file {path} does not exist")
    path = torchvision_cache_file(weights)
    return (path, None) if path.is_file() else (None, f"torchvision's cache has no {path}")


def copy_torchvision_features(slices, state_dict, source):
    """Copy ``features.<i>.weight/bias`` of a torchvision state_dict into modules named ``<i>`` inside ``slices``.

    The feature slices of the VGG loss and of lpips keep torchvision's layer indices as module names, which
    is what makes this mapping (and the authors' ``loss_vgg.vgg.slice2.5.weight`` keys) work.
    """
    for block in slices:
        for index, layer in block.named_children():
            for name, tensor in layer.named_parameters(recurse=False):
                key = f"features.{index}.{name}"
                if key not in state_dict:
                    raise ValueError(f"{source} has no '{key}': expected torchvision's ImageNet state_dict")
                if state_dict[key].shape != tensor.shape:
                    raise ValueError(f"{source}: '{key}' has shape {tuple(state_dict[key].shape)}, "
                                     f"expected {tuple(tensor.shape)}")
                with torch.no_grad():
                    tensor.copy_(state_dict[key])


def load_torchvision_features(slices, weights, explicit_path=None):
    """Locate ``weights`` and copy them into ``slices``; returns (source path or None, reason when missing)."""
    path, reason = locate_weights(weights, explicit_path)
    if path is None:
        return None, reason
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    copy_torchvision_features(slices, state_dict, source=str(path))
    return str(path), None

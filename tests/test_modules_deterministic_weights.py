"""The deterministic weights of ../shared/reference/README.md, shared by the parity tests.

Every state_dict entry is a pure function of its key and shape (seeded with the CRC32 of the key); the
spectral-norm u/v vectors are taken from the reference npz (``SN::<key>``) to be bit-exact. The checksums of
state_dict_spec.json are checked in test_modules_reference_parity.py, on the weights its forward uses.
"""
import json
import math
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import shared_path


def det_value(key, shape, is_float=True):
    """The reference formula for one state_dict entry (README "Deterministic weights", rules 1-7)."""
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    if not is_float:
        return torch.zeros(shape, dtype=torch.int64)
    if key.endswith("running_mean"):
        return torch.randn(shape, generator=generator) * 0.1
    if key.endswith("running_var"):
        return torch.rand(shape, generator=generator) + 0.5
    if len(shape) >= 2:
        return torch.randn(shape, generator=generator) * (1.0 / math.sqrt(math.prod(shape[1:])))
    if len(shape) == 1 and key.endswith("weight"):
        return torch.randn(shape, generator=generator) * 0.1 + 1.0
    return torch.randn(shape, generator=generator) * 0.1


def det_spectral_uv(prefix, weight_orig, n_iter=50):
    """Rule 8: u, v from 50 power iterations, started from a vector seeded with CRC32(prefix + 'weight_v')."""
    matrix = weight_orig.reshape(weight_orig.shape[0], -1)
    generator = torch.Generator().manual_seed(zlib.crc32((prefix + "weight_v").encode("utf-8")))
    v = F.normalize(torch.randn(matrix.shape[1], generator=generator), dim=0, eps=1e-12)
    for _ in range(n_iter):
        u = F.normalize(torch.mv(matrix, v), dim=0, eps=1e-12)
        v = F.normalize(torch.mv(matrix.t(), u), dim=0, eps=1e-12)
    return u, v


def deterministic_state_dict(module, prefix="", spectral_uv=None):
    """The reference values for every entry of ``module.state_dict()``.

    Args:
        module: a PipelineModule (prefix "") or one of its children (prefix e.g. "generator."): the seeds
            are the CRC32 of the full PipelineModule key.
        spectral_uv: optional mapping full key -> array for ``*weight_u`` / ``*weight_v`` (the npz's SN::
            entries); vectors absent from it are computed with det_spectral_uv.
    Returns:
        dict with the module's own keys.
    """
    module_state = module.state_dict()
    state = {key: det_value(prefix + key, tuple(tensor.shape), tensor.is_floating_point())
             for key, tensor in module_state.items() if not key.endswith(("weight_u", "weight_v"))}
    for key in module_state:
        if key.endswith("weight_u"):
            stem = key[:-len("weight_u")]
            if spectral_uv is not None and prefix + key in spectral_uv:
                state[key] = torch.as_tensor(np.asarray(spectral_uv[prefix + key]))
                state[stem + "weight_v"] = torch.as_tensor(np.asarray(spectral_uv[prefix + stem + "weight_v"]))
            else:
                state[key], state[stem + "weight_v"] = det_spectral_uv(prefix + stem, state[stem + "weight_orig"])
    return state


def spectral_vectors(npz):
    """The npz's exact spectral-norm vectors: full key -> array."""
    return {name[len("SN::"):]: npz[name] for name in npz.files if name.startswith("SN::")}


def load_deterministic_weights(module, prefix="", npz=None):
    """Load the reference weights into ``module`` (strict); SN:: vectors from ``npz`` when given."""
    module.load_state_dict(deterministic_state_dict(module, prefix, spectral_vectors(npz) if npz is not None else None))
    return module


@pytest.fixture(scope="module")
def spec():
    return json.loads(shared_path("reference", "state_dict_spec.json").read_text())


def test_power_iteration_reproduces_the_stored_spectral_vectors(spec):
    npz = np.load(shared_path("reference", "forward_reference.npz"))
    stored = spectral_vectors(npz)
    shapes = {entry["key"]: tuple(entry["shape"]) for entry in spec["entries"]}
    stems = [key[:-len("weight_u")] for key in stored if key.endswith("weight_u")]
    assert len(stems) == 6
    for stem in stems:
        u, v = det_spectral_uv(stem, det_value(stem + "weight_orig", shapes[stem + "weight_orig"]))
        np.testing.assert_allclose(u.numpy(), stored[stem + "weight_u"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(v.numpy(), stored[stem + "weight_v"], rtol=0, atol=1e-5)

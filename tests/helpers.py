"""Helpers of the tests of the training machinery (tests/test_perf_*.py, tests/ddp_worker.py).

Those tests check how training runs (precision, DDP, compile, step schedule), not the architecture, so they
narrow the two decoders, whose widths are fixed constants rather than options: with the authors' widths one
CPU training step takes tens of seconds, and a bf16 one minutes (CPUs without bf16 convolution kernels).
They also run torch on one thread: on a loaded 2-core machine two OpenMP threads make small ops 15x slower.
"""
import contextlib

import pytest
import torch

from varitex.modules import decoder

NARROW_DECODERS = dict(TEXTURE_STAGE_PLANES=(32, 32, 16, 16, 8, 8), ADDITIVE_STAGE_PLANES=(32, 32, 16, 16, 8, 8),
                       LATENT_CHANNELS=32)


@contextlib.contextmanager
def narrow_decoders():
    """Inside the block, new models get decoders with 8..32 channels instead of 64..512."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in NARROW_DECODERS.items():
            patch.setattr(decoder, name, value)
        yield


@contextlib.contextmanager
def one_thread():
    """torch on one CPU thread inside the block."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)

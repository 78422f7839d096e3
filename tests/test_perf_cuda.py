"""On a CUDA GPU (skipped without one; benchmarks/gpu_check.sh runs them): the UV renderer, mixed-precision
training steps, compiled and batched inference agree with the CPU and with themselves."""
import math
import warnings

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from varitex import performance
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.generation import generate, uv_factory_from_options
from varitex.geometry import DEFAULT_S, DEFAULT_T, euler_to_rotation
from varitex.modules.configs import generator_config
from varitex.modules.generator import Generator
from varitex.modules.pipeline import PipelineModule
from varitex.options import TrainOptions

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SIZE = 64
SMALL = ["--image_h", str(SIZE), "--image_w", str(SIZE), "--texture_dim", "128", "--batch_size", "2", "--no_lpips"]
POSES = torch.tensor([[0.0, 0.0, 0.0], [0.0, 30.0, 0.0], [-20.0, -40.0, 10.0], [15.0, 45.0, 0.0]])


@pytest.fixture
def exact_fp32():
    """No TF32 in CUDA matmuls and convolutions while comparing with the CPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def world_options(root, device, size=128):
    return TrainOptions().parse([
        "--path_bfm", str(root / "basel_facemodel" / "model2017-1_face12_nomouth.h5"),
        "--path_uv", str(root / "basel_facemodel" / "face12.json"),
        "--image_h", str(size), "--image_w", str(size), "--device", device])


def random_batch(n=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {DIK.IMAGE_IN_ENCODE: torch.randn(n, 3, SIZE, SIZE, generator=generator),
            DIK.IMAGE_IN: torch.randn(n, 3, SIZE, SIZE, generator=generator),
            DIK.UV_RENDERED: torch.rand(n, SIZE, SIZE, 2, generator=generator) * 2 - 1,
            DIK.SEGMENTATION_MASK: (torch.rand(n, 1, SIZE, SIZE, generator=generator) > 0.5).float()}


def assert_same_uv(expected, actual, tolerance=1e-4, max_fraction=1e-3):
    """Same pixels covered and the same UVs, up to a few silhouette / depth-tie pixels where float rounding
    (a different device or batch size) lets another face win."""
    foreground = expected[..., 0] > -1
    assert foreground.float().mean() > 0.05  # the faces are in the picture
    assert (foreground != (actual[..., 0] > -1)).float().mean() <= max_fraction
    differs = ((expected - actual).abs().amax(-1) > tolerance) & foreground
    assert differs.float().sum() / foreground.float().sum() <= max_fraction


def test_uv_render_on_cuda_matches_the_cpu(tiny_world):
    sp_ep = None
    renders = {}
    for device in ("cpu", "cuda"):
        factory = uv_factory_from_options(world_options(tiny_world, device))
        sp_ep = sp_ep or (factory.bfm.sample_shape(len(POSES), generator=torch.Generator().manual_seed(0)),
                          factory.bfm.sample_expression(len(POSES), generator=torch.Generator().manual_seed(1)))
        t, s = torch.tensor(DEFAULT_T).expand(len(POSES), 3), torch.full((len(POSES), 1), DEFAULT_S)
        renders[device] = factory.getUV(euler_to_rotation(POSES), t, s, *sp_ep).cpu()
    assert_same_uv(renders["cpu"], renders["cuda"])


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_training_steps_on_cuda_give_finite_losses(precision):
    torch.manual_seed(0)
    opt = TrainOptions().parse(SMALL + ["--precision", precision, "--channels_last"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = PipelineModule(opt, random_perceptual_weights=True)  # VGG-19 under autocast too
        performance.prepare_networks(model, opt)
        before = model.generator.fc_mu.weight.detach().clone()
        trainer = pl.Trainer(accelerator="gpu", devices=1, precision=precision, max_epochs=1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(model, DataLoader([random_batch(seed=i) for i in range(3)], batch_size=None))
    losses = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses.values()), losses
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not torch.equal(before, model.generator.fc_mu.weight.detach())
    assert trainer.optimizers[0].defaults["fused"] is True  # --adam_implementation auto on a GPU


def test_compiled_generator_on_cuda_matches_eager(exact_fp32):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = PipelineModule(TrainOptions().parse(SMALL)).cuda().eval()
    batch = {key: value.cuda() for key, value in random_batch().items()}
    with torch.no_grad():
        expected = model(batch, std_multiplier=0)[DIK.IMAGE_OUT]
        performance.compile_networks(model)
        actual = model(batch, std_multiplier=0)[DIK.IMAGE_OUT]
    torch.testing.assert_close(actual, expected, rtol=1e-3, atol=1e-3)


def test_batched_generator_on_cuda_matches_single_items_and_the_cpu(exact_fp32):
    torch.manual_seed(0)
    opt = TrainOptions().parse(SMALL)
    generator = Generator(generator_config(opt)).eval()
    z = torch.randn(8, opt.latent_dim)
    uv = random_batch(8)[DIK.UV_RENDERED]
    with torch.no_grad():
        cpu = generator.forward_latent2image({DIK.STYLE_LATENT: z, DIK.UV_RENDERED: uv})[DIK.IMAGE_OUT]
        generator.cuda()
        z, uv = z.cuda(), uv.cuda()
        batched = generator.forward_latent2image({DIK.STYLE_LATENT: z, DIK.UV_RENDERED: uv})[DIK.IMAGE_OUT]
        single = torch.cat([generator.forward_latent2image({DIK.STYLE_LATENT: z[i:i + 1], DIK.UV_RENDERED: uv[i:i + 1]})
                            [DIK.IMAGE_OUT] for i in range(8)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(batched.cpu(), cpu, rtol=1e-3, atol=1e-3)


def test_batched_posing_rendering_and_decoding_on_cuda_match_single_items(tiny_world, exact_fp32):
    """demo.generate (used by inference and the notebook): posing, UV rendering and the generator in one batch."""
    torch.manual_seed(0)
    pipeline = PipelineModule(TrainOptions().parse(SMALL)).cuda().eval()
    factory = uv_factory_from_options(world_options(tiny_world, "cuda", size=SIZE))
    z = torch.randn(1, pipeline.opt.latent_dim)
    sp = factory.bfm.sample_shape(1, generator=torch.Generator().manual_seed(0))
    ep = factory.bfm.sample_expression(1, generator=torch.Generator().manual_seed(1))
    batched = generate(pipeline, factory, z, sp, ep, POSES)
    assert batched[DIK.IMAGE_OUT].shape == (len(POSES), 3, SIZE, SIZE) and batched[DIK.IMAGE_OUT].is_cuda
    singles = [generate(pipeline, factory, z, sp, ep, theta[None]) for theta in POSES]
    single_uv = torch.cat([single[DIK.UV_RENDERED] for single in singles])
    assert_same_uv(single_uv.cpu(), batched[DIK.UV_RENDERED].cpu())
    single_images = torch.cat([single[DIK.IMAGE_OUT] for single in singles])
    assert (single_images - batched[DIK.IMAGE_OUT]).abs().mean() <= 1e-3

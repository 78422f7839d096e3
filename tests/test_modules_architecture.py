"""Architecture: the authors' state_dict keys and shapes, options that change shapes, and the small rules of
the generator stages (latent sampling, UV sampling) and the discriminator."""
import argparse
import json

import pytest
import torch

from helpers import shared_path
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules.discriminator import NLayerDiscriminator
from varitex.modules.configs import generator_config
from varitex.modules.generator import Generator
from varitex.modules.pipeline import PipelineModule
from varitex.options import EvalOptions, TrainOptions

SMALL = ["--texture_dim", "128", "--image_h", "64", "--image_w", "64", "--nc_feature2image", "8",
         "--feature2image_num_layers", "3", "--lambda_vgg", "0"]


@pytest.fixture(scope="module")
def spec():
    return json.loads(shared_path("reference", "state_dict_spec.json").read_text())


@pytest.fixture(scope="module")
def default_pipeline():
    return PipelineModule(TrainOptions().parse([]))


def _entries(state_dict):
    return {key: (tuple(value.shape), str(value.dtype).replace("torch.", "")) for key, value in state_dict.items()}


def test_default_state_dict_has_exactly_the_authors_keys_shapes_and_dtypes(default_pipeline, spec):
    expected = {entry["key"]: (tuple(entry["shape"]), entry["dtype"]) for entry in spec["entries"]
                if not entry["key"].startswith("metric_lpips.")}
    assert len(expected) == 678
    assert _entries(default_pipeline.state_dict()) == expected


def test_without_vgg_loss_the_state_dict_has_the_652_network_entries(spec):
    pipeline = PipelineModule(TrainOptions().parse(["--lambda_vgg", "0"]))
    expected = {entry["key"]: (tuple(entry["shape"]), entry["dtype"]) for entry in spec["entries"]
                if not entry["key"].startswith(("metric_lpips.", "loss_vgg."))}
    assert len(expected) == 652
    assert _entries(pipeline.state_dict()) == expected


def test_parameter_counts_per_submodule_equal_the_authors(default_pipeline, spec):
    for name, counts in spec["param_counts"].items():
        if counts["num_params"] == 0 or name == "metric_lpips":
            continue
        module = default_pipeline.get_submodule(name)
        assert sum(p.numel() for p in module.parameters()) == counts["num_params"], name
        assert sum(b.numel() for b in module.buffers()) == counts["num_buffer_elements"], name
    assert sum(p.numel() for p in default_pipeline.generator.parameters()) == 74_098_436


def test_lpips_metric_exists_outside_the_state_dict(default_pipeline):
    assert default_pipeline.metric_lpips is not None
    assert "metric_lpips" not in dict(default_pipeline.named_children())
    assert not any(key.startswith("metric_lpips.") for key in default_pipeline.state_dict())
    assert len(default_pipeline.metric_lpips.state_dict()) == 22  # the authors' metric_lpips.* entries


def test_vgg_weights_are_frozen_and_not_optimized(default_pipeline):
    assert not any(p.requires_grad for p in default_pipeline.loss_vgg.parameters())
    optimized = {id(p) for optimizer in default_pipeline.configure_optimizers() for group in optimizer.param_groups
                 for p in group["params"]}
    assert optimized == {id(p) for p in default_pipeline.generator.parameters()} | \
        {id(p) for p in default_pipeline.discriminator.parameters()}


def test_non_default_options_change_every_dependent_shape_and_train():
    opt = TrainOptions().parse(["--texture_dim", "128", "--image_h", "64", "--image_w", "64", "--latent_dim", "64",
                                "--texture_nc", "8", "--nc_feature2image", "8", "--feature2image_num_layers", "3",
                                "--num_discriminator", "3", "--n_layers_discriminator", "3",
                                "--nc_discriminator", "16", "--lambda_vgg", "0", "--lambda_rgb_texture", "1"])
    pipeline = PipelineModule(opt)
    shapes = {key: tuple(value.shape) for key, value in pipeline.state_dict().items()}
    assert shapes["generator.fc_mu.weight"] == (64, 512)
    assert shapes["generator.decoder.decoder.linear.weight"] == (8192, 32)
    assert shapes["generator.decoder_exterior.decoder.linear.weight"] == (512, 32)
    assert shapes["generator.decoder.decoder.conv1.weight"] == (8, 64, 3, 3)
    assert shapes["generator.decoder_exterior.decoder.initial.0.conv1.weight"] == (512, 520, 3, 3)
    assert shapes["generator.decoder_exterior.decoder.layer4.1.conv1.weight"] == (64, 72, 3, 3)
    # texture_dim 128: the last stage keeps the resolution, so it has no shortcut and a plain conv2.
    assert "generator.decoder.decoder.layer4.0.conv2.weight" in shapes
    assert not any(key.startswith("generator.decoder.decoder.layer4.0.upsample") for key in shapes)
    assert shapes["generator.texture2image.unet.layers.0.net.0.weight"] == (8, 16, 3, 3)
    assert shapes["generator.texture2image.unet.layers.2.net.1.net.3.weight"] == (32, 32, 3, 3)
    assert shapes["generator.texture2image.unet.layers.5.weight"] == (4, 8, 1, 1)
    assert not any(key.startswith("generator.texture2image.unet.layers.6") for key in shapes)
    assert shapes["discriminator.discriminator_2.model2.0.0.weight_orig"] == (64, 32, 4, 4)
    assert shapes["discriminator.discriminator_2.model3.0.weight"] == (1, 64, 4, 4)
    assert not any(".model4." in key for key in shapes)

    torch.manual_seed(0)
    batch = {DIK.IMAGE_IN_ENCODE: torch.randn(2, 3, 64, 64), DIK.IMAGE_IN: torch.randn(2, 3, 64, 64),
             DIK.UV_RENDERED: torch.rand(2, 64, 64, 2) * 2 - 1,
             DIK.SEGMENTATION_MASK: (torch.rand(2, 1, 64, 64) > 0.5).float()}
    out = pipeline(batch)
    assert out[DIK.STYLE_LATENT].shape == (2, 64)
    assert out[DIK.LATENT_INTERIOR].shape == out[DIK.LATENT_EXTERIOR].shape == (2, 32)
    assert out[DIK.TEXTURE_PERSON].shape == (2, 8, 128, 128)
    # The additive decoder outputs texture_dim x texture_dim; it is resized to images of another size.
    assert out[DIK.ADDITIVE_FEATUREIMAGE].shape == (2, 8, 64, 64)
    assert out[DIK.FULL_FEATUREIMAGE].shape == (2, 16, 64, 64)
    assert out[DIK.IMAGE_OUT].shape == (2, 3, 64, 64)
    assert out[DIK.SEGMENTATION_PREDICTED].shape == (2, 1, 64, 64)
    predictions = pipeline.discriminator(out[DIK.IMAGE_OUT])
    assert [p[-1].shape[-1] for p in predictions] == [19, 11, 7]
    assert [len(p) for p in predictions] == [4, 4, 4]
    terms = pipeline.generator_loss_terms(out)
    assert all(torch.isfinite(value) for value in terms.values())
    assert terms["rgb_texture"] > 0
    terms["loss"].backward()
    for name, parameter in pipeline.generator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert all(p.grad is not None for p in pipeline.discriminator.parameters())


@pytest.fixture(scope="module")
def small_generator():
    return Generator(generator_config(TrainOptions().parse(SMALL + ["--latent_dim", "16", "--uv_mask_value", "-7"])))


def test_std_multiplier_zero_gives_mu_and_others_scale_the_noise(small_generator):
    torch.manual_seed(0)
    mu, std = torch.randn(64, 16), torch.rand(64, 16) + 0.5
    batch = {DIK.STYLE_LATENT_MU: mu, DIK.STYLE_LATENT_STD: std}
    assert torch.equal(small_generator.forward_sample_style(batch, std_multiplier=0)[DIK.STYLE_LATENT], mu)
    for multiplier in (1.0, 3.0):
        noise = (small_generator.forward_sample_style(batch, std_multiplier=multiplier)[DIK.STYLE_LATENT] - mu) / std
        assert noise.std().item() == pytest.approx(multiplier, rel=0.1)
        assert noise.mean().item() == pytest.approx(0.0, abs=0.1 * multiplier)


def test_texture_sampling_masks_only_pixels_where_u_and_v_are_minus_one(small_generator):
    texture = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    uv = torch.tensor([[[[-1.0, -1.0], [-1.0, 0.25], [-0.75, -0.75], [5.0, 5.0]]]])  # (1, 1, 4, 2)
    out = small_generator.sample_texture({DIK.TEXTURE_PERSON: texture, DIK.UV_RENDERED: uv})
    assert out[DIK.MASK_UV].tolist() == [[[[False, True, True, True]]]]
    features = out[DIK.FACE_FEATUREIMAGE]
    assert features.shape == (1, 2, 1, 4)
    assert features[0, :, 0, 0].tolist() == [-7.0, -7.0]                      # uv_mask_value
    assert features[0, :, 0, 2].tolist() == [0.0, 16.0]                       # texel (0, 0) centre
    assert features[0, :, 0, 3].tolist() == [15.0, 31.0]                      # border padding


@pytest.mark.parametrize("norm, keys", [
    ("spectralinstance", {"model1.0.0.weight_orig", "model1.0.0.weight_u", "model1.0.0.weight_v"}),
    ("spectral", {"model1.0.weight_orig", "model1.0.weight_u", "model1.0.weight_v", "model1.0.bias"}),
    ("spectralbatch", {"model1.0.0.weight_orig", "model1.0.0.weight_u", "model1.0.0.weight_v",
                       "model1.0.1.weight", "model1.0.1.bias", "model1.0.1.running_mean",
                       "model1.0.1.running_var", "model1.0.1.num_batches_tracked"}),
    ("instance", {"model1.0.0.weight"}),
    ("none", {"model1.0.weight", "model1.0.bias"})])
def test_discriminator_normalization_variants_have_the_expected_keys(norm, keys):
    discriminator = NLayerDiscriminator(nc=8, n_layers=2, norm=norm)
    assert {key for key in discriminator.state_dict() if key.startswith("model1.")} == keys
    assert discriminator(torch.randn(2, 3, 32, 32))[-1].shape == (2, 1, 19, 19)


def test_spectral_norm_power_iterates_in_training_and_uses_stored_vectors_in_eval():
    discriminator = NLayerDiscriminator(nc=8, n_layers=2)
    conv = discriminator.model1[0][0]
    u_before = conv.weight_u.clone()
    discriminator.eval()
    discriminator(torch.randn(1, 3, 16, 16))
    assert torch.equal(conv.weight_u, u_before)
    sigma = torch.dot(conv.weight_u, conv.weight_orig.flatten(1) @ conv.weight_v)
    torch.testing.assert_close(conv.weight, conv.weight_orig / sigma)
    discriminator.train()
    discriminator(torch.randn(1, 3, 16, 16))
    assert not torch.equal(conv.weight_u, u_before)


@pytest.mark.parametrize("name, value, message", [
    ("texture_dim", 100, "--texture_dim must be one of (128, 256), got 100"),
    ("gan_mode", "wgan", "--gan_mode must be one of"),
    ("lambda_kl", -0.1, "--lambda_kl must be a finite number >= 0, got -0.1"),
    ("lambda_gan", float("nan"), "--lambda_gan must be a finite number >= 0"),
    ("latent_dim", 33, "--latent_dim must be even"),
    ("nc_feature2image", 0, "--nc_feature2image must be a positive integer, got 0"),
    ("image_h", 64.5, "--image_h must be a positive integer"),
    ("norm_discriminator", "spectralgroup", "--norm_discriminator must be"),
    ("lr", 0.0, "--lr must be a finite number > 0"),
    ("image_w", 8, "--image_h/--image_w must be >= 16 for --feature2image_num_layers 5"),
    ("uv_mask_value", "zero", "--uv_mask_value must be a finite number")])
def test_invalid_options_fail_at_construction_naming_the_option(name, value, message):
    opt = TrainOptions().parse([])
    setattr(opt, name, value)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PipelineModule(opt)


def test_rgb_texture_loss_needs_three_texture_channels():
    opt = argparse.Namespace(**vars(TrainOptions().parse(["--lambda_rgb_texture", "1"])))
    opt.texture_nc = 2
    with pytest.raises(ValueError, match="--lambda_rgb_texture > 0 .* needs --texture_nc >= 3, got 2"):
        PipelineModule(opt)


def test_a_namespace_without_training_options_gets_the_training_defaults():
    pipeline = PipelineModule(EvalOptions().parse(SMALL[:-2]))
    assert pipeline.opt.lambda_gan == 1.0 and pipeline.opt.gan_mode == "ls" and pipeline.opt.path_opt is None
    assert hasattr(pipeline, "discriminator") and hasattr(pipeline, "loss_vgg")

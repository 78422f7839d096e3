"""Numerical parity with the authors' implementation (../shared/reference): default architecture, the
deterministic weights, the stored inputs, z = mu; every stored output and loss within the README tolerances.

The 256x256 batch-2 forward is computed once per module (``reference_run``).
"""
import json

import numpy as np
import pytest
import torch

from helpers import shared_path
from test_modules_deterministic_weights import deterministic_state_dict, load_deterministic_weights
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules.loss import VGG19Loss
from varitex.modules.pipeline import PipelineModule
from varitex.options import TrainOptions

F32 = dict(rtol=1e-4, atol=1e-4)   # README "Numerical tolerance": float32 arrays
F16 = dict(rtol=2e-3, atol=2e-3)   # *_f16 arrays
FEATURE_IMAGES = ("TEXTURE_PERSON", "FACE_FEATUREIMAGE", "ADDITIVE_FEATUREIMAGE")


def _hook_statistic(store, name):
    def hook(module, inputs, output):
        # Computed at once: the encoder's bn1 output is modified afterwards by an in-place ReLU.
        store[name] = output.detach().double().mean((2, 3)) if output.dim() == 4 else output.detach().clone()
    return hook


@pytest.fixture(scope="module")
def reference_run():
    npz = np.load(shared_path("reference", "forward_reference.npz"))
    # The loss reference was computed with lambda_vgg = 0 (no pretrained VGG in the reference environment).
    pipeline = PipelineModule(TrainOptions().parse(["--lambda_vgg", "0"]))
    load_deterministic_weights(pipeline, npz=npz)
    pipeline.eval()
    batch = {key: torch.from_numpy(npz[key.name]) for key in
             (DIK.IMAGE_IN_ENCODE, DIK.IMAGE_IN, DIK.UV_RENDERED, DIK.SEGMENTATION_MASK)}
    hooks = {}
    handles = [pipeline.get_submodule(name[len("HOOK::"):]).register_forward_hook(_hook_statistic(hooks, name))
               for name in npz.files if name.startswith("HOOK::")]
    with torch.no_grad():
        out = pipeline(batch, std_multiplier=0)
        for handle in handles:
            handle.remove()
        sampled = pipeline.generator.forward_latent2image(
            {DIK.STYLE_LATENT: out[DIK.STYLE_LATENT_MU] + torch.from_numpy(npz["EPS"]) * out[DIK.STYLE_LATENT_STD],
             DIK.UV_RENDERED: batch[DIK.UV_RENDERED]})
        discriminator = pipeline.discriminator(torch.cat([out[DIK.IMAGE_OUT], out[DIK.IMAGE_IN]], 0))
        generator_terms = pipeline.generator_loss_terms(out)
        discriminator_terms = pipeline.discriminator_loss_terms(out[DIK.IMAGE_OUT], out[DIK.IMAGE_IN])
    return dict(npz=npz, pipeline=pipeline, out=out, sampled=sampled, hooks=hooks, discriminator=discriminator,
                generator_terms=generator_terms, discriminator_terms=discriminator_terms)


def _assert_checksums(entry, value):
    value = value.double()
    assert value.sum().item() == pytest.approx(entry["det_sum"], rel=1e-6, abs=1e-6), entry["key"]
    assert value.abs().sum().item() == pytest.approx(entry["det_abs_sum"], rel=1e-6, abs=1e-6), entry["key"]
    first = value.flatten()[:len(entry["det_first"])].tolist()
    assert first == pytest.approx(entry["det_first"], rel=1e-6, abs=1e-7), entry["key"]


def test_the_weights_used_have_the_spec_checksums(reference_run):
    entries = json.loads(shared_path("reference", "state_dict_spec.json").read_text())["entries"]
    state = reference_run["pipeline"].state_dict()
    network_entries = [entry for entry in entries if entry["key"].startswith(("generator.", "discriminator."))]
    assert len(network_entries) == len(state) == 652
    for entry in network_entries:
        _assert_checksums(entry, state[entry["key"]])
    vgg = deterministic_state_dict(VGG19Loss(), prefix="loss_vgg.")
    vgg_entries = [entry for entry in entries if entry["key"].startswith("loss_vgg.")]
    assert len(vgg_entries) == len(vgg) == 26
    for entry in vgg_entries:
        _assert_checksums(entry, vgg[entry["key"][len("loss_vgg."):]])


@pytest.mark.parametrize("name", ["IMAGE_ENCODED", "STYLE_LATENT_MU", "STYLE_LATENT_STD", "IMAGE_OUT",
                                  "SEGMENTATION_PREDICTED"])
def test_generator_outputs_match_reference(reference_run, name):
    np.testing.assert_allclose(reference_run["out"][DIK[name]].numpy(), reference_run["npz"][name], **F32)


def test_z_equals_mu_exactly_with_std_multiplier_zero(reference_run):
    out = reference_run["out"]
    assert torch.equal(out[DIK.STYLE_LATENT], out[DIK.STYLE_LATENT_MU])


def test_mask_uv_counts_a_pixel_with_one_coordinate_minus_one_as_valid(reference_run):
    mask = reference_run["out"][DIK.MASK_UV]
    assert mask.dtype == torch.bool and mask.shape == (2, 1, 256, 256)
    np.testing.assert_array_equal(mask.numpy().astype(np.uint8), reference_run["npz"]["MASK_UV"])
    assert mask[0, 0, 120:124, 100:140].all() and mask[1, 0, 60:64, 110:150].all()


def test_full_featureimage_is_face_then_additive_features(reference_run):
    out = reference_run["out"]
    full = out[DIK.FULL_FEATUREIMAGE]
    assert torch.equal(full, torch.cat([out[DIK.FACE_FEATUREIMAGE], out[DIK.ADDITIVE_FEATUREIMAGE]], 1))
    np.testing.assert_allclose(full.double().mean((2, 3)).numpy(),
                               reference_run["npz"]["FULL_FEATUREIMAGE_chan_sum_f64"] / 256 ** 2, **F32)


@pytest.mark.parametrize("name", FEATURE_IMAGES)
def test_feature_images_match_reference(reference_run, name):
    npz, value = reference_run["npz"], reference_run["out"][DIK[name]]
    assert value.shape == (2, 16, 256, 256)
    np.testing.assert_allclose(value[0].numpy(), npz[f"{name}_b0_f16"].astype(np.float32), **F16)
    np.testing.assert_allclose(value[:, :, 96:160, 96:160].numpy(), npz[f"{name}_crop96_160_f32"], **F32)
    # Channel sums over 65536 pixels: compared as per-pixel means (sum / H W), the f32 tolerance.
    value = value.double()
    np.testing.assert_allclose(value.mean((2, 3)).numpy(), npz[f"{name}_chan_sum_f64"] / 256 ** 2, **F32)
    np.testing.assert_allclose((value ** 2).mean((2, 3)).numpy(), npz[f"{name}_chan_sumsq_f64"] / 256 ** 2, **F32)


def test_sampled_latent_outputs_match_reference(reference_run):
    npz, sampled = reference_run["npz"], reference_run["sampled"]
    np.testing.assert_allclose(sampled[DIK.STYLE_LATENT].numpy(), npz["SAMPLED_STYLE_LATENT"], **F32)
    np.testing.assert_allclose(sampled[DIK.IMAGE_OUT][0].numpy(), npz["SAMPLED_IMAGE_OUT_b0_f16"].astype(np.float32),
                               **F16)
    np.testing.assert_allclose(sampled[DIK.IMAGE_OUT][:, :, 96:160, 96:160].numpy(),
                               npz["SAMPLED_IMAGE_OUT_crop96_160_f32"], **F32)
    np.testing.assert_allclose(sampled[DIK.SEGMENTATION_PREDICTED].double().mean((2, 3)).numpy(),
                               npz["SAMPLED_SEGMENTATION_PREDICTED_chan_sum_f64"] / 256 ** 2, **F32)


@pytest.mark.parametrize("scale", [0, 1])
def test_discriminator_outputs_match_reference(reference_run, scale):
    npz, outputs = reference_run["npz"], reference_run["discriminator"][scale]
    assert len(outputs) == 5
    np.testing.assert_allclose(outputs[-1].numpy(), npz[f"DISC_{scale}_FINAL"], **F32)
    for layer, output in enumerate(outputs):
        np.testing.assert_allclose(output.double().mean((2, 3)).numpy(), npz[f"DISC_{scale}_L{layer}_chan_mean_f64"],
                                   **F32)


def test_every_block_statistic_matches_reference(reference_run):
    npz, hooks = reference_run["npz"], reference_run["hooks"]
    assert len(hooks) == 33
    for name, value in hooks.items():
        np.testing.assert_allclose(value.numpy(), npz[name], err_msg=name, **F32)


@pytest.mark.parametrize("term, reference", [
    ("gan", "loss_gan"), ("gan_features", "loss_gan_features"), ("l2", "loss_l2"), ("kl", "loss_kl"),
    ("segmentation", "loss_segmentation"), ("loss", "loss_generator_total_weighted")])
def test_generator_loss_terms_match_reference(reference_run, term, reference):
    value = reference_run["generator_terms"][term]
    assert value.dim() == 0
    assert value.item() == pytest.approx(float(reference_run["npz"][f"LOSS::{reference}"]), rel=1e-4)


def test_switched_off_terms_are_zero(reference_run):
    assert reference_run["generator_terms"]["vgg"].item() == 0
    assert reference_run["generator_terms"]["rgb_texture"].item() == 0


def test_rgb_texture_loss_matches_reference(reference_run):
    from varitex.modules.loss import rgb_texture_loss
    out = reference_run["out"]
    value = rgb_texture_loss(out[DIK.FACE_FEATUREIMAGE], out[DIK.IMAGE_IN], out[DIK.MASK_UV])
    assert value.item() == pytest.approx(float(reference_run["npz"]["LOSS::loss_rgb_texture_unused_lambda0"]), rel=1e-4)


@pytest.mark.parametrize("term, reference", [
    ("real", "loss_discriminator_real"), ("fake", "loss_discriminator_fake"),
    ("discriminator", "loss_discriminator_total_weighted"), ("loss", "loss_discriminator_total_weighted")])
def test_discriminator_loss_terms_match_reference(reference_run, term, reference):
    value = reference_run["discriminator_terms"][term].item()
    assert value == pytest.approx(float(reference_run["npz"][f"LOSS::{reference}"]), rel=1e-4)


def test_logged_unweighted_total_matches_the_authors_log(reference_run):
    terms = reference_run["generator_terms"]
    unweighted = sum(terms[name].item() for name in ("gan", "gan_features", "l2", "kl", "segmentation"))
    assert unweighted == pytest.approx(12.8207989, rel=1e-6)

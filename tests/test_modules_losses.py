"""Loss terms and metrics: GAN modes, KL as the authors compute it, feature matching, BCE under autocast, the
VGG-19 perceptual loss and LPIPS with their offline weight lookup."""
import math

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from varitex.modules.loss import (GAN_LOSSES, VGG19_LAYER_WEIGHTS, VGG19Features, VGG19Loss, feature_matching_loss,
                                  kl_divergence, multiscale_gan_loss, segmentation_loss)
from varitex.modules.metrics import IMAGENET_MEAN, IMAGENET_STD, LPIPSMetric, psnr, ssim

PRED = torch.tensor([[-1.0, 0.0, 2.0]])


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """torchvision's cache is an empty folder: no pretrained weights are found."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def normalize(image_0_255):
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (image_0_255 / 255 - mean) / std


@pytest.mark.parametrize("mode, real, fake, generator", [
    ("ls", 2.0, 5 / 3, 2.0),
    ("original", (math.log1p(math.e) + math.log(2) + math.log1p(math.exp(-2))) / 3,
     (math.log1p(math.exp(-1)) + math.log(2) + math.log1p(math.exp(2))) / 3,
     (math.log1p(math.e) + math.log(2) + math.log1p(math.exp(-2))) / 3),
    ("hinge", 1.0, 4 / 3, -1 / 3),
    ("w", -1 / 3, 1 / 3, -1 / 3)])
def test_gan_modes_give_their_textbook_values(mode, real, fake, generator):
    loss = GAN_LOSSES[mode]
    assert loss(PRED, True, for_discriminator=True).item() == pytest.approx(real, rel=1e-6)
    assert loss(PRED, False, for_discriminator=True).item() == pytest.approx(fake, rel=1e-6)
    assert loss(PRED, True, for_discriminator=False).item() == pytest.approx(generator, rel=1e-6)


def test_generator_hinge_loss_refuses_the_fake_target():
    with pytest.raises(ValueError, match="must aim for real"):
        GAN_LOSSES["hinge"](PRED, False, for_discriminator=False)


def test_multiscale_gan_loss_averages_the_final_maps_over_scales():
    features = torch.full((1, 4, 2, 2), 100.0)  # intermediate outputs are ignored
    predictions = [[features, torch.zeros(1, 1, 3, 3)], [features, torch.full((1, 1, 2, 2), 2.0)]]
    assert multiscale_gan_loss(predictions, True, "ls", for_discriminator=True).item() == pytest.approx((1 + 1) / 2)
    assert multiscale_gan_loss(predictions, False, "ls", for_discriminator=True).item() == pytest.approx((0 + 4) / 2)
    with pytest.raises(ValueError, match="gan_mode must be one of"):
        multiscale_gan_loss(predictions, True, "lsgan", for_discriminator=True)


def test_feature_matching_sums_layers_but_the_last_and_averages_scales():
    real = [[torch.zeros(1, 2, 2, 2, requires_grad=True), torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 1, 1)]] * 2
    fake = [[torch.ones(1, 2, 2, 2), torch.full((1, 1, 2, 2), 3.0), torch.full((1, 1, 1, 1), 50.0)]] * 2
    loss = feature_matching_loss(fake, real)
    assert loss.item() == pytest.approx((1 + 3 + 1 + 3) / 2)
    assert not loss.requires_grad  # the real features are detached


def test_kl_is_prior_to_posterior_as_the_authors_compute_it():
    torch.manual_seed(0)
    mu, std = torch.randn(3, 8), torch.rand(3, 8) + 0.2
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(0.0, 1.0),
                                                 torch.distributions.Normal(mu, std)).mean(1)
    torch.testing.assert_close(kl_divergence(mu, std), expected)
    closed_form = (torch.log(std) + (1 + mu ** 2) / (2 * std ** 2) - 0.5).mean(1)
    torch.testing.assert_close(kl_divergence(mu, std), closed_form)


def test_segmentation_loss_runs_in_float32_under_autocast():
    torch.manual_seed(0)
    predicted, target = torch.rand(2, 1, 8, 8) * 0.98 + 0.01, torch.rand(2, 1, 8, 8)
    expected = F.binary_cross_entropy(predicted, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = segmentation_loss(predicted.bfloat16(), target)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected.item(), rel=1e-2)


def _features_state_dict(slices):
    """A torchvision-style ``features.<i>.*`` state_dict with the shapes of ``slices`` and random values."""
    return {f"features.{index}.{name}": torch.randn_like(tensor)
            for block in slices for index, layer in block.named_children()
            for name, tensor in layer.named_parameters(recurse=False)}


def test_vgg_loss_without_weights_says_where_it_looked(empty_torch_home):
    loss = VGG19Loss()
    assert loss.pretrained_source is None
    assert str(empty_torch_home / "vgg19-dcbb9e9d.pth") in loss.missing_reason
    loss = VGG19Loss("/nonexistent/vgg19.pth")
    assert loss.pretrained_source is None and "/nonexistent/vgg19.pth does not exist" in loss.missing_reason


def test_vgg_loss_takes_weights_from_path_or_torchvision_cache(tmp_path, empty_torch_home):
    weights = _features_state_dict(VGG19Features().children())
    path = tmp_path / "vgg19.pth"
    torch.save(weights, path)
    loss = VGG19Loss(str(path))
    assert loss.pretrained_source == str(path)
    assert torch.equal(loss.vgg.get_submodule("slice5.28").weight, weights["features.28.weight"])
    assert torch.equal(loss.vgg.get_submodule("slice2.5").bias, weights["features.5.bias"])
    empty_torch_home.mkdir(parents=True)
    torch.save(weights, empty_torch_home / "vgg19-dcbb9e9d.pth")
    assert VGG19Loss().pretrained_source == str(empty_torch_home / "vgg19-dcbb9e9d.pth")


def test_vgg_loss_rejects_a_file_that_is_not_a_vgg19_state_dict(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="other.pth: 'features.0.weight' has shape"):
        VGG19Loss(str(path))


def test_vgg_loss_is_the_weighted_l1_of_five_slices_with_gradient_into_fake_only(empty_torch_home):
    torch.manual_seed(0)
    loss = VGG19Loss()
    fake = torch.randn(1, 3, 32, 32, requires_grad=True)
    real = torch.randn(1, 3, 32, 32, requires_grad=True)
    value = loss(fake, real)
    expected = sum(w * F.l1_loss(a, b) for w, a, b in zip(VGG19_LAYER_WEIGHTS, loss.vgg(fake), loss.vgg(real)))
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    assert [x.shape[1] for x in loss.vgg(fake)] == [64, 128, 256, 512, 512]
    value.backward()
    assert fake.grad.abs().sum() > 0 and real.grad is None
    assert loss(real, real).item() == 0


def test_vgg_weights_from_a_state_dict_count_as_pretrained(empty_torch_home):
    loss = VGG19Loss()
    loss.load_state_dict({key: torch.zeros_like(value) for key, value in loss.state_dict().items()})
    assert loss.pretrained_source == "state_dict"


def test_psnr_and_ssim_are_computed_on_0_255_images():
    torch.manual_seed(0)
    real = torch.rand(2, 3, 32, 32) * 200 + 20
    assert psnr(normalize(real + 5), normalize(real)).item() == pytest.approx(10 * math.log10(255 ** 2 / 25), rel=1e-4)
    assert ssim(normalize(real), normalize(real)).item() == pytest.approx(1.0, abs=1e-6)
    noisy = real + 60 * torch.randn_like(real)
    expected = structural_similarity_index_measure(noisy, real, data_range=255.0)
    assert ssim(normalize(noisy), normalize(real)).item() == pytest.approx(expected.item(), abs=1e-5)
    assert 0 < expected.item() < 0.9


def test_lpips_uses_cached_alexnet_weights_and_is_zero_for_identical_images(empty_torch_home):
    missing = LPIPSMetric()
    assert missing.pretrained_source is None and "alexnet-owt-7be5be79.pth" in missing.missing_reason
    empty_torch_home.mkdir(parents=True)
    weights = _features_state_dict(missing.metric.net.children())
    torch.save(weights, empty_torch_home / "alexnet-owt-7be5be79.pth")
    metric = LPIPSMetric()
    assert metric.pretrained_source.endswith("alexnet-owt-7be5be79.pth")
    assert torch.equal(metric.metric.net.get_submodule("slice2.3").weight, weights["features.3.weight"])
    torch.manual_seed(0)
    image = torch.randn(2, 3, 64, 64)
    assert metric(image, image).item() == 0
    assert metric(image, torch.randn(2, 3, 64, 64)).item() > 0
    missing.load_state_dict(metric.state_dict())
    assert missing.pretrained_source == "state_dict"

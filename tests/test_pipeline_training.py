"""PipelineModule under a real Lightning 2.x Trainer: the authors' alternating G/D schedule with manual
optimization, the logged names, validation metrics, checkpoints with options, and the refusal to train or
validate with random pretrained weights."""
import warnings

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from varitex.data.keys_enum import DataItemKey as DIK
from varitex.checkpoints import load_pipeline, read_checkpoint
from varitex.modules.configs import options_to_dict
from varitex.modules.pipeline import PipelineModule
from varitex.modules.pretrained import MissingPretrainedWeightsError
from varitex.options import TrainOptions

SIZE = 64
SMALL = ["--image_h", str(SIZE), "--image_w", str(SIZE), "--texture_dim", "128", "--latent_dim", "16",
         "--nc_feature2image", "8", "--feature2image_num_layers", "3", "--nc_discriminator", "8", "--batch_size", "2"]
TRAIN_NAMES = {"train/generator", "train/gan_features", "train/reconstruction_l2", "train/kl", "train/vgg_l1",
               "train/segmentation", "train/rgb_texture", "train/loss", "train/discriminator"}
VAL_NAMES = {"val/psnr", "val/ssim", "val/lpips"}


class RandomFaces(Dataset):
    """Items with the keys the pipeline needs, random but fixed."""

    def __init__(self, n=2, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.items = [{
            DIK.IMAGE_IN_ENCODE: torch.randn(3, SIZE, SIZE, generator=generator),
            DIK.IMAGE_IN: torch.randn(3, SIZE, SIZE, generator=generator),
            DIK.UV_RENDERED: torch.rand(SIZE, SIZE, 2, generator=generator) * 2 - 1,
            DIK.SEGMENTATION_MASK: (torch.rand(1, SIZE, SIZE, generator=generator) > 0.5).float(),
        } for _ in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def loader():
    return DataLoader(RandomFaces(), batch_size=2)


def trainer(**kwargs):
    settings = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, num_sanity_val_steps=0)
    return pl.Trainer(**{**settings, **kwargs})


class RecordingPipeline(PipelineModule):
    """Records the discriminator as the generator step leaves it (the discriminator step's loss comes next)."""

    def discriminator_loss_terms(self, fake, real):
        self.discriminator_after_generator_step = {name: p.detach().clone()
                                                   for name, p in self.discriminator.named_parameters()}
        self.discriminator_grads_after_generator_step = [p.grad for p in self.discriminator.parameters()]
        return super().discriminator_loss_terms(fake, real)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One training step (plus validation) with every loss term switched on; random VGG / AlexNet, explicitly."""
    torch.manual_seed(0)
    opt = TrainOptions().parse(SMALL + ["--lambda_vgg", "1", "--lambda_rgb_texture", "1"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("empty_torch_home")))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = RecordingPipeline(opt, random_perceptual_weights=True)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    folder = tmp_path_factory.mktemp("run")
    checkpoints = ModelCheckpoint(dirpath=folder / "checkpoints", save_last="link")  # no second 550 MB copy
    run = trainer(max_steps=1, limit_val_batches=1, log_every_n_steps=1, logger=CSVLogger(folder),
                  enable_checkpointing=True, callbacks=[checkpoints])
    run.fit(model, loader(), loader())
    return dict(model=model, before=before, metrics=dict(run.callback_metrics),
                path=folder / "checkpoints" / "last.ckpt")


def test_one_training_step_updates_generator_and_discriminator(trained):
    model, before = trained["model"], trained["before"]
    for prefix in ("generator.", "discriminator."):
        names = [name for name in before if name.startswith(prefix)]
        changed = [name for name in names if not torch.equal(before[name], model.get_parameter(name))]
        assert len(changed) >= 0.95 * len(names), prefix
    assert model.global_step == 2  # Lightning counts one step per optimizer.step()


def test_generator_step_leaves_discriminator_weights_untouched(trained):
    model, before = trained["model"], trained["before"]
    for name, value in model.discriminator_after_generator_step.items():
        assert torch.equal(value, before["discriminator." + name]), name
    assert all(grad is None for grad in model.discriminator_grads_after_generator_step)


def test_vgg_weights_stay_frozen_in_training(trained):
    model, before = trained["model"], trained["before"]
    assert all(torch.equal(before["loss_vgg." + name], p) for name, p in model.loss_vgg.named_parameters())
    assert not any(p.requires_grad for p in model.loss_vgg.parameters())
    assert all(p.requires_grad for p in model.generator.parameters())  # untoggled after each step


def test_training_and_validation_log_the_authors_names(trained):
    metrics = trained["metrics"]
    assert TRAIN_NAMES | VAL_NAMES <= set(metrics)
    terms = TRAIN_NAMES - {"train/loss", "train/discriminator"}
    # Authors' quirk: train/loss is the unweighted sum of the terms.
    assert metrics["train/loss"].item() == pytest.approx(sum(metrics[name].item() for name in terms), rel=1e-5)
    assert all(torch.isfinite(metrics[name]) for name in TRAIN_NAMES | VAL_NAMES)
    assert 0 < metrics["val/psnr"].item() < 100


def test_switched_off_terms_are_not_logged():
    model = PipelineModule(TrainOptions().parse(SMALL + ["--lambda_vgg", "0", "--lambda_gan", "0"]))
    assert model._active_terms() == {"l2", "kl", "segmentation"}
    assert not hasattr(model, "discriminator") and len(model.configure_optimizers()) == 1
    with pytest.raises(ValueError, match="needs --lambda_gan > 0"):
        model.discriminator_loss_terms(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_lightning_checkpoint_stores_the_options_and_loads_safely(trained):
    # Plain weights-only loading works: our checkpoints (with Lightning's callback states) need no stand-ins.
    checkpoint = torch.load(trained["path"], map_location="cpu", weights_only=True)
    assert any(key.startswith("ModelCheckpoint") for key in checkpoint["callbacks"])
    assert checkpoint["varitex_opt"] == options_to_dict(trained["model"].opt)
    assert checkpoint["varitex_opt"]["texture_dim"] == 128 and checkpoint["varitex_opt"]["latent_dim"] == 16
    assert not any(key.startswith("metric_lpips.") for key in checkpoint["state_dict"])
    assert read_checkpoint(trained["path"])["global_step"] == 2


def test_load_pipeline_rebuilds_the_trained_architecture_from_our_checkpoint(trained):
    loaded = load_pipeline(trained["path"])  # no options given: all from the checkpoint
    assert not loaded.training and loaded.opt.texture_dim == 128 and loaded.opt.latent_dim == 16
    model = trained["model"]
    for name, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name
    assert loaded.loss_vgg.pretrained_source == "state_dict"


def test_training_refuses_random_vgg_weights_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = PipelineModule(TrainOptions().parse(SMALL + ["--lambda_vgg", "2", "--no_lpips"]))
    with pytest.raises(MissingPretrainedWeightsError) as error:
        trainer(max_steps=1).fit(model, loader())
    message = str(error.value)
    assert "--lambda_vgg 2.0 needs the ImageNet weights of VGG-19" in message
    assert "--path_vgg" in message and "--lambda_vgg 0" in message and "loss_vgg.*" in message
    assert str(tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in message


def test_validation_refuses_random_lpips_weights_unless_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = PipelineModule(TrainOptions().parse(SMALL + ["--lambda_vgg", "0", "--lambda_gan", "0"]))
    with pytest.raises(MissingPretrainedWeightsError, match="alexnet-owt-7be5be79.pth .* --no_lpips"):
        trainer().validate(model, loader(), verbose=False)


def test_no_lpips_says_so_once():
    model = PipelineModule(TrainOptions().parse(SMALL + ["--lambda_vgg", "0", "--no_lpips"]))
    assert model.metric_lpips is None
    with pytest.warns(UserWarning, match=r"LPIPS is switched off \(--no_lpips\)") as record:
        model.on_validation_start()
        model.on_validation_start()
    assert len([w for w in record if "LPIPS" in str(w.message)]) == 1

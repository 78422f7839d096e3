"""Speed switches of training (varitex/performance.py and the options of docs/performance.md): the faithful
path stays the default; --reuse_generator_output, bf16-mixed, Adam implementations, channels-last and compile
change speed, and numerics only as documented."""
import math
import os
import warnings

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from varitex import performance, train
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules.pipeline import PipelineModule
from varitex.options import TrainOptions

from helpers import narrow_generator, one_thread

SIZE = 16
TINY = ["--image_h", str(SIZE), "--image_w", str(SIZE), "--texture_dim", "128", "--latent_dim", "16",
        "--nc_feature2image", "8", "--feature2image_num_layers", "3", "--nc_discriminator", "8", "--batch_size", "2",
        "--lambda_vgg", "0", "--no_lpips"]
TRAIN_LOSSES = ("train/generator", "train/gan_features", "train/reconstruction_l2", "train/kl", "train/segmentation",
                "train/loss", "train/discriminator")


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    with one_thread():
        yield


def tiny_options(*flags):
    return TrainOptions().parse(TINY + list(flags))


def tiny_model(*flags, cls=PipelineModule):
    """``cls`` for TINY + ``flags``, with narrow decoders."""
    opt = tiny_options(*flags)
    return cls(opt, generator_config=narrow_generator(opt))


def random_batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {DIK.IMAGE_IN_ENCODE: torch.randn(2, 3, SIZE, SIZE, generator=generator),
            DIK.IMAGE_IN: torch.randn(2, 3, SIZE, SIZE, generator=generator),
            DIK.UV_RENDERED: torch.rand(2, SIZE, SIZE, 2, generator=generator) * 2 - 1,
            DIK.SEGMENTATION_MASK: (torch.rand(2, 1, SIZE, SIZE, generator=generator) > 0.5).float()}


def fit_one_batch(model, precision="32"):
    """One training batch (a G step and a D step) under a CPU Trainer; returns the trainer."""
    trainer = pl.Trainer(accelerator="cpu", devices=1, precision=precision, max_epochs=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, DataLoader([random_batch()], batch_size=None))
    return trainer


class DeterministicGenerator(PipelineModule):
    """z = mu and a generator Adam with learning rate 0: the G step leaves the generator's weights exactly as
    they were, so a recomputed generator forward reproduces the G step's image bit for bit."""

    def forward(self, batch, std_multiplier=1.0):
        return super().forward(batch, std_multiplier=0.0)

    def configure_optimizers(self):
        generator_optimizer, discriminator_optimizer = super().configure_optimizers()
        for group in generator_optimizer.param_groups:
            group["lr"] = 0.0
        return [generator_optimizer, discriminator_optimizer]


def batchnorm_updates(model):
    """How often the generator's first BatchNorm saw a batch in training mode."""
    return int(model.generator.encoder.encoder.bn1.num_batches_tracked)


@pytest.fixture(scope="module")
def faithful_and_reused():
    """The same deterministic model trained one batch the authors' way and with --reuse_generator_output."""
    runs = {}
    for reuse in (False, True):
        torch.manual_seed(0)
        model = tiny_model(*(["--reuse_generator_output"] if reuse else []), cls=DeterministicGenerator)
        trainer = fit_one_batch(model)
        runs[reuse] = dict(model=model, metrics={k: v.clone() for k, v in trainer.callback_metrics.items()})
    return runs


def test_reused_generator_output_gives_the_faithful_discriminator_loss_and_update(faithful_and_reused):
    faithful, reused = faithful_and_reused[False], faithful_and_reused[True]
    assert float(reused["metrics"]["train/discriminator"]) == float(faithful["metrics"]["train/discriminator"])
    for (name, a), (_, b) in zip(faithful["model"].discriminator.named_parameters(),
                                 reused["model"].discriminator.named_parameters()):
        assert torch.equal(a, b), name
    assert float(faithful["metrics"]["train/discriminator"]) > 0


def test_reused_generator_output_runs_one_generator_forward_per_batch(faithful_and_reused):
    # The authors' D step recomputes the generator in training mode: BatchNorm statistics move twice per batch.
    assert batchnorm_updates(faithful_and_reused[False]["model"]) == 2
    assert batchnorm_updates(faithful_and_reused[True]["model"]) == 1


def test_bf16_mixed_training_step_gives_finite_losses_and_weights():
    torch.manual_seed(0)
    model = tiny_model("--precision", "bf16-mixed")
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = fit_one_batch(model, precision="bf16-mixed")
    losses = {name: float(trainer.callback_metrics[name]) for name in TRAIN_LOSSES}
    assert all(math.isfinite(value) for value in losses.values()), losses
    assert losses["train/reconstruction_l2"] > 0 and losses["train/discriminator"] > 0
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32 and torch.isfinite(p).all(), name  # master weights stay float32
    assert not torch.equal(before["generator.fc_mu.weight"], model.generator.fc_mu.weight)
    assert not torch.equal(before["discriminator.discriminator_0.model0.0.weight"],
                           model.discriminator.discriminator_0.model0[0].weight)


@pytest.mark.parametrize("implementation", ["foreach", "loop"])
def test_adam_implementations_agree_with_fused_up_to_float_rounding(implementation):
    torch.manual_seed(0)
    models = {name: tiny_model("--adam_implementation", name) for name in ("fused", implementation)}
    models[implementation].load_state_dict(models["fused"].state_dict())
    generator = torch.Generator().manual_seed(1)
    gradients = [torch.randn(p.shape, generator=generator) for p in models["fused"].discriminator.parameters()]
    for model in models.values():
        optimizer = model.configure_optimizers()[1]  # the discriminator's: same code, fewer parameters
        for _ in range(3):
            for p, gradient in zip(model.discriminator.parameters(), gradients):
                p.grad = gradient.clone()
            optimizer.step()
    assert models["fused"].configure_optimizers()[1].defaults["fused"] is True
    assert models[implementation].configure_optimizers()[1].defaults["foreach"] is (implementation == "foreach")
    for a, b in zip(models["fused"].discriminator.parameters(), models[implementation].discriminator.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_adam_is_foreach_on_the_cpu_by_default():
    # CPU fused Adam is slower than foreach here (0.81 s vs 0.22 s per step for 9.4 M parameters, 2-core CPU).
    optimizers = tiny_model().configure_optimizers()
    assert [(o.defaults["foreach"], o.defaults["fused"]) for o in optimizers] == [(True, None), (True, None)]


def test_ddp_strategies_get_unused_parameter_detection():
    def strategy(value, devices="1", num_nodes=1):
        opt = TrainOptions().parse(["--strategy", value, "--devices", devices, "--num_nodes", str(num_nodes),
                                    "--device", "cpu"])
        return performance.training_strategy(opt)

    assert strategy("ddp") == "ddp_find_unused_parameters_true"
    assert strategy("ddp_spawn") == "ddp_spawn_find_unused_parameters_true"
    assert strategy("auto", devices="2") == "ddp_find_unused_parameters_true"
    assert strategy("auto", num_nodes=2) == "ddp_find_unused_parameters_true"
    assert strategy("auto") == "auto"
    assert strategy("ddp_find_unused_parameters_false") == "ddp_find_unused_parameters_false"  # explicit choice
    assert performance.device_count("cpu", "0,1") == 2


def test_channels_last_keeps_names_and_outputs():
    torch.manual_seed(0)
    reference = tiny_model().eval()
    model = tiny_model("--channels_last").eval()
    model.load_state_dict(reference.state_dict())
    performance.prepare_networks(model, model.opt)
    assert model.generator.encoder.encoder.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert list(model.state_dict()) == list(reference.state_dict())
    with torch.no_grad():
        expected = reference(random_batch(), std_multiplier=0)[DIK.IMAGE_OUT]
        actual = model(random_batch(), std_multiplier=0)[DIK.IMAGE_OUT]
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def test_compiled_networks_keep_names_and_outputs():
    """torch.compile with the 'eager' backend: graph capture of every compiled network, without code generation
    (inductor itself runs in the CUDA tests of tests/test_perf_cuda.py)."""
    torch.manual_seed(0)
    torch._dynamo.reset()
    reference = tiny_model().eval()
    model = tiny_model("--compile").eval()
    model.load_state_dict(reference.state_dict())
    assert performance.compile_networks(model, backend="eager") == ["generator", "discriminator"]
    assert list(model.state_dict()) == list(reference.state_dict())
    with torch.no_grad():
        expected = reference(random_batch(), std_multiplier=0)
        actual = model(random_batch(), std_multiplier=0)
        torch.testing.assert_close(actual[DIK.IMAGE_OUT], expected[DIK.IMAGE_OUT], rtol=1e-5, atol=1e-5)
        fake = actual[DIK.IMAGE_OUT]
        torch.testing.assert_close(model.discriminator(fake)[0][-1], reference.discriminator(fake)[0][-1])


def test_training_data_loader_uses_workers_with_persistent_processes(tiny_world, monkeypatch):
    monkeypatch.setenv("DP", str(tiny_world))
    monkeypatch.setenv("FP", str(tiny_world))
    opt = TrainOptions().parse(TINY + ["--path_out", "unused"])
    assert opt.num_workers == min(8, os.cpu_count())
    train_loader, val_loader = train.make_dataloaders(opt)
    assert train_loader.num_workers == opt.num_workers and train_loader.persistent_workers
    assert train_loader.pin_memory == torch.cuda.is_available()
    assert val_loader.batch_size == train_loader.batch_size == 2


def test_progress_bar_reads_losses_at_most_every_refresh_interval():
    from types import SimpleNamespace

    from varitex.callbacks import LossProgressBar

    trainer = SimpleNamespace(callback_metrics={"train/kl": torch.tensor(2.0)}, progress_bar_metrics={}, loggers=[])
    bar = LossProgressBar()
    assert bar.get_metrics(trainer, None)["kl"] == "2"
    trainer.callback_metrics["train/kl"] = torch.tensor(3.0)
    assert bar.get_metrics(trainer, None)["kl"] == "2"  # within LOSS_REFRESH_S: no read, so no GPU sync
    bar.LOSS_REFRESH_S = 0.0
    assert bar.get_metrics(trainer, None)["kl"] == "3"

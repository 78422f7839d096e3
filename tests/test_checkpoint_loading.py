"""Checkpoint loading: the authors' Lightning-1.x layout read safely (weights_only=True, callback classes as
stand-ins), their extra loss_vgg.* / metric_lpips.* entries used, and clear errors for wrong files."""
import argparse
import pickle
import sys
import types
import warnings

import pytest
import torch

from varitex.checkpoints import (CheckpointMismatchError, CheckpointStandIn, check_state_dict,
                                        checkpoint_options, load_pipeline, read_checkpoint)
from varitex.modules.pipeline import PipelineModule
from varitex.options import TrainOptions

CALLBACK_CLASS = "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"


def fake_classes(patch, qualified_names):
    """Importable stand-ins for classes of packages we must not import here, so that pickle can save them."""
    classes = []
    for qualified_name in qualified_names:
        module_name, class_name = qualified_name.rsplit(".", 1)
        parts = module_name.split(".")
        for depth in range(1, len(parts) + 1):
            patch.setitem(sys.modules, ".".join(parts[:depth]), types.ModuleType(".".join(parts[:depth])))
        cls = type(class_name, (), {"__module__": module_name, "__qualname__": class_name})
        setattr(sys.modules[module_name], class_name, cls)
        classes.append(cls)
    return classes


def save_lightning_1x_checkpoint(path, state_dict, extra=None):
    """A file in the layout pytorch-lightning 1.x writes: callback states keyed by the callback CLASS."""
    with pytest.MonkeyPatch.context() as patch:
        (model_checkpoint,) = fake_classes(patch, [CALLBACK_CLASS])
        checkpoint = {
            "epoch": 43, "global_step": 440000, "pytorch-lightning_version": "1.1.8",
            "state_dict": state_dict,
            "callbacks": {model_checkpoint: {"monitor": None, "best_model_score": None, "best_model_path": "",
                                             "dirpath": "/cluster/varitex/checkpoints"}},
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]}],
            "lr_schedulers": [],
        }
        checkpoint.update(extra or {})
        torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def authors_checkpoint(tmp_path_factory):
    """Default architecture (with loss_vgg), plus metric_lpips.* with recognisable linear weights."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("empty_torch_home")))
        pipeline = PipelineModule(TrainOptions().parse([]))
    state_dict = dict(pipeline.state_dict())  # a plain dict: no _metadata, like a crafted state_dict
    for key, value in pipeline.metric_lpips.state_dict().items():
        state_dict["metric_lpips." + key] = torch.full_like(value, 0.25) if ".lin" in key else value
    assert len(state_dict) == 700
    path = save_lightning_1x_checkpoint(tmp_path_factory.mktemp("authors") / "epoch=43.ckpt", state_dict)
    return dict(path=path, state_dict=state_dict)


def test_lightning_1x_checkpoint_is_read_safely_with_callback_classes_as_stand_ins(authors_checkpoint):
    path = authors_checkpoint["path"]
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # what read_checkpoint has to work around
    checkpoint = read_checkpoint(path)
    assert checkpoint["epoch"] == 43 and checkpoint["pytorch-lightning_version"] == "1.1.8"
    (callback,) = checkpoint["callbacks"]
    assert issubclass(callback, CheckpointStandIn) and callback.qualified_name == CALLBACK_CLASS
    assert checkpoint["callbacks"][callback]["dirpath"] == "/cluster/varitex/checkpoints"
    assert len(checkpoint["state_dict"]) == 700


def test_authors_checkpoint_loads_with_its_vgg_and_lpips_weights(authors_checkpoint):
    pipeline = load_pipeline(authors_checkpoint["path"])
    assert not pipeline.training
    expected = authors_checkpoint["state_dict"]
    for key, value in pipeline.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert pipeline.loss_vgg.pretrained_source == "state_dict"
    assert pipeline.metric_lpips.pretrained_source == "state_dict"
    assert torch.equal(pipeline.metric_lpips.metric.lin3.model[1].weight, torch.full((1, 256, 1, 1), 0.25))


def test_a_discriminator_the_options_switch_off_is_ignored(authors_checkpoint):
    pipeline = PipelineModule(TrainOptions().parse(["--lambda_gan", "0", "--lambda_vgg", "0", "--no_lpips"]))
    check_state_dict(pipeline, authors_checkpoint["state_dict"])
    pipeline.load_state_dict(authors_checkpoint["state_dict"], strict=False)
    assert torch.equal(pipeline.generator.fc_mu.bias, authors_checkpoint["state_dict"]["generator.fc_mu.bias"])


def test_mismatched_keys_are_listed(authors_checkpoint):
    pipeline = PipelineModule(TrainOptions().parse(["--lambda_vgg", "0", "--no_lpips"]))
    state_dict = dict(authors_checkpoint["state_dict"])
    del state_dict["generator.fc_mu.bias"]
    state_dict["discriminator.discriminator_1.model0.0.weight"] = torch.zeros(64, 3, 3, 3)
    state_dict["generator.decoder.decoder.layer5.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as error:
        check_state_dict(pipeline, state_dict, source="checkpoint x.ckpt")
    message = str(error.value)
    assert message.startswith("checkpoint x.ckpt does not fit the architecture built from the options (latent_dim=256")
    assert "1 missing: generator.fc_mu.bias" in message
    assert ("1 with another shape: discriminator.discriminator_1.model0.0.weight (checkpoint (64, 3, 3, 3), "
            "model (64, 3, 4, 4))") in message
    assert "1 unexpected: generator.decoder.decoder.layer5.0.conv1.weight" in message


def test_checkpoint_of_another_architecture_is_refused_with_the_keys(tmp_path):
    small = {"generator.fc_mu.weight": torch.zeros(16, 512), "generator.fc_mu.bias": torch.zeros(16)}
    path = save_lightning_1x_checkpoint(tmp_path / "small.ckpt", small)
    with pytest.raises(CheckpointMismatchError, match=r"generator/discriminator keys \d+ missing: .*\.\.\. and \d+ "
                                                      r"more; 2 with another shape: generator.fc_mu.bias"):
        load_pipeline(path)


def test_missing_file_and_wrong_content_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint .*nowhere.ckpt does not exist"):
        read_checkpoint(tmp_path / "nowhere.ckpt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match=r"plain.pt is not a Lightning checkpoint: no 'state_dict' entry "
                                         r"\(found \['weights'\]\)"):
        load_pipeline(tmp_path / "plain.pt")


def test_objects_of_other_packages_are_refused_by_the_safe_loader(tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        (payload,) = fake_classes(patch, ["evil.payload.Payload"])
        torch.save({"state_dict": {}, "payload": payload()}, tmp_path / "evil.ckpt")
    with pytest.raises(ValueError, match=r"cannot be loaded safely .*\['evil.payload.Payload'\].* weights_only=False"):
        read_checkpoint(tmp_path / "evil.ckpt")


def test_stored_architecture_options_win_over_the_callers():
    caller = argparse.Namespace(texture_dim=256, device="cpu", latent_dim=256)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = checkpoint_options({"texture_dim": 128, "latent_dim": 256, "lambda_vgg": 0.0}, caller)
    assert values["texture_dim"] == 128 and values["device"] == "cpu" and values["lambda_vgg"] == 0.0
    assert [str(w.message) for w in caught] == [
        "--texture_dim 256 is ignored: the checkpoint was trained with --texture_dim 128"]
    assert checkpoint_options(None, caller)["texture_dim"] == 256

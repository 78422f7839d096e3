"""Command lines of train and inference: the authors' option names, --demo, and bad inputs as one-line errors."""
import pytest
import torch

from varitex import inference, train
from varitex.options import EvalOptions, TrainOptions
from varitex.options import settings as cli

from helpers import world_flags


BASE_OPTIONS = ["dataroot_npy", "image_folder", "path_out", "path_bfm", "path_uv", "device", "dataset",
                "keep_background", "bg_color", "transform_mode", "logger", "checkpoint", "dataset_split",
                "texture_nc", "texture_dim", "image_h", "image_w", "batch_size", "uv_mask_value", "latent_dim",
                "nc_feature2image", "feature2image_num_layers", "nc_decoder", "semantic_regions",
                "experiment_name", "project", "debug"]
TRAIN_OPTIONS = ["lr", "lambda_l2", "lambda_kl", "lambda_vgg", "lambda_segmentation", "lambda_rgb_texture",
                 "gan_mode", "lambda_gan", "lambda_discriminator_features", "nc_discriminator", "num_discriminator",
                 "n_layers_discriminator", "norm_discriminator", "lr_discriminator", "num_workers", "display_freq",
                 "max_epochs"]
FLAGS = {"keep_background", "debug"}
VALUES = {"bg_color": "zero", "logger": "wandb", "dataset_split": "val", "texture_dim": "128", "gan_mode": "hinge",
          "semantic_regions": "1", "norm_discriminator": "spectralinstance", "transform_mode": "all",
          "device": "cpu", "dataset": "FFHQ"}


def authors_command_line(names):
    argv = []
    for name in names:
        argv.append(f"--{name}")
        if name not in FLAGS:
            argv.append(VALUES.get(name, "3" if name not in ("lr", "lr_discriminator") else "0.5"))
    return argv


def test_every_authors_training_option_parses():
    opt = TrainOptions().parse(authors_command_line(BASE_OPTIONS + TRAIN_OPTIONS))
    assert opt.max_epochs == 3 and opt.lr == 0.5 and opt.texture_dim == 128 and opt.debug
    assert opt.semantic_regions == [1] and opt.bg_color == "zero"


def test_every_authors_inference_option_parses():
    opt = EvalOptions().parse(authors_command_line(BASE_OPTIONS) + ["--path_opt", "opt.json"])
    assert opt.path_opt == "opt.json" and opt.batch_size == 3 and opt.dataset_split == "val"


def test_explicit_flags_are_the_typed_ones_with_abbreviations_resolved():
    assert cli.explicit_flags(TrainOptions, ["--max_ep", "3", "--demo"]) == {"max_epochs", "demo"}
    assert cli.explicit_flags(TrainOptions, []) == set()


def test_merge_keeps_paths_and_explicit_flags_and_takes_the_rest():
    opt = TrainOptions().parse(["--max_epochs", "5", "--path_out", "/here"])
    saved = {"max_epochs": 44, "texture_dim": 128, "path_out": "/there", "lambda_kl": 0.5}
    cli.merge_saved_options(opt, saved, cli.explicit_flags(TrainOptions, ["--max_epochs", "5"]))
    assert (opt.max_epochs, opt.texture_dim, opt.path_out, opt.lambda_kl) == (5, 128, "/here", 0.5)


def test_demo_options_point_at_the_demo_world_and_flags_win(tiny_world, monkeypatch):
    monkeypatch.setattr("varitex.demo_world.world.ensure_demo_world", lambda root=None, **kwargs: tiny_world)
    monkeypatch.setenv("DP", "/somewhere/else")
    opt = cli.resolve("train", ["--demo", "--image_h", "128", "--image_w", "128"]).opt
    assert opt.dataroot_npy == str(tiny_world / "FFHQ" / "preprocessed_dataset")
    assert opt.path_bfm == str(tiny_world / "basel_facemodel" / "model2017-1_face12_nomouth.h5")
    assert (opt.image_h, opt.texture_dim, opt.lambda_vgg, opt.no_lpips) == (128, 128, 0.0, True)
    assert (opt.experiment_name, opt.path_out, opt.checkpoint) == ("demo", "outputs", None)
    # The measured demo recipe (a narrow network that learns identities in 460 steps); the authors' defaults
    # stay what a run without --demo gets.
    assert (opt.network_width, opt.lr, opt.lambda_kl, opt.lambda_rgb_texture, opt.batch_size, opt.max_epochs) == (
        0.25, 1e-2, 0.01, 1.0, 8, 20)
    authors = TrainOptions().parse([])
    assert (authors.network_width, authors.lr, authors.lambda_kl, authors.lambda_rgb_texture) == (1.0, 1e-3, 0.1, 0.0)


def run_main(main, argv, capsys):
    """Run a console entry point; returns (exit code, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr().err


def clear_environment(monkeypatch):
    for name in ("DP", "FP", "OP", "CP", cli.TRACEBACK_ENV):
        monkeypatch.delenv(name, raising=False)


def test_train_without_environment_names_the_flag_and_variable(monkeypatch, capsys):
    clear_environment(monkeypatch)
    code, err = run_main(train.main, [], capsys)
    assert code == 2
    assert err.strip() == ("varitex-train: error: --dataroot_npy is not set: pass --dataroot_npy PATH or set the "
                           "environment variable DP (the default is $DP/FFHQ/preprocessed_dataset). To try VariTex "
                           "without data, use --demo.")


def test_inference_without_checkpoint_names_cp(monkeypatch, capsys):
    clear_environment(monkeypatch)
    code, err = run_main(inference.main, ["--dataset_split", "val"], capsys)
    assert code == 2 and "--checkpoint is not set" in err and "variable CP" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_checkpoint_is_one_line(monkeypatch, capsys, tiny_world, tmp_path):
    clear_environment(monkeypatch)
    argv = world_flags(tiny_world, tmp_path) + ["--checkpoint", str(tmp_path / "nope.ckpt")]
    for main in (train.main, inference.main):
        code, err = run_main(main, argv, capsys)
        assert code == 2 and err.strip().endswith(f"--checkpoint: file not found: {tmp_path / 'nope.ckpt'}")


def test_checkpoint_of_another_architecture_is_one_line(monkeypatch, capsys, tiny_world, tmp_path):
    clear_environment(monkeypatch)
    path = tmp_path / "resnet.ckpt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}, "epoch": 3, "global_step": 9}, path)
    argv = world_flags(tiny_world, tmp_path) + ["--checkpoint", str(path), "--dataset_split", "val"]
    code, err = run_main(inference.main, argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"checkpoint {path} does not fit the architecture" in err and "missing" in err


def test_unknown_split_is_one_line(monkeypatch, capsys, tiny_world, tmp_path):
    clear_environment(monkeypatch)
    path = tmp_path / "any.ckpt"
    torch.save({"state_dict": {}}, path)
    argv = world_flags(tiny_world, tmp_path) + ["--checkpoint", str(path), "--dataset_split", "holdout"]
    code, err = run_main(inference.main, argv, capsys)
    assert code == 2 and "--dataset_split 'holdout' does not exist" in err and "train, val" in err
    code, err = run_main(train.main, world_flags(tiny_world, tmp_path) + ["--dataset_split", "val"], capsys)
    assert code == 2 and "--dataset_split 'val' cannot be used for training" in err


def test_unwritable_output_folder_is_one_line(monkeypatch, capsys, tiny_world, tmp_path):
    clear_environment(monkeypatch)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    argv = world_flags(tiny_world, blocker / "runs") + ["--image_h", "64", "--image_w", "64", "--device", "cpu"]
    code, err = run_main(train.main, argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"--path_out: cannot write to the output folder {blocker / 'runs' / 'default'}" in err


def test_traceback_variable_shows_the_traceback(monkeypatch):
    clear_environment(monkeypatch)
    monkeypatch.setenv(cli.TRACEBACK_ENV, "1")
    with pytest.raises(ValueError, match="--dataroot_npy is not set"):
        train.main([])

"""The demo recipe teaches the identity latent: a short run with the demo's options (network width, learning
rate, KL weight, batch size) on a tiny world already tells its people apart, so this cannot silently regress.
The full demo's figures on held-out people come from benchmarks/demo_learning_curve.py."""
import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from varitex import SEED
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.data.npy_dataset import NPYDataset
from varitex.demo_world.world import ensure_demo_world
from varitex.modules.metrics import identity_errors, identity_retrieval
from varitex.modules.pipeline import PipelineModule
from varitex.options import settings

STEPS = 40


@torch.no_grad()
def _retrieval(pipeline, items):
    pipeline.eval()
    out = pipeline(items, std_multiplier=0)
    errors = identity_errors(pipeline.generator, out[DIK.STYLE_LATENT_MU], items[DIK.UV_RENDERED],
                             items[DIK.IMAGE_IN], items[DIK.MASK_FULL])
    return identity_retrieval(errors)


def test_a_short_demo_sized_run_makes_the_latent_tell_people_apart(tmp_path, monkeypatch):
    world = ensure_demo_world(tmp_path / "world", n_images=12, image_size=64, array_size=64, images_per_identity=1)
    monkeypatch.setattr("varitex.demo_world.world.ensure_demo_world", lambda root=None, **kwargs: world)
    opt = settings.resolve("train", ["--demo", "--device", "cpu", "--path_out", str(tmp_path / "out")]).opt
    L.seed_everything(SEED, verbose=False)
    pipeline = PipelineModule(opt)
    optimizer = pipeline.configure_optimizers()[0]
    train_set = NPYDataset(opt, split="train", augmentation=True)
    people = default_collate([NPYDataset(opt, split="train", augmentation=False)[i] for i in range(len(train_set))])
    before = _retrieval(pipeline, people)

    loader = DataLoader(train_set, batch_size=opt.batch_size, shuffle=True, drop_last=True)
    step = 0
    while step < STEPS:
        for batch in loader:
            pipeline.train()
            loss = pipeline.generator_losses(batch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == STEPS:
                break
    after = _retrieval(pipeline, people)

    print(before, after)
    assert after["chance"] == pytest.approx(1 / len(train_set))
    assert after["top1"] >= 4 * after["chance"] > before["top1"]

"""Identity retrieval (benchmarks/demo_learning_curve.py): which latent reconstructs an image best."""
import pytest
import torch

from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules.metrics import identity_errors, identity_retrieval


def test_top1_counts_images_whose_own_latent_wins_and_person_top1_leaves_it_out():
    errors = torch.tensor([[0.1, 0.2, 0.9, 0.9],    # own latent best; best other: image 1 (same person)
                           [0.3, 0.5, 0.9, 0.9],    # image 0's latent wins (same person)
                           [0.9, 0.1, 0.5, 0.2],    # image 1's latent wins (another person)
                           [0.9, 0.9, 0.1, 0.05]])  # own latent best; best other: image 2 (same person)
    result = identity_retrieval(errors, person=torch.tensor([0, 0, 1, 1]))
    assert result["top1"] == pytest.approx(0.5)
    assert result["chance"] == pytest.approx(0.25)
    assert result["person_top1"] == pytest.approx(0.75)
    assert result["person_chance"] == pytest.approx(1 / 3)
    assert set(identity_retrieval(errors)) == {"top1", "chance"}
    # One image per person: nothing to leave out.
    assert set(identity_retrieval(errors, person=torch.arange(4))) == {"top1", "chance"}


class _ColourGenerator(torch.nn.Module):
    """Draws the flat colour latent[:3] everywhere (a stand-in generator with forward_latent2image)."""

    def forward_latent2image(self, batch):
        uv = batch[DIK.UV_RENDERED]
        colour = batch[DIK.STYLE_LATENT][:, :3, None, None]
        batch[DIK.IMAGE_OUT] = colour.expand(-1, -1, *uv.shape[1:3])
        return batch


def test_identity_errors_render_every_latent_with_every_uv_inside_each_mask():
    colours = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 0.0, 0.0]])
    image = colours[:, :, None, None].expand(-1, -1, 4, 4).clone()
    image[0, :, :2] = 5.0   # outside image 0's mask: must not count
    mask = torch.ones(3, 1, 4, 4)
    mask[0, :, :2] = 0
    uv = torch.zeros(3, 4, 4, 2)
    errors = identity_errors(_ColourGenerator(), colours, uv, image, mask, chunk=4)
    expected = ((colours[:, None] - colours[None, :]) ** 2).mean(-1)
    torch.testing.assert_close(errors, expected)
    assert identity_retrieval(errors)["top1"] == 1.0

"""Identity retrieval (benchmarks/demo_learning_curve.py): which latent reconstructs an image best."""
import itertools

import pytest
import torch

from varitex.data.keys_enum import DataItemKey as DIK
from varitex.modules.metrics import expected_top1, identity_errors, identity_retrieval


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


def test_expected_top1_is_the_mean_top1_over_every_gallery_of_k_people():
    errors = torch.rand(7, 7, generator=torch.Generator().manual_seed(0))
    for k in (1, 3, 7):
        galleries = list(itertools.combinations(range(7), k))
        hits = sum((errors[list(g)][:, list(g)].argmin(1) == torch.arange(k)).sum().item() for g in galleries)
        assert expected_top1(errors, k) == pytest.approx(hits / (len(galleries) * k))
    assert expected_top1(errors, 7) == pytest.approx(identity_retrieval(errors)["top1"])
    assert expected_top1(torch.eye(5) * -1, 3) == 1.0  # every own latent best
    with pytest.raises(ValueError, match="gallery size k=8 must be between 1 and the number of images 7"):
        expected_top1(errors, 8)


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

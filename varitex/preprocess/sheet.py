"""The picture to check before training on a preprocessed folder: per item, the photo, the fitted uv over it,
and the segmentation in colour."""
import numpy as np
from PIL import Image

# Display colours of the CelebAMask-HQ label ids 0..18.
LABEL_COLORS = np.array([
    (0, 0, 0), (230, 180, 150), (250, 120, 60), (200, 200, 200), (40, 120, 255), (0, 200, 255),
    (120, 60, 20), (180, 110, 40), (200, 60, 200), (140, 40, 160), (90, 0, 30), (230, 40, 70),
    (255, 110, 140), (90, 60, 30), (60, 160, 160), (255, 230, 0), (0, 120, 60), (120, 200, 90),
    (70, 90, 170)], dtype=np.uint8)


def uv_overlay(photo, uv, opacity=0.6):
    """(S, S, 3) uint8: ``photo`` with the uv map (u red, v green) blended in where uv != -1."""
    mask = (uv != -1).any(axis=-1)[..., None]
    colour = np.concatenate([(uv + 1) / 2, np.full(uv.shape[:2] + (1,), 0.3)], axis=-1) * 255
    blended = np.where(mask, (1 - opacity) * photo + opacity * colour, photo)
    return blended.astype(np.uint8)


def item_tiles(photo, uv, segmentation, tile=256):
    """The three tiles of one item, side ``tile``: photo, uv overlay, coloured segmentation."""
    size = uv.shape[0]
    photo = np.asarray(Image.fromarray(photo).resize((size, size), Image.Resampling.BILINEAR))
    tiles = [photo, uv_overlay(photo, uv), LABEL_COLORS[np.minimum(segmentation, len(LABEL_COLORS) - 1)]]
    return [np.asarray(Image.fromarray(t).resize((tile, tile), Image.Resampling.BILINEAR)) for t in tiles]


def contact_sheet(dataset_dir, image_dir, n_items=8, tile=256):
    """PIL image: one row per item (the first ``n_items`` rows of the dataset), three tiles per row.

    Args:
        dataset_dir: a preprocessed_dataset folder; image_dir: its images folder.
    """
    uv = np.load(dataset_dir / "uv.npy", mmap_mode="r")
    segmentation = np.load(dataset_dir / "segmentation.npy", mmap_mode="r")
    stems = np.load(dataset_dir / "filename.npy")
    rows = []
    for i in range(min(n_items, len(stems))):
        with Image.open(image_dir / f"{stems[i]}.png") as png:
            photo = np.asarray(png.convert("RGB"))
        rows.append(np.concatenate(item_tiles(photo, np.asarray(uv[i]), np.asarray(segmentation[i]), tile), axis=1))
    return Image.fromarray(np.concatenate(rows, axis=0))

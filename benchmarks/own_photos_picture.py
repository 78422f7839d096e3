"""The picture of the README's "Your own photos": scikit-image's astronaut through varitex-preprocess.

    python benchmarks/own_photos_picture.py [--checkpoint outputs/demo/checkpoints/last.ckpt]
                                            [--picture docs/own_photos.png]

Tiles: the FFHQ-aligned photo, the fitted uv over it, the segmentation (CelebAMask-HQ colours), the uv map
(u red, v green), and, with --checkpoint (e.g. the demo model of ``varitex-train --demo``), that model's
reconstruction of the photo. Uses the embedded demo face model (written to a temporary folder).
"""
import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from varitex.data.synthetic_face_model import build_face_model
from varitex.geometry import save_bfm2017, save_uv_parameterization
from varitex.preprocess import cli
from varitex.preprocess.sheet import item_tiles
from varitex.preprocess.writer import DATASET, IMAGES

TILE = 256


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None, help="a model whose reconstruction is shown as the last tile")
    parser.add_argument("--picture", default=os.path.join("docs", "own_photos.png"))
    args = parser.parse_args(argv)
    from skimage.data import astronaut

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model = build_face_model()
        save_bfm2017(folder / "model.h5", model.mean, model.shape_basis, model.shape_variance, model.expression_basis,
                     model.expression_variance, model.faces)
        save_uv_parameterization(folder / "face12.json", model.verts_uvs, model.faces)
        flags = ["--path_bfm", str(folder / "model.h5"), "--path_uv", str(folder / "face12.json"), "--device", "cpu"]
        Image.fromarray(astronaut()).save(folder / "astronaut.png")
        out = folder / "out"
        cli.main([str(folder / "astronaut.png"), "--output", str(out)] + flags)
        uv = np.load(out / DATASET / "uv.npy")[0]
        segmentation = np.load(out / DATASET / "segmentation.npy")[0]
        photo = np.asarray(Image.open(out / IMAGES / "astronaut.png").convert("RGB"))
        tiles = item_tiles(photo, uv, segmentation, TILE)
        uv_colour = np.concatenate([(uv + 1) / 2, np.full(uv.shape[:2] + (1,), 0.3)], axis=-1)
        uv_colour[(uv == -1).all(-1)] = 0
        tiles.append(np.asarray(Image.fromarray((uv_colour * 255).astype(np.uint8)).resize((TILE, TILE))))
        if args.checkpoint:
            from varitex import inference

            inference.main(["--checkpoint", args.checkpoint, "--dataroot_npy", str(out / DATASET),
                            "--image_folder", str(out / IMAGES), "--path_out", str(folder / "inference"),
                            "--dataset_split", "all", "--mode", "reconstruction", "--num_workers", "0"] + flags)
            output = folder / "inference" / "inference_all" / "reconstruction" / "astronaut.png"
            tiles.append(np.asarray(Image.open(output).convert("RGB").resize((TILE, TILE), Image.Resampling.BILINEAR)))
        Image.fromarray(np.concatenate(tiles, axis=1)).save(args.picture)
    print(f"wrote {args.picture}")


if __name__ == "__main__":
    main()

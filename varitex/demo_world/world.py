"""The embedded demo world: a synthetic face model and dataset in the exact layout of the authors' data.

``generate_demo_world(root)`` writes::

    root/basel_facemodel/model2017-1_face12_nomouth.h5   face model, BFM 2017 HDF5 layout with a mean colour
    root/basel_facemodel/face12.json                     its UV parameterization
    root/FFHQ/preprocessed_dataset/{R,t,s,sp,ep,segmentation,uv,filename}.npy, dataset_splits.npz
    root/FFHQ/images/<stem>.png                           RGB images
    root/demo_world.json                                  manifest: generation parameters and counts

so that ``DP=root FP=root`` points every default option at it (the layout of docs/architecture.md, "A data source"). Each person
(identity) has a shape, a painted albedo, hair, ears and a neck, and is shown in ``images_per_identity``
random poses (yaw within +-30 degrees, some pitch and roll) with random expressions and lighting. Splits
are by identity: the validation people are never seen in training. Everything is deterministic in
``seed``.

Command line: ``varitex-make-demo --root DIR [--n_images N ...]`` or ``python -m varitex.demo_world.world``.
"""
import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from varitex.demo_world import appearance
from varitex.demo_world.face_model import EXPRESSION_NAMES, build_face_model
from varitex.demo_world.render import SceneBatch, Topology, render_scenes
from varitex.geometry import (DEFAULT_S, DEFAULT_T, BFM2017, euler_to_rotation, load_uv_parameterization,
                              save_bfm2017, save_uv_parameterization)
from varitex.safe_io import load_string_array, save_npy

MANIFEST = "demo_world.json"
GENERATOR = "varitex.demo_world.world"
FORMAT_VERSION = 3  # 3: the face model file has a mean colour
BFM_FILE = Path("basel_facemodel", "model2017-1_face12_nomouth.h5")
UV_FILE = Path("basel_facemodel", "face12.json")
ARRAY_DIR = Path("FFHQ", "preprocessed_dataset")
IMAGE_DIR = Path("FFHQ", "images")
ARRAY_NAMES = ("R", "t", "s", "sp", "ep", "segmentation", "uv", "filename")
# One image per person, as FFHQ: the val split is 20 people the model never saw, so "which latent reconstructs
# this image best" asks whether the model tells people apart (benchmarks/demo_learning_curve.py).
DEFAULTS = {"n_images": 200, "image_size": 256, "array_size": 256, "seed": 0, "images_per_identity": 1,
            "val_fraction": 0.1}

# Pose distribution (degrees): yaw dominates, as in FFHQ.
MAX_ANGLES = np.array([20.0, 30.0, 15.0])      # pitch, yaw, roll limits
ANGLE_STD = np.array([8.0, 16.0, 5.0])
# Standard deviation multiplier of the random expression components; the named ones are drawn apart.
EXPRESSION_STD = 0.5
# Scenes rendered at once: 8 at 256 x 256, fewer for larger images (bounds the memory of a batch).
BATCH_PIXELS = 8 * 256 * 256
# Side of the painted texture that the face model file's mean colour is sampled from.
MEAN_COLOR_TEXTURE_SIZE = 128


def default_demo_root():
    """Where the demo world lives by default: ``$VARITEX_CACHE/demo_world`` or ``~/.cache/varitex/demo_world``."""
    cache = os.environ.get("VARITEX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "varitex")
    return Path(cache) / "demo_world"


def _parameters(n_images, image_size, array_size, seed, images_per_identity, val_fraction):
    for name, value, low in (("n_images", n_images, 2), ("image_size", image_size, 16), ("seed", seed, 0),
                             ("array_size", array_size, 16), ("images_per_identity", images_per_identity, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    return {"n_images": int(n_images), "image_size": int(image_size), "array_size": int(array_size),
            "seed": int(seed), "images_per_identity": int(images_per_identity), "val_fraction": float(val_fraction)}


def _splits(identity_of_image, val_fraction):
    """Train/val image indices (int64): the last identities are held out for validation."""
    n_identities = int(identity_of_image.max()) + 1
    if n_identities == 1:
        n_images = len(identity_of_image)
        return np.arange(n_images - 1), np.array([n_images - 1])
    n_val = min(n_identities - 1, max(1, round(val_fraction * n_identities)))
    is_val = identity_of_image >= n_identities - n_val
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


def _sample_expression(rng, variance):
    """(K,) expression: mild random components plus, each with probability 0.35, stronger named ones.

    The jaw only opens (a closed jaw pushes the lower lip through the upper one, as in any linear model).
    """
    std = np.sqrt(variance)
    expression = rng.standard_normal(len(variance)) * std * EXPRESSION_STD
    n_named = len(EXPRESSION_NAMES)
    active = rng.random(n_named) < 0.35
    expression[:n_named] = np.where(active, rng.standard_normal(n_named) * std[:n_named], expression[:n_named] * 0.3)
    jaw = EXPRESSION_NAMES.index("jaw_open")
    expression[jaw] = abs(expression[jaw])
    return expression


def _sample_view(rng, expression_variance):
    """Pose, expression, light and background of one image."""
    light = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.1, 0.8), 1.0])
    background = 0.5 * rng.uniform(0.1, 0.9, (1, 3)) + 0.5 * rng.uniform(0.2, 0.8)
    return {
        "angles": np.clip(rng.standard_normal(3) * ANGLE_STD, -MAX_ANGLES, MAX_ANGLES),
        "t": np.array(DEFAULT_T) + rng.standard_normal(3) * np.array([0.4, 0.4, 1.5]),
        "s": DEFAULT_S * (1.0 + 0.03 * rng.standard_normal(1)),
        "ep": _sample_expression(rng, expression_variance),
        "light_direction": light / np.linalg.norm(light),
        "ambient": rng.uniform(0.3, 0.5),
        "light_color": rng.uniform(0.95, 1.15, 3) * np.array([1.0, 0.98, 0.95]),
        "background": np.clip(background + rng.uniform(-0.15, 0.15, (2, 3)), 0, 1),
    }


def _sample_world(parameters, shape_variance, expression_variance):
    """Every random quantity of the world.

    Identity k and image i draw from their own streams ``(seed, 0, k)`` and ``(seed, 1, i)``, so a world
    with more images (or a larger image size) extends a smaller one with the same seed.
    """
    seed, n_images = parameters["seed"], parameters["n_images"]
    identity_of_image = np.arange(n_images) // parameters["images_per_identity"]
    identities, shapes = [], []
    for k in range(identity_of_image[-1] + 1):
        rng = np.random.default_rng((seed, 0, k))
        identities.append(appearance.sample_identity(rng))
        shapes.append(rng.standard_normal(len(shape_variance)) * np.sqrt(shape_variance))
    views = [_sample_view(np.random.default_rng((seed, 1, i)), expression_variance) for i in range(n_images)]
    world = {name: np.stack([view[name] for view in views]) for name in views[0]}
    world.update(identities=identities, identity_of_image=identity_of_image,
                 sp=np.stack(shapes).astype(np.float32)[identity_of_image],
                 R=euler_to_rotation(torch.from_numpy(world.pop("angles"))).numpy().astype(np.float32))
    for name in ("t", "s", "ep"):
        world[name] = world[name].astype(np.float32)
    return world


class _IdentityAssets:
    """Painted textures and exterior meshes of an identity; the last one is kept (its images are consecutive)."""

    def __init__(self, texture_size):
        self.texture_size = texture_size
        self._cache = {}

    def __call__(self, index, identity):
        if index not in self._cache:
            albedo, labels = appearance.paint_face_texture(identity, self.texture_size)
            exterior, faces, parts = appearance.build_exterior(identity)
            self._cache = {index: (torch.from_numpy(albedo).permute(2, 0, 1),
                                   torch.from_numpy(labels.astype(np.float32))[None],
                                   torch.from_numpy(exterior).float(), torch.from_numpy(faces), parts)}
        return self._cache[index]


def _write_png(path, image):
    Image.fromarray((image.numpy() * 255.0 + 0.5).astype(np.uint8)).save(path, compress_level=1)


def generate_demo_world(root, n_images=200, image_size=256, array_size=256, seed=0, images_per_identity=1,
                        val_fraction=0.1, progress=False):
    """Write a complete synthetic demo world into ``root`` (see the module docstring for the layout).

    Args:
        root: output folder. Existing demo-world files in it are replaced; a folder holding an FFHQ or
            basel_facemodel folder that is not a demo world is refused (ValueError), never overwritten.
        n_images: number of images (>= 2).
        image_size: side of the PNG images (FFHQ: 1024).
        array_size: side of the uv and segmentation arrays (the authors' data: 512).
        seed: random seed (>= 0); the same arguments give the same files. Image i (its person, pose,
            expression and light) does not depend on n_images, so a larger world extends a smaller one.
        images_per_identity: images of each synthetic person (different pose, expression, light).
        val_fraction: share of the identities held out in the ``val`` split (at least one).
        progress: print a progress line per batch to stderr.

    Returns:
        root as a Path.
    """
    parameters = _parameters(n_images, image_size, array_size, seed, images_per_identity, val_fraction)
    root = Path(root)
    _check_replaceable(root)
    start = time.perf_counter()
    staging = root / f".generating-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    threads = torch.get_num_threads()
    # One intra-op thread: the per-batch tensors are small, and on a shared 2-core CPU torch's thread
    # synchronization made rendering 5x slower than a single thread.
    torch.set_num_threads(1)
    try:
        summary = _generate(staging, parameters, progress)
        # Mark the world incomplete while its folders are swapped, so an interrupted swap is redone.
        _write_manifest(root, {"status": "incomplete"})
        for sub in ("FFHQ", "basel_facemodel"):
            shutil.rmtree(root / sub, ignore_errors=True)
            os.replace(staging / sub, root / sub)
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(staging, ignore_errors=True)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    _write_manifest(root, {"status": "complete", "parameters": parameters, **summary})
    return root


def _write_manifest(root, content):
    manifest = {"generator": GENERATOR, "format_version": FORMAT_VERSION, **content}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _read_manifest(root):
    """The manifest dict of a demo world, or None when ``root`` has none (or an unreadable one)."""
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("generator") == GENERATOR else None


def world_parameters(root):
    """The generation parameters of the complete demo world at ``root``, or None when it is not one."""
    manifest = _read_manifest(Path(root))
    if manifest is None or manifest.get("status") != "complete":
        return None
    return manifest["parameters"]


def _check_replaceable(root):
    if _read_manifest(root) is not None:
        return
    for sub in ("FFHQ", "basel_facemodel"):
        if (root / sub).exists():
            raise ValueError(f"{root / sub} exists but {root} is not a demo world (no {MANIFEST}); "
                             "refusing to overwrite it, choose another --root")


def save_demo_face_model(path, model=None):
    """Write the demo face model (``build_face_model()`` unless ``model`` is given) as a Basel Face Model 2017
    file whose mean colour is the average person's albedo (``appearance.mean_identity``); returns the path."""
    model = model if model is not None else build_face_model()
    albedo, _ = appearance.paint_face_texture(appearance.mean_identity(), MEAN_COLOR_TEXTURE_SIZE)
    # Sampled at the vertices' UVs the way render_scenes samples the albedo at the pixels' UVs.
    grid = torch.from_numpy(np.asarray(model.verts_uvs, dtype=np.float32) * 2 - 1)[None, None]      # (1, 1, V, 2)
    mean_color = torch.nn.functional.grid_sample(torch.from_numpy(albedo).permute(2, 0, 1)[None], grid,
                                                 mode="bilinear", padding_mode="border", align_corners=False)
    return save_bfm2017(path, model.mean, model.shape_basis, model.shape_variance, model.expression_basis,
                        model.expression_variance, model.faces, mean_color=mean_color[0, :, 0].T)


def _generate(root, parameters, progress):
    """Write the face model and the dataset into ``root``; returns a summary dict for the manifest."""
    model = build_face_model()
    save_demo_face_model(root / BFM_FILE, model)
    save_uv_parameterization(root / UV_FILE, model.verts_uvs, model.faces)
    # Render from the files as written, so that the stored uv is what BFMUVFactory computes from them.
    bfm = BFM2017(root / BFM_FILE)
    verts_uvs, faces_uvs = load_uv_parameterization(root / UV_FILE)

    world = _sample_world(parameters, bfm.shape_variance.numpy(), bfm.expression_variance.numpy())
    n_images, image_size, array_size = parameters["n_images"], parameters["image_size"], parameters["array_size"]
    array_dir, image_dir = root / ARRAY_DIR, root / IMAGE_DIR
    array_dir.mkdir(parents=True)
    image_dir.mkdir(parents=True)
    uv_out = np.lib.format.open_memmap(array_dir / "uv.npy", mode="w+", dtype=np.float32,
                                       shape=(n_images, array_size, array_size, 2))
    segmentation_out = np.lib.format.open_memmap(array_dir / "segmentation.npy", mode="w+", dtype=np.uint8,
                                                 shape=(n_images, array_size, array_size))
    # Fixed-width unicode, which loads without pickle; the authors' file is an object array of str (which
    # NPYDataset also reads, without unpickling it).
    filenames = np.array([f"{i:05d}" for i in range(n_images)], dtype=str)
    assets = _IdentityAssets(texture_size=min(512, max(128, image_size)))
    topology = _topology(bfm, verts_uvs, faces_uvs, world["identities"][0])

    batch_size = max(1, BATCH_PIXELS // max(image_size, array_size) ** 2)
    for start in range(0, n_images, batch_size):
        index = np.arange(start, min(start + batch_size, n_images))
        scenes = _scene_batch(world, index, bfm, assets)
        rendered = render_scenes(scenes, topology, array_size, with_image=image_size == array_size)
        uv_out[index] = rendered.uv.numpy()
        segmentation_out[index] = rendered.labels.numpy()
        images = rendered.image if rendered.image is not None else render_scenes(scenes, topology, image_size).image
        for i, image in zip(index, images):
            _write_png(image_dir / f"{filenames[i]}.png", image)
        if progress:
            print(f"demo world: {index[-1] + 1}/{n_images} images", file=sys.stderr)
    uv_out.flush()
    segmentation_out.flush()
    del uv_out, segmentation_out

    for name in ("R", "t", "s", "sp", "ep"):
        np.save(array_dir / f"{name}.npy", world[name])
    save_npy(array_dir / "filename.npy", filenames)
    train, val = _splits(world["identity_of_image"], parameters["val_fraction"])
    np.savez(array_dir / "dataset_splits.npz", train=train, val=val)
    return {"n_identities": len(world["identities"]), "n_train": len(train), "n_val": len(val),
            "n_vertices": bfm.n_vertices, "n_faces": bfm.n_faces}


def _topology(bfm, verts_uvs, faces_uvs, identity):
    """Topology of the face model and of the exterior meshes (the same for every identity)."""
    exterior = appearance.build_exterior(identity)
    return Topology(bfm.faces, verts_uvs, faces_uvs, torch.from_numpy(exterior[1]), exterior[2],
                    torch.from_numpy(appearance.exterior_outward_signs(*exterior)).float())


def render_reposed(root, image_indices, theta, ep=None, image_size=None):
    """Images of a demo world re-rendered in requested poses: each image's person, light and background,
    with the pose ``theta`` framed at the default ``t`` and ``s`` (as ``generation.generate`` frames faces).

    These are ground-truth images whose geometry is known exactly: the error floor of anything that
    estimates pose or landmarks from images (the evaluation's geometric consistency).

    Args:
        root: a complete demo world.
        image_indices: (B,) rows of its dataset.
        theta: (B, 3) Euler angles in degrees (pitch, yaw, roll).
        ep: (B, K_expr) expressions, or None for each image's own (its ``ep.npy`` row).
        image_size: side of the renders (default: the world's image size).

    Returns:
        (B, S, S, 3) float32 in [0, 1].

    Raises:
        ValueError: ``root`` is not a complete demo world, or an index is out of range.
    """
    root = Path(root)
    parameters = world_parameters(root)
    if parameters is None:
        raise ValueError(f"{root} is not a complete demo world (no finished {MANIFEST})")
    index = np.asarray(image_indices, dtype=np.int64).reshape(-1)
    if len(index) and (index.min() < 0 or index.max() >= parameters["n_images"]):
        raise ValueError(f"image indices must be in [0, {parameters['n_images']}), got {index.min()}..{index.max()}")
    bfm = BFM2017(root / BFM_FILE)
    verts_uvs, faces_uvs = load_uv_parameterization(root / UV_FILE)
    world = _sample_world(parameters, bfm.shape_variance.numpy(), bfm.expression_variance.numpy())
    n = len(index)
    views = {name: value[index] for name, value in world.items() if name != "identities"}
    views["identities"] = world["identities"]
    views["R"] = euler_to_rotation(torch.as_tensor(theta, dtype=torch.float32).reshape(n, 3)).numpy()
    views["t"] = np.tile(np.asarray(DEFAULT_T, dtype=np.float32), (n, 1))
    views["s"] = np.full((n, 1), DEFAULT_S, dtype=np.float32)
    if ep is not None:
        views["ep"] = np.asarray(ep, dtype=np.float32).reshape(n, -1)
    size = parameters["image_size"] if image_size is None else int(image_size)
    assets = _IdentityAssets(texture_size=min(512, max(128, size)))
    topology = _topology(bfm, verts_uvs, faces_uvs, world["identities"][0])
    batch_size = max(1, BATCH_PIXELS // size ** 2)
    images = [render_scenes(_scene_batch(views, np.arange(start, min(start + batch_size, n)), bfm, assets),
                            topology, size).image for start in range(0, n, batch_size)]
    return torch.cat(images).numpy() if images else np.zeros((0, size, size, 3), np.float32)


def _scene_batch(world, index, bfm, assets):
    """SceneBatch of the images ``index`` (their stored float32 pose and coefficients)."""
    sp, ep = torch.from_numpy(world["sp"][index]), torch.from_numpy(world["ep"][index])
    per_image = [assets(int(world["identity_of_image"][i]), world["identities"][world["identity_of_image"][i]])
                 for i in index]
    as_float = lambda name: torch.from_numpy(np.asarray(world[name][index], dtype=np.float32))  # noqa: E731
    # One image at a time: a batched matrix product may round differently with the batch size, and
    # image i must not depend on its batch (larger worlds extend smaller ones bit for bit).
    face = torch.cat([bfm.generate_vertices(sp[i:i + 1], ep[i:i + 1]) for i in range(len(index))])
    return SceneBatch(
        face=face,
        exterior=torch.stack([asset[2] for asset in per_image]),
        R=as_float("R"), t=as_float("t"), s=as_float("s"),
        albedo=torch.stack([asset[0] for asset in per_image]),
        texture_labels=torch.stack([asset[1] for asset in per_image]),
        identities=[world["identities"][world["identity_of_image"][i]] for i in index],
        light_direction=as_float("light_direction"), ambient=as_float("ambient"),
        light_color=as_float("light_color"), background=as_float("background"))


def contact_sheet(root, indices, display_size=256):
    """A picture of some demo-world samples: images (top row), uv as colour (middle), labels (bottom).

    Args:
        root: a demo world (or any folder in the same layout).
        indices: sample rows to show.
        display_size: side of each tile in pixels.

    Returns:
        PIL.Image (RGB) of 3 x len(indices) tiles. UV colour: red = u, green = v, black background.
    """
    root = Path(root)
    uv = np.load(root / ARRAY_DIR / "uv.npy", mmap_mode="r")
    segmentation = np.load(root / ARRAY_DIR / "segmentation.npy", mmap_mode="r")
    filenames = load_string_array(root / ARRAY_DIR / "filename.npy")
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label, color in appearance.LABEL_COLORS.items():
        palette[label] = color

    def tile(array, resample):
        return np.asarray(Image.fromarray(array).convert("RGB").resize((display_size, display_size), resample))

    columns = []
    for i in indices:
        image = np.asarray(Image.open(root / IMAGE_DIR / f"{filenames[i]}.png").convert("RGB"))
        uv_color = np.concatenate([(uv[i] + 1) / 2, np.full(uv.shape[1:3] + (1,), 0.25)], axis=-1)
        uv_color[(uv[i] == -1).all(axis=-1)] = 0
        columns.append(np.concatenate([tile(image, Image.BILINEAR),
                                       tile((uv_color * 255).astype(np.uint8), Image.NEAREST),
                                       tile(palette[segmentation[i]], Image.NEAREST)], axis=0))
    return Image.fromarray(np.concatenate(columns, axis=1))


def world_is_complete(root, parameters):
    """True when ``root`` holds a finished demo world generated with exactly ``parameters``."""
    root = Path(root)
    manifest = _read_manifest(root)
    if (manifest is None or manifest.get("status") != "complete" or manifest.get("format_version") != FORMAT_VERSION
            or manifest.get("parameters") != parameters):
        return False
    files = [root / BFM_FILE, root / UV_FILE, root / ARRAY_DIR / "dataset_splits.npz"]
    files += [root / ARRAY_DIR / f"{name}.npy" for name in ARRAY_NAMES]
    files += [root / IMAGE_DIR / f"{i:05d}.png" for i in range(parameters["n_images"])]
    return all(path.is_file() for path in files)


def person_of_images(root, indices):
    """The synthetic person shown in each image of a demo world.

    Args:
        root: a complete demo world.
        indices: (N,) image indices (rows of the preprocessed arrays, e.g. a split of dataset_splits.npz).

    Returns:
        (N,) int64 array of person ids (images of one person share the id).

    Raises:
        ValueError: when ``root`` is not a complete demo world.
    """
    manifest = _read_manifest(Path(root))
    if manifest is None or manifest.get("status") != "complete":
        raise ValueError(f"{root} is not a complete demo world (no valid {MANIFEST})")
    return np.asarray(indices, dtype=np.int64) // manifest["parameters"]["images_per_identity"]


def ensure_demo_world(root=None, **kwargs):
    """Return the root of a demo world with the given generation arguments, generating it if needed.

    Args:
        root: folder (default ``default_demo_root()``).
        **kwargs: arguments of ``generate_demo_world`` (n_images, image_size, array_size, seed, ...).

    Returns:
        root as a Path. A complete world with the same parameters (recorded in its manifest) is reused.
    """
    root = Path(root) if root is not None else default_demo_root()
    progress = kwargs.pop("progress", False)
    unknown = set(kwargs) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"ensure_demo_world got unknown arguments {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    parameters = _parameters(**{**DEFAULTS, **kwargs})
    if not world_is_complete(root, parameters):
        generate_demo_world(root, progress=progress, **parameters)
    return root


def main(argv=None):
    """Console entry point ``varitex-make-demo``."""
    parser = argparse.ArgumentParser(
        description="Generate the synthetic VariTex demo world (face model + dataset in the authors' layout).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--root", default=str(default_demo_root()),
                        help="output folder; use it as DP and FP ($VARITEX_CACHE/demo_world by default)")
    parser.add_argument("--n_images", type=int, default=DEFAULTS["n_images"])
    parser.add_argument("--image_size", type=int, default=DEFAULTS["image_size"], help="PNG side (FFHQ: 1024)")
    parser.add_argument("--array_size", type=int, default=DEFAULTS["array_size"],
                        help="uv/segmentation side (the authors' data: 512)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--images_per_identity", type=int, default=DEFAULTS["images_per_identity"])
    parser.add_argument("--val_fraction", type=float, default=DEFAULTS["val_fraction"])
    parser.add_argument("--force", action="store_true", help="regenerate even if an identical world exists")
    parser.add_argument("--contact_sheet", metavar="PNG", help="also save a picture of the first samples here")
    args = parser.parse_args(argv)
    kwargs = {key: getattr(args, key) for key in DEFAULTS}
    start = time.perf_counter()
    try:
        if args.force:
            root = generate_demo_world(args.root, progress=True, **kwargs)
        else:
            root = ensure_demo_world(args.root, progress=True, **kwargs)
    except ValueError as error:
        parser.error(str(error))
    if args.contact_sheet:
        contact_sheet(root, range(min(8, args.n_images))).save(args.contact_sheet)
    print(f"demo world ready at {root} ({time.perf_counter() - start:.1f} s); use DP={root} FP={root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

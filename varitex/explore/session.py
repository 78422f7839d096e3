"""The explorer's state and actions, as plain functions of the library (no web framework here).

    explorer = Explorer(Demo.from_environment())
    scene = explorer.initial_scene()                 # person 0 of the val split, frontal, own shape/expression
    scene = explorer.pick_person(scene, 3)           # identity actions return a new Scene ...
    scene = explorer.set_pose(scene, yaw=30)         # ... and so do geometry actions
    scene = explorer.use_photo(scene, "me.jpg")      # your photo: its identity, shape, expression and pose
    view = explorer.render(scene)                    # View: image, UV render, neural texture (uint8 arrays)

A `Scene` is immutable and holds everything the page shows; every action returns a new one and changes only
the fields it is about. `render` is G(z, sp, ep, theta) of `varitex.generation.generate`, with the neural texture
of each identity decoded once and kept in a `TextureCache` (the texture does not depend on the pose, shape
or expression, so a slider change only re-samples it).

An uploaded photo (`use_photo`, the optional extra ``preprocess``) is preprocessed and inverted as
varitex-preprocess and varitex-invert do (`varitex.explore.photo`); its identity becomes the current one and
its fitted shape, expression and pose the scene's geometry (items PHOTO_ITEM, `Scene.photo`).
"""
import dataclasses
import os
import time
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import torch

from varitex import visualization as vis
from varitex.data.keys_enum import DataItemKey as DIK
from varitex.explore.photo import Photo, PhotoInverter
from varitex.generation import decode_texture, generate
from varitex.options.eval_options import DEFAULT_INVERT_STEPS

N_COMPONENTS = 5             # shape and expression components with a slider each
COMPONENT_RANGE = 3.0        # slider range in units of the component's standard deviation
TEXTURE_CACHE_SIZE = 16      # identities whose decoded texture is kept
MAX_UPLOAD_BYTES = 16 << 20  # an uploaded latents file: 16 MiB is 16k identities of latent_dim 256
MAX_UPLOAD_IDENTITIES = 10000
MAX_PHOTO_STEPS = 500        # refinement steps of an uploaded photo
YAW_SWEEP_FRAMES = 24
YAW_SWEEP_DEG = 45.0         # the sweep goes from -45 to 45 degrees, the range of the authors' inference
SWEEP_CHUNK = 8              # frames rendered per batch when exporting a sweep
NPY_MAGIC = b"\x93NUMPY"
PHOTO_ITEM = -2              # shape_item / expression_item: the uploaded photo's fitted coefficients
PHOTO_TYPES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_PHOTO_PIXELS = 40_000_000  # larger photos are refused before they are decoded


class UploadError(ValueError):
    """An uploaded file was refused (size, type or content); the message names the file and the reason."""


@dataclasses.dataclass(frozen=True, eq=False)
class Identity:
    """A latent code and the distribution it belongs to.

    Fields:
        z:     (latent_dim,) float32 CPU tensor, the code that is rendered.
        mu:    (latent_dim,) the centre that "sample around" draws around (the encoder's mean for a person).
        std:   (latent_dim,) > 0, the spread "sample around" scales (the encoder's std; ones for the prior).
        name:  the distribution, e.g. "val #3" or "prior sample (seed 7)".
        label: what the page calls the code; the name, or e.g. "val #3 ~ 1.5 std (seed 2)" for a sample.
    """
    z: torch.Tensor
    mu: torch.Tensor
    std: torch.Tensor
    name: str
    label: str = ""

    def __post_init__(self):
        if not self.label:
            object.__setattr__(self, "label", self.name)


@dataclasses.dataclass(frozen=True)
class Scene:
    """Everything one picture depends on.

    Fields:
        identity: the Identity rendered.
        slots: (A, B), the two ends of the interpolation.
        uploaded: identities of an uploaded latents file, in file order.
        shape_item / expression_item: index of the split item whose BFM coefficients are the base, -1 the
            mean face (all zeros), PHOTO_ITEM (-2) the uploaded photo's.
        shape_components / expression_components: N_COMPONENTS offsets added to the first coefficients, in
            units of each component's standard deviation (sqrt of the BFM's PCA variance).
        pose: (pitch, yaw, roll) in degrees.
        masked: black out what the generator's segmentation does not call head (SEGMENTATION_PREDICTED <= 0.7).
        photo: the uploaded photo's fitted geometry (`Photo`), or None; its pose is where "reset pose" goes.
    """
    identity: Identity
    slots: tuple
    uploaded: tuple = ()
    shape_item: int = -1
    shape_components: tuple = (0.0,) * N_COMPONENTS
    expression_item: int = -1
    expression_components: tuple = (0.0,) * N_COMPONENTS
    pose: tuple = (0.0, 0.0, 0.0)
    masked: bool = True
    photo: Photo | None = None


class View(NamedTuple):
    """What `Explorer.render` shows, all (H, W, 3) uint8 arrays.

    Fields:
        image: the generated image (H = W = image_h), masked or not as the scene says.
        uv:    the UV render, u -> red, v -> green, background black (image_h x image_h).
        texture: channels 0-2 of the neural texture TEXTURE_PERSON, each stretched to [0, 255]
            (texture_dim x texture_dim).
    """
    image: np.ndarray
    uv: np.ndarray
    texture: np.ndarray


class TextureCache:
    """The decoded neural texture of the most recently used identities (least recently used dropped first).

    Keyed by the latent code's bytes, so equal codes share an entry whoever made them. ``hits`` and ``misses``
    count lookups.
    """

    def __init__(self, decode, capacity=TEXTURE_CACHE_SIZE):
        """decode: z (latent_dim,) -> TEXTURE_PERSON (1, C, T, T); capacity: entries kept (0: none, every
        lookup decodes)."""
        self.decode = decode
        self.capacity = capacity
        self.entries = OrderedDict()
        self.hits = self.misses = 0

    def __call__(self, z):
        key = z.detach().cpu().numpy().astype(np.float32).tobytes()
        if key in self.entries:
            self.hits += 1
            self.entries.move_to_end(key)
            return self.entries[key]
        self.misses += 1
        texture = self.entries[key] = self.decode(z)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
        return texture


def seeded_normal(seed, size):
    """(size,) float32 draws of N(0, 1), the same for the same integer seed on every machine."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(size, generator=generator)


def load_latents_file(path, latent_dim, max_bytes=MAX_UPLOAD_BYTES):
    """Identities of a latents file: (N, 2, latent_dim) mu and std as written by inference, or (N, latent_dim)
    codes (their std is taken as ones, the prior's).

    Raises:
        UploadError: the file is larger than ``max_bytes``, not an .npy file, not readable without pickle, of
            another shape or dtype, holds more than MAX_UPLOAD_IDENTITIES rows, non-finite values or std <= 0.
    """
    name = os.path.basename(path)
    size = os.path.getsize(path)
    if size > max_bytes:
        raise UploadError(f"{name}: {size / 2 ** 20:.1f} MiB is larger than the limit of "
                          f"{max_bytes / 2 ** 20:.0f} MiB for an uploaded latents file")
    if not name.lower().endswith(".npy"):
        raise UploadError(f"{name}: not a .npy file; upload a latents.npy (N, 2, {latent_dim}) as written by "
                          f"varitex-inference, or (N, {latent_dim}) codes")
    with open(path, "rb") as file:
        if file.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise UploadError(f"{name}: not a .npy array (the file does not start with NumPy's magic bytes)")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UploadError(f"{name}: not a readable .npy array ({str(error).splitlines()[0]})") from None
    if array.dtype.kind != "f":
        raise UploadError(f"{name}: expected floating-point values, found dtype {array.dtype}")
    if array.ndim == 2 and array.shape[1] == latent_dim:
        mu, std = array, np.ones_like(array)
    elif array.ndim == 3 and array.shape[1:] == (2, latent_dim):
        mu, std = array[:, 0], array[:, 1]
    else:
        raise UploadError(f"{name}: shape {array.shape} is neither (N, 2, {latent_dim}) nor (N, {latent_dim})")
    if not 1 <= len(mu) <= MAX_UPLOAD_IDENTITIES:
        raise UploadError(f"{name}: holds {len(mu)} identities; 1 to {MAX_UPLOAD_IDENTITIES} are accepted")
    if not (np.isfinite(mu).all() and np.isfinite(std).all() and (std > 0).all()):
        raise UploadError(f"{name}: has non-finite values or a std <= 0")
    mu = torch.as_tensor(np.ascontiguousarray(mu), dtype=torch.float32)
    std = torch.as_tensor(np.ascontiguousarray(std), dtype=torch.float32)
    return tuple(Identity(z=m, mu=m, std=s, name=f"{name} #{i}") for i, (m, s) in enumerate(zip(mu, std)))


def check_photo_file(path: str, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Refuse an uploaded photo before it is decoded.

    Raises:
        UploadError: the file is larger than ``max_bytes``, has no image extension (PHOTO_TYPES), is not an
            image PIL can identify, or has more than MAX_PHOTO_PIXELS pixels.
    """
    from PIL import Image, UnidentifiedImageError

    name = os.path.basename(path)
    size = os.path.getsize(path)
    if size > max_bytes:
        raise UploadError(f"{name}: {size / 2 ** 20:.1f} MiB is larger than the limit of {max_bytes / 2 ** 20:.0f} "
                          f"MiB for an uploaded photo")
    if not name.lower().endswith(PHOTO_TYPES):
        raise UploadError(f"{name}: not a photo; upload an image file ({', '.join(PHOTO_TYPES)})")
    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UploadError(f"{name}: not a readable image ({str(error).splitlines()[0]})") from None
    if width * height > MAX_PHOTO_PIXELS:
        raise UploadError(f"{name}: {width} x {height} pixels is more than the {MAX_PHOTO_PIXELS // 10 ** 6} "
                          f"megapixels accepted for a photo")


class Explorer:
    """A trained model with its split's identities and face-model coefficients; the actions of the page.

    Args:
        demo: a `varitex.demo.Demo` (pipeline, uv_factory, options, data loaders).
        split: the data split whose people, shapes and expressions are offered.
        latents_path: a latents.npy (N, 2, latent_dim) of that split; default ``dataroot_npy/latents.npy``
            when it exists, else each person is encoded from their image when first picked.
        cache_size: identities whose decoded texture is kept.
        landmarker: the FaceLandmarker of `use_photo` (default: loaded with the other preprocessing models on
            the first photo).
    """

    def __init__(self, demo, split="val", latents_path=None, cache_size=TEXTURE_CACHE_SIZE, landmarker=None):
        self.demo = demo
        self.split = split
        self.latent_dim = demo.pipeline.generator.latent_dim
        self.sp_items, self.ep_items = demo.load_shape_expressions(split)
        self.n_people = len(self.sp_items)
        if self.n_people == 0:
            raise ValueError(f"--dataset_split {split}: the split has no items")
        bfm = demo.uv_factory.bfm
        self.shape_std = bfm.shape_variance.sqrt()
        self.expression_std = bfm.expression_variance.sqrt()
        latents_path = latents_path or os.path.join(demo.opt.dataroot_npy, "latents.npy")
        self.latents = None
        if os.path.isfile(latents_path):
            self.latents = demo.load_latents(latents_path)
            if self.latents[0].shape != (self.n_people, self.latent_dim):
                raise ValueError(f"{latents_path}: latents of shape {tuple(self.latents[0].shape)} do not match "
                                 f"the {self.n_people} items of split {split} and latent_dim {self.latent_dim}")
        self._encoded = {}
        self.textures = TextureCache(self._decode, cache_size)
        self.photos = PhotoInverter(demo, landmarker)

    # ----- identity -----------------------------------------------------------------------------------------

    def person(self, index):
        """Identity of person ``index`` of the split: z = mu of their latent distribution.

        From latents.npy when there is one, else their image is encoded now (once per person).
        """
        index = self._check_item(index, "person", allow_mean=False)
        if self.latents is not None:
            mu, std = self.latents[0][index], self.latents[1][index]
        else:
            if index not in self._encoded:
                latents = self.demo.encode_split(self.split, [index])
                self._encoded[index] = latents[0, 0], latents[0, 1]
            mu, std = self._encoded[index]
        return Identity(z=mu, mu=mu, std=std, name=f"{self.split} #{index}")

    def initial_scene(self):
        """Person 0 of the split with their own shape and expression, frontal, masked; slots persons 0 and 1."""
        first = self.person(0)
        return Scene(identity=first, slots=(first, self.person(min(1, self.n_people - 1))),
                     shape_item=0, expression_item=0)

    def pick_person(self, scene, index):
        """Render person ``index`` of the split (identity only; shape, expression and pose stay)."""
        return dataclasses.replace(scene, identity=self.person(index))

    def sample_prior(self, scene, seed):
        """A new identity z ~ N(0, I), the same for the same seed."""
        z = seeded_normal(seed, self.latent_dim)
        return dataclasses.replace(scene, identity=Identity(z=z, mu=z, std=torch.ones_like(z),
                                                            name=f"prior sample (seed {int(seed)})"))

    def sample_around(self, scene, std_multiplier, seed):
        """z = mu + std * std_multiplier * eps around the current identity's distribution (the notebook's
        "neural control"); std_multiplier 0 gives mu itself. The distribution (mu, std) stays."""
        if std_multiplier < 0:
            raise ValueError(f"std multiplier must be >= 0, got {std_multiplier}")
        current = scene.identity
        z = current.mu + current.std * float(std_multiplier) * seeded_normal(seed, self.latent_dim)
        label = f"{current.name} ~ {float(std_multiplier):g} std (seed {int(seed)})"
        return dataclasses.replace(scene, identity=dataclasses.replace(current, z=z, label=label))

    @staticmethod
    def store_slot(scene, slot):
        """Keep the current identity as end ``slot`` (0: A, 1: B) of the interpolation."""
        slots = list(scene.slots)
        slots[slot] = scene.identity
        return dataclasses.replace(scene, slots=tuple(slots))

    @staticmethod
    def interpolate(scene, weight):
        """The identity at ``weight`` in [0, 1] between slot A (0) and slot B (1), with the authors' Gaussian
        weight correction (`varitex.visualization.gaussian_corrected_weight`); mu and std are interpolated
        alike."""
        if not 0 <= weight <= 1:
            raise ValueError(f"interpolation weight must be in [0, 1], got {weight}")
        a, b = scene.slots
        z, mu, std = (vis.interpolate_latents(getattr(a, name), getattr(b, name), weights=[weight])[0]
                      for name in ("z", "mu", "std"))
        name = f"{a.label} -> {b.label} at {float(weight):.2f}"
        return dataclasses.replace(scene, identity=Identity(z=z, mu=mu, std=std, name=name))

    def upload_latents(self, scene, path, max_bytes=MAX_UPLOAD_BYTES):
        """Offer the identities of an uploaded latents file and show its first one.

        Raises:
            UploadError: see `load_latents_file`; the scene is then unchanged (the caller keeps the old one).
        """
        uploaded = load_latents_file(path, self.latent_dim, max_bytes)
        return dataclasses.replace(scene, uploaded=uploaded, identity=uploaded[0])

    @staticmethod
    def pick_uploaded(scene, index):
        """Render identity ``index`` of the uploaded latents file."""
        if not scene.uploaded:
            raise ValueError("no latents file has been uploaded")
        if not 0 <= int(index) < len(scene.uploaded):
            raise ValueError(f"uploaded identity {index} does not exist: the file has 0..{len(scene.uploaded) - 1}")
        return dataclasses.replace(scene, identity=scene.uploaded[int(index)])

    def use_photo(self, scene: Scene, path: str, steps: int = DEFAULT_INVERT_STEPS, max_bytes: int = MAX_UPLOAD_BYTES,
                  work_folder: str | None = None) -> Scene:
        """Your photo: preprocessed and inverted (`varitex.explore.photo.PhotoInverter`), it becomes the scene.

        The identity is the photo's code z (refined for ``steps`` Adam steps from the encoder's mu; sampling
        around it uses the encoder's std); shape and expression are the photo's fitted coefficients (items
        PHOTO_ITEM, component offsets 0), the pose the photo's. The interpolation slots stay.

        Args:
            work_folder: where the photo's preprocessed arrays are written while it is inverted (removed
                afterwards); default: the system's temporary folder.
        Raises:
            UploadError: see `check_photo_file`; the photo gave no usable face ("no face found", ...); the
                preprocessing models are not installed (the message says how to install them).
            ValueError: ``steps`` outside 0..MAX_PHOTO_STEPS.
        """
        if not 0 <= int(steps) <= MAX_PHOTO_STEPS:
            raise ValueError(f"refinement steps must be in 0..{MAX_PHOTO_STEPS}, got {steps}")
        check_photo_file(path, max_bytes)
        try:
            z, std, photo = self.photos.invert(path, int(steps), work_folder)
        except ValueError as error:
            raise UploadError(str(error)) from None
        identity = Identity(z=z, mu=z, std=std, name=f"{photo.name} (your photo, {int(steps)} steps)")
        return dataclasses.replace(scene, identity=identity, photo=photo, shape_item=PHOTO_ITEM,
                                   expression_item=PHOTO_ITEM, shape_components=(0.0,) * N_COMPONENTS,
                                   expression_components=(0.0,) * N_COMPONENTS, pose=photo.pose)

    # ----- geometry -----------------------------------------------------------------------------------------

    @staticmethod
    def set_pose(scene, pitch=None, yaw=None, roll=None):
        """Euler angles in degrees; angles left None keep their value."""
        pose = tuple(float(old if new is None else new) for old, new in zip(scene.pose, (pitch, yaw, roll)))
        return dataclasses.replace(scene, pose=pose)

    def set_shape(self, scene, item=None, components=None):
        """Shape of split item ``item`` (-1: mean shape) plus ``components`` (N_COMPONENTS values in std units);
        None keeps the current value."""
        return self._set_coefficients(scene, "shape", item, components)

    def set_expression(self, scene, item=None, components=None):
        """Expression of split item ``item`` (-1: neutral) plus ``components`` in std units; None keeps."""
        return self._set_coefficients(scene, "expression", item, components)

    @staticmethod
    def reset_pose(scene):
        """Back to the photo's pose when a photo was uploaded, else frontal."""
        return dataclasses.replace(scene, pose=scene.photo.pose if scene.photo else (0.0, 0.0, 0.0))

    @staticmethod
    def reset_shape(scene):
        """Component sliders of the shape back to 0 (the item stays)."""
        return dataclasses.replace(scene, shape_components=(0.0,) * N_COMPONENTS)

    @staticmethod
    def reset_expression(scene):
        """Component sliders of the expression back to 0 (the item stays)."""
        return dataclasses.replace(scene, expression_components=(0.0,) * N_COMPONENTS)

    def _set_coefficients(self, scene, kind, item, components):
        changes = {}
        if item is not None:
            changes[f"{kind}_item"] = self._check_item(item, kind, allow_mean=True, photo=scene.photo)
        if components is not None:
            components = tuple(float(c) for c in components)
            if len(components) != N_COMPONENTS:
                raise ValueError(f"{kind}: expected {N_COMPONENTS} component values, got {len(components)}")
            changes[f"{kind}_components"] = components
        return dataclasses.replace(scene, **changes)

    def _check_item(self, item, what, allow_mean, photo=None):
        item = int(item)
        if item == PHOTO_ITEM and allow_mean and photo is not None:
            return item
        low = -1 if allow_mean else 0
        if not low <= item < self.n_people:
            mean = " or -1 for the mean face" if allow_mean else ""
            mean += f", {PHOTO_ITEM} for your photo" if allow_mean and photo is not None else ""
            raise ValueError(f"{what} {item} is not an item of the {self.split} split "
                             f"(0..{self.n_people - 1}{mean})")
        return item

    def coefficients(self, scene):
        """(sp (K_shape,), ep (K_expr,)) of the scene: the item's coefficients plus the component offsets."""
        photo = scene.photo
        sp = self._coefficients(self.sp_items, scene.shape_item, scene.shape_components, self.shape_std,
                                photo.sp if photo else None)
        ep = self._coefficients(self.ep_items, scene.expression_item, scene.expression_components,
                                self.expression_std, photo.ep if photo else None)
        return sp, ep

    @staticmethod
    def _coefficients(items, item, components, std, photo):
        """items (N, K), the item's index, its N_COMPONENTS offsets in std units, std (K,), the photo's (K,)
        coefficients or None -> (K,)."""
        if item == PHOTO_ITEM:
            base = photo.clone()
        else:
            base = items[item].clone() if item >= 0 else torch.zeros(items.shape[1])
        k = min(N_COMPONENTS, len(base))
        base[:k] += torch.tensor(components[:k]) * std[:k]
        return base

    # ----- view ---------------------------------------------------------------------------------------------

    @staticmethod
    def set_masked(scene, masked):
        """Show the image masked (background black) or as the generator made it."""
        return dataclasses.replace(scene, masked=bool(masked))

    def _decode(self, z):
        return decode_texture(self.demo.pipeline, z)

    def outputs(self, scene, thetas=None):
        """G(z, sp, ep, theta) of the scene with the cached texture: the output dict of `generate` and the
        texture. ``thetas`` (P, 3) renders P poses at once (default: the scene's pose)."""
        z = scene.identity.z
        texture = self.textures(z)
        sp, ep = self.coefficients(scene)
        theta = torch.tensor([scene.pose]) if thetas is None else thetas
        out = generate(self.demo.pipeline, self.demo.uv_factory, z, sp, ep, theta, texture=texture)
        return out, texture

    def render(self, scene):
        """The scene as a View (image, UV render, neural texture)."""
        out, texture = self.outputs(scene)
        image = vis.unnormalize(out[DIK.IMAGE_OUT])
        if scene.masked:
            image = vis.mask_output(image, out[DIK.SEGMENTATION_PREDICTED])
        return View(image=vis.to_uint8(image)[0], uv=vis.to_uint8(vis.uv_to_rgb(out[DIK.UV_RENDERED]))[0],
                    texture=vis.to_uint8(vis.normalize_channels(texture[:, :3]))[0])

    def export_png(self, scene, folder):
        """Write the scene's image as a PNG into ``folder``; returns its path."""
        from PIL import Image

        path = self._export_path(folder, "varitex", ".png")
        Image.fromarray(self.render(scene).image).save(path)
        return path

    def export_yaw_sweep(self, scene, folder, video_format="gif", frames=YAW_SWEEP_FRAMES, fps=12):
        """Write the scene turning from -45 to 45 degrees of yaw (its pitch and roll kept) and back.

        Args:
            video_format: "gif", or "mp4" (needs the imageio-ffmpeg package, else a GIF is written).
        Returns:
            the path written.
        """
        if video_format not in ("gif", "mp4"):
            raise ValueError(f"video format must be gif or mp4, got {video_format!r}")
        pitch, _, roll = scene.pose
        yaws = torch.linspace(-YAW_SWEEP_DEG, YAW_SWEEP_DEG, frames)
        thetas = torch.stack([torch.full_like(yaws, pitch), yaws, torch.full_like(yaws, roll)], 1)
        outputs = []
        for chunk in thetas.split(SWEEP_CHUNK):
            out, _ = self.outputs(scene, chunk)
            outputs.append({key: value.cpu() for key, value in out.items()})
        return self.demo.to_video(outputs, self._export_path(folder, "varitex_yaw", "." + video_format), fps=fps,
                                  reverse=True, mask=scene.masked)

    @staticmethod
    def _export_path(folder, stem, extension):
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}_{time.monotonic_ns() % 10 ** 6:06d}"
                                    f"{extension}")

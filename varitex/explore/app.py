"""The explorer's web page: a Gradio Blocks app that only wires widgets to `varitex.explore.session`.

    serve(explorer, host="127.0.0.1", port=7860)     # blocks until Ctrl-C or SIGTERM

Every callback is an action of `Explorer` followed by `Explorer.render`; a refused action (a bad upload, an
item outside the split) leaves the picture as it was and shows its reason in the page (``#message``).
Slider events are coalesced: while a picture is being made, only the newest slider position waits
(``trigger_mode="always_last"``), so dragging never queues a backlog.

The "Your photo" tab preprocesses and inverts an uploaded photo (`Explorer.use_photo`); the pose, shape and
expression controls then start from the photo's fit. Without the preprocessing models it shows one line
saying how to install them, and the rest of the page works as before.

Safety: the server binds ``host`` (127.0.0.1 unless told otherwise), never opens a public share link, accepts
uploads up to ``max_upload_bytes`` (the page says so when a file is larger, not a latents .npy, not an
image or a photo without a face), keeps uploads, the photos' preprocessed arrays and exports in a temporary
folder that is removed when the server stops, and sends nothing to the internet (no analytics, no version
check, no web fonts).
"""
import os
import signal
import tempfile

from varitex.explore.photo import missing_preprocessing
from varitex.explore.session import (COMPONENT_RANGE, MAX_PHOTO_STEPS, MAX_UPLOAD_BYTES, N_COMPONENTS, PHOTO_ITEM,
                                     PHOTO_TYPES)
from varitex.options.eval_options import DEFAULT_INVERT_STEPS

# Set before gradio is imported: it reads them at import time.
OFFLINE_ENVIRONMENT = {
    "GRADIO_ANALYTICS_ENABLED": "False",   # no usage statistics, no version check
    "HF_HUB_OFFLINE": "1",                 # gradio's hub client stays offline
    "HF_HUB_DISABLE_TELEMETRY": "1",
}
POSE_RANGES = {"pitch": 45, "yaw": 90, "roll": 45}  # slider ranges in degrees
IMAGE_HEIGHT = 320                                   # display size of the pictures, in CSS pixels
# Small pictures (the demo's 64x64) are scaled up to the box, pixels kept sharp.
CSS = """
.picture img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
"""


def caption(explorer, scene):
    """One line of Markdown describing the scene."""
    def item(index, mean):
        if index == PHOTO_ITEM:
            return f"of {scene.photo.name}"
        return mean if index < 0 else f"{explorer.split} #{index}"

    def components(values):
        return "" if not any(values) else " + (" + ", ".join(f"{v:+.1f}" for v in values) + ") std"

    pitch, yaw, roll = scene.pose
    return (f"**{scene.identity.label}** · shape {item(scene.shape_item, 'mean')}"
            f"{components(scene.shape_components)} · expression {item(scene.expression_item, 'neutral')}"
            f"{components(scene.expression_components)} · pitch {pitch:g}°, yaw {yaw:g}°, roll {roll:g}°")


def geometry_values(scene):
    """The geometry widgets' values for a scene: pitch, yaw, roll, shape item, shape components, expression
    item, expression components (the order of `build`'s ``geometry`` widgets)."""
    return (*scene.pose, scene.shape_item, *scene.shape_components, scene.expression_item,
            *scene.expression_components)


def coefficient_controls(gr, kind, item, split, neutral):
    """The widgets of one kind of face-model coefficients ("shape" or "expression"): the item whose
    coefficients are used, a slider per component (in standard deviations) and a reset button."""
    item_box = gr.Number(item, precision=0, elem_id=f"{kind}_item",
                         label=f"{kind} of {split} item (-1: {neutral}, {PHOTO_ITEM}: your photo's)")
    sliders = [gr.Slider(-COMPONENT_RANGE, COMPONENT_RANGE, 0, step=0.1, label=f"{kind} component {k} (std)")
               for k in range(N_COMPONENTS)]
    return item_box, sliders, gr.Button(f"Reset {kind} components")


def build(explorer, export_folder, max_upload_bytes=MAX_UPLOAD_BYTES, photo_folder=None):
    """The page for ``explorer``: a gradio.Blocks, not launched. Exports are written to ``export_folder``, the
    arrays of uploaded photos (while they are inverted) into ``photo_folder`` (default: the system's
    temporary folder)."""
    import gradio as gr

    def shown(scene, message=""):
        view = explorer.render(scene)
        return scene, view.image, view.uv, view.texture, caption(explorer, scene), message

    def acting(action):
        """Callback (scene, *widget values) -> the outputs of `shown`; a refused action keeps the pictures."""
        def callback(scene, *values):
            try:
                return shown(action(scene, *values))
            except ValueError as error:  # UploadError, an item outside the split, ...
                return scene, gr.skip(), gr.skip(), gr.skip(), gr.skip(), f"⚠️ {error}"
        return callback

    def upload(scene, path):
        return explorer.upload_latents(scene, path, max_upload_bytes)

    def with_geometry(action):
        """Callback (scene, *values) -> the outputs of `shown` and the geometry widgets set to the new scene's
        values (left as they are when the action is refused)."""
        def callback(scene, *values):
            result = acting(action)(scene, *values)
            changed = result[0] is not scene
            return (*result, *(geometry_values(result[0]) if changed else [gr.skip()] * len(geometry)))
        return callback

    def use_photo(scene, path, steps):
        return explorer.use_photo(scene, path, steps, max_upload_bytes, photo_folder)

    scene = explorer.initial_scene()
    first = shown(scene)
    with gr.Blocks(title="VariTex explorer", analytics_enabled=False) as page:
        state = gr.State(scene)
        gr.Markdown("# VariTex explorer\nG(z, sp, ep, θ): a latent identity z, face-model shape sp and "
                    "expression ep, and a pose θ.")
        description = gr.Markdown(first[4], elem_id="caption")
        message = gr.Markdown("", elem_id="message")
        with gr.Row():
            with gr.Column(scale=2):
                with gr.Row():
                    image = gr.Image(first[1], label="image", elem_id="image", elem_classes="picture",
                                     height=IMAGE_HEIGHT,
                                     interactive=False, format="png")
                    uv = gr.Image(first[2], label="UV render", elem_id="uv", elem_classes="picture",
                                     height=IMAGE_HEIGHT,
                                  interactive=False, format="png")
                    texture = gr.Image(first[3], label="neural texture (channels 0-2)", elem_id="texture",
                                       elem_classes="picture", height=IMAGE_HEIGHT, interactive=False, format="png")
                masked = gr.Checkbox(scene.masked, label="masked (black where the predicted segmentation "
                                                         "is <= 0.7)", elem_id="masked")
            with gr.Column(scale=1):
                with gr.Tab("Identity"):
                    with gr.Row():
                        person = gr.Number(0, label=f"person of the {explorer.split} split "
                                                    f"(0..{explorer.n_people - 1})", precision=0, elem_id="person")
                        show_person = gr.Button("Show person")
                    with gr.Row():
                        seed = gr.Number(0, label="seed", precision=0, elem_id="seed")
                        prior = gr.Button("Sample from the prior")
                    with gr.Row():
                        spread = gr.Slider(0, 3, 1, step=0.1, label="std multiplier", elem_id="std_multiplier")
                        around = gr.Button("Sample around this identity")
                    with gr.Row():
                        keep_a = gr.Button("Keep as A")
                        keep_b = gr.Button("Keep as B")
                    weight = gr.Slider(0, 1, 0, step=0.05, label="interpolate A -> B (Gaussian-corrected)",
                                       elem_id="weight")
                    latents = gr.File(label=f"latents .npy (N, 2, {explorer.latent_dim}) or "
                                            f"(N, {explorer.latent_dim}), at most "
                                            f"{max_upload_bytes / 2 ** 20:g} MiB",
                                      file_types=[".npy"], type="filepath", elem_id="latents")
                    with gr.Row():
                        uploaded = gr.Number(0, label="uploaded identity", precision=0, elem_id="uploaded")
                        show_uploaded = gr.Button("Show uploaded")
                with gr.Tab("Geometry"):
                    pose = [gr.Slider(-limit, limit, 0, step=1, label=f"{name} (degrees)", elem_id=name)
                            for name, limit in POSE_RANGES.items()]
                    reset_pose = gr.Button("Reset pose")
                    shape_item, shape, reset_shape = coefficient_controls(
                        gr, "shape", scene.shape_item, explorer.split, "mean shape")
                    expression_item, expression, reset_expression = coefficient_controls(
                        gr, "expression", scene.expression_item, explorer.split, "neutral")
                with gr.Tab("Your photo"):
                    missing = missing_preprocessing()
                    if missing:
                        gr.Markdown(f"⚠️ {missing}", elem_id="photo_missing")
                    else:
                        gr.Markdown("A photo with a face: it is preprocessed like `varitex-preprocess` (landmarks, "
                                    "alignment, face-model fit) and inverted like `varitex-invert`; then every "
                                    "control acts on that face, starting from its own shape, expression and pose.")
                        photo_steps = gr.Slider(0, MAX_PHOTO_STEPS, DEFAULT_INVERT_STEPS, step=1,
                                                label="refinement steps (0: the encoder's code)",
                                                elem_id="photo_steps")
                        photo = gr.File(label=f"photo ({', '.join(PHOTO_TYPES)}), at most "
                                              f"{max_upload_bytes / 2 ** 20:g} MiB",
                                        file_types=list(PHOTO_TYPES), type="filepath", elem_id="photo")
                with gr.Tab("Export"):
                    video_format = gr.Radio(["gif", "mp4"], value="gif", label="yaw sweep format")
                    export_sweep = gr.Button("Export yaw sweep (-45° to 45°)")
                    export_png = gr.Button("Export image as PNG")
                    exported = gr.File(label="exported file", interactive=False, elem_id="exported")

        outputs = [state, image, uv, texture, description, message]
        slider_event = dict(trigger_mode="always_last", show_progress="hidden")

        show_person.click(acting(explorer.pick_person), [state, person], outputs)
        prior.click(acting(explorer.sample_prior), [state, seed], outputs)
        around.click(acting(explorer.sample_around), [state, spread, seed], outputs)
        keep_a.click(acting(lambda s: explorer.store_slot(s, 0)), [state], outputs)
        keep_b.click(acting(lambda s: explorer.store_slot(s, 1)), [state], outputs)
        weight.input(acting(explorer.interpolate), [state, weight], outputs, **slider_event)
        # The file widget is emptied after each upload, so that the next file can be dropped on it.
        latents.upload(lambda s, path: (*acting(upload)(s, path), None), [state, latents], outputs + [latents])
        show_uploaded.click(acting(explorer.pick_uploaded), [state, uploaded], outputs)
        masked.input(acting(explorer.set_masked), [state, masked], outputs)

        geometry = [*pose, shape_item, *shape, expression_item, *expression]
        for name, slider in zip(POSE_RANGES, pose):
            # Each slider sets its own angle only: the others keep their exact value (e.g. a photo's pose).
            slider.input(acting(lambda s, angle, name=name: explorer.set_pose(s, **{name: angle})), [state, slider],
                         outputs, **slider_event)
        reset_pose.click(with_geometry(explorer.reset_pose), [state], outputs + geometry)
        for kind, item, sliders, reset in (("shape", shape_item, shape, reset_shape),
                                           ("expression", expression_item, expression, reset_expression)):
            setter = getattr(explorer, f"set_{kind}")
            resetter = acting(getattr(explorer, f"reset_{kind}"))
            change = acting(lambda s, index, *values, setter=setter: setter(s, index, values))
            item.submit(change, [state, item, *sliders], outputs)
            for slider in sliders:
                slider.input(change, [state, item, *sliders], outputs, **slider_event)
            reset.click(lambda s, resetter=resetter: (*resetter(s), *[0] * N_COMPONENTS), [state],
                        outputs + sliders)

        if not missing:
            photo.upload(lambda s, path, steps: (*with_geometry(use_photo)(s, path, steps), None),
                         [state, photo, photo_steps], outputs + geometry + [photo])

        def export(action):
            """Callback (scene, *widget values) -> (the written file, message)."""
            def callback(scene, *args):
                try:
                    return action(scene, export_folder, *args), ""
                except ValueError as error:
                    return gr.skip(), f"⚠️ {error}"
            return callback

        export_sweep.click(export(explorer.export_yaw_sweep), [state, video_format], [exported, message])
        export_png.click(export(explorer.export_png), [state], [exported, message])
    return page


def serve(explorer, host="127.0.0.1", port=7860, max_upload_bytes=MAX_UPLOAD_BYTES):
    """Build the page and serve it until Ctrl-C or SIGTERM; uploads and exports live in a temporary folder
    that is removed when the server stops."""
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ[name] = value
    with tempfile.TemporaryDirectory(prefix="varitex-explore-") as folder:
        os.environ["GRADIO_TEMP_DIR"] = os.path.join(folder, "uploads")
        import gradio as gr

        page = build(explorer, os.path.join(folder, "exports"), max_upload_bytes, os.path.join(folder, "photos"))
        page.queue(default_concurrency_limit=1)
        # SIGTERM ends the server like Ctrl-C, so that the temporary folder is removed.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        page.launch(server_name=host, server_port=port, share=False, max_file_size=max_upload_bytes,
                    ssr_mode=False, mcp_server=False, pwa=False, footer_links=[], quiet=True,
                    theme=gr.themes.Default(font=["sans-serif"], font_mono=["monospace"]),
                    css=CSS, allowed_paths=[folder], prevent_thread_lock=True)
        print(f"varitex-explore: serving on {page.local_url} (uploads and exports in {folder}, removed at "
              f"exit; Ctrl-C to stop)", flush=True)
        page.block_thread()
    print("varitex-explore: stopped, temporary folder removed", flush=True)

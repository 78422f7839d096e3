"""varitex-edit: re-pose, expression transfer, shape swap, interpolation and sampling of one identity.

    varitex-edit --checkpoint CP --dataroot_npy DIR/preprocessed_dataset --identity astronaut \\
        --repose yaw pitch --expression_from 00012 --interpolate_to 00003 --sample 8 --std_multiplier 2
    varitex-edit --demo --dataset_split val --identity 0 --repose yaw

The identity's code comes from --latents (varitex-invert's latents.npy for the rows of --dataset_split,
default ``<path_out>/inversion_<split>/latents.npy``), its shape, expression and pose from the preprocessed
arrays. Every edit changes only what it names (varitex.editing) and renders through
``varitex.generation.generate``. Writes into --output (default ``<path_out>/edits_<identity>``), per edit,
a PNG (one image per variant, side by side) and, unless --video none, a video of the same frames:

    repose_<axis>.png/.mp4   the photo's pose with <axis> from -max_angle to +max_angle
    expression.png/.mp4      the expressions of --expression_from
    shape.png/.mp4           the shapes of --shape_from
    interpolation.png/.mp4   latent interpolation to --interpolate_to (authors' Gaussian correction)
    samples.png/.mp4         codes drawn around the identity with --std_multiplier
"""
from __future__ import annotations

import os
import sys

import numpy as np
import torch

from varitex import editing
from varitex import visualization as vis
from varitex.data.npy_dataset import split_indices
from varitex.generation import uv_factory_from_options
from varitex.latents import LATENTS_FILE, load_latents
from varitex.options import settings
from varitex.options.settings import RunSettings
from varitex.safe_io import load_string_array


def find_row(name: str, stems, option: str) -> int:
    """Position of ``name`` among ``stems``: an exact file stem first, else an integer position.

    Raises:
        ValueError: naming the option, when it is neither.
    """
    matches = np.flatnonzero(np.asarray(stems) == name)
    if len(matches):
        return int(matches[0])
    if name.lstrip("-").isdigit() and -len(stems) <= int(name) < len(stems):
        return int(name) % len(stems)
    shown = ", ".join(map(str, stems[:5])) + (", ..." if len(stems) > 5 else "")
    raise ValueError(f"--{option} {name!r} is neither a file stem nor a row of the {len(stems)} items ({shown})")


def latents_path(opt) -> str:
    """--latents, else where varitex-invert writes them: ``<path_out>/inversion_<split>/latents.npy``."""
    if opt.latents:
        return opt.latents
    if not opt.path_out:
        raise ValueError("--latents is not set: pass the latents.npy of varitex-invert, or --path_out (or $OP) "
                         "where varitex-invert wrote inversion_<dataset_split>/latents.npy")
    return os.path.join(opt.path_out, f"inversion_{opt.dataset_split}", LATENTS_FILE)


def requested_edits(opt, codes: editing.Codes, std: torch.Tensor, z_split: torch.Tensor, stems_all, stems_split,
                    dataroot: str) -> list[tuple[str, editing.Codes]]:
    """(name, variants) for every edit the flags ask for, in the order of the module docstring."""
    edits = []
    angles = torch.linspace(-opt.max_angle, opt.max_angle, opt.n_frames)
    for axis in opt.repose:
        edits.append((f"repose_{axis}", editing.pose_sweep(codes, axis, angles)))
    for option, edit, field in (("expression_from", editing.transfer_expression, "ep"),
                                ("shape_from", editing.swap_shape, "sp")):
        names = getattr(opt, option)
        if names:
            rows = [find_row(name, stems_all, option) for name in names]
            source = editing.dataset_codes(dataroot, rows, torch.zeros(len(rows), codes.z.shape[1]))
            edits.append(("expression" if field == "ep" else "shape", edit(codes, getattr(source, field))))
    if opt.interpolate_to is not None:
        other = find_row(opt.interpolate_to, stems_split, "interpolate_to")
        edits.append(("interpolation", editing.interpolate_identities(codes, z_split[other], opt.n_frames)))
    if opt.sample:
        generator = torch.Generator().manual_seed(opt.seed)
        edits.append(("samples", editing.sample_around(codes, std, opt.sample, opt.std_multiplier, generator)))
    return edits


def edit(run: RunSettings, log=print) -> str:
    """Render every requested edit of ``--identity``; returns the output folder."""
    from varitex.checkpoints import load_pipeline

    opt = run.opt
    if not (opt.repose or opt.expression_from or opt.shape_from or opt.interpolate_to is not None or opt.sample):
        raise ValueError("no edit requested: give at least one of --repose, --expression_from, --shape_from, "
                         "--interpolate_to, --sample")
    dataroot = opt.dataroot_npy
    stems_all = load_string_array(settings.require_file(os.path.join(dataroot, "filename.npy"), "dataroot_npy"),
                                  what="dataset file")
    rows = split_indices(dataroot, opt.dataset_split, len(stems_all))
    mu, std = load_latents(latents_path(opt), opt.latent_dim, rows=len(rows))
    identity = find_row(opt.identity, stems_all[rows], "identity")
    name = stems_all[rows][identity]
    output = settings.ensure_writable_dir(opt.output or os.path.join(opt.path_out, f"edits_{name}"),
                                          "output" if opt.output else "path_out")
    device = torch.device(opt.device)
    pipeline = load_pipeline(opt.checkpoint, opt, checkpoint=run.checkpoint).to(device).eval()
    uv_factory = uv_factory_from_options(opt)
    codes = editing.dataset_codes(dataroot, rows[identity:identity + 1], mu[identity:identity + 1].to(device))
    for edit_name, variants in requested_edits(opt, codes, std[identity], mu, stems_all, stems_all[rows], dataroot):
        images = vis.displayed_output(editing.render(pipeline, uv_factory, variants, opt.batch_size))
        vis.save_png(vis.image_grid(images, nrow=len(images)), os.path.join(output, f"{edit_name}.png"))
        if opt.video != "none":
            vis.write_video(vis.to_uint8(images), os.path.join(output, f"{edit_name}.{opt.video}"), fps=opt.fps)
        log(f"{edit_name}: {len(images)} images")
    return output


def main(argv=None):
    """Console entry point ``varitex-edit``."""
    with settings.user_errors("varitex-edit"):
        run = settings.resolve("edit", argv)
        output = edit(run, log=lambda line: print(line, file=sys.stderr))
    print(f"Results in {output}")


if __name__ == "__main__":
    main()

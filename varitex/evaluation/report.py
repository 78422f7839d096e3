"""The evaluation report: ``evaluation.json`` (every number), ``evaluation.md`` (tables) and the pose-sweep
pictures (requested and re-estimated head axes drawn on each image)."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import torch
from PIL import Image, ImageDraw

from varitex.geometry import euler_to_rotation

TILE = 128                       # pixels per image in the pose-sweep picture
AXIS_LENGTH = 0.28               # of the tile side
REQUESTED_COLOR = (40, 220, 60)  # green: requested head axes
ESTIMATED_COLOR = (235, 40, 40)  # red: re-estimated head axes
NOSE_TIP = 4                     # MediaPipe face-mesh index of the nose tip: where the axes start


def json_safe(value):
    """Nested dicts/lists with numpy scalars and non-finite floats -> plain JSON (inf as the string "inf")."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_json(report, path):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(json_safe(report), handle, indent=2)


def _number(value, digits=2, scale=1.0):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value * scale:.{digits}f}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def geometry_table(rows):
    """Markdown lines of the per-condition geometric consistency rows (pose_consistency.summarize)."""
    return _table(["condition", "detected", "rotation error median / p90 (deg)", "pitch bias", "yaw bias",
                   "landmark NME (%)", "fit error (px)"],
                  [[r["name"], f"{r['detected']}/{r['n']}",
                    f"{_number(r['rotation_error_deg_median'], 1)} / {_number(r['rotation_error_deg_p90'], 1)}",
                    _number(r["pitch_bias_deg"], 1), _number(r["yaw_bias_deg"], 1),
                    _number(r["landmark_nme_median"], 1, 100), _number(r["fit_error_px_median"], 2)] for r in rows])


def markdown(report):
    """evaluation.md content of a report dict (as written to evaluation.json)."""
    lines = [f"# Evaluation of {report['checkpoint']}", "",
             f"Split `{report['dataset_split']}`, {report['n_identities']} identities, image size "
             f"{report['image_size']}, device {report['device']}, {report['seconds']['total']:.0f} s.", ""]
    if report["notes"]:
        lines += ["Not computed:", ""] + [f"- {note}" for note in report["notes"]] + [""]
    reconstruction = report.get("reconstruction")
    if reconstruction:
        lines += ["## Reconstruction", "", f"{reconstruction['n_images']} images; means of per-image values; "
                  "masked = over the head (MASK_FULL).", ""]
        rows = []
        for latent, regions in reconstruction["metrics"].items():
            for region, metrics in regions.items():
                rows.append([latent, region, _number(metrics["psnr"]), _number(metrics["ssim"], 4),
                             _number(metrics.get("lpips"), 4)])
        lines += _table(["latent", "region", "PSNR (dB)", "SSIM", "LPIPS"], rows) + [""]
    geometry = report.get("geometry")
    if geometry:
        lines += ["## Geometric consistency", "",
                  "Each image re-fitted with the own-photos landmark fitter; rotation error = angle between the "
                  "requested and the re-estimated head rotation; bias = mean signed re-estimated minus requested "
                  "angle; NME = landmark error over the outer-eye-corner distance. Ground truth: demo-world "
                  "renders of known geometry through the same measurement (the instrument's floor).", ""]
        overall = [["generated", geometry["generated"]["overall"]]]
        if geometry.get("ground_truth"):
            overall.append(["ground truth (floor)", geometry["ground_truth"]["overall"]])
        lines += geometry_table([{**stats, "name": name} for name, stats in overall]) + [""]
        for title, key in (("Generated, per condition", "generated"), ("Ground truth, per condition", "ground_truth")):
            if geometry.get(key):
                lines += [f"### {title}", ""] + geometry_table(geometry[key]["per_condition"]) + [""]
        for picture in geometry.get("pictures", []):
            lines += [f"![{picture}]({picture})", ""]
        lines += [f"Green: requested head axes; red: re-estimated. {geometry.get('picture_caption', '')}", ""]
    identity = report.get("identity")
    if identity:
        lines += ["## Identity consistency", "",
                  "dlib ResNet descriptors of each render against the same identity's frontal render; "
                  "same person = distance < 0.6.", ""]
        for key in ("generated", "ground_truth"):
            if not identity.get(key):
                continue
            part = identity[key]
            rows = [[r["name"], r["pairs"], _number(r["cosine_similarity"], 3), _number(r["distance"], 3),
                     _number(r["same_person_rate"], 2)] for r in part["per_condition"]]
            other = part["different_identities"]
            rows.append(["different identities (frontal)", other["pairs"], _number(other["cosine_similarity"], 3),
                         _number(other["distance"], 3), _number(other["same_person_rate"], 2)])
            lines += [f"### {key.replace('_', ' ').capitalize()}", ""]
            lines += _table(["condition", "pairs", "cosine similarity", "distance", "same person"], rows) + [""]
    fid = report.get("fid")
    if fid:
        lines += ["## FID", "", f"{fid['value']:.2f} between {fid['n_generated']} prior samples (z ~ N(0, I), the "
                  f"real images' shape, expression and pose) and {fid['n_real']} real images of the split. "
                  "With few images FID is strongly biased upwards: compare runs at equal counts only.", ""]
    return "\n".join(lines)


def _draw_axes(draw, origin, R, color, width):
    """The head's model axes (rows of R, since vertices are posed as v @ R) projected orthographically."""
    for axis in np.asarray(R, dtype=np.float64):
        end = (origin[0] + axis[0] * AXIS_LENGTH * TILE, origin[1] - axis[1] * AXIS_LENGTH * TILE)
        draw.line([tuple(origin), end], fill=color, width=width)


def pose_sweep_picture(images, conditions, theta_fit, requested_landmarks, path):
    """Save a grid of one identity's pose sweep: rows pitch, columns yaw, axes drawn on each image.

    Args:
        images: (P, S, S, 3) uint8, one per condition of the pose grid (own expression);
        conditions: the P Conditions; theta_fit: (P, 3) re-estimated Euler angles, NaN where no face;
        requested_landmarks: (P, 468, 2) pixels of the requested landmarks (axes start at the nose tip).
    """
    pitches = sorted({c.pitch for c in conditions})
    yaws = sorted({c.yaw for c in conditions})
    sheet = Image.new("RGB", (TILE * len(yaws), TILE * len(pitches)), (0, 0, 0))
    scale = TILE / images.shape[1]
    for image, condition, theta, landmarks in zip(images, conditions, theta_fit, requested_landmarks):
        tile = Image.fromarray(image).resize((TILE, TILE), Image.BICUBIC)
        draw = ImageDraw.Draw(tile)
        origin = np.asarray(landmarks[NOSE_TIP], dtype=np.float64) * scale
        _draw_axes(draw, origin, euler_to_rotation(torch.tensor([condition.pitch, condition.yaw, 0.0])), REQUESTED_COLOR, 2)
        if np.isnan(theta).any():
            draw.text((4, TILE - 14), "no face", fill=ESTIMATED_COLOR)
        else:
            _draw_axes(draw, origin, euler_to_rotation(torch.as_tensor(theta)), ESTIMATED_COLOR, 1)
        draw.text((3, 2), f"p{condition.pitch:+.0f} y{condition.yaw:+.0f}", fill=(255, 255, 255))
        sheet.paste(tile, (TILE * yaws.index(condition.yaw), TILE * pitches.index(condition.pitch)))
    sheet.save(path)
    return os.path.basename(path)

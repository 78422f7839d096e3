"""The output folder of ``varitex-preprocess``: resumable per-input work, atomically published arrays.

Layout of ``DIR`` (``--output``)::

    images/<stem>.png                 the aligned photo of each item (--image_folder for training/inference)
    preprocessed_dataset/             the authors' layout (--dataroot_npy):
        R.npy (N,3,3) t.npy (N,3) s.npy (N,1) sp.npy (N,K_shape) ep.npy (N,K_expr)     float32
        uv.npy (N,S,S,2) float32 in [-1,1], background exactly -1
        segmentation.npy (N,S,S) uint8 CelebAMask-HQ label ids
        filename.npy (N,) fixed-width unicode stems (loads without pickle)
        dataset_splits.npz            train, val: int64 row indices
    preprocess_report.json            per input: status, reason, per item reprojection error and fit time
    preprocess_sheet.png              the first items: photo | fitted uv over the photo | segmentation
    .work/                            per-input results (resume); safe to delete once the run is complete

Resume and atomicity: each input's result (its arrays, or its failure reason) is written into
``.work/items/<key>/`` as a whole (a temporary folder renamed into place), so an interrupted run leaves
only complete results behind and a re-run skips them. ``preprocessed_dataset/`` is only ever replaced as a
whole: the arrays are assembled from the work results into memory-mapped files (``open_memmap``, row by
row, never held in memory) in a temporary folder inside ``.work/``, which is renamed into place at the end.
Until then a reader sees the previous complete dataset (or none), never a half-written array.
"""
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

WORK = ".work"
DATASET = "preprocessed_dataset"
IMAGES = "images"
REPORT = "preprocess_report.json"
SHEET = "preprocess_sheet.png"
SETTINGS = "settings.json"
ROW_ARRAYS = ("R", "t", "s", "sp", "ep")      # small per-row arrays, float32


def _atomic_write_bytes(path, write):
    """Write a file through ``write(handle)`` into a temporary name, then rename it into place."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as handle:
        write(handle)
    os.replace(partial, path)


def input_key(path):
    """Work-folder key of an input file: a hash of its absolute path."""
    return hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:20]


def file_signature(path):
    """(size, mtime_ns) of a file: a changed file is preprocessed again."""
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


class OutputFolder:
    """``DIR``: the work results of a run and the published dataset.

    Args:
        root: the output folder (created).
        settings: dict of everything that changes the results; a folder made with other settings is refused
            (ValueError naming the differences), so results of different settings never mix.
    """

    def __init__(self, root, settings):
        self.root = Path(root)
        self.work = self.root / WORK
        self.items = self.work / "items"
        self.items.mkdir(parents=True, exist_ok=True)
        (self.root / IMAGES).mkdir(exist_ok=True)
        stored = self.work / SETTINGS
        if stored.is_file():
            previous = json.loads(stored.read_text(encoding="utf-8"))
            changed = sorted(key for key in set(previous) | set(settings) if previous.get(key) != settings.get(key))
            if changed:
                listing = ", ".join(f"{key}: {previous.get(key)!r} -> {settings.get(key)!r}" for key in changed)
                raise ValueError(f"--output {self.root} holds results made with other settings ({listing}); "
                                 f"use another --output, or delete {self.work} to start over")
        else:
            _atomic_write_bytes(stored, lambda h: h.write(json.dumps(settings, indent=2).encode()))
        # Leftovers of an interrupted run (never read as results): half-written items and datasets.
        for leftover in list(self.items.glob(".*.partial")) + list(self.work.glob(f"{DATASET}.*")):
            shutil.rmtree(leftover, ignore_errors=True)

    # ---- per-input results -----------------------------------------------------------------------------

    def finished(self, path, stem):
        """The stored record (dict) of an input already processed in this folder under ``stem``, or None
        (never processed, changed since, or named differently now)."""
        folder = self.items / input_key(path)
        try:
            record = json.loads((folder / "record.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if record.get("signature") != file_signature(path) or record.get("stem") != stem:
            return None
        return record

    def save(self, result):
        """Store one InputResult (its photos into images/, its arrays and record into the work folder)."""
        faces = result.faces if result.status == "ok" else []
        for face in faces:
            # zlib level 1: a 1024 x 1024 photo in 116 ms instead of 314 ms at the default, 929 KB vs 753 KB.
            _atomic_write_bytes(self.root / IMAGES / f"{face.stem}.png", lambda h, image=face.image:
                                Image.fromarray(image).save(h, format="PNG", compress_level=1))
        record = {
            "path": result.path, "stem": result.stems[0], "signature": file_signature(result.path),
            "status": result.status,
            "reason": result.reason, "seconds": {k: round(v, 4) for k, v in result.seconds.items()},
            "items": [{"stem": face.stem, "reprojection_error_px": round(face.reprojection_error_px, 3),
                       "fit_seconds": round(face.fit_seconds, 4)} for face in faces],
        }
        folder = self.items / input_key(result.path)
        partial = self.items / f".{folder.name}.{os.getpid()}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        if faces:
            arrays = {name: np.stack([getattr(face, name) for face in faces]) for name in
                      ROW_ARRAYS + ("uv", "segmentation")}
            np.savez(partial / "arrays.npz", **arrays)
        (partial / "record.json").write_text(json.dumps(record), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
        return record

    def arrays(self, path):
        """The arrays of a finished input (dict of stacked per-face arrays), read lazily."""
        return np.load(self.items / input_key(path) / "arrays.npz")

    # ---- publication -------------------------------------------------------------------------------------

    def publish(self, records, val_fraction):
        """Assemble ``preprocessed_dataset/`` from the work results of ``records`` (in order) and swap it in.

        Args:
            records: the records of this run's inputs, in input order.
            val_fraction: share of the items in the ``val`` split, chosen by a hash of the stem (stable when
                photos are added), the rest ``train``.

        Returns:
            The number of rows N.
        """
        ok = [record for record in records if record["status"] == "ok" and record["items"]]
        stems = [item["stem"] for record in ok for item in record["items"]]
        n = len(stems)
        staging = self.work / f"{DATASET}.{os.getpid()}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        outputs, row = None, 0
        for record in ok:
            with self.arrays(record["path"]) as stored:
                if outputs is None:
                    outputs = {name: np.lib.format.open_memmap(staging / f"{name}.npy", mode="w+",
                                                               dtype=stored[name].dtype,
                                                               shape=(n,) + stored[name].shape[1:])
                               for name in stored.files}
                count = len(record["items"])
                for name, output in outputs.items():
                    output[row:row + count] = stored[name]
                row += count
        if outputs is None:
            raise ValueError("no input gave a usable face: nothing to publish (see the report)")
        for output in outputs.values():
            output.flush()
        del outputs
        np.save(staging / "filename.npy", np.array(stems, dtype=str), allow_pickle=False)
        train, val = split_by_stem(stems, val_fraction)
        np.savez(staging / "dataset_splits.npz", train=train, val=val)
        target = self.root / DATASET
        previous = self.work / f"{DATASET}.{os.getpid()}.previous"
        if target.exists():
            os.replace(target, previous)
        os.replace(staging, target)
        shutil.rmtree(previous, ignore_errors=True)
        return n

    def write_report(self, records, summary):
        """preprocess_report.json: the summary and one entry per input (written atomically)."""
        report = {"summary": summary, "inputs": [{key: record[key] for key in
                                                   ("path", "status", "reason", "items", "seconds")}
                                                  for record in records]}
        _atomic_write_bytes(self.root / REPORT, lambda h: h.write(json.dumps(report, indent=2).encode()))


def split_by_stem(stems, val_fraction):
    """(train, val) int64 row indices: the round(val_fraction * N) rows whose stems hash lowest are val."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"--val_fraction must be in [0, 1), got {val_fraction}")
    order = sorted(range(len(stems)), key=lambda i: hashlib.sha1(stems[i].encode()).hexdigest())
    n_val = int(round(val_fraction * len(stems)))
    val = np.sort(np.array(order[:n_val], dtype=np.int64))
    train = np.setdiff1d(np.arange(len(stems), dtype=np.int64), val)
    return train, val

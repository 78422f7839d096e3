"""``varitex-preprocess``: photos -> a dataset in the authors' preprocessed layout (see writer.py for the layout).

    varitex-preprocess PHOTOS [MORE ...] --output DIR            # in-the-wild photos: detect, FFHQ-align, fit
    varitex-preprocess FFHQ_PNGS --output DIR --aligned          # already aligned squares: used as they are
    varitex-inference --checkpoint CP --dataroot_npy DIR/preprocessed_dataset --image_folder DIR/images \\
        --dataset_split all                                      # every photo, whatever the split

Each input is converted or reported with its reason (one line, and in DIR/preprocess_report.json); a re-run
of the same command resumes; the arrays are published at the end of the run, atomically.
"""
import argparse
import contextlib
import multiprocessing
import os
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from varitex.geometry.uv_factory import resolve_device
from varitex.options.base_options import env_default, require_path
from varitex.preprocess.pipeline import Preprocessor, Settings
from varitex.preprocess.sheet import contact_sheet
from varitex.preprocess.writer import DATASET, IMAGES, SHEET, OutputFolder

PROGRAM = "varitex-preprocess"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROGRAM, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Preprocess your own photos into the VariTex dataset layout (uv, segmentation, BFM fit).")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    parser.add_argument("--output", required=True, help="output folder DIR (images/, preprocessed_dataset/, report)")
    parser.add_argument("--aligned", action="store_true",
                        help="inputs are FFHQ-aligned squares (e.g. FFHQ itself): no alignment crop")
    parser.add_argument("--all_faces", action="store_true",
                        help="one item per detected face (stems <name>, <name>_1, ...); default: the largest face")
    parser.add_argument("--val_fraction", type=float, default=0.1,
                        help="share of the items in the val split (by a hash of the stem)")
    parser.add_argument("--segmentation_dir", default=None,
                        help="folder of label PNGs <stem>.png (CelebAMask-HQ ids, e.g. from a face parser) used "
                             "instead of the built-in segmentation")
    parser.add_argument("--path_bfm", default=env_default("path_bfm"),
                        help="Basel Face Model 2017 HDF5 ($FP/basel_facemodel/model2017-1_face12_nomouth.h5)")
    parser.add_argument("--path_uv", default=env_default("path_uv"),
                        help="UV parameterization json ($FP/basel_facemodel/face12.json)")
    parser.add_argument("--batch_size", type=int, default=32, help="photos fitted together in one optimizer run")
    parser.add_argument("--device", default="auto", help="device of the fit and the uv renders: auto, cpu, cuda")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes, each preprocessing whole batches (e.g. one per CPU core)")
    parser.add_argument("--image_size", type=int, default=1024, help="side of the aligned photos (FFHQ: 1024)")
    parser.add_argument("--array_size", type=int, default=512, help="side of uv and segmentation (authors: 512)")
    parser.add_argument("--min_face_size", type=int, default=64, help="smallest face (detector box side, px)")
    parser.add_argument("--sheet_items", type=int, default=8, help="items shown in preprocess_sheet.png")
    args = parser.parse_args(argv)
    for name in ("batch_size", "image_size", "array_size", "min_face_size", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not 0.0 <= args.val_fraction < 1.0:
        parser.error(f"--val_fraction must be in [0, 1), got {args.val_fraction}")
    return args


def list_inputs(paths, output):
    """[(file, stem)] of the given files and of every file inside the given folders (recursive, sorted,
    hidden files and the output folder skipped). Stems are file names without extension, made unique in
    input order with ``-2``, ``-3``, ... A path that does not exist raises FileNotFoundError."""
    output = Path(output).resolve()
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                           and output not in p.resolve().parents)
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"input {path} does not exist")
    seen, inputs, resolved = {}, [], set()
    for file in files:
        if file.resolve() in resolved:
            continue  # the same file named twice
        resolved.add(file.resolve())
        stem = file.stem
        seen[stem] = seen.get(stem, 0) + 1
        inputs.append((file, stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"))
    return inputs


def device_for(name):
    """--device: ``auto`` is the GPU when there is one, else the CPU; others as torch names them."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(resolve_device(name))


_worker_preprocessor = None


def _start_worker(settings, device):
    global _worker_preprocessor
    torch.set_num_threads(1)
    _worker_preprocessor = Preprocessor(settings, device=device)


def _run_in_worker(batch):
    return _worker_preprocessor.run_batch(batch)


@contextlib.contextmanager
def _batch_runner(preprocessor, workers, settings, device):
    """A function batches -> iterator of per-batch results, in order: here, or in ``workers`` processes
    (each with its own models; results come back to this process, which alone writes the output)."""
    if workers == 1:
        yield lambda batches: map(preprocessor.run_batch, batches)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker, initargs=(settings, device)) as pool:
        yield lambda batches: pool.imap(_run_in_worker, batches)


def preprocess(args, landmarker=None, log=print):
    """Run the command for parsed ``args``; returns (records in input order, number of published rows)."""
    settings = Settings(path_bfm=str(require_path(args, "path_bfm")), path_uv=str(require_path(args, "path_uv")),
                        aligned=args.aligned, all_faces=args.all_faces, image_size=args.image_size,
                        array_size=args.array_size, min_face_size=args.min_face_size,
                        segmentation_dir=args.segmentation_dir)
    for option in ("path_bfm", "path_uv"):
        if not os.path.isfile(getattr(settings, option)):
            raise FileNotFoundError(f"--{option}: {getattr(settings, option)} does not exist")
    inputs = list_inputs(args.paths, args.output)
    if not inputs:
        raise ValueError(f"no files found in {' '.join(args.paths)}")
    fingerprint = {**vars(settings), "path_bfm": str(Path(settings.path_bfm).resolve()),
                   "path_uv": str(Path(settings.path_uv).resolve())}
    output = OutputFolder(args.output, fingerprint)
    records = {file: output.finished(file, stem) for file, stem in inputs}
    pending = [(file, [stem]) for file, stem in inputs if records[file] is None]
    if len(pending) < len(inputs):
        log(f"{PROGRAM}: resuming: {len(inputs) - len(pending)} of {len(inputs)} inputs already done in {args.output}")
    if pending:
        device = device_for(args.device)
        # Loads the models and derives the face model's correspondence (cached) before any worker starts.
        preprocessor = Preprocessor(settings, device=device, landmarker=landmarker)
        batches = [pending[start:start + args.batch_size] for start in range(0, len(pending), args.batch_size)]
        with tqdm(total=len(pending), desc=PROGRAM, unit="photo", disable=None) as progress, \
                _batch_runner(preprocessor, args.workers, settings, device) as run_batches:
            for results in run_batches(batches):
                for result in results:
                    records[Path(result.path)] = output.save(result)
                    if result.status != "ok":
                        tqdm.write(f"{result.path}: skipped: {result.reason}", file=sys.stderr)
                    progress.update(1)
    ordered = [records[file] for file, _ in inputs]
    n_rows = output.publish(ordered, args.val_fraction)
    dataset, images = Path(args.output) / DATASET, Path(args.output) / IMAGES
    n_failed = sum(record["status"] != "ok" for record in ordered)
    output.write_report(ordered, {"inputs": len(ordered), "items": n_rows, "failed": n_failed})
    contact_sheet(dataset, images, args.sheet_items).save(Path(args.output) / SHEET)
    return ordered, n_rows


def main(argv=None):
    """Console entry point ``varitex-preprocess``."""
    from varitex.cli import user_errors

    args = parse_args(argv)
    start = time.perf_counter()
    with user_errors(PROGRAM):
        records, n_rows = preprocess(args)
    n_failed = sum(record["status"] != "ok" for record in records)
    out = Path(args.output)
    print(f"{PROGRAM}: {n_rows} items from {len(records) - n_failed} of {len(records)} inputs "
          f"({n_failed} skipped, see {out / 'preprocess_report.json'}) in {time.perf_counter() - start:.0f} s\n"
          f"  check {out / SHEET}, then use: --dataroot_npy {out / DATASET} --image_folder {out / IMAGES} "
          f"(inference on every photo: add --dataset_split all)")


if __name__ == "__main__":
    main()

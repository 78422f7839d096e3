#!/usr/bin/env bash
# One command for a short GPU session: the CUDA tests and benchmarks (a)-(e) at full size, in about 8 minutes.
#
#     bash benchmarks/gpu_check.sh                # from the repository root (or anywhere)
#
# Needs a Python with torch (CUDA build) and lightning; the other packages (torchvision, numpy, scipy, h5py,
# pillow, lpips, torchmetrics, tqdm, pytest) are installed with pip when missing, from benchmarks/wheelhouse/
# first if that folder exists (for a machine without access to a package registry, fill it beforehand:
# pip download -d benchmarks/wheelhouse --no-deps lpips h5py ...). The package is used from this checkout.
#
# Writes every JSON line to $OUT/gpu_check.jsonl (when OUT is set) or benchmarks/results/gpu_check-<time>.jsonl,
# the tools' other output to the .log beside it, and prints a summary. Each step gets a time budget; the
# whole run stops starting steps at DEADLINE_S (default 470) seconds. Environment: PYTHON, DEADLINE_S, and
# SMOKE=1 for a dry run of the script on a CPU (every benchmark at its --smoke size).
set -u
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
DEADLINE_S="${DEADLINE_S:-470}"
START=$(date +%s)
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"; RESULTS="$OUT/gpu_check.jsonl"; LOG="$OUT/gpu_check.log"
else
    mkdir -p benchmarks/results; STAMP=$(date +%Y%m%d-%H%M%S)
    RESULTS="benchmarks/results/gpu_check-$STAMP.jsonl"; LOG="benchmarks/results/gpu_check-$STAMP.log"
fi
: > "$RESULTS"; : > "$LOG"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

say() { echo "[gpu_check $(( $(date +%s) - START ))s] $*" | tee -a "$LOG" >&2; }

# ---- environment -------------------------------------------------------------------------------------------
if ! "$PYTHON" -c "import torch, lightning" 2>>"$LOG"; then
    say "MISSING: torch and/or lightning are not importable with $PYTHON; install them (CUDA build of torch) first"
    "$PYTHON" -c "import torch" 2>/dev/null || say "  missing: torch"
    "$PYTHON" -c "import lightning" 2>/dev/null || say "  missing: lightning"
    exit 1
fi
MISSING=$("$PYTHON" - <<'EOF'
import importlib.util
modules = {"torchvision": "torchvision", "numpy": "numpy", "scipy": "scipy", "h5py": "h5py", "PIL": "pillow",
           "lpips": "lpips", "torchmetrics": "torchmetrics", "tqdm": "tqdm", "pytest": "pytest"}
print(" ".join(package for module, package in modules.items() if importlib.util.find_spec(module) is None))
EOF
)
if [ -n "$MISSING" ]; then
    say "missing packages: $MISSING -- installing"
    if [ -d benchmarks/wheelhouse ]; then
        "$PYTHON" -m pip install --quiet --no-index --find-links benchmarks/wheelhouse $MISSING >>"$LOG" 2>&1
    fi
    timeout 120 "$PYTHON" -m pip install --quiet $MISSING >>"$LOG" 2>&1 \
        || say "pip could not install all of: $MISSING (no registry access?); steps that need them will fail"
fi
"$PYTHON" - >>"$RESULTS" 2>>"$LOG" <<'EOF'
import json, os, platform, subprocess
import lightning, torch
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
                      "--format=csv,noheader"], capture_output=True, text=True).stdout.strip() if gpu else None
print(json.dumps({"bench": "environment", "gpu": gpu, "nvidia_smi": smi, "torch": torch.__version__,
                  "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "lightning": lightning.__version__,
                  "python": platform.python_version(), "host_cpus": os.cpu_count(),
                  "bf16_supported": torch.cuda.is_available() and torch.cuda.is_bf16_supported()}))
EOF
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || say "WARNING: no CUDA device visible to torch; the benchmarks run on the CPU and the CUDA tests skip"

# ---- steps -------------------------------------------------------------------------------------------------
# step NAME BUDGET_S COMMAND...: run with a timeout of min(BUDGET_S, time left), JSON lines to RESULTS.
step() {
    local name=$1 budget=$2; shift 2
    local left=$(( DEADLINE_S - ($(date +%s) - START) ))
    if [ "$left" -lt 20 ]; then
        say "skip $name: deadline"; echo "{\"bench\": \"gpu_check_step\", \"step\": \"$name\", \"skipped\": \"deadline\"}" >>"$RESULTS"
        return
    fi
    local limit=$(( budget < left ? budget : left )) t0=$(date +%s)
    say "run $name (limit ${limit}s): $*"
    timeout --signal=INT --kill-after=10 "$limit" "$@" >>"$RESULTS" 2>>"$LOG"
    local rc=$?
    echo "{\"bench\": \"gpu_check_step\", \"step\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 )), \"limit_s\": $limit}" >>"$RESULTS"
    say "done $name: rc=$rc"
}

# The CUDA tests: pytest's report to the log, its summary line as JSON.
cuda_tests() {
    local left=$(( DEADLINE_S - ($(date +%s) - START) )) report rc
    report=$(timeout --signal=INT --kill-after=10 $(( 90 < left ? 90 : left )) \
             "$PYTHON" -m pytest -q -p no:cacheprovider -m cuda -rfEs tests/test_perf_cuda.py 2>&1)
    rc=$?
    echo "$report" >>"$LOG"
    "$PYTHON" -c "import json, sys; print(json.dumps({'bench': 'cuda_tests', 'rc': int(sys.argv[1]), 'summary': sys.argv[2]}))" \
        "$rc" "$(echo "$report" | tail -n 1)" >>"$RESULTS"
    say "CUDA tests: rc=$rc $(echo "$report" | tail -n 1)"
}

B=benchmarks
if [ "${SMOKE:-0}" = 1 ]; then  # a dry run of this script on a CPU: every benchmark at its --smoke size
    TRAIN=(--smoke --threads 1 --configs fp32-reuse); SYNCS=(--smoke --threads 1 --configs fp32-reuse --sync_debug)
    INFER=(--smoke --threads 1); RENDER=(--smoke --threads 1 --devices cpu --batches 1)
    E2E=(--smoke --threads 1); DATA=(--smoke --workers 2)
else
    # (a) the main configurations first, then compiled ones while time is left
    TRAIN=(--deadline_s 80 --configs fp32 fp32-reuse bf16 bf16-reuse bf16-cl bf16-cl-reuse bf16-cl-reuse-compile
           fp32-compile bf16-compile)
    SYNCS=(--configs bf16-cl-reuse --warmup 3 --iterations 5 --sync_debug)
    INFER=(--configs fp32 bf16 bf16-cl bf16-cl-compile); RENDER=(--devices cuda --batches 1 8 32)
    E2E=(--configs bf16-cl-reuse fp32 --iterations 30); DATA=(--workers 4 8 16)
fi
cuda_tests
step train_step    160  "$PYTHON" $B/bm_train_step.py "${TRAIN[@]}"     # (a) G+D step, batch 7, 256x256
step train_syncs    30  "$PYTHON" $B/bm_train_step.py "${SYNCS[@]}"     # (a) implicit host-device syncs
step inference      70  "$PYTHON" $B/bm_inference.py "${INFER[@]}"      # (d) batch 1 and 32
step render         30  "$PYTHON" $B/bm_render.py "${RENDER[@]}"        # (e) BFM-size mesh
step end_to_end     75  "$PYTHON" $B/bm_end_to_end.py "${E2E[@]}"       # (c) data + step, FFHQ-size files
step data           70  "$PYTHON" $B/bm_data.py "${DATA[@]}"            # (b) data pipeline, worker sweep

# ---- summary -----------------------------------------------------------------------------------------------
say "finished in $(( $(date +%s) - START ))s; JSON lines in $RESULTS, log in $LOG"
"$PYTHON" - "$RESULTS" <<'EOF' | tee -a "$LOG"
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
for r in lines:
    b = r.get("bench")
    if b == "environment":
        print(f"GPU: {r['gpu']} | torch {r['torch']} CUDA {r['cuda']} | lightning {r['lightning']} | {r['host_cpus']} CPUs")
    elif b == "cuda_tests":
        print(f"CUDA tests: {r['summary']}")
    elif b == "train_step" and "skipped" not in r:
        print(f"train step {r['config']:>22}: {r['images_per_s']:7.1f} images/s  G {r['g_step_s']*1e3:6.1f} ms"
              f"  D {r['d_step_s']*1e3:6.1f} ms  peak {r['peak_memory_gib']:5.2f} GiB  finite={r['losses_finite']}"
              f"  (authors, H200 fp32: 52 images/s, 11.2 GiB)"
              + (f"  syncs/iteration {r['implicit_syncs_per_iteration']}" if "implicit_syncs_per_iteration" in r else ""))
    elif b == "inference":
        print(f"inference {r['config']:>16} batch {r['batch']:>2}: {r['images_per_s']:8.1f} images/s  peak {r['peak_memory_gib']:.2f} GiB"
              f"  (authors, H200 fp32: 67 / 517 at batch 1 / 32)")
    elif b == "end_to_end":
        print(f"end to end {r['config']:>15}, {r['workers']} workers: {r['images_per_s']:7.1f} images/s (mean "
              f"{r['images_per_s_mean']:.1f}, step only {r['step_only_images_per_s']:.1f}, data wait {r['data_wait_fraction']:.0%})")
    elif b == "dataloader":
        print(f"data loader {r['workers']:>2} workers, cache {r['image_cache']!s:>5}: {r['images_per_s']:7.1f} images/s")
    elif b == "item":
        print(f"data item augmentation {r['augmentation']!s:>5}, cache {r['image_cache']!s:>5}: {r['cpu_ms_per_item']:.1f} CPU ms")
    elif "ms_per_image" in r:
        print(f"render {r['device']} batch {r['batch']:>2}: {r['ms_per_image']:.2f} ms/image")
    elif b == "gpu_check_step" and r.get("rc", 0) != 0:
        print(f"step {r['step']}: rc {r.get('rc')} {r.get('skipped', '')} (124: hit its time limit)")
EOF

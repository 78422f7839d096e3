"""Multi-process training through Lightning's DDP on the CPU: ``varitex-train --devices 2 --strategy ddp``."""
import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import world_flags

TESTS = Path(__file__).resolve().parent
TINY = ["--image_h", "32", "--image_w", "32", "--texture_dim", "128", "--latent_dim", "16", "--nc_feature2image",
        "8", "--feature2image_num_layers", "3", "--nc_discriminator", "8", "--lambda_vgg", "0", "--no_lpips",
        "--batch_size", "2", "--num_workers", "0", "--device", "cpu", "--max_epochs", "1", "--display_freq", "2"]


def test_ddp_with_two_cpu_processes_keeps_the_ranks_identical(tiny_world, tmp_path):
    command = [sys.executable, str(TESTS / "ddp_worker.py"), str(tmp_path), *world_flags(tiny_world, tmp_path / "out"),
               *TINY, "--devices", "2", "--strategy", "ddp"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # 8 training images / (2 processes x batch 2) = 2 batches per rank, a G and a D optimizer step each.
    assert [r["global_step"] for r in ranks] == [4, 4]
    # Gradients are averaged across ranks, so every optimizer step leaves both with the same weights.
    # (BatchNorm statistics are per rank until DDP broadcasts rank 0's at the next forward.)
    assert ranks[0]["parameters"] == ranks[1]["parameters"]
    # Validation ran on different halves of the val split; the logged value is synced (sync_dist).
    assert ranks[0]["val_psnr"] == ranks[1]["val_psnr"] and ranks[0]["val_psnr"] > 0
    # Pictures: rank 0 only, after training batch display_freq=2 and for the validation after it.
    assert [r["image_log_calls"] for r in ranks] == [2, 0]
    assert (tmp_path / "out" / "default" / "checkpoints" / "last.ckpt").is_file()  # written once, by rank 0

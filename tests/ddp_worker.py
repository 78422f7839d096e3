"""Run by tests/test_perf_ddp.py: ``python tests/ddp_worker.py OUT_DIR <varitex-train flags>``.

Lightning's DDP launcher starts this script again for every further rank. Each rank trains through
``varitex.train.train`` and writes OUT_DIR/rank<r>.json: SHA-256 digests of its parameters and buffers, its
synced val/psnr, the global step, and how often it logged images.
"""
import hashlib
import json
import os
import sys

from helpers import narrow_generator
from varitex import callbacks, train
from varitex.options import settings

# Smaller pictures, same code paths (as in tests/test_e2e_train_inference.py), and narrow decoders.
callbacks.POSE_GRID_DEG = (-30, 30)
callbacks.N_INTERPOLATION = 2
callbacks.N_SHOWN = 1


class CountingImageLog(callbacks.ImageLogCallback):
    calls = 0

    def log_batch(self, trainer, pl_module, batch, stage):
        CountingImageLog.calls += 1
        return super().log_batch(trainer, pl_module, batch, stage)


def digest(named_tensors):
    sha = hashlib.sha256()
    for name, tensor in sorted(named_tensors):
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


def main():
    out, argv = sys.argv[1], sys.argv[2:]
    train.ImageLogCallback = CountingImageLog
    run = settings.resolve("train", argv)
    trainer = train.train(run, generator_config=narrow_generator(run.opt))
    model = trainer.lightning_module
    result = {"rank": trainer.global_rank, "world_size": trainer.world_size, "global_step": trainer.global_step,
              "parameters": digest(model.named_parameters()), "buffers": digest(model.named_buffers()),
              "val_psnr": float(trainer.callback_metrics["val/psnr"]), "image_log_calls": CountingImageLog.calls}
    with open(os.path.join(out, f"rank{trainer.global_rank}.json"), "w") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main()

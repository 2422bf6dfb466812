#!/usr/bin/env python3
"""Benchmark: the uint8-input ONNX model against the float one in ONNX Runtime, side by side.

Both are exports of the same stand-in ResNet-50: `pthtar2onnx.py --dynamic` (float32 NCHW input)
and `pthtar2onnx.py --dynamic --uint8-input` (uint8 NHWC input, normalised in the graph). Each
gets the same images in its own input type (uint8 pixels, and those pixels normalised as the
float32 files hold them), in interleaved rounds; the fastest round of each counts. Reported:
images/s of each and their ratio (target: the uint8 model at least as fast), and the largest
logit difference between the two (the in-graph normalisation computes the same float32 inputs).

    python benchmarks/bench_uint8_onnx.py [--batch-sizes 1,8] [--loop 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
from common import report  # benchmarks/common.py, beside this script

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mocoinfer.backends.onnxruntime import ort_session  # noqa: E402
from mocoinfer.export import INPUT_NAME, OUTPUT_NAME  # noqa: E402


def best_rate(sess, batch: np.ndarray, loop: int) -> float:
    """images/s of the fastest of `loop` runs on `batch` (after one warm-up run)."""
    sess.run([OUTPUT_NAME], {INPUT_NAME: batch})
    best = float("inf")
    for _ in range(loop):
        t0 = time.perf_counter()
        sess.run([OUTPUT_NAME], {INPUT_NAME: batch})
        best = min(best, time.perf_counter() - t0)
    return len(batch) / best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", default="1,8")
    p.add_argument("--loop", type=int, default=3, help="timed runs per batch size and round (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds (default: %(default)s)")
    args = p.parse_args()
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    from mocoinfer.demo import make_standin_checkpoint
    from mocoinfer.progress import log
    from mocoinfer.pth2onnx import export_checkpoint
    from mocoinfer.uint8_model import sample_batches

    work = tempfile.mkdtemp(prefix="bench_uint8_onnx_")
    try:
        ckpt = make_standin_checkpoint(os.path.join(work, "model_lincls_best.pth.tar"))
        float_path = os.path.join(work, "float.onnx")
        u8_path = os.path.join(work, "uint8.onnx")
        log.disabled = True  # the --dynamic advice is for the stage's users, not for this benchmark
        try:
            export_checkpoint(ckpt, float_path, dynamic=True, verify=False)
            export_checkpoint(ckpt, u8_path, dynamic=True, verify=False, uint8_input=True)
        finally:
            log.disabled = False
        sessions = {"float32": ort_session(float_path), "uint8": ort_session(u8_path)}
        batches = {bs: dict(zip(("uint8", "float32"), pair)) for bs, pair in zip(sizes, sample_batches(sizes))}
        print(f"cpu cores: {os.cpu_count()}; stand-in ResNet-50; batch sizes {sizes}; "
              f"{args.repeat} interleaved rounds of {args.loop} timed runs")
        best = {(kind, bs): 0.0 for kind in sessions for bs in sizes}
        for _ in range(args.repeat):
            for bs in sizes:
                for kind, sess in sessions.items():
                    best[kind, bs] = max(best[kind, bs], best_rate(sess, batches[bs][kind], args.loop))
        diff = 0.0
        for bs in sizes:
            ref = sessions["float32"].run([OUTPUT_NAME], {INPUT_NAME: batches[bs]["float32"]})[0]
            got = sessions["uint8"].run([OUTPUT_NAME], {INPUT_NAME: batches[bs]["uint8"]})[0]
            diff = max(diff, float(np.abs(ref - got).max()))
            ratio = best["uint8", bs] / best["float32", bs]
            # Printed, not judged: the two differ by noise only, and the exit status never depended on it.
            report(f"batch {bs}: uint8-input / float32-input model, images/s", f"{ratio:.2f}x", ">= 1.0x", None)
            print(f"batch {bs:>3}: float32 input {best['float32', bs]:6.2f} images/s, uint8 input "
                  f"{best['uint8', bs]:6.2f} images/s: {ratio:.2f}x (target >= 1.0)")
        report("max |logit difference|, uint8 vs float32 model", f"{diff:.3g}", "none", None)
        print(f"max |logit difference| uint8 vs float32 model: {diff:.3g}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

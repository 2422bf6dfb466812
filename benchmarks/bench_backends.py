"""Benchmark: ONNX Runtime vs PyTorch eager on ResNet-50, side by side, on this CPU.

Both backends run the same stand-in MoCo-v2 ResNet-50 (the checkpoint for torch, its ONNX export
for onnxruntime) through the runner's pure-inference mode at several batch sizes. Reported: the
best images/s of each, their ratio (target: ONNX Runtime >= 1.3x PyTorch), and ONNX Runtime's
achieved GFLOP/s (8.2 GFLOP per image) as a fraction of this CPU's measured float32 matmul rate.

    .venv/bin/python benchmarks/bench_backends.py [--batch-sizes 1,4,16] [--loop 4]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mocoinfer.runner import run_pure_inference  # noqa: E402

RESNET50_GFLOP = 8.2  # per 224x224 image, multiply and add counted separately
TARGET_RATIO = 1.3


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    """This CPU's float32 matrix-multiply rate, all cores: the best of numpy's BLAS and torch's."""
    import torch

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    best = float("inf")
    for mm in (lambda: a @ b, lambda: torch.mm(ta, tb)):
        mm()
        for _ in range(repeat):
            t0 = time.perf_counter()
            mm()
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", default="1,4,16")
    p.add_argument("--loop", type=int, default=4, help="timed batches per point (after 1 warm-up)")
    args = p.parse_args()
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    from mocoinfer.demo import make_standin_checkpoint
    from mocoinfer.export import export_checkpoint
    from mocoinfer.progress import log

    work = tempfile.mkdtemp(prefix="bench_backends_")
    try:
        ckpt = make_standin_checkpoint(os.path.join(work, "model_lincls_best.pth.tar"))
        onnx_path = os.path.join(work, "moco-v2-dynamic.onnx")
        log.disabled = True  # the --dynamic advice is for the stage's users, not for this benchmark
        export_checkpoint(ckpt, onnx_path, dynamic=True)
        log.disabled = False
        peak = matmul_gflops()
        print(f"cpu cores: {os.cpu_count()}; float32 matmul 2048^3: {peak:.1f} GFLOP/s")
        best = {}
        # Interleaved, so that load from anything else on the machine hits both alike.
        for bs in sizes:
            for name, model in (("onnxruntime", onnx_path), ("torch", ckpt)):
                s = run_pure_inference(model, batch_size=bs, backend=name, pure_data="random", loop=args.loop,
                                       warmup=2)
                rate = s["throughput_images_per_s"]
                print(f"{name:>11} batch {bs:>3}: {rate:6.2f} images/s "
                      f"(mean {s['phases']['compute']['latency_ms']['mean']:.0f} ms per batch)")
                if rate > best.get(name, (0, 0))[0]:
                    best[name] = (rate, bs)
        (ort, ort_bs), (pt, pt_bs) = best["onnxruntime"], best["torch"]
        ratio = ort / pt
        achieved = ort * RESNET50_GFLOP
        print(f"best: onnxruntime {ort:.2f} images/s (batch {ort_bs}), torch {pt:.2f} images/s (batch {pt_bs}); "
              f"ratio {ratio:.2f}x (target >= {TARGET_RATIO}x) [{'ok' if ratio >= TARGET_RATIO else 'BELOW'}]")
        print(f"onnxruntime: {achieved:.1f} GFLOP/s = {achieved / peak:.0%} of this CPU's matmul rate")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(f"peak RSS of this process (both runtimes and ResNet-50 loaded): {rss:.0f} MB")
        return 0 if ratio >= TARGET_RATIO else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: ONNX Runtime vs PyTorch eager on ResNet-50, side by side, on this CPU.

Both backends run the same stand-in MoCo-v2 ResNet-50 (the checkpoint for torch, its ONNX export
for onnxruntime) through the runner's pure-inference mode at several batch sizes. Reported: the
best images/s of each, their ratio (target: ONNX Runtime >= 1.3x PyTorch), and ONNX Runtime's
achieved GFLOP/s (8.2 GFLOP per image) as a fraction of this CPU's measured float32 matmul rate.

    .venv/bin/python benchmarks/bench_backends.py [--batch-sizes 1,4,16] [--loop 4]

With --variants, the reduced-precision variants instead, side by side in one run: int8 ONNX
Runtime (pthtar2onnx.py's quantization, calibrated here on random inputs: speed only) against
float32 ONNX Runtime (target >= 2.5x at the best batch size), and bf16 PyTorch against float32
PyTorch (target >= 2x where the CPU has bfloat16 units; otherwise the ratio is only reported).
Each variant's GFLOP/s is also given as a fraction of this CPU's measured int8 / bf16 matmul rate.

    .venv/bin/python benchmarks/bench_backends.py --variants [--batch-sizes 4,16] [--loop 3]
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
from common import report  # benchmarks/common.py, beside this script

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mocoinfer.runner import run_pure_inference  # noqa: E402

RESNET50_GFLOP = 8.2  # per 224x224 image, multiply and add counted separately
TARGET_RATIO = 1.3
TARGET_INT8 = 2.5
TARGET_BF16 = 2.0


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    """This CPU's float32 matrix-multiply rate, all cores: the best of numpy's BLAS and torch's."""
    import torch

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    return _best_rate([lambda: a @ b, lambda: torch.mm(ta, tb)], n, repeat)


def _best_rate(fns, n: int, repeat: int) -> float:
    best = float("inf")
    for mm in fns:
        mm()
        for _ in range(repeat):
            t0 = time.perf_counter()
            mm()
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def bf16_matmul_gops(n: int = 2048, repeat: int = 5) -> float:
    """This CPU's bfloat16 matrix-multiply rate through torch (oneDNN: AMX / AVX512-BF16 where present)."""
    import torch

    a, b = torch.randn(n, n).bfloat16(), torch.randn(n, n).bfloat16()
    return _best_rate([lambda: torch.mm(a, b)], n, repeat)


def int8_matmul_gops(work: str, n: int = 2048, repeat: int = 5) -> dict:
    """This CPU's int8 matrix-multiply rates: torch's `_int_mm` (where the CPU build has it) and
    ONNX Runtime's MatMulInteger (u8 x s8, the kernel family its quantized convolutions use)."""
    import onnx
    import torch
    from onnx import TensorProto, helper

    from mocoinfer.backends.onnxruntime import ort_session

    rates = {}
    if hasattr(torch, "_int_mm"):
        ta = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        tb = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        try:
            torch._int_mm(ta, tb)
            rates["torch _int_mm"] = _best_rate([lambda: torch._int_mm(ta, tb)], n, repeat)
        except RuntimeError:  # CPU support for _int_mm came later than the function
            pass
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "mm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])],
        [onnx.numpy_helper.from_array(rng.integers(-128, 127, (n, n), dtype=np.int8), "b")])
    path = os.path.join(work, "matmulinteger.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    sess = ort_session(path)
    a = rng.integers(0, 255, (n, n), dtype=np.uint8)
    rates["onnxruntime MatMulInteger"] = _best_rate([lambda: sess.run(None, {"a": a})], n, repeat)
    return rates


def bench_variants(args, work: str) -> int:
    """int8 ORT vs float32 ORT and bf16 torch vs float32 torch, interleaved at each batch size."""
    from mocoinfer.backends.torch import cpu_bf16_units
    from mocoinfer.demo import make_standin_checkpoint
    from mocoinfer.pth2onnx import export_checkpoint
    from mocoinfer.quantize import quantize_int8

    sizes = [int(b) for b in args.batch_sizes.split(",")]
    ckpt = make_standin_checkpoint(os.path.join(work, "model_lincls_best.pth.tar"))
    onnx_path = os.path.join(work, "moco-v2-dynamic.onnx")
    export_checkpoint(ckpt, onnx_path, dynamic=True)
    calib = os.path.join(work, "calib")
    os.makedirs(calib)
    rng = np.random.default_rng(0)
    for i in range(8):
        rng.standard_normal((3, 224, 224)).astype(np.float32).tofile(os.path.join(calib, f"{i}.bin"))
    # Random inputs have no agreement to keep: the floor is off, this measures speed only.
    int8_path = quantize_int8(onnx_path, calib, min_agreement=0.0, min_cosine=-1.0)["output"]
    has_bf16, found = cpu_bf16_units()
    int8_rates = int8_matmul_gops(work)
    peaks = {"fp32": matmul_gflops(), "int8": max(int8_rates.values()), "bf16": bf16_matmul_gops()}
    print(f"cpu cores: {os.cpu_count()}; bfloat16 units: {'yes' if has_bf16 else 'no'} ({found}); matmul 2048^3: "
          + ", ".join(f"{k} {v:.0f} G/s" for k, v in peaks.items())
          + " (int8: the best of " + ", ".join(f"{k} {v:.0f}" for k, v in int8_rates.items()) + ")")
    variants = [("onnxruntime", onnx_path, "onnxruntime", "fp32"),
                ("onnxruntime-int8", int8_path, "onnxruntime", "fp32"), ("torch", ckpt, "torch", "fp32")]
    if has_bf16:
        variants.append(("torch-bf16", ckpt, "torch", "bf16"))
    best = {}
    for bs in sizes:
        for name, model, backend, precision in variants:
            s = run_pure_inference(model, batch_size=bs, backend=backend, pure_data="random", loop=args.loop,
                                   warmup=2, precision=precision)
            rate = s["throughput_images_per_s"]
            print(f"{name:>16} batch {bs:>3}: {rate:6.2f} images/s "
                  f"(mean {s['phases']['compute']['latency_ms']['mean']:.0f} ms per batch)")
            if rate > best.get(name, (0, 0))[0]:
                best[name] = (rate, bs)
    ok = True

    def ratio_line(fast: str, slow: str, target: float, peak_key: str, applies: bool) -> None:
        nonlocal ok
        (f, fbs), (s, sbs) = best[fast], best[slow]
        r = f / s
        verdict = ("ok" if r >= target else "BELOW") if applies else "no target: no bfloat16 units"
        ok = ok and (r >= target or not applies)
        report(f"{fast} / {slow}, best images/s", f"{r:.2f}x", f">= {target}x", (r >= target) if applies else None)
        print(f"{fast} {f:.2f} images/s (batch {fbs}) vs {slow} {s:.2f} (batch {sbs}): {r:.2f}x "
              f"(target >= {target}x) [{verdict}]; {f * RESNET50_GFLOP:.0f} G/s = "
              f"{f * RESNET50_GFLOP / peaks[peak_key]:.0%} of this CPU's {peak_key} matmul rate")

    ratio_line("onnxruntime-int8", "onnxruntime", TARGET_INT8, "int8", True)
    if has_bf16:
        ratio_line("torch-bf16", "torch", TARGET_BF16, "bf16", True)
    else:
        print("torch-bf16: not run, this CPU has no bfloat16 units")
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", default=None, help="default: 1,4,16 (with --variants: 4,16)")
    p.add_argument("--loop", type=int, default=None,
                   help="timed batches per point after 2 warm-up (default: 4; with --variants: 3)")
    p.add_argument("--variants", action="store_true", help="int8 / bf16 variants against float32 (see above)")
    args = p.parse_args()
    if args.variants:
        args.batch_sizes = args.batch_sizes or "4,16"
        args.loop = args.loop or 3
        work = tempfile.mkdtemp(prefix="bench_variants_")
        try:
            return bench_variants(args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    args.batch_sizes = args.batch_sizes or "1,4,16"
    args.loop = args.loop or 4
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    from mocoinfer.demo import make_standin_checkpoint
    from mocoinfer.progress import log
    from mocoinfer.pth2onnx import export_checkpoint

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
        report("onnxruntime / torch, best images/s", f"{ratio:.2f}x", f">= {TARGET_RATIO}x", ratio >= TARGET_RATIO)
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

"""Benchmark: can the runner's host side keep up with an NPU? (run_om_infer.py's pipeline alone)

A zero-cost backend (returns a precomputed 1000-float output per image, no compute) replaces the
model, so what is measured is reading `.bin` files from the page cache, batching, and writing
result files. Targets (issue 18): >= 5,000 images/s with bin results (one 310P card reaches 3,288
in the guide, and a host has up to four) and >= 2,000 images/s with txt results, at batch 1 and
32, on >= 2,000 files, peak memory < 1.5 GB.

    .venv/bin/python benchmarks/bench_runner.py [--images 2400] [--batch-sizes 1,32]

`--uint8` instead times, side by side and interleaved, the same images as float32 files (602,112
bytes) and as uint8 pixel files (150,528 bytes), bin results: uint8 files fed as they are to a
uint8-input model (target >= 2x the float32 files' images/s), and uint8 files normalised on the
host for a float32 model (reported, no target).

    .venv/bin/python benchmarks/bench_runner.py --uint8 [--images 1200] [--batch-sizes 32] [--rounds 2]
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
from common import report, spread_block_groups, wait_racy  # benchmarks/common.py, beside this script

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mocoinfer.backends import Backend  # noqa: E402
from mocoinfer.formats import bin_file_size  # noqa: E402
from mocoinfer.runner import run_inference  # noqa: E402

TARGETS = {"bin": 5000.0, "txt": 2000.0}


UINT8_TARGET = 2.0


class ZeroCost(Backend):
    """The backend interface with no work behind it: a precomputed output, as a device infinitely fast."""

    name = "zero-cost"

    def __init__(self, uint8: bool = False) -> None:
        super().__init__()
        self.input_shape, self.input_dtype, self.batch_size = (3, 224, 224), np.dtype(np.float32), None
        if uint8:  # a uint8-input model (AIPP .om, --uint8-input ONNX): NHWC pixels
            self.input_shape, self.input_dtype = (224, 224, 3), np.dtype(np.uint8)
        self.model_path = "zero-cost"
        self._out = np.random.default_rng(0).standard_normal((1024, 1000)).astype(np.float32)

    def run(self, batch):
        t0 = time.perf_counter()
        out = self._out[: len(batch)]
        self.timing.compute.append(time.perf_counter() - t0)
        return [out]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def _write_inputs(folder: str, n: int, sample: bytes) -> None:
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        path = os.path.join(folder, f"ILSVRC2012_val_{i + 1:08d}.bin")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(sample)
    for name in os.listdir(folder):  # into the page cache
        with open(os.path.join(folder, name), "rb") as f:
            f.read()


def bench_uint8(work: str, images: int, batch_sizes, rounds: int) -> bool:
    """float32 files vs uint8 files (as they are, and normalised on the host), bin results."""
    from mocoinfer.transforms import imagenet_table

    pixels = np.random.default_rng(0).integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    table = imagenet_table()
    floats = np.stack([table[c][pixels[..., c]] for c in range(3)]).astype(np.float32)
    _write_inputs(os.path.join(work, "f32"), images, floats.tobytes())
    _write_inputs(os.path.join(work, "u8"), images, pixels.tobytes())
    wait_racy(os.path.join(work, "f32"))
    wait_racy(os.path.join(work, "u8"))
    print(f"{images} images as float32 files ({floats.nbytes:,} bytes) and as uint8 files ({pixels.nbytes:,} "
          f"bytes), page cache warm; cpu cores: {os.cpu_count()}; {rounds} interleaved rounds, best of each")
    cases = (("float32 files → float32 model", "f32", False), ("uint8 files → uint8 model", "u8", True),
             ("uint8 files → float32 model (host normalisation)", "u8", False))
    ok = True
    for bs in batch_sizes:
        best = {}
        for r in range(rounds):
            for c, (label, folder, uint8) in enumerate(cases):
                out = os.path.join(work, f"result_{bs}_{r}_{c}")  # kept until the end, as in main()
                os.sync()
                s = run_inference("zero-cost", os.path.join(work, folder), out, batch_size=bs, outfmt="bin",
                                  backend=ZeroCost(uint8=uint8), progress=False)
                best[label] = max(best.get(label, 0.0), s["e2e"]["throughput_images_per_s"])
        base = best[cases[0][0]]
        for label, _, _ in cases:
            print(f"batch {bs:>3}, {label:<48} {best[label]:8.0f} images/s = {best[label] / base:.2f}x")
        ratio = best[cases[1][0]] / base
        ok &= ratio >= UINT8_TARGET
        report(f"batch {bs}: uint8 files / float32 files, images/s", f"{ratio:.2f}x", f">= {UINT8_TARGET:.1f}x",
               ratio >= UINT8_TARGET)
        print(f"batch {bs:>3}: uint8 files as they are vs float32 files: {ratio:.2f}x (target >= "
              f"{UINT8_TARGET:.1f}x) [{'ok' if ratio >= UINT8_TARGET else 'BELOW'}]")
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=None, help="default: 2400 (1200 with --uint8)")
    p.add_argument("--batch-sizes", default=None, help="default: 1,32 (32 with --uint8)")
    p.add_argument("--uint8", action="store_true", help="compare uint8 files with float32 files instead")
    p.add_argument("--rounds", type=int, default=2, help="--uint8: interleaved rounds (default: 2)")
    p.add_argument("--dir", help="work folder (default: a temporary one, removed afterwards)")
    p.add_argument("--no-top-dir", action="store_true",
                   help="leave the work folder's block group placement alone (see common.spread_block_groups)")
    args = p.parse_args()
    if args.images is None:
        args.images = 1200 if args.uint8 else 2400
    if args.batch_sizes is None:
        args.batch_sizes = "32" if args.uint8 else "1,32"
    work = args.dir or tempfile.mkdtemp(prefix="bench_runner_")
    os.makedirs(work, exist_ok=True)
    spread = spread_block_groups(work) if not args.no_top_dir else "default block group placement"
    if args.uint8:
        try:
            return 0 if bench_uint8(work, args.images, [int(b) for b in args.batch_sizes.split(",")],
                                    args.rounds) else 1
        finally:
            if not args.dir:
                shutil.rmtree(work, ignore_errors=True)
    try:
        inputs = os.path.join(work, "prep_dataset")
        os.makedirs(inputs, exist_ok=True)
        sample = np.random.default_rng(0).standard_normal(bin_file_size() // 4).astype(np.float32).tobytes()
        for i in range(args.images):
            path = os.path.join(inputs, f"ILSVRC2012_val_{i + 1:08d}.bin")
            if not os.path.exists(path):
                with open(path, "wb") as f:
                    f.write(sample)
        # One pass to make sure every file is in the page cache, as the figure assumes.
        for name in os.listdir(inputs):
            with open(os.path.join(inputs, name), "rb") as f:
                f.read()
        wait_racy(inputs)
        print(f"{args.images} .bin files of {bin_file_size():,} bytes in {inputs} (page cache warm); "
              f"cpu cores: {os.cpu_count()}; peak RSS before runs: {rss_mb():.0f} MB; {spread}")
        ok = True
        for fmt in ("bin", "txt"):
            for bs in (int(b) for b in args.batch_sizes.split(",")):
                out = os.path.join(work, f"result_{fmt}_{bs}")
                # Start each run with no dirty pages (the kernel writing back gigabytes left by an
                # earlier job is not the runner's cost). Result folders stay until the end: deleting
                # thousands of files just before a run slows its file creation (common.spread_block_groups).
                os.sync()
                s = run_inference("zero-cost", inputs, out, batch_size=bs, outfmt=fmt, backend=ZeroCost(),
                                  progress=False)
                rate = s["e2e"]["throughput_images_per_s"]
                ph = s["phases"]
                passed = rate >= TARGETS[fmt]
                ok &= passed
                report(f"{fmt} results, batch {bs}: e2e images/s", f"{rate:.0f}", f">= {TARGETS[fmt]:.0f}", passed)
                print(f"{fmt} results, batch {bs:>3}: e2e {rate:8.0f} images/s = {rate / TARGETS[fmt]:.2f}x the "
                      f"{TARGETS[fmt]:.0f}/s target [{'ok' if passed else 'BELOW'}] (reader "
                      f"{ph['preprocess']['throughput_images_per_s']:.0f}/s, writer "
                      f"{ph['write']['throughput_images_per_s']:.0f}/s busy rates)")
        peak = rss_mb()
        report("peak RSS", f"{peak:.0f} MB", "< 1500 MB", peak < 1500)
        print(f"peak RSS of the whole benchmark process: {peak:.0f} MB (limit 1500 MB) "
              f"[{'ok' if peak < 1500 else 'ABOVE'}]")
        return 0 if ok and peak < 1500 else 1
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

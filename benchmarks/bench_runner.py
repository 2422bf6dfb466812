"""Benchmark: can the runner's host side keep up with an NPU? (run_om_infer.py's pipeline alone)

A zero-cost backend (returns a precomputed 1000-float output per image, no compute) replaces the
model, so what is measured is reading `.bin` files from the page cache, batching, and writing
result files. Targets from the issue: >= 3,300 images/s with bin results (the 310P's best figure
in the guide) and >= 1,000 images/s with txt results, on >= 2,000 files, peak memory < 1.5 GB.

    .venv/bin/python benchmarks/bench_runner.py [--images 2400] [--batch-sizes 1,32]
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

from mocoinfer.backends import Backend  # noqa: E402
from mocoinfer.formats import bin_file_size  # noqa: E402
from mocoinfer.runner import run_inference  # noqa: E402

TARGETS = {"bin": 3300.0, "txt": 1000.0}


class ZeroCost(Backend):
    """The backend interface with no work behind it: a precomputed output, as a device infinitely fast."""

    name = "zero-cost"

    def __init__(self) -> None:
        super().__init__()
        self.input_shape, self.input_dtype, self.batch_size = (3, 224, 224), np.dtype(np.float32), None
        self.model_path = "zero-cost"
        self._out = np.random.default_rng(0).standard_normal((1024, 1000)).astype(np.float32)

    def run(self, batch):
        t0 = time.perf_counter()
        out = self._out[: len(batch)]
        self.timing.compute.append(time.perf_counter() - t0)
        return [out]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2400)
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--dir", help="work folder (default: a temporary one, removed afterwards)")
    args = p.parse_args()
    work = args.dir or tempfile.mkdtemp(prefix="bench_runner_")
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
        print(f"{args.images} .bin files of {bin_file_size():,} bytes in {inputs} (page cache warm); "
              f"cpu cores: {os.cpu_count()}; peak RSS before runs: {rss_mb():.0f} MB")
        ok = True
        for fmt in ("bin", "txt"):
            for bs in (int(b) for b in args.batch_sizes.split(",")):
                out = os.path.join(work, f"result_{fmt}_{bs}")
                # Start each run with no dirty pages: on this VM, file creation slows ~4x while the
                # kernel writes back gigabytes left by an earlier job, which is not the runner's cost.
                os.sync()
                s = run_inference("zero-cost", inputs, out, batch_size=bs, outfmt=fmt, backend=ZeroCost(),
                                  progress=False)
                rate = s["e2e"]["throughput_images_per_s"]
                ph = s["phases"]
                passed = rate >= TARGETS[fmt]
                ok &= passed
                print(f"{fmt} results, batch {bs:>3}: e2e {rate:8.0f} images/s = {rate / TARGETS[fmt]:.2f}x the "
                      f"{TARGETS[fmt]:.0f}/s target [{'ok' if passed else 'BELOW'}] (reader "
                      f"{ph['preprocess']['throughput_images_per_s']:.0f}/s, writer "
                      f"{ph['write']['throughput_images_per_s']:.0f}/s busy rates)")
                shutil.rmtree(out)
        peak = rss_mb()
        print(f"peak RSS of the whole benchmark process: {peak:.0f} MB (limit 1500 MB) "
              f"[{'ok' if peak < 1500 else 'ABOVE'}]")
        return 0 if ok and peak < 1500 else 1
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: how long a rerun takes to prove 50,000 finished results (issue 18: under 2 s).

A run of N inputs with a zero-cost backend writes N results; the same command again finds every
result proven by its manifest and runs nothing. What is timed is that second command's whole
call (listing and checking the inputs, reading the manifest, proving each input and result,
writing the manifest back), and within it the proof (`ResultFolder.plan`), the figure judged.
Proofs are by stat, as git's: the inputs here are small, since a stat costs the same whatever
the file's size, while a proof by hash reads every byte (50,000 ImageNet inputs are 30 GB;
`--floats 150528` makes them the guide's 602,112-byte files). `--root` runs another checkout's
package on the same files, for a before/after in one run.

    .venv/bin/python benchmarks/bench_resume.py [--images 50000] [--root OTHER_CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET_S = 2.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=50_000)
    p.add_argument("--floats", type=int, default=4,
                   help="float32 values per input (150528 for the guide's 602,112-byte files; default 4)")
    p.add_argument("--root", default=os.path.dirname(HERE), help="the checkout whose package is timed")
    p.add_argument("--dir", help="work folder (default: a temporary one, removed afterwards)")
    args = p.parse_args()
    sys.path.insert(0, os.path.abspath(args.root))
    sys.path.insert(1, HERE)
    from common import report

    from mocoinfer import resume
    from mocoinfer.backends import Backend
    from mocoinfer.runner import run_inference

    # The proof itself is ResultFolder.plan (the manifest read, every entry proven, the plan):
    # timed on its own beside the whole command.
    plan_seconds = []
    real_plan = resume.ResultFolder.plan

    def timed_plan(self, *a, **k):
        t0 = time.perf_counter()
        try:
            return real_plan(self, *a, **k)
        finally:
            plan_seconds.append(time.perf_counter() - t0)

    resume.ResultFolder.plan = timed_plan

    floats = args.floats

    class ZeroCost(Backend):
        """A `--floats` input, a precomputed 10-float output: the proof is all there is to time."""

        name = "zero-cost"

        def __init__(self) -> None:
            super().__init__()
            self.input_shape, self.input_dtype, self.batch_size = (floats,), np.dtype(np.float32), None
            self.model_path = "zero-cost"
            self._out = np.zeros((256, 10), dtype=np.float32)

        def run(self, batch):
            self.timing.compute.append(0.0)
            return [self._out[: len(batch)]]

    work = args.dir or tempfile.mkdtemp(prefix="bench_resume_")
    try:
        inputs = os.path.join(work, "prep_dataset")
        os.makedirs(inputs, exist_ok=True)
        sample = np.arange(floats, dtype=np.float32).tobytes()
        for i in range(args.images):
            with open(os.path.join(inputs, f"ILSVRC2012_val_{i + 1:08d}.bin"), "wb") as f:
                f.write(sample)
        time.sleep(2.1)  # older than the racy window: proven by stat alone, as files of an earlier day are
        out = os.path.join(work, "result")
        t0 = time.perf_counter()
        run_inference("zero-cost", inputs, out, backend=ZeroCost(), batch_size=32, outfmt="bin", progress=False)
        first = time.perf_counter() - t0
        time.sleep(2.1)
        t0 = time.perf_counter()
        s = run_inference("zero-cost", inputs, out, backend=ZeroCost(), batch_size=32, outfmt="bin",
                          progress=False, resume=True)  # reuse on purpose (a plain rerun measures again)
        rerun = time.perf_counter() - t0
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    proof = plan_seconds[-1]
    ok = s.get("nothing_to_do") is True and proof < TARGET_S
    print(f"{args.images} inputs of {floats * 4:,} bytes ({args.root}): first run {first:.2f} s; "
          f"the rerun {rerun:.2f} s, of which the proof of every result {proof:.2f} s (target < {TARGET_S:.0f} s) "
          f"[{'ok' if ok else 'BELOW'}]; skipped {s.get('skipped')}")
    report(f"proof of {args.images} results on a rerun, s", f"{proof:.2f}", f"< {TARGET_S:.0f}", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Run every benchmark, then print one table: benchmark / figure / target / status (`make bench`).

Each script runs as its own process, exactly as `python benchmarks/bench_x.py` runs it, and
prints what it always prints. Where a benchmark judges a figure it calls `common.report`, which
appends a JSON line to the file named by MOCOINFER_BENCH_REPORT (one file per benchmark, set
here). When all have run, the table lists every reported figure with its status:

- met / not met: the benchmark's own verdict against its target (the one its exit status
  follows when it runs alone);
- reported: a figure the benchmark prints without a verdict (no target, or a target it prints
  but does not judge);
- failed: the benchmark exited non-zero without reporting a figure that missed (a crash, a
  wrong output, a signal), or exited 0 having reported nothing that can be judged.

The exit status is 1 if any figure was not met or any benchmark failed, else 0; either way only
after every benchmark has run. Ctrl-C stops the run, prints the table so far and exits 130.

    .venv/bin/python benchmarks/run_all.py                 # every benchmarks/bench_*.py
    .venv/bin/python benchmarks/run_all.py benchmarks/bench_devices.py
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import List, NamedTuple, Optional

from common import REPORT_ENV  # benchmarks/common.py, beside this script

HERE = os.path.dirname(os.path.abspath(__file__))
STATUS = {True: "met", False: "not met", None: "reported"}


class Row(NamedTuple):
    benchmark: str
    name: str
    figure: str
    target: str
    status: str


def run_one(script: str, python: str) -> List[Row]:
    """Run `script` with `python`, its output going where ours goes; its rows for the table."""
    bench = os.path.basename(script)
    print(f"== {bench}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_report_") as tmp:
        path = os.path.join(tmp, "report.jsonl")
        start = time.perf_counter()
        try:
            code = subprocess.run([python, script], env=dict(os.environ, **{REPORT_ENV: path})).returncode
        except KeyboardInterrupt:
            rows = _read(path, bench)
            raise Interrupted(rows + [Row(bench, "-", "-", "-", "failed (interrupted)")]) from None
        seconds = time.perf_counter() - start
        rows = _read(path, bench)
    print(f"== {bench}: exit {code} in {seconds:.1f} s", flush=True)
    return rows + _failure(bench, code, rows)


def _read(path: str, bench: str) -> List[Row]:
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:  # the benchmark reported nothing
        return rows
    for line in lines:
        try:
            r = json.loads(line)
            rows.append(Row(bench, str(r["name"]), str(r["figure"]), str(r["target"]), STATUS[r["met"]]))
        except (ValueError, KeyError, TypeError):  # a line cut short by a crash: say so, go on
            rows.append(Row(bench, "-", "-", "-", f"failed (unreadable report line: {line[:60]!r})"))
    return rows


def _failure(bench: str, code: int, rows: List[Row]) -> List[Row]:
    """The row saying a benchmark failed, where its exit status and its rows do not explain it."""
    if code < 0:
        return [Row(bench, "-", "-", "-", f"failed (signal {-code})")]
    # A benchmark exits non-zero when a figure is below its target: that is the "not met" row.
    if code != 0 and not any(r.status == "not met" for r in rows):
        return [Row(bench, "-", "-", "-", f"failed (exit {code})")]
    if code == 0 and not rows:
        return [Row(bench, "-", "-", "-", "failed (no figure reported)")]
    return []


class Interrupted(Exception):
    """Ctrl-C during a benchmark, carrying that benchmark's rows so far."""

    def __init__(self, rows: List[Row]) -> None:
        super().__init__("interrupted")
        self.rows = rows


def table(rows: List[Row]) -> str:
    """The closing table: one line per figure, columns padded to the widest entry."""
    head = Row("benchmark", "what", "figure", "target", "status")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def verdict(rows: List[Row]) -> str:
    counts = {s: sum(r.status.startswith(s) for r in rows) for s in ("met", "not met", "reported", "failed")}
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scripts", nargs="*", help="benchmark scripts (default: every bench_*.py beside this one)")
    p.add_argument("--python", default=sys.executable, help="the Python that runs them (default: this one)")
    args = p.parse_args(argv)
    scripts = args.scripts or sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    rows: List[Row] = []
    code = 0
    try:
        for script in scripts:
            rows += run_one(script, args.python)
    except Interrupted as stop:
        rows += stop.rows
        code = 130
    ran = len({r.benchmark for r in rows})
    print(f"\n== {ran} of {len(scripts)} benchmark(s) run: {verdict(rows)}")
    print(table(rows))
    bad = any(r.status == "not met" or r.status.startswith("failed") for r in rows)
    return code or (1 if bad else 0)


if __name__ == "__main__":
    sys.exit(main())

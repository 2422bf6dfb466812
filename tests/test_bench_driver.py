"""benchmarks/run_all.py (`make bench`): every benchmark runs, one table at the end, the exit
status after all have run.

The benchmarks here are tiny fake scripts in a temporary folder that report known figures
through benchmarks/common.py's `report`, as the real ones do; the real benchmarks are slow and
are not run. Oracle: the figures, targets and exit codes written into the fake scripts.
"""

from __future__ import annotations

import ast
import glob
import os
import re
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
DRIVER = os.path.join(BENCH, "run_all.py")

HEADER = f"import sys\nsys.path.insert(0, {BENCH!r})\nfrom common import report\n"
FAKES = {
    # A figure above its target: exit 0, as the real benchmarks do.
    "bench_a_meets.py": 'print("ran meets")\nreport("speed-up", "2.00x", ">= 1.5x", True)\nsys.exit(0)\n',
    # Below its target: the real benchmarks print the miss and exit 1.
    "bench_b_misses.py": 'print("ran misses")\nreport("images/s", "512", ">= 3300", False)\n'
                         'report("peak RSS", "157 MB", "< 1500 MB", True)\nsys.exit(1)\n',
    # A crash before any verdict: a traceback and exit 1.
    "bench_c_crashes.py": 'print("ran crashes")\nraise RuntimeError("boom")\n',
    # A figure with no verdict, reported only.
    "bench_d_reports.py": 'print("ran reports")\nreport("ratio", "1.07x", "none", None)\n',
}


def make(folder, names):
    paths = []
    for name in names:
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            f.write(HEADER + textwrap.dedent(FAKES[name]))
        paths.append(path)
    return paths


def drive(*scripts):
    return subprocess.run([sys.executable, DRIVER, *scripts], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def rows(stdout: str) -> dict:
    """{(benchmark, what): (figure, target, status)} from the closing table."""
    lines = stdout[stdout.index("\nbenchmark "):].strip().splitlines()
    assert set(lines[1]) <= {"-", " "}  # the rule under the header
    out = {}
    for line in lines[2:]:
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == 5, line
        out[cells[0], cells[1]] = tuple(cells[2:])
    return out


def test_every_benchmark_runs_and_the_table_lists_each(tmp_path):
    """Oracle: the fake scripts' figures. The miss (second) and the crash (third) stop nothing:
    the fourth runs too; each reported figure is in the table with its target and status, the
    crash is a `failed` row with its exit code, and the driver exits 1 at the end."""
    proc = drive(*make(tmp_path, sorted(FAKES)))
    assert proc.returncode == 1, proc.stderr
    ran = [line for line in proc.stdout.splitlines() if line.startswith("ran ")]
    assert ran == ["ran meets", "ran misses", "ran crashes", "ran reports"]
    assert "RuntimeError: boom" in proc.stderr  # the benchmark's own output passes through
    assert rows(proc.stdout) == {
        ("bench_a_meets.py", "speed-up"): ("2.00x", ">= 1.5x", "met"),
        ("bench_b_misses.py", "images/s"): ("512", ">= 3300", "not met"),
        ("bench_b_misses.py", "peak RSS"): ("157 MB", "< 1500 MB", "met"),
        ("bench_c_crashes.py", "-"): ("-", "-", "failed (exit 1)"),
        ("bench_d_reports.py", "ratio"): ("1.07x", "none", "reported"),
    }
    assert "4 of 4 benchmark(s) run: 2 met, 1 not met, 1 reported, 1 failed" in proc.stdout


def test_all_met_exits_zero(tmp_path):
    """Oracle: a run whose only figures met their target or have none exits 0."""
    proc = drive(*make(tmp_path, ["bench_a_meets.py", "bench_d_reports.py"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [s for *_, s in rows(proc.stdout).values()] == ["met", "reported"]


def test_a_miss_alone_fails_the_run_and_a_crash_alone_too(tmp_path):
    """Oracle: one miss (exit 1 with a `not met` row, no `failed` row) or one crash each make
    the whole run exit 1."""
    miss = drive(*make(tmp_path, ["bench_a_meets.py", "bench_b_misses.py"]))
    assert miss.returncode == 1
    assert "failed" not in "".join(s for *_, s in rows(miss.stdout).values())
    crash = drive(*make(tmp_path, ["bench_c_crashes.py", "bench_a_meets.py"]))
    assert crash.returncode == 1
    assert [s for *_, s in rows(crash.stdout).values()] == ["failed (exit 1)", "met"]


def test_a_benchmark_that_reports_nothing_is_a_failure(tmp_path):
    """Oracle: a script that exits 0 but never calls `report` cannot be judged: `failed`."""
    path = tmp_path / "bench_silent.py"
    path.write_text("print('done')\n")
    proc = drive(str(path))
    assert proc.returncode == 1
    assert rows(proc.stdout) == {("bench_silent.py", "-"): ("-", "-", "failed (no figure reported)")}


def test_report_alone_writes_nothing(tmp_path):
    """Oracle: run alone (no MOCOINFER_BENCH_REPORT), a benchmark prints and exits as before:
    the fake miss prints its line, exits 1 and leaves no file behind."""
    (script,) = make(tmp_path, ["bench_b_misses.py"])
    env = {k: v for k, v in os.environ.items() if k != "MOCOINFER_BENCH_REPORT"}
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=60)
    assert (proc.returncode, proc.stdout) == (1, "ran misses\n")
    assert sorted(os.listdir(tmp_path)) == ["bench_b_misses.py"]


def test_every_real_benchmark_reports():
    """Oracle: each benchmarks/bench_*.py calls `report(...)` at least once (parsed, not run), so
    none of them lands in the table as `failed (no figure reported)` for want of the call."""
    scripts = sorted(glob.glob(os.path.join(BENCH, "bench_*.py")))
    assert len(scripts) >= 7
    missing = []
    for path in scripts:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "report"]
        if not calls:
            missing.append(os.path.basename(path))
    assert missing == []

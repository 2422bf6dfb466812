"""Resumable inference (issue 9 item 3, issue 13): a rerun skips only what the manifest proves.

Oracles: hand counts of the images a backend was asked to run (a zero-cost backend in this
process, a slow stand-in backend in a real subprocess stopped with SIGINT / SIGTERM), the result
files on disk, and the input bytes times 2 for every result.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest
from safety_helpers import tree

from mocoinfer.backends import Backend
from mocoinfer.errors import UserError
from mocoinfer.formats import read_result
from mocoinfer.runner import run_inference, run_pure_inference
from tests.interrupt_helpers import stop_and_rerun, write_slow_runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 12


class Counter(Backend):
    """Zero-cost backend, output = 2 * input; counts the images it runs."""

    name = "counter"

    def __init__(self) -> None:
        super().__init__()
        self.input_shape, self.input_dtype, self.batch_size = (4,), np.dtype(np.float32), None
        self.model_path, self.images = "counter", 0

    def run(self, batch):
        self.images += len(batch)
        self.timing.compute.append(0.0)
        return [batch.reshape(len(batch), -1) * 2.0]


@pytest.fixture
def case(tmp_path):
    bins = tmp_path / "bins"
    bins.mkdir()
    data = np.arange(N * 4, dtype=np.float32).reshape(N, 4)
    for i, x in enumerate(data):
        x.tofile(bins / f"x{i}.bin")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model A")
    out = tmp_path / "out"
    return {"root": tmp_path, "bins": str(bins), "data": data, "model": str(model), "out": str(out),
            "res": str(out / "dumpOutput_device0")}


def _run(case, model=None, **kw):
    be = Counter()
    kw.setdefault("warmup", 0)
    s = run_inference(model or case["model"], case["bins"], case["out"], backend=be, progress=False, **kw)
    return s, be.images


def _check_all_results(case, fmt="txt"):
    for i, x in enumerate(case["data"]):
        np.testing.assert_array_equal(read_result(os.path.join(case["res"], f"x{i}_1.{fmt}")), x * 2)


def test_rerun_skips_proven_results_and_counts_only_new_work(case, capsys):
    """--resume (issue 21: reuse is asked for; a plain rerun measures again, tests/test_reruns.py)."""
    s, ran = _run(case)
    assert ran == N and s["skipped"] == 0
    s, ran = _run(case, resume=True)
    assert ran == 0 and s.get("nothing_to_do") and s["skipped"] == N
    for i in (2, 5, 7):
        os.unlink(os.path.join(case["res"], f"x{i}_1.txt"))
    s, ran = _run(case, resume=True)
    # Hand count: 3 results deleted → 3 images run, 9 skipped; rates are over the 3 run.
    assert (ran, s["images"], s["skipped"], s["inputs"]) == (3, 3, N - 3, N)
    assert s["e2e"]["throughput_images_per_s"] == pytest.approx(3 / s["wall_seconds"])
    assert "skipping 9 of 12 inputs" in capsys.readouterr().err
    _check_all_results(case)


def test_changed_input_or_result_is_not_proven(case):
    """An input rewritten with other bytes of the same size (mtime left alone: the proof is the
    hash), and a result file cut short: both run again, nothing else."""
    _run(case)
    p = os.path.join(case["bins"], "x3.bin")
    st = os.stat(p)
    case["data"][3] = -1.0
    case["data"][3].tofile(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    with open(os.path.join(case["res"], "x8_1.txt"), "w") as f:
        f.write("1 ")
    s, ran = _run(case, resume=True)
    assert (ran, s["skipped"]) == (2, N - 2)
    _check_all_results(case)


def test_overwrite_redoes_everything(case):
    _run(case)
    s, ran = _run(case, overwrite=True)
    assert (ran, s["skipped"]) == (N, 0)


def test_other_model_or_format_replaces_only_what_this_tool_wrote(case, capsys):
    """Issue 21: results of model A, then model B or another format into the same folder replace
    A's results (a format change removes A's files, which B does not write again); a user's
    result-like file no manifest lists is never deleted, and stops a format change with a line
    naming it, --overwrite or not. Oracle: hand counts and os.listdir."""
    _run(case)
    other = os.path.join(str(case["root"]), "m2.onnx")
    with open(other, "wb") as f:
        f.write(b"model B")
    s, ran = _run(case, model=other)
    assert ran == N and "replacing 12 result files of m.onnx (txt)" in capsys.readouterr().err
    _check_all_results(case)
    with open(os.path.join(case["res"], "mine_1.bin"), "wb") as f:
        f.write(b"\0" * 4)
    before = tree(case["res"])
    for overwrite in (False, True):
        with pytest.raises(UserError, match="mine_1.bin: a result file of another format that this tool did not "
                                            "write"):
            _run(case, outfmt="txt", overwrite=overwrite)
    assert tree(case["res"]) == before
    os.unlink(os.path.join(case["res"], "mine_1.bin"))
    s, ran = _run(case, outfmt="bin")
    assert ran == N and sorted(os.listdir(case["res"])) == sorted(
        [f"x{i}_1.bin" for i in range(N)])
    _check_all_results(case, "bin")
    s, ran = _run(case, model=other, outfmt="bin", overwrite=True)
    assert ran == N


def test_pure_inference_never_replaces_a_run_summary(case):
    s, _ = _run(case)
    with open(s["summary_file"]) as f:
        before = f.read()
    p = run_pure_inference("counter", output=case["out"], backend=Counter(), loop=2, warmup=0)
    assert p["summary_file"] == os.path.join(case["out"], "pure_summary.json")
    with open(s["summary_file"]) as f:
        assert f.read() == before


def test_sweep_reads_the_pure_summaries(tmp_path):
    """scripts/7_perf.sh's table is gathered from pure_summary.json (the runner's own figures)."""
    from mocoinfer.sweep import collect

    p = run_pure_inference("counter", output=str(tmp_path / "perf" / "counter" / "bs2"), backend=Counter(),
                           batch_size=2, loop=2, warmup=0)
    backends, sizes, found = collect(str(tmp_path / "perf"))
    assert (backends, sizes) == (["counter"], [2])
    assert found[("counter", 2)]["throughput_images_per_s"] == p["throughput_images_per_s"]


# --------------------------------------------------------------------------- a real interrupted run




@pytest.mark.parametrize("sig,rc", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_keeps_results_and_rerun_computes_only_the_rest(tmp_path, sig, rc):
    """Stop a real run mid-way; the oracle for the rerun is the number of result files the
    stopped run left (each proven by the manifest): the rerun runs exactly the others."""
    n = 60
    bins = tmp_path / "bins"
    bins.mkdir()
    data = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    for i, x in enumerate(data):
        x.tofile(bins / f"im{i}.bin")
    (tmp_path / "slow.om").write_bytes(b"slow model")
    script = tmp_path / "slow_runner.py"
    write_slow_runner(script, ROOT, (4,), 'batch.reshape(len(batch), -1) * 2.0')
    res = tmp_path / "out" / "dumpOutput_device0"
    argv = [sys.executable, str(script), "--model", str(tmp_path / "slow.om"), "--input", str(bins),
            "--output", str(tmp_path / "out"), "--warmup", "0", "--no-progress"]
    kept, partial, _ = stop_and_rerun(tmp_path, argv, sig, rc, n, 0.08)
    for i, x in enumerate(data):
        np.testing.assert_array_equal(read_result(str(res / f"im{i}_1.txt")), x * 2)

"""Reruns as the guide's tools behave (issue 21 item 1), and what a run leaves behind (item 7).

The guide, the benchmark binary and ais_bench all simply run again when a command is repeated.
So: a finished run's rerun runs again and replaces the results this tool wrote; another model,
batch size or format replaces them too, with one line saying what; an interrupted run resumes by
itself; `--resume` reuses on purpose; arguments are checked the same whether or not results
exist; a result file no manifest of this tool lists is never replaced.

Oracles: hand counts of the images a stand-in backend was asked to run, each result's value
(the stand-in computes `scale * x`, so whose result a file holds is known), `os.stat` (a result
renamed over the earlier one is a new inode), `os.listdir`, and for the guide's command lines
PyTorch's output of the exported tiny net and the error line the same command gives in an empty
folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from safety_helpers import tree

from mocoinfer import sidecar
from mocoinfer.backends import Backend
from mocoinfer.cli import run_main
from mocoinfer.errors import UserError
from mocoinfer.formats import read_result
from mocoinfer.runner import run_inference
from mocoinfer.temporaries import bookkeeping_dir
from tests.tiny_model import tiny_net

N = 12


class Scaler(Backend):
    """Zero-cost stand-in: output = scale * input; counts the images it runs; raises Ctrl-C's
    KeyboardInterrupt at its `stop_after`-th batch when given (an interrupted run)."""

    name = "scaler"

    def __init__(self, scale: float = 2.0, batch_size=None, stop_after=None) -> None:
        super().__init__()
        self.input_shape, self.input_dtype, self.batch_size = (4,), np.dtype(np.float32), batch_size
        self.model_path, self.scale, self.images, self.calls, self.stop_after = "scaler", scale, 0, 0, stop_after

    def run(self, batch):
        self.calls += 1
        if self.stop_after is not None and self.calls > self.stop_after:
            raise KeyboardInterrupt
        self.images += len(batch)
        self.timing.compute.append(0.0)
        return [batch.reshape(len(batch), -1) * self.scale]


@pytest.fixture
def case(tmp_path):
    bins = tmp_path / "bins"
    bins.mkdir()
    data = np.arange(N * 4, dtype=np.float32).reshape(N, 4)
    for i, x in enumerate(data):
        x.tofile(bins / f"x{i}.bin")
    for name in ("a.onnx", "b.onnx"):
        (tmp_path / name).write_bytes(name.encode())
    out = tmp_path / "out"
    return {"root": tmp_path, "bins": str(bins), "data": data, "a": str(tmp_path / "a.onnx"),
            "b": str(tmp_path / "b.onnx"), "out": str(out), "res": str(out / "dumpOutput_device0")}


def _run(case, model="a", be=None, **kw):
    be = be or Scaler()
    kw.setdefault("warmup", 0)
    s = run_inference(case[model], case["bins"], case["out"], backend=be, progress=False, **kw)
    return s, be.images


def _values(case, fmt="txt"):
    return np.stack([read_result(os.path.join(case["res"], f"x{i}_1.{fmt}")) for i in range(N)])


def _inodes(case):
    return {n: os.stat(os.path.join(case["res"], n)).st_ino for n in os.listdir(case["res"])}


def test_a_finished_run_runs_again_and_replaces_its_results(case, capsys):
    """Oracle: the stand-in ran all N again, each result is a new file (new inode, renamed over
    the earlier one) holding this run's values, and the figures are this run's."""
    _run(case)
    before = _inodes(case)
    capsys.readouterr()
    s, ran = _run(case, be=Scaler(3.0))
    assert ran == N and s["images"] == N and s["skipped"] == 0 and not s.get("nothing_to_do")
    assert s["e2e"]["throughput_images_per_s"] > 0
    err = capsys.readouterr().err
    assert f"replacing {N} result files of a.onnx (txt) written by an earlier run with the same settings" in err
    after = _inodes(case)
    assert sorted(after) == sorted(before) and all(after[n] != before[n] for n in before)
    np.testing.assert_array_equal(_values(case), case["data"] * 3.0)
    assert sidecar.read_manifest(case["res"])["status"] == sidecar.COMPLETE


def test_resume_reuses_a_finished_runs_proven_results(case, capsys):
    """Oracle: hand count: nothing runs, every result keeps its inode and value."""
    _run(case)
    before = _inodes(case)
    s, ran = _run(case, be=Scaler(3.0), resume=True)
    assert ran == 0 and s["nothing_to_do"] and s["skipped"] == N
    assert _inodes(case) == before
    np.testing.assert_array_equal(_values(case), case["data"] * 2.0)


def test_an_interrupted_run_resumes_by_itself(case, capsys):
    """A run stopped by Ctrl-C after 2 batches of 4 (hand count: 8 results kept); the same
    command again runs exactly the other 4 and says how many it reused and how to start over."""
    with pytest.raises(KeyboardInterrupt):
        _run(case, be=Scaler(stop_after=2), batch_size=4)
    assert sidecar.read_manifest(case["res"])["status"] == sidecar.INCOMPLETE
    capsys.readouterr()
    s, ran = _run(case, batch_size=4)
    assert ran == 4 and s["skipped"] == 8
    err = capsys.readouterr().err
    assert f"resuming an interrupted run: 8 of {N} inputs have proven results, reused (--overwrite starts over)" in err
    np.testing.assert_array_equal(_values(case), case["data"] * 2.0)


def test_a_rerun_stopped_halfway_resumes_from_the_earlier_proven_results(case):
    """A finished run, then a rerun of the same settings stopped after 1 batch: the next command
    resumes; the results the stopped rerun did not replace are still the earlier run's, proven,
    and reused. Oracle: hand count (batch 4: 4 replaced, 8 reused, nothing runs)."""
    _run(case, batch_size=4)
    with pytest.raises(KeyboardInterrupt):
        _run(case, be=Scaler(stop_after=1), batch_size=4)
    s, ran = _run(case, batch_size=4)
    assert (ran, s["skipped"]) == (0, N) and s["nothing_to_do"]


def test_another_model_replaces_only_this_tools_results(case, capsys):
    """Model A, then model B into the same folder: B's values in every file, one line naming
    what was replaced; a user's result-like file that B does not write stays as it is."""
    _run(case)
    mine = os.path.join(case["res"], "notes_1.txt")
    with open(mine, "w") as f:
        f.write("7 \n")
    capsys.readouterr()
    s, ran = _run(case, model="b", be=Scaler(5.0))
    assert ran == N
    err = capsys.readouterr().err
    assert f"replacing {N} result files of a.onnx (txt) written by an earlier run (model_sha256" in err
    np.testing.assert_array_equal(_values(case), case["data"] * 5.0)
    with open(mine) as f:
        assert f.read() == "7 \n"
    assert s["stale_result_files"] == 1  # pointed out: a metric over the folder would count it


def test_another_format_removes_this_tools_earlier_files(case, capsys):
    """txt, then bin: the folder then holds the N .bin results only (the .txt ones were this
    tool's and are no longer produced). Oracle: os.listdir, a hand count."""
    _run(case)
    capsys.readouterr()
    s, ran = _run(case, outfmt="bin")
    assert ran == N and sorted(os.listdir(case["res"])) == sorted(f"x{i}_1.bin" for i in range(N))
    err = capsys.readouterr().err
    assert "replacing 12 result files of a.onnx (txt)" in err and "outfmt txt → bin" in err
    np.testing.assert_array_equal(_values(case, "bin"), case["data"] * 2.0)


def test_another_batch_size_runs_again(case):
    """The same dynamic-batch model at batch 1, then 4: the second runs every input again in 3
    batches and reports its own figures (hand count)."""
    _run(case, batch_size=1)
    be = Scaler()
    s, ran = _run(case, be=be, batch_size=4)
    assert ran == N and be.calls == 3 and s["batch_size"] == 4 and s["batches"] == 3


@pytest.mark.parametrize("resume", [False, True])
def test_invalid_arguments_are_errors_whether_or_not_results_exist(case, resume):
    """A fixed batch-1 model: --batch-size 16, and a width/height it does not have, fail with the
    line they give in an empty folder, also when every result is proven (--resume: nothing
    would run); nothing in the folder or its manifest changes."""
    def error(out, **kw):
        with pytest.raises(UserError) as info:
            run_inference(case["a"], case["bins"], out, backend=Scaler(batch_size=1), progress=False, warmup=0,
                          **kw)
        return str(info.value)

    empty = [error(os.path.join(case["root"], "empty"), batch_size=16),
             error(os.path.join(case["root"], "empty"), expect_hw=(256, 256))]
    _run(case, be=Scaler(batch_size=1))
    before, manifest = tree(case["res"]), sidecar.read_manifest(case["res"])
    present = [error(case["out"], batch_size=16, resume=resume), error(case["out"], expect_hw=(256, 256),
                                                                      resume=resume)]
    assert present == empty and "--batch-size 16 does not fit" in empty[0] and "do not match" in empty[1]
    assert tree(case["res"]) == before and sidecar.read_manifest(case["res"]) == manifest


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_users_result_file_is_never_replaced(case, overwrite):
    """A folder no manifest of this tool describes holds x3_1.txt, a name this run would write:
    the run stops with one line naming it, --overwrite or not, and writes nothing."""
    os.makedirs(case["res"])
    mine = os.path.join(case["res"], "x3_1.txt")
    with open(mine, "w") as f:
        f.write("42 \n")
    with pytest.raises(UserError, match=r"x3_1.txt: already there and not written by this tool"):
        _run(case, overwrite=overwrite)
    assert os.listdir(case["res"]) == ["x3_1.txt"]
    with open(mine) as f:
        assert f.read() == "42 \n"


def test_resume_and_overwrite_together_are_refused(case):
    with pytest.raises(UserError, match="--overwrite and --resume contradict each other"):
        _run(case, overwrite=True, resume=True)
    assert not os.path.lexists(case["out"])


# --------------------------------------------------------------------------- what a run leaves behind

def test_a_refused_run_leaves_no_folder_it_made(case):
    """Item 7: a fixed batch-1 model at --batch-size 16, into an output folder that does not exist:
    refused, and neither the output folder, the result folder nor a bookkeeping folder remains."""
    out = os.path.join(case["root"], "new", "deeper")
    with pytest.raises(UserError, match="--batch-size 16 does not fit"):
        run_inference(case["a"], case["bins"], out, backend=Scaler(batch_size=1), progress=False, batch_size=16)
    assert not os.path.lexists(os.path.join(case["root"], "new"))
    # An output folder that was there stays, as do its files.
    os.makedirs(out)
    with pytest.raises(UserError):
        run_inference(case["a"], case["bins"], out, backend=Scaler(batch_size=1), progress=False, batch_size=16)
    assert os.listdir(out) == []


def test_a_run_leaves_no_lock_file(case):
    """Item 7: after a run, the bookkeeping folder beside the result folder holds the manifest
    (which a rerun needs to tell this tool's results from a user's) and a `.gitignore`, no lock."""
    _run(case)
    side = bookkeeping_dir(case["res"])
    assert sorted(os.listdir(side)) == [".gitignore", "manifest.json"]
    with open(os.path.join(side, ".gitignore")) as f:
        assert f.read().splitlines()[-1] == "*"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_output_dot_in_a_git_work_tree_shows_no_bookkeeping(case, monkeypatch):
    """Item 7: ais_bench's form with `--output ./` in a git work tree: `git status` shows what the
    user asked for (the result folder, its summary) and nothing of this tool's bookkeeping.
    Oracle: git's own status."""
    repo = case["root"] / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    monkeypatch.chdir(repo)
    import run_om_infer
    from mocoinfer import onepass

    class Loaded(Scaler):
        @classmethod
        def load(cls, path, **kw):
            return cls()

    monkeypatch.setattr(onepass, "choose_backend", lambda model, name="auto": Loaded)
    argv = ["--model", case["a"], "--input", case["bins"], "--output", "./", "--output_dirname", "res",
            "--outfmt", "TXT", "--no-progress"]
    assert run_main(run_om_infer.main, argv) == 0
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    assert not [line for line in status if ".mocoinfer" in line], status
    assert "?? res_summary.json" in status and "?? res/x0_0.txt" in status
    assert os.path.isfile(os.path.join(".res.mocoinfer", "manifest.json"))


# --------------------------------------------------------------------------- the guide's command lines

@pytest.fixture(scope="module")
def guide(tmp_path_factory):
    """The guide's folder: a bs1 and a bs16 export of the tiny net, ./prep_dataset of 5 .bin files,
    and PyTorch's output for them."""
    import torch

    from mocoinfer.export import export_model

    root = tmp_path_factory.mktemp("guide")
    net = tiny_net()
    export_model(net, str(root / "moco-v2-bs1.onnx"), batch_size=1)
    export_model(net, str(root / "moco-v2-bs16.onnx"), batch_size=16)
    data = np.random.default_rng(2).standard_normal((5, 3, 224, 224)).astype(np.float32)
    (root / "prep_dataset").mkdir()
    for i, x in enumerate(data):
        x.tofile(root / "prep_dataset" / f"img{i}.bin")
    with torch.no_grad():
        ref = net(torch.from_numpy(data)).numpy()
    return root, ref


def _guide_line(bs, width=224, model=None):
    """The Moco-v2 guide's benchmark line, program name swapped, .om → .onnx."""
    return ["-model_type=vision", f"-batch_size={bs}", "-device_id=0", "-input_text_path=./prep_dataset",
            f"-input_width={width}", "-input_height=224", f"-om_path=./{model or f'moco-v2-bs{bs}.onnx'}",
            "-useDvpp=False", "-output_binary=False"]


def test_the_guides_bs1_then_bs16_into_result_both_run(guide, tmp_path, monkeypatch, capsys):
    """The issue's sequence: bs1 into ./result, then bs16 into ./result, then the bs16 line again
    to measure speed: each runs and prints its figures; the bs16 run replaces bs1's results (one
    line). Then, with results present, -batch_size=16 on the bs1 model and -input_width=256 fail
    with the line they give in an empty folder. Oracles: PyTorch for every result, the perf file
    each run writes, the empty-folder error lines."""
    import run_om_infer

    root, ref = guide
    for name in ("moco-v2-bs1.onnx", "moco-v2-bs16.onnx", "prep_dataset"):
        os.symlink(root / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    res = tmp_path / "result" / "dumpOutput_device0"

    def run(argv):
        rc = run_main(run_om_infer.main, argv + ["--no-progress"])
        out, err = capsys.readouterr()
        return rc, out, err

    def check_results():
        got = np.stack([read_result(str(res / f"img{i}_1.txt")) for i in range(5)])
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-3)

    rc, out, err = run(_guide_line(1))
    assert rc == 0 and "5 inputs" in out, err
    assert (tmp_path / "result" / "perf_vision_batchsize_1_device_0.txt").is_file()
    check_results()
    for attempt in range(2):
        perf = tmp_path / "result" / "perf_vision_batchsize_16_device_0.txt"
        if perf.exists():
            perf.unlink()
        rc, out, err = run(_guide_line(16))
        assert rc == 0 and "5 inputs" in out and "nothing to run" not in out, (out, err)
        assert perf.is_file()  # new figures
        if attempt == 0:
            assert "replacing 5 result files of moco-v2-bs1.onnx (bs 1, txt) written by an earlier run" in err
        check_results()
    assert sidecar.read_manifest(str(res))["settings"]["model"].endswith("moco-v2-bs16.onnx")

    rc, out, err = run(_guide_line(16, model="moco-v2-bs1.onnx") + ["--resume"])
    rc2, out2, err2 = run(_guide_line(1, width=256) + ["--resume"])
    os.makedirs(tmp_path / "empty")  # the same lines where no result exists
    monkeypatch.chdir(tmp_path / "empty")
    for name in ("moco-v2-bs1.onnx", "prep_dataset"):
        os.symlink(root / name, tmp_path / "empty" / name)
    rc_e, _, err_e = run(_guide_line(16, model="moco-v2-bs1.onnx"))
    rc2_e, _, err2_e = run(_guide_line(1, width=256))
    assert (rc, rc2, rc_e, rc2_e) == (1, 1, 1, 1)
    assert "-batch_size=16 does not fit" in err and "-input_width=256 -input_height=224 do not match" in err2
    assert err.splitlines()[-1] == err_e.splitlines()[-1] and err2.splitlines()[-1] == err2_e.splitlines()[-1]
    assert not os.path.lexists(tmp_path / "empty" / "result")  # the refused runs left no folder


def test_the_ais_bench_form_runs_again(guide, tmp_path, monkeypatch, capsys):
    """ais_bench's line twice into the same --output_dirname: both run and print ais_bench's
    figures; the second replaces the first's files. Oracle: PyTorch, os.stat."""
    import run_om_infer

    root, ref = guide
    for name in ("moco-v2-bs1.onnx", "prep_dataset"):
        os.symlink(root / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    argv = ["--model", "moco-v2-bs1.onnx", "--input", "./prep_dataset", "--output", "./result",
            "--output_dirname", "out", "--outfmt", "TXT", "--batchsize", "1", "--no-progress"]
    inodes = []
    for _ in range(2):
        assert run_main(run_om_infer.main, argv) == 0
        out = capsys.readouterr().out
        assert "throughput" in out and "nothing to run" not in out, out
        inodes.append(os.stat(tmp_path / "result" / "out" / "img0_0.txt").st_ino)
        got = np.stack([read_result(str(tmp_path / "result" / "out" / f"img{i}_0.txt")) for i in range(5)])
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-3)
    assert inodes[0] != inodes[1]


def test_a_refused_pure_inference_leaves_no_folder(tmp_path):
    """Item 7, pure inference: a fixed batch-1 model at --batch-size 16 into an output folder that
    does not exist is refused, and the folder is not left behind."""
    from mocoinfer.runner import run_pure_inference

    out = tmp_path / "pure" / "bs16"
    with pytest.raises(UserError, match="--batch-size 16 does not fit"):
        run_pure_inference("scaler", output=str(out), backend=Scaler(batch_size=1), batch_size=16, loop=2)
    assert not os.path.lexists(tmp_path / "pure")

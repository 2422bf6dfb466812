"""Stage 5, run_om_infer.py: batching, padding, result files, perf files, both command lines, errors.

Oracles: PyTorch for model outputs (a tiny conv net exported to ONNX, and a stand-in ResNet-18
checkpoint run by both the torch and onnxruntime backends); a hand-computed function for the
zero-cost backend that checks ordering through the read-ahead and write-behind queues.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from mocoinfer.backends import Backend
from mocoinfer.cli import run_main
from mocoinfer.errors import UserError
from mocoinfer.formats import parse_perf, read_result
from mocoinfer.runner import run_inference, run_pure_inference
from tests.tiny_model import tiny_net

#: an own-form flag: this runner's layout; without one the line is ais_bench's (issue 19)
OWN = ["--device-id", "0"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_IMAGES = 7

# ONNX Runtime and PyTorch sum in different orders: the export check's tolerance
# (max|ort - torch| <= 1e-4 + 1e-3 * max|torch|), the same bound here.
ATOL, RTOL = 1e-4, 1e-3


def _tiny_net():
    return tiny_net()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny ONNX model at fixed batch 4 and with a dynamic batch, 7 .bin files, an info file."""
    import torch

    from mocoinfer.export import export_model

    root = tmp_path_factory.mktemp("runner")
    net = _tiny_net()
    export_model(net, str(root / "tiny-bs4.onnx"), batch_size=4)
    export_model(net, str(root / "tiny-dyn.onnx"), batch_size=1, dynamic=True)
    bins = root / "prep_dataset"
    bins.mkdir()
    data = np.random.default_rng(0).standard_normal((N_IMAGES, 3, 224, 224)).astype(np.float32)
    for i, x in enumerate(data):
        x.tofile(bins / f"img{i + 1}.bin")
    # Natural order, not string order: img10 would follow img9; here 1..7 either way, so the info
    # file lists them reversed to prove it is followed line by line.
    info = root / "prep.info"
    info.write_text("".join(f"{k} {bins}/img{N_IMAGES - k}.bin 224 224\n" for k in range(N_IMAGES)))
    with torch.no_grad():
        ref = net(torch.from_numpy(data)).numpy()
    return {"root": root, "fixed": str(root / "tiny-bs4.onnx"), "dyn": str(root / "tiny-dyn.onnx"),
            "bins": str(bins), "info": str(info), "data": data, "ref": ref}


def _results(out, fmt, n=N_IMAGES):
    folder = os.path.join(out, "dumpOutput_device0")
    return np.stack([read_result(os.path.join(folder, f"img{i + 1}_1.{fmt}")) for i in range(n)])


def test_fixed_batch_pads_last_batch_and_writes_one_file_per_image(work, tmp_path):
    out = str(tmp_path / "result")
    s = run_inference(work["fixed"], work["bins"], out, progress=False)
    assert (s["batch_size"], s["batches"], s["padded_images"], s["result_files"]) == (4, 2, 1, N_IMAGES)
    names = sorted(os.listdir(os.path.join(out, "dumpOutput_device0")))
    # The results and nothing else: the manifest that proves them lives beside the folder (issue 18).
    assert names == sorted(f"img{i + 1}_1.txt" for i in range(N_IMAGES))
    np.testing.assert_allclose(_results(out, "txt"), work["ref"], atol=ATOL, rtol=RTOL)
    # The txt layout the guide's metric splits on: one line, each value followed by one space.
    with open(os.path.join(out, "dumpOutput_device0", "img1_1.txt")) as f:
        text = f.read()
    assert text.endswith(" \n") and text.count("\n") == 1 and "  " not in text
    # summary.json sits beside the result folder, never inside it (it broke the guide's metric).
    # The result folder's lock and manifest live beside it, in .dumpOutput_device0.mocoinfer/.
    assert sorted(os.listdir(out)) == [".dumpOutput_device0.mocoinfer", "dumpOutput_device0",
                                       "perf_vision_batchsize_4_device_0.txt", "summary.json"]
    with open(os.path.join(out, "perf_vision_batchsize_4_device_0.txt")) as f:
        perf = parse_perf(f.read())
    assert list(perf) == ["e2e", "data read", "preprocess", "infer", "post"]
    assert perf["infer"]["Interface throughputRate"] > 0 and perf["e2e"]["throughputRate"] > 0
    lat = s["phases"]["compute"]["latency_ms"]
    assert set(lat) >= {"min", "max", "mean", "median", "p90", "p99"} and lat["min"] <= lat["p99"] <= lat["max"]


@pytest.mark.parametrize("fmt", ["bin", "npy"])
def test_dynamic_model_runs_short_last_batch_unpadded(work, tmp_path, fmt):
    out = str(tmp_path / "result")
    s = run_inference(work["dyn"], work["info"], out, batch_size=3, outfmt=fmt, progress=False)
    assert (s["batch_size"], s["batches"], s["padded_images"], s["result_files"]) == (3, 3, 0, N_IMAGES)
    np.testing.assert_allclose(_results(out, fmt), work["ref"], atol=ATOL, rtol=RTOL)


@pytest.mark.slow
def test_onnxruntime_and_torch_agree_on_the_same_bins(tmp_path_factory, work):
    """The issue's cross-check: onnxruntime vs the torch reference on the same .bin files."""
    from mocoinfer.demo import standin_model, write_checkpoint
    from mocoinfer.export import export_model

    root = tmp_path_factory.mktemp("r18")
    model = standin_model(seed=1, arch="resnet18")
    ckpt = write_checkpoint(model, str(root / "model_lincls_best.pth.tar"), arch="resnet18")
    onnx_path = str(root / "r18.onnx")
    export_model(model, onnx_path, batch_size=1, dynamic=True, verify=False)
    s_ort = run_inference(onnx_path, work["bins"], str(root / "ort"), batch_size=2, outfmt="bin", progress=False)
    s_pt = run_inference(ckpt, work["bins"], str(root / "pt"), batch_size=2, outfmt="bin", warmup=0, progress=False)
    assert (s_ort["backend"], s_pt["backend"]) == ("onnxruntime", "torch")
    ort_out, pt_out = _results(str(root / "ort"), "bin"), _results(str(root / "pt"), "bin")
    assert ort_out.shape == (N_IMAGES, 1000)
    diff = float(np.abs(ort_out - pt_out).max())
    assert diff <= ATOL + RTOL * float(np.abs(pt_out).max()), diff
    assert (ort_out.argmax(1) == pt_out.argmax(1)).all()


def test_both_command_lines_give_the_same_results(work, tmp_path, monkeypatch, capsys):
    import run_om_infer

    monkeypatch.chdir(tmp_path)
    argv = ["-model_type=vision", "-batch_size=4", "-device_id=0", f"-input_text_path={work['info']}",
            "-input_width=224", "-input_height=224", f"-om_path={work['fixed']}", "-useDvpp=false",
            "-output_binary=True", "--no-progress"]
    assert run_main(run_om_infer.main, argv) == 0
    assert "7 inputs → 7 result files" in capsys.readouterr().out
    argv = ["--model", work["fixed"], *OWN, "--input", work["bins"], "--output", "new", "--outfmt", "bin",
            "--no-progress"]
    assert run_main(run_om_infer.main, argv) == 0
    np.testing.assert_array_equal(_results("result", "bin"), _results("new", "bin"))
    assert os.path.exists("result/perf_vision_batchsize_4_device_0.txt")


def test_help_says_what_each_figure_counts():
    p = subprocess.run([sys.executable, os.path.join(ROOT, "run_om_infer.py"), "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    for word in ("[e2e]", "Interface throughputRate", "moduleLatency", "summary.json", "padding"):
        assert word in p.stdout


def _cli(argv, capsys):
    import run_om_infer

    rc = run_main(run_om_infer.main, argv)
    err = capsys.readouterr().err.strip()
    return rc, err


def test_wrong_size_input_is_refused_before_the_model_is_opened(work, tmp_path, monkeypatch, capsys):
    bins = tmp_path / "bins"
    bins.mkdir()
    for i in range(3):
        np.zeros((3, 224, 224), np.float32).tofile(bins / f"a{i}.bin")
    np.zeros((3, 256, 256), np.float32).tofile(bins / "a1.bin")

    def never(*a, **k):
        raise AssertionError("the backend must not be opened")

    monkeypatch.setattr("mocoinfer.onepass.open_backend", never)
    rc, err = _cli(["--model", work["fixed"], *OWN, "--input", str(bins), "--output", str(tmp_path / "o")], capsys)
    assert rc == 1 and err.count("\n") == 0
    assert "a1.bin" in err and "786432 bytes" in err and "602112 bytes" in err and "tiny-bs4.onnx" in err


@pytest.mark.parametrize("extra,expected", [
    (["--batch-size", "2"], "--batch-size 2 does not fit"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["-useDvpp=True"], "-useDvpp=True is not supported"),
    (["-output_binary=yes"], "expected True, False, true or false"),
    (["-rounds=10"], "unknown benchmark option"),
    (["-model_type=nlp"], "only vision models"),
    (["-input_width=256", "-input_height=256"], "do not match"),
    (["--providers", "NoSuchExecutionProvider", *OWN], "not available in this onnxruntime build"),
])
def test_bad_arguments_are_one_line_errors(work, tmp_path, capsys, extra, expected):
    rc, err = _cli(["--model", work["fixed"], "--input", work["bins"], "--output", str(tmp_path / "o"),
                    "--no-progress"] + extra, capsys)
    assert rc == 1 and expected in err and err.count("\n") == 0, err


def test_bad_inputs_are_one_line_errors(work, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    missing = tmp_path / "missing.info"
    missing.write_text(f"0 {work['bins']}/img1.bin 224 224\n1 {tmp_path}/nope.bin 224 224\n")
    dup = tmp_path / "dup.info"
    (tmp_path / "other").mkdir()
    np.zeros((3, 224, 224), np.float32).tofile(tmp_path / "other" / "img1.bin")
    dup.write_text(f"0 {work['bins']}/img1.bin 224 224\n1 {tmp_path}/other/img1.bin 224 224\n")
    (tmp_path / "m.xyz").write_bytes(b"x")
    cases = [
        (["--model", work["fixed"], *OWN, "--input", str(tmp_path / "empty")], "no .bin files"),
        (["--model", work["fixed"], *OWN, "--input", str(missing)], "nope.bin: input file not found"),
        (["--model", work["fixed"], *OWN, "--input", str(dup)], "input names must be unique"),
        (["--model", work["fixed"], *OWN, "--input", str(tmp_path / "absent")], "input not found"),
        (["--model", str(tmp_path / "m.xyz"), *OWN, "--input", work["bins"]], "cannot tell the backend"),
        (["--model", str(tmp_path / "none.onnx"), *OWN, "--input", work["bins"]], "model not found"),
    ]
    for argv, expected in cases:
        rc, err = _cli(argv + ["--output", str(tmp_path / "o")], capsys)
        assert rc == 1 and expected in err and err.count("\n") == 0, (argv, err)


def test_a_model_that_is_not_a_regular_file_is_refused_without_reading_it(work, tmp_path, capsys):
    """A FIFO named like a model would block the runtime's read forever; a folder or a device is no
    model either. Oracle: each is one line naming the path and what it is, exit 1, no output folder
    made, and the FIFO never opened (a reader would block here: the test would time out)."""
    os.mkfifo(tmp_path / "pipe.onnx")
    (tmp_path / "dir.onnx").mkdir()
    for model, kind in ((tmp_path / "pipe.onnx", "a FIFO"), (tmp_path / "dir.onnx", "a folder"),
                        ("/dev/null", "a character device")):
        out = tmp_path / ("o_" + os.path.basename(str(model)))
        rc, err = _cli(["--model", str(model), "--backend", "onnxruntime", *OWN, "--input", work["bins"],
                        "--output", str(out)], capsys)
        assert rc == 1 and err.count("\n") == 0 and f"{model}: is {kind}" in err, err
        assert not out.exists()


def test_pure_inference_prints_ais_bench_summary(work, tmp_path, capsys):
    rc = run_main(__import__("run_om_infer").main,
                  ["--model", work["dyn"], "--pure-data", "random", "--loop", "3", "--batch-size", "2",
                   "--output", str(tmp_path / "pure")])
    out = capsys.readouterr().out
    assert rc == 0 and "Performance Summary" in out and "throughput 1000*batchsize.mean(2)" in out
    assert os.path.exists(tmp_path / "pure" / "PureInfer_perf_of_tiny-dyn_in_device_0.txt")
    # It says where it kept the figures (issue 21): the two files that exist.
    wrote = [line for line in out.splitlines() if line.startswith("wrote ")]
    assert wrote == [f"wrote {tmp_path / 'pure' / 'pure_summary.json'} and "
                     f"{tmp_path / 'pure' / 'PureInfer_perf_of_tiny-dyn_in_device_0.txt'}"]
    assert all(os.path.isfile(p) for p in wrote[0][len("wrote "):].split(" and "))
    s = run_pure_inference(work["fixed"], loop=2, warmup=0)
    assert s["batch_size"] == 4 and s["phases"]["compute"]["latency_ms"]["count"] == 2


# --------------------------------------------------------------------------- the pipeline itself

class Doubler(Backend):
    """Zero-cost backend: output = 2 * input, so every result file can be checked by hand."""

    name = "doubler"

    def __init__(self, batch_size=None, fail_at=None, exc=RuntimeError) -> None:
        super().__init__()
        self.input_shape, self.input_dtype, self.batch_size = (4,), np.dtype(np.float32), batch_size
        self.model_path, self.calls, self.fail_at, self.exc = "doubler", 0, fail_at, exc

    def run(self, batch):
        self.calls += 1
        if self.calls == self.fail_at:
            raise self.exc("boom")
        self.timing.compute.append(0.0)
        return [batch.reshape(len(batch), -1) * 2.0, batch.reshape(len(batch), -1)[:, :1]]


@pytest.fixture(scope="module")
def small_bins(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    data = np.arange(103 * 4, dtype=np.float32).reshape(103, 4)
    for i, x in enumerate(data):
        x.tofile(folder / f"s{i}.bin")
    return str(folder), data


def test_order_padding_and_every_output_through_the_queues(small_bins, tmp_path):
    folder, data = small_bins
    s = run_inference("doubler", folder, str(tmp_path / "o"), backend=Doubler(batch_size=8), outfmt="bin",
                      progress=False)
    # 103 images, batch 8: 13 batches, the last padded by 1; two outputs → _1 and _2 per image.
    assert (s["batches"], s["padded_images"], s["result_files"]) == (13, 1, 206)
    res = os.path.join(str(tmp_path / "o"), "dumpOutput_device0")
    assert len([n for n in os.listdir(res) if not n.startswith(".")]) == 206
    for i in range(103):
        np.testing.assert_array_equal(read_result(os.path.join(res, f"s{i}_1.bin")), data[i] * 2)
        np.testing.assert_array_equal(read_result(os.path.join(res, f"s{i}_2.bin")), data[i][:1])


@pytest.mark.parametrize("exc,rc", [(RuntimeError, None), (KeyboardInterrupt, 130)])
def test_failure_mid_run_stops_threads(small_bins, tmp_path, exc, rc):
    folder, _ = small_bins
    before = threading.active_count()
    be = Doubler(batch_size=4, fail_at=5, exc=exc)
    with pytest.raises(exc):
        run_inference("doubler", folder, str(tmp_path / "o"), backend=be, warmup=0, progress=False)
    assert threading.active_count() == before
    # Results written before the failure are whole files; nothing half-written is left.
    res = os.path.join(str(tmp_path / "o"), "dumpOutput_device0")
    assert not [n for n in os.listdir(res) if n.startswith(".")]  # no temporary, no bookkeeping


def test_stale_results_are_reported(small_bins, tmp_path, capsys):
    """Issue 21: a rerun over other inputs replaces this tool's earlier results (they go), but a
    result-like file of a user's is never deleted and is pointed out; with --resume the earlier
    results stay and are pointed out. Oracle: hand counts (206 inputs, then 1, one user file)."""
    folder, _ = small_bins
    out = str(tmp_path / "o")
    run_inference("doubler", folder, out, backend=Doubler(), outfmt="txt", progress=False)
    one = tmp_path / "one"
    one.mkdir()
    np.zeros(4, np.float32).tofile(one / "x.bin")
    s = run_inference("doubler", str(one), out, backend=Doubler(), outfmt="txt", progress=False, resume=True)
    assert s["stale_result_files"] == 206
    assert "206 result files from an earlier run" in capsys.readouterr().err
    (tmp_path / "o" / "dumpOutput_device0" / "mine_1.txt").write_text("1 \n")
    s = run_inference("doubler", str(one), out, backend=Doubler(), outfmt="txt", progress=False)
    assert s["stale_result_files"] == 1 and "removed 206 result files" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "o" / "dumpOutput_device0")) == ["mine_1.txt", "x_1.txt", "x_2.txt"]


def test_loop_repeats_each_batch(small_bins, tmp_path):
    folder, _ = small_bins
    be = Doubler(batch_size=None)
    s = run_inference("doubler", folder, str(tmp_path / "o"), backend=be, batch_size=50, loop=3, warmup=0,
                      progress=False)
    assert s["batches"] == 3 and be.calls == 9 and s["phases"]["run"]["latency_ms"]["count"] == 9


def test_bad_run_options_are_refused(small_bins, tmp_path):
    folder, _ = small_bins
    with pytest.raises(UserError, match="--loop must be >= 1"):
        run_inference("doubler", folder, str(tmp_path / "o"), backend=Doubler(), loop=0)
    with pytest.raises(UserError, match="unknown --outfmt"):
        run_inference("doubler", folder, str(tmp_path / "o"), backend=Doubler(), outfmt="csv")


def test_figures_are_defined_once(capsys):
    """Oracle: `mocoinfer.perf.FIGURES`, the one definition of each reported figure. The table in
    docs/performance.md must be exactly the table made from it, and `--help` must print every definition."""
    import run_om_infer
    from mocoinfer import perf

    with open(os.path.join(ROOT, "docs", "performance.md"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    header = perf.figures_table()[0]
    assert lines.count(header) == 1
    start = lines.index(header)
    end = next(i for i in range(start, len(lines) + 1) if i == len(lines) or not lines[i].startswith("|"))
    assert lines[start:end] == perf.figures_table()

    with pytest.raises(SystemExit):
        run_om_infer.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    missing = [fig.key for fig in perf.FIGURES if " ".join(fig.counts.split()) not in help_text]
    assert missing == []
    assert set(perf.DEFINITIONS) == {fig.key for fig in perf.FIGURES if fig.in_summary}

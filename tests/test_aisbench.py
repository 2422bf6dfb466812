"""ais_bench's command line in run_om_infer.py (issue 9 item 2), the benchmark's `-round` form and
messages in the user's spelling (item 6).

Oracles: PyTorch for every result value (a tiny conv net exported to ONNX at batch 1, 16 and with
a dynamic batch), ais_bench's documented layout (`{name}_0.{ext}`, `{folder}_summary.json` beside
the folder, a `YYYY_MM_DD-HH_MM_SS` folder without --output_dirname, the summary labels), and the
file system for what must not be written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys

import numpy as np
import pytest

from mocoinfer.cli import run_main
from mocoinfer.formats import parse_perf, read_result
from tests.tiny_model import tiny_net

N = 5
ATOL, RTOL = 1e-4, 1e-3  # the export check's bound between ONNX Runtime and PyTorch


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import torch

    from mocoinfer.export import export_model

    root = tmp_path_factory.mktemp("ais")

    net = tiny_net()
    export_model(net, str(root / "moco-v2-bs1.onnx"), batch_size=1)
    export_model(net, str(root / "moco-v2-bs16.onnx"), batch_size=16)
    export_model(net, str(root / "moco-v2-dyn.onnx"), batch_size=1, dynamic=True)
    data = np.random.default_rng(1).standard_normal((N, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(data)).numpy()
    return {"root": root, "data": data, "ref": ref}


@pytest.fixture
def work(models, tmp_path, monkeypatch):
    """A working folder laid out as the guide's: the models and ./prep_dataset of N .bin files."""
    for name in ("moco-v2-bs1.onnx", "moco-v2-bs16.onnx", "moco-v2-dyn.onnx"):
        os.symlink(models["root"] / name, tmp_path / name)
    (tmp_path / "prep_dataset").mkdir()
    for i, x in enumerate(models["data"]):
        x.tofile(tmp_path / "prep_dataset" / f"img{i}.bin")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(argv, capsys):
    import run_om_infer

    rc = run_main(run_om_infer.main, argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_issue_file_run_line_writes_what_ais_bench_writes(work, models, capsys):
    # The issue's line as printed, program name swapped and .om → .onnx.
    argv = shlex.split("--model moco-v2-bs1.onnx --input ./prep_dataset --output ./result "
                       "--output_dirname dumpOutput_device0 --outfmt TXT --batchsize 1 --device 0")
    rc, out, err = _run(argv, capsys)
    assert rc == 0, err
    res = work / "result" / "dumpOutput_device0"
    assert sorted(n for n in os.listdir(res) if not n.startswith(".")) == [f"img{i}_0.txt" for i in range(N)]
    got = np.stack([read_result(str(res / f"img{i}_0.txt")) for i in range(N)])
    np.testing.assert_allclose(got, models["ref"], atol=ATOL, rtol=RTOL)
    # ais_bench writes the summary beside the folder, no benchmark perf file, no summary.json.
    assert sorted(os.listdir(work / "result")) == [".dumpOutput_device0.mocoinfer", "dumpOutput_device0",
                                                   "dumpOutput_device0_summary.json"]
    with open(work / "result" / "dumpOutput_device0_summary.json") as f:
        doc = json.load(f)
    assert set(doc) >= {"NPU_compute_time", "H2D_latency", "D2H_latency", "throughput"}
    assert doc["NPU_compute_time"]["count"] == N and "percentile(99%)" in doc["NPU_compute_time"]
    assert doc["throughput"] == pytest.approx(1000.0 / doc["NPU_compute_time"]["mean"])
    assert re.search(r"NPU_compute_time \(ms\): min = [\d.e-]+, max = .*percentile\(99%\) = ", out)
    assert "throughput 1000*batchsize.mean(1)/NPU_compute_time.mean(" in out
    assert "H2D_latency" not in out  # only with --display_all_summary, as ais_bench

    # The metric reads this layout (_0 names); labels = PyTorch's top-1, so Top-1 is 100% by hand.
    import vision_metric_ImageNet as metric

    (work / "val_label.txt").write_text("".join(f"img{i}.JPEG {c}\n" for i, c in enumerate(models["ref"].argmax(1))))
    assert run_main(metric.main, [str(res), "val_label.txt", "./", "result.json"]) == 0
    assert "Top1 accuracy      100.0%" in capsys.readouterr().out


def test_issue_pure_line_prints_the_summary_and_writes_nothing(work, capsys):
    before = sorted(os.listdir(work))
    rc, out, err = _run(shlex.split("--model moco-v2-bs16.onnx --loop 100 --batchsize 16"), capsys)
    assert rc == 0, err
    assert "throughput 1000*batchsize.mean(16)/NPU_compute_time.mean(" in out
    assert sorted(os.listdir(work)) == before  # ais_bench keeps nothing without --output


def test_timestamped_folder_default_bin_and_all_summary(work, models, capsys):
    rc, out, err = _run(["-m", "moco-v2-dyn.onnx", "-i", "prep_dataset", "-o", "out", "--batchsize", "2",
                         "--display_all_summary", "True", "--pure_data_type", "random"], capsys)
    assert rc == 0, err
    names = os.listdir(work / "out")
    folder = [n for n in names if re.fullmatch(r"\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d", n)]
    assert len(folder) == 1 and f"{folder[0]}_summary.json" in names
    got = np.stack([read_result(str(work / "out" / folder[0] / f"img{i}_0.bin")) for i in range(N)])
    np.testing.assert_allclose(got, models["ref"], atol=ATOL, rtol=RTOL)
    assert "H2D_latency (ms)" in out and "D2H_latency (ms)" in out


@pytest.mark.parametrize("fmt,ext", [("npy", "npy"), ("Txt", "txt")])
def test_outfmt_in_any_case_and_dymbatch(work, models, capsys, fmt, ext):
    rc, out, err = _run(["--model", "moco-v2-dyn.onnx", "--input", "prep_dataset", "--output", "o",
                         "--output_dirname", "d", "--outfmt", fmt, "--dymBatch", "4"], capsys)
    assert rc == 0, err
    assert "batch size 4" in out
    got = np.stack([read_result(str(work / "o" / "d" / f"img{i}_0.{ext}")) for i in range(N)])
    np.testing.assert_allclose(got, models["ref"], atol=ATOL, rtol=RTOL)


def test_comma_lists_files_and_one_folder_per_model_input(work, models, capsys):
    """A comma list of files is run in its order; a comma list of folders is one folder per model
    input (ais_bench's io_oprations.check_input_parameter: dir count must equal the model's input
    count), so two folders for a one-input model are refused in one line. Oracle: PyTorch."""
    rc, out, err = _run(["--model", "moco-v2-bs1.onnx", "--input", "prep_dataset/img3.bin,prep_dataset/img1.bin",
                         "--output", "o", "--output_dirname", "d", "--batchsize", "1"], capsys)
    assert rc == 0, err
    assert sorted(os.listdir(work / "o" / "d")) == ["img1_0.bin", "img3_0.bin"]
    np.testing.assert_allclose(np.fromfile(work / "o" / "d" / "img3_0.bin", dtype=np.float32), models["ref"][3],
                               atol=ATOL, rtol=RTOL)
    (work / "second").mkdir()
    models["data"][0].tofile(work / "second" / "extra.bin")
    rc, out, err = _run(["--model", "moco-v2-bs1.onnx", "--input", "prep_dataset,second", "--output", "o",
                         "--output_dirname", "e", "--batchsize", "1"], capsys)
    assert rc == 1 and "one folder per model input" in err and err.count("\n") == 1, err
    assert not os.path.exists(work / "o" / "e")


def test_benchmark_round_is_pure_inference(work, capsys):
    rc, out, err = _run(["-round=5", "-om_path=moco-v2-bs1.onnx", "-device_id=0", "-batch_size=1"], capsys)
    assert rc == 0, err
    with open(work / "result" / "PureInfer_perf_of_moco-v2-bs1_in_device_0.txt") as f:
        line = f.read()
    assert re.fullmatch(r"ave_throughputRate = [\d.e+]+samples/s, ave_latency = [\d.e+-]+ms\n", line), line
    # It says where the figures went (issue 21), naming the file just read.
    assert f"result{os.sep}PureInfer_perf_of_moco-v2-bs1_in_device_0.txt" in out.splitlines()[-1]
    assert out.splitlines()[-1].startswith("wrote ")


def test_ais_pure_inference_with_output_says_where_its_summary_is(work, capsys):
    """ais_bench's pure form with --output writes `{output}/{dirname}_summary.json` (summary.py,
    benchmark_process.py main); the last line names that file, which exists."""
    rc, out, err = _run(["--model", "moco-v2-bs1.onnx", "--loop", "2", "--output", "o", "--output_dirname", "d"],
                        capsys)
    assert rc == 0, err
    assert out.splitlines()[-1] == f"wrote {os.path.join('o', 'd')}_summary.json"
    assert (work / "o" / "d_summary.json").is_file()


@pytest.mark.parametrize("flag", ["--profiler", "--dump", "--acl_json_path", "--aipp_config",
                                  "--energy_consumption", "--dymShape", "--dymHW"])
def test_unsupported_ais_bench_flags_name_the_flag(work, capsys, monkeypatch, flag):
    def never(*a, **k):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr("mocoinfer.onepass.open_backend", never)
    rc, out, err = _run(["--model", "moco-v2-bs1.onnx", "--input", "prep_dataset", flag, "1"], capsys)
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and flag in lines[0] and "use ais_bench itself" in lines[0], err


@pytest.mark.parametrize("argv,needle", [
    (["--batchsize", "1", "--batch-size", "1"], "--batchsize (ais_bench form) and --batch-size (own form) mixed"),
    (["-batch_size=1", "--warmup_count", "2"], "-batch_size (benchmark form) and --warmup_count (ais_bench form)"),
    (["--outfmt", "TXT", "--warmup", "2"], "mixed"),
    (["--run_mode", "fast"], "--run_mode fast: expected one of array, files, full, tensor"),
    (["--device", "0,x"], "--device 0,x: 'x' is not a device id"),
    (["--device", "0", "--output_dirname", "x"], "--output_dirname needs --output"),
])
def test_forms_are_not_mixed_and_devices_are_one(work, capsys, argv, needle):
    rc, out, err = _run(["--model", "moco-v2-bs1.onnx", "--input", "prep_dataset"] + argv, capsys)
    assert rc == 1 and needle in err and err.count("\n") == 1, err


def test_errors_echo_the_users_spelling(work, capsys):
    rc, out, err = _run(["-om_path=moco-v2-bs16.onnx", "-input_text_path=prep_dataset", "-batch_size=2",
                         "-device_id=0"], capsys)
    assert rc == 1 and "-batch_size=2 does not fit" in err and "--batch-size" not in err, err
    rc, out, err = _run(["--model", "moco-v2-bs16.onnx", "--input", "prep_dataset", "--output", "o",
                         "--dymBatch", "2"], capsys)
    assert rc == 1 and "--dymBatch 2 does not fit" in err and "--batch" not in err, err
    rc, out, err = _run(["--model", "moco-v2-bs1.onnx", "--input", "prep_dataset", "--output", "o",
                         "--warmup_count", "-1"], capsys)
    assert rc == 1 and "--warmup_count >= 0" in err and "--warmup " not in err, err
    rc, out, err = _run(["-round=3", "-om_path=moco-v2-bs1.onnx", "-device_id=-1"], capsys)
    assert rc == 1 and "-device_id=-1" in err and ">= 0" in err and "--device-id" not in err, err


def test_missing_acl_hint_names_onnx_runtime_only_where_installed(tmp_path, monkeypatch):
    """Oracle: importlib's view of onnxruntime, switched off for the second case."""
    import importlib.util

    from mocoinfer.backends import acl as acl_backend
    from mocoinfer.errors import UserError

    monkeypatch.setitem(sys.modules, "acl", None)  # `import acl` raises ImportError
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(UserError, match="ONNX Runtime: --model"):
        acl_backend._import_acl(str(tmp_path / "m.om"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(UserError) as info:
        acl_backend._import_acl(str(tmp_path / "m.om"))
    assert "ONNX" not in str(info.value) and "set_env.sh" in str(info.value)


def test_own_and_benchmark_forms_still_write_their_layout(work, capsys):
    """The guide's benchmark line keeps the benchmark's layout: _1 names, the perf file."""
    (work / "prep.info").write_text("".join(f"{i} prep_dataset/img{i}.bin 224 224\n" for i in range(N)))
    rc, out, err = _run(["-model_type=vision", "-batch_size=1", "-device_id=0", "-input_text_path=./prep.info",
                         "-input_width=224", "-input_height=224", "-om_path=./moco-v2-bs1.onnx", "-useDvpp=False",
                         "-output_binary=False"], capsys)
    assert rc == 0, err
    assert os.path.exists(work / "result" / "dumpOutput_device0" / "img0_1.txt")
    with open(work / "result" / "perf_vision_batchsize_1_device_0.txt") as f:
        assert list(parse_perf(f.read())) == ["e2e", "data read", "preprocess", "infer", "post"]

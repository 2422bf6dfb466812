"""`--backend aisbench` against the stand-in ais_bench of tests/fake_ais_bench (no NPU, no CANN here).

Oracles: ONNX Runtime (`--backend onnxruntime`) on the same ONNX file the stand-in runs as an
`.om`, for fixed and dynamic batch, float32 and uint8 inputs, through every command form and on
several devices; ais_bench's source for what the stand-in does (interface.py's InferSession,
PyInferenceSession.cpp, ModelInferenceProcessor.cpp: exec_time_list pairs in ms, a dynamic batch
axis reported as -1, the TensorDataType codes); the stand-in's call log and its count of sessions
not freed; for the cross-check recipe, the fake acl's `2 * x + 1` model run through both stand-ins.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mocoinfer.backends import open_backend
from mocoinfer.cli import run_main
from mocoinfer.errors import UserError
from mocoinfer.formats import read_result
from mocoinfer.runner import run_inference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_AIS = os.path.join(ROOT, "tests", "fake_ais_bench")
FAKE_ACL = os.path.join(ROOT, "tests", "fake_acl")
STAND_IN_MODULES = ("aclruntime", "ais_bench", "ais_bench.infer", "ais_bench.infer.interface")
CHW = (3, 4, 4)
HWC = (4, 6, 3)  # not square: width and height read from the wrong axes cannot pass
OUT_DIM = 10
N_IMAGES = 5


def _forget_stand_ins() -> None:
    for name in STAND_IN_MODULES:
        sys.modules.pop(name, None)


@pytest.fixture
def ais(monkeypatch, tmp_path):
    """A fresh stand-in `aclruntime` (under the stand-in `ais_bench`), importable here and in
    spawned workers; each process that opened a session reports at exit."""
    monkeypatch.syspath_prepend(FAKE_AIS)
    reports = tmp_path / "ais-reports"
    reports.mkdir()
    monkeypatch.setenv("FAKE_AIS_BENCH_REPORT_DIR", str(reports))
    monkeypatch.delenv("FAKE_AIS_BENCH_FAIL", raising=False)
    _forget_stand_ins()
    module = importlib.import_module("aclruntime")
    assert module.__file__.startswith(FAKE_AIS)
    module.reset()
    module.reports = str(reports)
    try:
        yield module
    finally:
        _forget_stand_ins()


def onnx_model(path, batch, sample, dtype, gears=None) -> str:
    """A one-input ONNX graph: Cast to float, Flatten, MatMul by seeded weights to OUT_DIM
    classes. `batch` a number, or "N" for a free batch axis; `gears` the batch sizes an .om made
    with `atc --dynamic_batch_size` would list (the stand-in reads them from the metadata)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = {np.float32: TensorProto.FLOAT, np.uint8: TensorProto.UINT8}[dtype]
    weights = np.random.default_rng(0).standard_normal((int(np.prod(sample)), OUT_DIM)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT), helper.make_node("Flatten", ["xf"], ["f"]),
         helper.make_node("MatMul", ["f", "W"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", elem, [batch, *sample])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, OUT_DIM])],
        [numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if gears:
        helper.set_model_props(model, {"dynamic_batch": ",".join(map(str, gears))})
    onnx.save(model, str(path))
    return str(path)


def model_pair(folder, kind):
    """(the .om the stand-in runs, the same bytes as .onnx for ONNX Runtime, input sample shape, dtype)."""
    sample, dtype = (CHW, np.float32) if kind.endswith("float32") else (HWC, np.uint8)
    batch, gears = (2, None) if kind.startswith("fixed") else ("N", [1, 2, 4])
    om = onnx_model(folder / f"{kind}.om", batch, sample, dtype, gears)
    onnx_path = str(folder / f"{kind}.onnx")
    with open(om, "rb") as src, open(onnx_path, "wb") as dst:
        dst.write(src.read())
    return om, onnx_path, sample, dtype


def write_bins(folder, sample, dtype, n=N_IMAGES) -> str:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(5)
    for i in range(n):
        x = rng.integers(0, 256, size=sample) if dtype == np.uint8 else rng.standard_normal(sample)
        np.asarray(x, dtype=dtype).tofile(folder / f"img{i + 1}.bin")
    return str(folder)


def results(folder, n=N_IMAGES, suffix="_1", fmt="bin"):
    return np.stack([read_result(os.path.join(folder, f"img{i + 1}{suffix}.{fmt}")) for i in range(n)])


KINDS = ["fixed-float32", "dynamic-float32", "fixed-uint8", "dynamic-uint8"]


@pytest.mark.parametrize("kind", KINDS)
def test_results_equal_onnxruntime_on_the_same_model(ais, tmp_path, kind):
    """The results through --backend aisbench equal ONNX Runtime's on the same file, byte for
    byte through the result files; uint8 files go in as they are (an AIPP .om's NHWC input)."""
    om, onnx_path, sample, dtype = model_pair(tmp_path, kind)
    bins = write_bins(tmp_path / "bins", sample, dtype)
    s = run_inference(om, bins, str(tmp_path / "ais"), backend="aisbench", outfmt="bin", progress=False)
    run_inference(onnx_path, bins, str(tmp_path / "ort"), backend="onnxruntime", outfmt="bin",
                  batch_size=4 if kind.startswith("dynamic") else None, progress=False)
    got = results(str(tmp_path / "ais" / "dumpOutput_device0"))
    want = results(str(tmp_path / "ort" / "dumpOutput_device0"))
    assert got.shape == (N_IMAGES, OUT_DIM)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # Fixed batch 2: 3 batches, one padded image; dynamic (1, 2, 4): InferSession lists its
    # largest size only, so both batches run at 4 and the second carries 3 padded images.
    fixed = kind.startswith("fixed")
    assert (s["backend"], s["batch_size"], s["batches"], s["padded_images"]) == (
        ("aisbench", 2, 3, 1) if fixed else ("aisbench", 4, 2, 3))
    assert s["result_files"] == N_IMAGES
    assert s["compute_label"] == "NPU_compute_time" and "compute" in s["phases"]
    # ais_bench's own call for each mode: set_staticbatch for a fixed .om, set_dynamic_batchsize
    # with the batch's size for a dynamic one (interface.py _static_prepare / _dymbatch_prepare).
    runs = ais.CALLS.count("run")
    assert runs >= s["batches"]
    assert ais.CALLS.count("set_staticbatch" if fixed else "set_dynamic_batchsize") == runs
    assert ais.CALLS.count("free_resource") == 1 and ais.open_sessions() == {}


def test_input_description_layout_and_dtype(ais, tmp_path):
    """What the backend reads from get_inputs(): per-sample shape, dtype, batch, layout. Oracle:
    the ONNX graph written by hand above; an uint8 HWC input is NHWC (aclFormat 1)."""
    om = onnx_model(tmp_path / "u8.om", "N", HWC, np.uint8, [1, 2, 4])
    with open_backend("aisbench", om) as be:
        assert (be.name, be.input_shape, be.input_dtype, be.batch_size) == ("aisbench", HWC, np.uint8, None)
        assert tuple(be.batch_choices) == (4,) and be.input_layout == "NHWC" and be.image_size() == (6, 4)
    om = onnx_model(tmp_path / "f.om", 2, CHW, np.float32)
    with open_backend("aisbench", om) as be:
        assert (be.input_shape, be.input_dtype, be.batch_size, be.batch_choices) == (CHW, np.float32, 2, None)
        assert be.input_layout == "NCHW" and be.device == "npu:0"
    assert ais.CALLS.count("free_resource") == 2 and ais.open_sessions() == {}


def test_compute_time_is_exec_time_list_in_seconds(ais, tmp_path):
    """timing.compute is each batch's (end - start) from summary().exec_time_list, ms → s, and
    the list is reset after each read (it never grows with the run). Oracle: the pairs the
    stand-in handed out (ModelInferenceProcessor::Execute: milliseconds since the session began)."""
    om = onnx_model(tmp_path / "m.om", 2, CHW, np.float32)
    x = np.zeros((2, *CHW), np.float32)
    with open_backend("aisbench", om) as be:
        for _ in range(3):
            be.run(x)
        assert be._session.summary().exec_time_list == []  # reset after every read
        assert be.timing.compute == [(end - start) / 1000.0 for start, end in ais.S.exec_log]
        assert be.timing.h2d == [] and be.timing.d2h == []
    assert ais.CALLS.count("sumary") == 4 and ais.CALLS.count("reset_sumaryinfo") == 4


def test_batch_sizes_the_model_does_not_take_are_refused_before_any_run(ais, tmp_path):
    om, _, sample, dtype = model_pair(tmp_path, "dynamic-float32")
    bins = write_bins(tmp_path / "bins", sample, dtype)
    with pytest.raises(UserError, match=r"--batch-size 2 does not fit .*dynamic-float32\.om.* 4"):
        run_inference(om, bins, str(tmp_path / "out"), backend="aisbench", batch_size=2, progress=False)
    om, _, _, _ = model_pair(tmp_path, "fixed-float32")
    with pytest.raises(UserError, match=r"--batch-size 4 does not fit .*fixed batch of 2"):
        run_inference(om, bins, str(tmp_path / "out2"), backend="aisbench", batch_size=4, progress=False)
    assert "run" not in ais.CALLS and ais.open_sessions() == {}


def test_wrong_input_files_are_refused_before_any_run(ais, tmp_path):
    """Oracle: the model's 3x4x4 float32 sample is 192 bytes (by hand); a 40-byte file is named."""
    om, _, sample, dtype = model_pair(tmp_path, "fixed-float32")
    bins = write_bins(tmp_path / "bins", sample, dtype)
    np.zeros(10, np.float32).tofile(os.path.join(bins, "img3.bin"))
    with pytest.raises(UserError) as err:
        run_inference(om, bins, str(tmp_path / "out"), backend="aisbench", progress=False)
    assert "img3.bin" in str(err.value) and "40 bytes" in str(err.value) and "192 bytes" in str(err.value)
    assert "run" not in ais.CALLS and ais.open_sessions() == {}


# --------------------------------------------------------------------------- every exit path frees

# (stand-in call, calls that succeed first): after InferSession's own constructor (which calls
# get_outputs, get_inputs, get_outputs), so the session exists and must be freed.
FAILURES = [("get_inputs", 1), ("get_outputs", 2), ("get_max_dym_batchsize", 0), ("reset_sumaryinfo", 0),
            ("set_dynamic_batchsize", 0), ("run", 0), ("run", 1), ("sumary", 1)]


@pytest.mark.parametrize("call,skip", FAILURES, ids=lambda v: str(v))
def test_a_runtime_error_is_one_line_and_frees_the_session(ais, tmp_path, call, skip):
    om, _, sample, dtype = model_pair(tmp_path, "dynamic-float32")
    bins = write_bins(tmp_path / "bins", sample, dtype)
    ais.FAIL[call] = (RuntimeError, skip)
    with pytest.raises(UserError) as err:
        run_inference(om, bins, str(tmp_path / "out"), backend="aisbench", warmup=0, progress=False)
    msg = str(err.value)
    assert "ais_bench" in msg and f"stand-in failure of {call}" in msg and om in msg and "\n" not in msg
    assert ais.CALLS.count("free_resource") == 1 and ais.open_sessions() == {}


@pytest.mark.parametrize("call,skip", [("get_inputs", 1), ("run", 1), ("sumary", 0), ("set_dynamic_batchsize", 1)])
def test_ctrl_c_anywhere_frees_the_session(ais, tmp_path, capsys, call, skip):
    import run_om_infer

    om, _, sample, dtype = model_pair(tmp_path, "dynamic-float32")
    bins = write_bins(tmp_path / "bins", sample, dtype)
    ais.FAIL[call] = (KeyboardInterrupt, skip)
    rc = run_main(run_om_infer.main, ["--backend", "aisbench", "--model", om, "--input", bins, "--output",
                                      str(tmp_path / "out"), "--no-progress", "--warmup", "0"])
    assert rc == 130 and "interrupted" in capsys.readouterr().err
    assert ais.CALLS.count("free_resource") == 1 and ais.open_sessions() == {}


def test_a_failed_load_has_nothing_to_free_and_says_so_in_one_line(ais, tmp_path):
    om = onnx_model(tmp_path / "m.om", 2, CHW, np.float32)
    with pytest.raises(UserError, match=r"m\.om: ais_bench InferSession could not load it on device 7 \("):
        open_backend("aisbench", om, device_id=7)  # the stand-in has devices 0-3
    (tmp_path / "junk.om").write_bytes(b"not a model")
    with pytest.raises(UserError, match=r"junk\.om: ais_bench InferSession could not load it on device 0"):
        open_backend("aisbench", str(tmp_path / "junk.om"))
    assert "free_resource" not in ais.CALLS and ais.open_sessions() == {}


def test_free_resource_failing_is_reported_but_never_hides_the_first_error(ais, tmp_path):
    om = onnx_model(tmp_path / "m.om", 2, CHW, np.float32)
    ais.FAIL["free_resource"] = RuntimeError
    with pytest.raises(UserError, match="InferSession.free_resource failed"), open_backend("aisbench", om) as be:
        be.run(np.zeros((2, *CHW), np.float32))
    with pytest.raises(UserError, match="takes batches of 2, got 3"), open_backend("aisbench", om) as be:
        be.run(np.zeros((3, *CHW), np.float32))
    assert ais.CALLS.count("free_resource") == 2


def test_only_om_models(ais, tmp_path):
    path = onnx_model(tmp_path / "m.onnx", 2, CHW, np.float32)
    with pytest.raises(UserError, match=r"m\.onnx: --backend aisbench runs Ascend \.om models"):
        open_backend("aisbench", path)
    assert "InferenceSession" not in ais.CALLS


def test_precision_is_the_om_s_own(ais, tmp_path):
    om = onnx_model(tmp_path / "m.om", 2, CHW, np.float32)
    with pytest.raises(UserError, match="fixed when atc converts it"):
        open_backend("aisbench", om, precision="fp16")
    assert "InferenceSession" not in ais.CALLS


# --------------------------------------------------------------------------- without ais_bench

@pytest.mark.parametrize("missing", ["ais_bench", "aclruntime"])
def test_without_ais_bench_one_line_says_how_to_install_it(monkeypatch, tmp_path, missing):
    """Oracle: the install steps of ait/components/benchmark/README.md (the aclruntime wheel,
    then the ais_bench wheel). With only aclruntime missing, ais_bench's interface.py fails on
    its own `import aclruntime`, which is what a half install does."""
    monkeypatch.syspath_prepend(FAKE_AIS)
    _forget_stand_ins()
    monkeypatch.setitem(sys.modules, missing, None)  # import → ImportError
    om = onnx_model(tmp_path / "m.om", 2, CHW, np.float32)
    try:
        with pytest.raises(UserError) as err:
            open_backend("aisbench", om)
    finally:
        _forget_stand_ins()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{om}: --backend aisbench needs ais_bench")
    assert "aclruntime" in msg and "ais_bench-{version}-py3-none-any.whl" in msg and "pip3 install" in msg


def _real_ais_bench_installed() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is not None and not (importlib.util.find_spec(m).origin or "")
               .startswith(FAKE_AIS) for m in ("ais_bench", "aclruntime"))


needs_no_real_ais_bench = pytest.mark.skipif(_real_ais_bench_installed(),
                                             reason="a real ais_bench is installed: it cannot be missing here")


@needs_no_real_ais_bench
def test_without_ais_bench_the_command_exits_non_zero_without_a_traceback(tmp_path):
    om = onnx_model(tmp_path / "m.om", 2, CHW, np.float32)
    bins = write_bins(tmp_path / "bins", CHW, np.float32)
    env = dict(os.environ, PYTHONPATH=ROOT)  # no stand-in, and no real ais_bench in this venv
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "run_om_infer.py"), "--backend", "aisbench",
                           "--model", om, "--input", bins, "--output", str(tmp_path / "out"), "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "ais_bench" in ln and not ln.startswith("note:")]
    assert len(lines) == 1 and "pip3 install" in lines[0] and "aclruntime" in lines[0]
    assert not os.path.exists(tmp_path / "out" / "dumpOutput_device0" / "img1_1.txt")


# --------------------------------------------------------------------------- forms and devices

def test_several_devices_one_session_per_worker(ais, tmp_path):
    """`--device-id 0,1`: one worker process per device, each with its own InferSession on its
    own device, freed; the results are ONNX Runtime's on the same file (one process)."""
    om, onnx_path, sample, dtype = model_pair(tmp_path, "dynamic-uint8")
    bins = write_bins(tmp_path / "bins", sample, dtype, n=7)
    s = run_inference(om, bins, str(tmp_path / "ais"), backend="aisbench", device_id="0,1", outfmt="bin",
                      progress=False)
    run_inference(onnx_path, bins, str(tmp_path / "ort"), backend="onnxruntime", outfmt="bin", progress=False)
    np.testing.assert_allclose(results(str(tmp_path / "ais" / "dumpOutput_device0"), n=7),
                               results(str(tmp_path / "ort" / "dumpOutput_device0"), n=7), rtol=1e-6, atol=1e-6)
    assert [d["device"] for d in s["devices"]] == ["npu:0", "npu:1"]
    reports = [json.loads(p.read_text()) for p in sorted(Path(ais.reports).iterdir())]
    assert sorted(r["devices_used"] for r in reports) == [[0], [1]]
    assert all(r["open_sessions"] == 0 for r in reports)


def _forms(om, bins, info, out):
    return {
        "own": ["--backend", "aisbench", "--model", om, "--input", bins, "--output", out, "--outfmt", "bin",
                "--no-progress"],
        "guide": ["-model_type=vision", "-batch_size=2", "-device_id=0", f"-input_text_path={info}",
                  "-input_width=4", "-input_height=4", f"-om_path={om}", "-useDvpp=False", "-output_binary=True",
                  "--backend", "aisbench", "--no-progress"],
        "ais_bench": ["--model", om, "--input", bins, "--output", out, "--output_dirname", "dumpOutput_device0",
                      "--outfmt", "BIN", "--batchsize", "2", "--device", "0", "--backend", "aisbench",
                      "--no-progress"],
    }


@pytest.mark.parametrize("form", ["own", "guide", "ais_bench"])
def test_every_command_form_runs_it(ais, tmp_path, monkeypatch, form):
    """The guide's benchmark line, ais_bench's own line and this runner's, each with
    `--backend aisbench`; the results are ONNX Runtime's on the same file."""
    import run_om_infer

    om, onnx_path, sample, dtype = model_pair(tmp_path, "fixed-float32")
    bins = write_bins(tmp_path / "bins", sample, dtype)
    info = tmp_path / "prep.info"
    info.write_text("".join(f"{i} {bins}/img{i + 1}.bin 4 4\n" for i in range(N_IMAGES)))
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "result")
    assert run_main(run_om_infer.main, _forms(om, bins, str(info), out)[form]) == 0
    run_inference(onnx_path, bins, str(tmp_path / "ort"), backend="onnxruntime", outfmt="bin", progress=False)
    suffix = "_0" if form == "ais_bench" else "_1"  # ais_bench names results {name}_0
    np.testing.assert_allclose(results(os.path.join(out, "dumpOutput_device0"), suffix=suffix),
                               results(str(tmp_path / "ort" / "dumpOutput_device0")), rtol=1e-6, atol=1e-6)
    assert ais.CALLS.count("free_resource") == 1 and ais.open_sessions() == {}



def test_ais_bench_pure_inference_form(ais, tmp_path, monkeypatch, capsys):
    """ais_bench's `--loop N` without --input: generated data, N timed batches after
    --warmup_count (default 1, ais_bench's __main__.py and main_cli.py). Oracle: the stand-in's run count and the
    summary's NPU_compute_time line, which now comes from exec_time_list."""
    import run_om_infer

    om = onnx_model(tmp_path / "m.om", "N", CHW, np.float32, [1, 2, 4])
    monkeypatch.chdir(tmp_path)
    assert run_main(run_om_infer.main, ["--model", om, "--loop", "3", "--batchsize", "4", "--backend", "aisbench"]) == 0
    assert ais.CALLS.count("run") == 4 and ais.CALLS.count("set_dynamic_batchsize") == 4
    assert "NPU_compute_time (ms): min = " in capsys.readouterr().out
    assert ais.CALLS.count("free_resource") == 1 and ais.open_sessions() == {}


# --------------------------------------------------------------------------- the cross-check recipe

DOC = os.path.join(ROOT, "docs", "cross-check.md")


def recipe_commands():
    """The commands of docs/cross-check.md's recipe block (the ```text block after the line
    `<!-- recipe -->`), one per line, continuation lines joined."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"<!-- recipe -->\s*```text\n(.*?)```", text, re.S)
    assert block, "docs/cross-check.md has no recipe block"
    joined = block.group(1).replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_the_documented_cross_check_runs_on_the_stand_ins_and_agrees(tmp_path):
    """The recipe as written in the docs, on the stand-ins: one .om (the fake acl's JSON
    description, which the stand-in ais_bench executes as the fake acl does: 2 * x + 1) run with
    --backend acl and --backend aisbench, then the metric's --compare. Oracle: the two stand-ins
    compute the same float32 values, so the comparison must report full agreement."""
    commands = recipe_commands()
    assert [c[:2] for c in commands] == [["python3", "run_om_infer.py"]] * 2 + [
        ["python3", "vision_metric_ImageNet.py"]]
    work = tmp_path / "work"
    (work / "prep_dataset").mkdir(parents=True)
    names = [f"ILSVRC2012_val_{i:08d}" for i in range(1, N_IMAGES + 1)]
    data = np.random.default_rng(11).standard_normal((N_IMAGES, 3, 224, 224)).astype(np.float32)
    for name, x in zip(names, data):
        x.tofile(work / "prep_dataset" / f"{name}.bin")
    (work / "dataset_prep_bin.info").write_text(
        "".join(f"{i} ./work/prep_dataset/{n}.bin 224 224\n" for i, n in enumerate(names)))
    (work / "val_label.txt").write_text("".join(f"{n}.JPEG {i % 3}\n" for i, n in enumerate(names)))
    doc = {"inputs": [{"name": "actual_input_1", "dims": [1, 3, 224, 224], "dtype": 0}],
           "outputs": [{"name": "output1", "dims": [1, 1000], "dtype": 0}]}
    (work / "moco-v2-atc-bs1.om").write_text(json.dumps(doc))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([FAKE_ACL, FAKE_AIS, ROOT]))
    for env_var in ("FAKE_ACL_FAIL_ON_DEVICE", "FAKE_ACL_FAIL_DEVICES", "FAKE_AIS_BENCH_FAIL"):
        env.pop(env_var, None)
    for argv in commands:
        cmd = [sys.executable, os.path.join(ROOT, argv[1])] + argv[2:]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (argv, proc.stderr)
        assert "Traceback" not in proc.stderr
    compare_json = next(p for p in tmp_path.rglob("*_compare.json"))
    cmp = json.loads(compare_json.read_text())
    assert cmp["images_compared"] == N_IMAGES and cmp["only_in_checked"] == cmp["only_in_reference"] == 0
    assert cmp["top1_agreement"] == 1.0 and cmp["mean_top5_overlap"] == 1.0 and cmp["max_abs_diff"] == 0.0
    assert cmp["top1_drop"] == 0 and cmp["passed"] is True
    # Each runtime really ran: acl's and ais_bench's summaries name their backends.
    backends = sorted(json.loads(p.read_text())["backend"] for p in tmp_path.rglob("summary.json"))
    assert backends == ["acl", "aisbench"]


# --------------------------------------------------------------------------- step 0's row

def test_env_check_reports_ais_bench_and_its_version(monkeypatch):
    """Oracle: the version ait's setup.py gives both wheels (0.0.2), which the stand-in's package
    metadata repeats; the row names the interface module it imported."""
    from mocoinfer import envcheck

    monkeypatch.setenv("PYTHONPATH", FAKE_AIS)
    row = envcheck.check_ais_bench()
    assert (row.item, row.status, row.path) == ("ais_bench", envcheck.OK, "info")
    assert row.detail.startswith("0.0.2, aclruntime 0.0.2 (")
    assert os.path.join(FAKE_AIS, "ais_bench", "infer", "interface.py") in row.detail


@needs_no_real_ais_bench
def test_env_check_without_or_with_a_broken_ais_bench_warns_and_blocks_nothing(monkeypatch, tmp_path):
    from mocoinfer import envcheck

    monkeypatch.setenv("PYTHONPATH", "")
    row = envcheck.check_ais_bench()
    assert (row.status, row.path) == (envcheck.WARNING, "info")
    assert "No module named 'ais_bench'" in row.detail and "docs/cross-check.md" in row.detail
    # A half-working install: aclruntime's CANN library will not load.
    (tmp_path / "aclruntime.py").write_text("raise OSError('libascendcl.so: cannot open shared object file')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), FAKE_AIS]))
    row = envcheck.check_ais_bench()
    assert row.status == envcheck.WARNING and "OSError: libascendcl.so" in row.detail


def test_step_0_prints_the_ais_bench_row(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"CHIP_NAME", "DEVICE_ID", "WORK_DIR"}}
    env.update(PYTHONPATH=FAKE_AIS, WORK_DIR=str(tmp_path / "work"), PYTHON=sys.executable)
    proc = subprocess.run([os.path.join(ROOT, "scripts", "0_check_env.sh")], env=env, capture_output=True,
                          text=True, timeout=300)
    rows = [ln for ln in proc.stdout.splitlines() if re.match(r"^\w+\s+ais_bench\s", ln)]
    assert len(rows) == 1 and rows[0].startswith("ok") and "0.0.2, aclruntime 0.0.2" in rows[0], proc.stdout
    assert not os.path.exists(tmp_path / "work")  # a check writes nothing


# --------------------------------------------------------------------------- step 5's BACKEND

def _step_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in {"BS", "CHIP_NAME", "WORK_DIR", "CKPT", "MODEL", "BACKEND", "RESULT_DIR", "DYNAMIC_BATCH"}}
    env.update(PATH="/usr/bin:/bin", PYTHON=sys.executable, PYTHONPATH=FAKE_AIS, WORK_DIR=str(tmp_path / "work"),
               CANN_SET_ENV=str(tmp_path / "no-cann" / "set_env.sh"))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def test_step_5_with_backend_aisbench_runs_the_om_even_without_cann(tmp_path):
    """BACKEND=aisbench: step 5 runs $OM_BASE.om through ais_bench, not the .onnx it falls back to
    when CANN's atc and acl are missing (as here). Oracle: ONNX Runtime on the same file."""
    work = tmp_path / "work"
    work.mkdir()
    onnx_model(work / "moco-v2-atc-bs1.om", 1, CHW, np.float32)
    onnx_model(work / "moco-v2-bs1.onnx", 1, CHW, np.float32)
    bins = write_bins(work / "prep_dataset", CHW, np.float32)
    (work / "dataset_prep_bin.info").write_text(
        "".join(f"{i} {bins}/img{i + 1}.bin 4 4\n" for i in range(N_IMAGES)))
    step = os.path.join(ROOT, "scripts", "5_infer.sh")
    proc = subprocess.run([step], env=_step_env(tmp_path, BACKEND="aisbench", OUTFMT="bin"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"using {work}/moco-v2-atc-bs1.om (BACKEND=aisbench runs the .om)" in proc.stdout
    with open(work / "result" / "summary.json") as f:
        assert json.load(f)["backend"] == "aisbench"
    run_inference(str(work / "moco-v2-bs1.onnx"), bins, str(tmp_path / "ort"), outfmt="bin", progress=False)
    np.testing.assert_allclose(results(str(work / "result" / "dumpOutput_device0")),
                               results(str(tmp_path / "ort" / "dumpOutput_device0")), rtol=1e-6, atol=1e-6)
    # Without the .om, the step stops and says which file it wanted; the .onnx does not stand in.
    os.remove(work / "moco-v2-atc-bs1.om")
    proc = subprocess.run([step], env=_step_env(tmp_path, BACKEND="aisbench", RESULT_DIR=tmp_path / "r2"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and f"model {work}/moco-v2-atc-bs1.om not found" in proc.stderr
    assert not os.path.exists(tmp_path / "r2")


def test_step_7_times_the_aisbench_variant_on_the_om(tmp_path):
    """PERF_VARIANTS=aisbench makes the .om it needs (atc, as for acl) and times that .om with
    --backend aisbench. Oracle: the arguments a stand-in python and a stand-in atc record."""
    from tests.test_dynamic_batch import _arg, _calls, _recording_python
    from tests.test_scripts import _env, _recording_atc

    atc_log = _recording_atc(tmp_path)
    py, log = _recording_python(tmp_path, acl=False)
    work = tmp_path / "work"
    work.mkdir()
    (work / "model_lincls_best.pth.tar").write_bytes(b"ckpt")
    env = _env(tmp_path, PYTHON=py, CHIP_NAME="310P3", DYNAMIC_BATCH="1,4", PERF_VARIANTS="aisbench onnxruntime")
    proc = subprocess.run([os.path.join(ROOT, "scripts", "7_perf.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"--model={work}/moco-v2-dynamic.onnx" in atc_log.read_text().splitlines()
    got = [(_arg(r, "--backend"), _arg(r, "--batch-size"), _arg(r, "--model")) for r in _calls(log, "run_om_infer.py")]
    assert got == [(b, bs, f"{work}/moco-v2-atc-dynamic.om" if b == "aisbench" else f"{work}/moco-v2-dynamic.onnx")
                   for bs in ("1", "4") for b in ("aisbench", "onnxruntime")]

"""The pyACL backend against the stand-in `acl` module in tests/fake_acl (no NPU, no CANN here).

Oracle: the stand-in's model computes `output = 2 * (first D input values) + 1` per sample, in
the output's data type, so every expected result is computed by hand below. The stand-in tracks
every handle and allocation, so `acl.leaks()` proves what teardown released.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mocoinfer.backends import open_backend
from mocoinfer.cli import run_main
from mocoinfer.errors import UserError
from mocoinfer.formats import read_result
from mocoinfer.runner import run_inference

FAKE_DIR = os.path.join(os.path.dirname(__file__), "fake_acl")
SAMPLE = (3, 4, 4)
OUT_DIM = 10
N_IMAGES = 5


@pytest.fixture
def acl(monkeypatch):
    """A fresh stand-in `acl`, importable only for the duration of one test."""
    monkeypatch.syspath_prepend(FAKE_DIR)
    sys.modules.pop("acl", None)
    module = importlib.import_module("acl")
    assert module.__file__.startswith(FAKE_DIR)
    module.USE_NEW_API = True
    module.reset()
    try:
        yield module
    finally:
        sys.modules.pop("acl", None)


def use_api(acl, new: bool) -> None:
    acl.USE_NEW_API = new
    acl.reset()


def write_om(path, batch=2, dynamic=None, out_dtype=0) -> str:
    doc = {"inputs": [{"name": "actual_input_1", "dims": [-1 if dynamic else batch, *SAMPLE], "dtype": 0}],
           "outputs": [{"name": "output1", "dims": [-1 if dynamic else batch, OUT_DIM], "dtype": out_dtype}]}
    if dynamic:
        doc["dynamic_batch"] = list(dynamic)
    with open(path, "w") as f:
        json.dump(doc, f)
    return str(path)


@pytest.fixture
def bins(tmp_path):
    folder = tmp_path / "bins"
    folder.mkdir()
    rng = np.random.default_rng(1)
    data = rng.standard_normal((N_IMAGES, *SAMPLE)).astype(np.float32)
    for i, x in enumerate(data):
        x.tofile(folder / f"img{i + 1}.bin")
    return str(folder), data


def oracle(data, out_dtype=np.float32):
    return (2.0 * data.reshape(len(data), -1)[:, :OUT_DIM] + 1.0).astype(out_dtype).astype(np.float32)


def results(out_dir, fmt="txt"):
    folder = os.path.join(out_dir, "dumpOutput_device0")
    return np.stack([read_result(os.path.join(folder, f"img{i + 1}_1.{fmt}")) for i in range(N_IMAGES)])


# One batch of 4 through a dynamic-batch OM with the new numpy↔pointer API, then teardown:
# CANN's documented order, written out by hand.
DYNAMIC_SEQUENCE = [
    "acl.init", "acl.rt.set_device", "acl.rt.create_context", "acl.mdl.load_from_file",
    "acl.mdl.create_desc", "acl.mdl.get_desc", "acl.mdl.get_num_inputs", "acl.mdl.get_num_outputs",
    "acl.mdl.get_input_name_by_index", "acl.mdl.get_input_name_by_index",
    "acl.mdl.get_input_index_by_name", "acl.mdl.get_dynamic_batch",
    "acl.mdl.get_input_dims", "acl.mdl.get_input_data_type", "acl.mdl.get_input_size_by_index",
    "acl.mdl.get_input_dims", "acl.mdl.get_input_data_type", "acl.mdl.get_input_size_by_index",
    "acl.mdl.get_output_dims", "acl.mdl.get_output_data_type", "acl.mdl.get_output_size_by_index",
    "acl.mdl.create_dataset", "acl.mdl.create_dataset",
    "acl.rt.malloc", "acl.create_data_buffer", "acl.mdl.add_dataset_buffer",
    "acl.rt.malloc", "acl.create_data_buffer", "acl.mdl.add_dataset_buffer",
    "acl.rt.malloc", "acl.create_data_buffer", "acl.mdl.add_dataset_buffer",
    "acl.rt.malloc_host",
    # run
    "acl.mdl.set_dynamic_batch_size", "acl.util.bytes_to_ptr", "acl.rt.memcpy", "acl.mdl.execute",
    "acl.rt.memcpy", "acl.util.ptr_to_bytes",
    # teardown
    "acl.destroy_data_buffer", "acl.destroy_data_buffer", "acl.mdl.destroy_dataset",
    "acl.destroy_data_buffer", "acl.mdl.destroy_dataset", "acl.mdl.unload", "acl.mdl.destroy_desc",
    "acl.rt.free", "acl.rt.free", "acl.rt.free", "acl.rt.free_host", "acl.rt.destroy_context",
    "acl.rt.reset_device", "acl.finalize",
]
TEARDOWN = {"acl.destroy_data_buffer", "acl.mdl.destroy_dataset", "acl.mdl.unload", "acl.mdl.destroy_desc",
            "acl.rt.free", "acl.rt.free_host", "acl.rt.destroy_context", "acl.rt.reset_device", "acl.finalize"}
# What may stay behind when a release call itself fails (the runtime would refuse the rest of it).
LEFT_WHEN_RELEASE_FAILS = {
    "acl.destroy_data_buffer": {"buffers", "device_mem"}, "acl.mdl.destroy_dataset": {"datasets"},
    "acl.mdl.unload": {"models"}, "acl.mdl.destroy_desc": {"descs"}, "acl.rt.free": {"device_mem"},
    "acl.rt.free_host": {"host_mem"}, "acl.rt.destroy_context": {"contexts"},
    "acl.rt.reset_device": {"devices", "initialized"}, "acl.finalize": {"initialized"},
}
# Calls whose failure is a return code (the others signal it with a null / empty value).
RETURNS_CODE = {name for name in DYNAMIC_SEQUENCE if name not in {
    "acl.mdl.create_desc", "acl.mdl.get_num_inputs", "acl.mdl.get_num_outputs", "acl.mdl.get_input_name_by_index",
    "acl.mdl.get_input_data_type", "acl.mdl.get_input_size_by_index", "acl.mdl.get_output_data_type",
    "acl.mdl.get_output_size_by_index", "acl.mdl.create_dataset", "acl.create_data_buffer",
    "acl.util.bytes_to_ptr", "acl.util.ptr_to_bytes"}}


def test_call_sequence_and_clean_teardown(acl, tmp_path):
    model = write_om(tmp_path / "dyn.om", dynamic=[1, 2, 4])
    x = np.arange(4 * 48, dtype=np.float32).reshape(4, *SAMPLE)
    with open_backend("auto", model) as be:
        assert (be.name, be.batch_size, list(be.batch_choices), be.input_shape) == ("acl", None, [1, 2, 4], SAMPLE)
        (out,) = be.run(x)
    assert acl.CALLS == DYNAMIC_SEQUENCE
    np.testing.assert_array_equal(out, oracle(x))
    assert acl.leaks() == {}
    assert len(be.timing.h2d) == len(be.timing.compute) == len(be.timing.d2h) == 1


def test_buffers_allocated_once_for_every_batch(acl, tmp_path, bins):
    model = write_om(tmp_path / "m.om", batch=2)
    run_inference(model, bins[0], str(tmp_path / "out"), warmup=2, progress=False)
    # 3 batches + 2 warm-up runs, but one malloc per input/output and one host buffer.
    assert acl.CALLS.count("acl.mdl.execute") == 5
    assert acl.CALLS.count("acl.rt.malloc") == 2 and acl.CALLS.count("acl.rt.malloc_host") == 1
    assert acl.leaks() == {}


@pytest.mark.parametrize("new_api", [True, False], ids=["bytes_to_ptr", "numpy_to_ptr"])
@pytest.mark.parametrize("out_dtype", [0, 1], ids=["fp32-out", "fp16-out"])
def test_results_through_runner(acl, tmp_path, bins, new_api, out_dtype):
    use_api(acl, new_api)
    model = write_om(tmp_path / "m.om", batch=2, out_dtype=out_dtype)
    s = run_inference(model, bins[0], str(tmp_path / "out"), outfmt="bin", progress=False)
    # 5 images at fixed batch 2: the last batch is padded and its padding writes nothing.
    assert (s["batch_size"], s["batches"], s["padded_images"], s["result_files"]) == (2, 3, 1, N_IMAGES)
    # One result per image, beside the hidden manifest that proves them.
    assert len([n for n in os.listdir(tmp_path / "out" / "dumpOutput_device0") if not n.startswith(".")]) == N_IMAGES
    expected = oracle(bins[1], np.float16 if out_dtype else np.float32)
    np.testing.assert_array_equal(results(str(tmp_path / "out"), "bin"), expected)
    assert {"h2d", "compute", "d2h"} <= set(s["phases"])
    assert ("acl.util.bytes_to_ptr" in acl.CALLS) == new_api
    assert ("acl.util.numpy_to_ptr" in acl.CALLS) == (not new_api)
    assert acl.leaks() == {}


def test_dynamic_batch_model(acl, tmp_path, bins):
    model = write_om(tmp_path / "dyn.om", dynamic=[1, 2, 4])
    s = run_inference(model, bins[0], str(tmp_path / "out"), warmup=0, progress=False)
    # Default: the largest profile; the short last batch (1 image) runs at profile 1, unpadded.
    assert (s["batch_size"], s["batches"], s["padded_images"]) == (4, 2, 0)
    np.testing.assert_allclose(results(str(tmp_path / "out")), oracle(bins[1]), rtol=1e-7)
    with pytest.raises(UserError, match=r"--batch-size 3 does not fit .*dyn\.om.*1, 2, 4"):
        # Another folder: in "out" every result is proven, so a rerun would not load the model.
        run_inference(model, bins[0], str(tmp_path / "out2"), batch_size=3, progress=False)
    assert acl.leaks() == {}


def test_fixed_batch_mismatch_is_refused(acl, tmp_path, bins):
    model = write_om(tmp_path / "m.om", batch=2)
    with pytest.raises(UserError, match=r"--batch-size 4 does not fit .*m\.om: the model has a fixed batch of 2"):
        run_inference(model, bins[0], str(tmp_path / "out"), batch_size=4, progress=False)
    assert "acl.mdl.execute" not in acl.CALLS
    assert acl.leaks() == {}


def test_wrong_input_size_stops_before_any_copy(acl, tmp_path, bins):
    model = write_om(tmp_path / "m.om", batch=2)
    bad = os.path.join(bins[0], "img3.bin")
    np.zeros(10, np.float32).tofile(bad)
    with pytest.raises(UserError) as err:
        run_inference(model, bins[0], str(tmp_path / "out"), progress=False)
    msg = str(err.value)
    assert "img3.bin" in msg and "40 bytes" in msg and "192 bytes" in msg and "m.om" in msg
    assert "acl.rt.memcpy" not in acl.CALLS and "acl.mdl.execute" not in acl.CALLS
    assert acl.leaks() == {}


def _failure_cases():
    cases = [(name, 0) for name in dict.fromkeys(DYNAMIC_SEQUENCE)]
    # Later occurrences: the device-to-host copy, and failures inside the pipeline after a good batch.
    cases += [("acl.rt.memcpy", 1), ("acl.rt.memcpy", 3), ("acl.mdl.execute", 1)]
    return cases


@pytest.mark.parametrize("call,skip", _failure_cases(), ids=lambda v: str(v))
def test_injected_failure_names_call_and_releases_everything(acl, tmp_path, bins, call, skip):
    model = write_om(tmp_path / "dyn.om", dynamic=[1, 2, 4])
    acl.FAIL[call] = (507011, skip)
    with pytest.raises(UserError) as err:
        run_inference(model, bins[0], str(tmp_path / "out"), batch_size=2, warmup=0, progress=False)
    msg = str(err.value)
    assert call in msg
    if call in RETURNS_CODE:
        assert "507011" in msg
    left = set(acl.leaks())
    assert left <= LEFT_WHEN_RELEASE_FAILS.get(call, set()), (call, acl.leaks())


@pytest.mark.parametrize("call", ["acl.util.numpy_to_ptr", "acl.util.ptr_to_numpy"])
def test_injected_failure_old_api(acl, tmp_path, bins, call):
    use_api(acl, False)
    model = write_om(tmp_path / "m.om", batch=2)
    acl.FAIL[call] = 1
    with pytest.raises(UserError, match=call.replace(".", r"\.")):
        run_inference(model, bins[0], str(tmp_path / "out"), progress=False)
    assert acl.leaks() == {}


@pytest.mark.parametrize("call", ["acl.mdl.execute", "acl.mdl.load_from_file", "acl.rt.malloc"])
def test_ctrl_c_anywhere_tears_down(acl, tmp_path, bins, capsys, call):
    import run_om_infer

    model = write_om(tmp_path / "m.om", batch=2)
    acl.FAIL[call] = (KeyboardInterrupt, 1 if call == "acl.mdl.execute" else 0)
    rc = run_main(run_om_infer.main, ["--model", model, "--input", bins[0], "--output", str(tmp_path / "out"),
                                      "--no-progress", "--warmup", "0"])
    assert rc == 130
    assert "interrupted" in capsys.readouterr().err
    assert acl.leaks() == {}


def test_benchmark_command_line_with_om(acl, tmp_path, bins, monkeypatch, capsys):
    import run_om_infer

    model = write_om(tmp_path / "moco-v2-atc-bs1.om", batch=1)
    info = tmp_path / "dataset_prep_bin.info"
    info.write_text("".join(f"{i} {bins[0]}/img{i + 1}.bin 4 4\n" for i in range(N_IMAGES)))
    monkeypatch.chdir(tmp_path)
    argv = ["-model_type=vision", "-batch_size=1", "-device_id=0", f"-input_text_path={info}",
            "-input_width=4", "-input_height=4", f"-om_path={model}", "-useDvpp=False", "-output_binary=False"]
    assert run_main(run_om_infer.main, argv) == 0
    out = str(tmp_path / "result")
    assert os.path.exists(os.path.join(out, "perf_vision_batchsize_1_device_0.txt"))
    np.testing.assert_allclose(results(out), oracle(bins[1]), rtol=1e-7)
    assert acl.leaks() == {}


def test_om_without_cann_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "acl", None)  # import acl → ImportError, as on a machine without CANN
    model = write_om(tmp_path / "moco-v2-atc-bs1.om")
    (tmp_path / "moco-v2-bs1.onnx").write_bytes(b"")
    with pytest.raises(UserError) as err:
        open_backend("auto", model)
    msg = str(err.value)
    assert "pyACL" in msg and "set_env.sh" in msg and "moco-v2-bs1.onnx" in msg
    assert "\n" not in msg


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
STAGE_SCRIPTS = ("pthtar2onnx", "imagenet_torch_preprocess", "get_info", "run_om_infer", "vision_metric_ImageNet")


def _product_files():
    for folder, _, names in os.walk(os.path.join(ROOT, "mocoinfer")):
        yield from (os.path.join(folder, n) for n in names if n.endswith(".py"))
    yield from (os.path.join(ROOT, n + ".py") for n in STAGE_SCRIPTS)
    scripts = os.path.join(ROOT, "scripts")
    yield from (os.path.join(scripts, n) for n in os.listdir(scripts) if n.endswith(".sh"))


def test_stand_in_is_not_importable_by_the_product():
    """No product module can reach the stand-in: none imports from tests/ or the stand-in's folder,
    none puts them on sys.path or PYTHONPATH, and importing every product module loads nothing from
    tests/. Oracle: the product's source (its imports read with `ast`) and the modules a fresh
    interpreter has loaded. Whether a real `acl` is importable (an Ascend host) does not matter."""
    import ast

    offenders = []
    for path in _product_files():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for line in text.splitlines():
            if ("sys.path" in line or "PYTHONPATH" in line or "addsitedir" in line) and (
                    "tests" in line or "fake_acl" in line):
                offenders.append(f"{path}: {line.strip()}")
        if path.endswith(".py"):
            for node in ast.walk(ast.parse(text, path)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
                offenders += [f"{path}: imports {n}" for n in names if n.split(".")[0] in ("tests", "fake_acl")]
    assert offenders == []

    probe = ("import importlib, json, pkgutil, sys, mocoinfer\n"
             "names = [m.name for m in pkgutil.walk_packages(mocoinfer.__path__, 'mocoinfer.')]\n"
             f"names += {list(STAGE_SCRIPTS)!r}\n"
             "for n in names: importlib.import_module(n)\n"
             "files = [getattr(m, '__file__', None) or '' for m in list(sys.modules.values())]\n"
             "print(json.dumps({'files': files, 'path': sys.path, 'n': len(names)}))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                  if p and not os.path.abspath(p).startswith(TESTS_DIR)])
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded["n"] > len(STAGE_SCRIPTS)  # the walk found the package's modules
    under_tests = [f for f in loaded["files"] + loaded["path"]
                   if f and os.path.abspath(f).startswith(TESTS_DIR + os.sep)]
    assert under_tests == []

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
    "acl.mdl.get_input_format",
    "acl.mdl.create_dataset", "acl.mdl.create_dataset",
    "acl.rt.malloc", "acl.create_data_buffer", "acl.mdl.add_dataset_buffer",
    "acl.rt.malloc", "acl.create_data_buffer", "acl.mdl.add_dataset_buffer",
    "acl.rt.malloc", "acl.create_data_buffer", "acl.mdl.add_dataset_buffer",
    "acl.rt.malloc_host",
    # run: the host-to-device copy reads the batch's own buffer, no bytes_to_ptr
    "acl.mdl.set_dynamic_batch_size", "acl.rt.memcpy", "acl.mdl.execute",
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
    "acl.util.ptr_to_bytes"}}


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
    # Results come back through the API this CANN has; the input goes in from the batch's own
    # buffer (numpy_to_ptr on the old API, the array's address on the new: no bytes_to_ptr copy).
    assert ("acl.util.ptr_to_bytes" in acl.CALLS) == new_api
    assert ("acl.util.numpy_to_ptr" in acl.CALLS) == (not new_api)
    assert "acl.util.bytes_to_ptr" not in acl.CALLS
    assert acl.leaks() == {}


@pytest.mark.parametrize("new_api", [True, False], ids=["bytes_to_ptr", "numpy_to_ptr"])
@pytest.mark.parametrize("model_input", ["float32 NCHW", "uint8 NHWC"])
def test_host_to_device_copy_reads_the_batch_arrays_own_buffer(acl, tmp_path, new_api, model_input):
    """One copy per batch, straight from the array `run` is given, under both pointer APIs: the
    stand-in records the host address each host-to-device memcpy read. Oracles: the array's own
    address (`ndarray.ctypes.data`), its bytes on the stand-in device, and the stand-in's
    `2 * x + 1` on the outputs. A copy made first (`tobytes()` for bytes_to_ptr) lives at another
    address and fails the first assert."""
    use_api(acl, new_api)
    rng = np.random.default_rng(3)
    if model_input == "float32 NCHW":
        model = write_om(tmp_path / "m.om", batch=2)
        batches = [rng.standard_normal((2, *SAMPLE)).astype(np.float32) for _ in range(3)]
    else:
        model = write_aipp_om(tmp_path / "m.om", batch=2)
        batches = [rng.integers(0, 256, size=(2, *HWC), dtype=np.uint8) for _ in range(3)]
    with open_backend("auto", model) as be:
        for x in batches:
            acl.S.h2d_sources.clear()
            (out,) = be.run(x)
            assert acl.S.h2d_sources == [x.ctypes.data]
            on_device = [bytes(m) for m in acl.S.device_mem.values() if len(m) == x.nbytes]
            assert on_device == [x.tobytes()]
            np.testing.assert_array_equal(out, oracle(x))
    assert "acl.util.bytes_to_ptr" not in acl.CALLS
    assert acl.leaks() == {}


def test_stand_in_pointer_calls_take_what_pyacl_takes(acl):
    """bytes_to_ptr takes a `bytes` object only and points into that very object; numpy_to_ptr
    gives an ndarray's own address. Oracles: pyACL's util/bytes_convert.cpp (PyBytes_Check, else
    ValueError "needs an byte as argument") and numpy_convert.cpp (PyArray_Check), and ctypes
    reading the address back. So a tobytes() copy sits at another address than its array, which
    is what lets the host-to-device test above fail on one."""
    import ctypes

    x = np.arange(12, dtype=np.float32)
    for not_bytes in (bytearray(x.tobytes()), memoryview(x), memoryview(x).cast("B"), x):
        with pytest.raises(ValueError, match="needs an byte as argument"):
            acl.util.bytes_to_ptr(not_bytes)
    copy = x.tobytes()
    ptr = acl.util.bytes_to_ptr(copy)
    assert ptr != x.ctypes.data and ctypes.string_at(ptr, len(copy)) == copy
    use_api(acl, False)
    assert acl.util.numpy_to_ptr(x) == x.ctypes.data
    with pytest.raises(ValueError, match="needs an ndarray as argument"):
        acl.util.numpy_to_ptr(copy)


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
    # get_input_format has no failure value: its "failure" (-1) is ACL_FORMAT_UNDEFINED, a format
    # the backend takes (the layout then comes from the shape; tested below).
    cases = [(name, 0) for name in dict.fromkeys(DYNAMIC_SEQUENCE) if name != "acl.mdl.get_input_format"]
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


# --------------------------------------------------------------------------- AIPP models: uint8 NHWC input

# Height 4, width 6: not square, so width and height read from the wrong axes cannot pass.
HWC = (4, 6, 3)
ACL_FORMAT = {"NCHW": 0, "NHWC": 1}


def write_aipp_om(path, hwc=HWC, batch=1, dynamic=None, fmt="NHWC") -> str:
    """An AIPP .om as atc makes it: uint8 NHWC input. `fmt` is the aclFormat get_input_format
    reports, by name or code (None: the stand-in's default, NCHW, as a runtime echoing the atc
    line's --input_format would)."""
    spec = {"name": "actual_input_1", "dims": [-1 if dynamic else batch, *hwc], "dtype": 4}
    if fmt is not None:
        spec["format"] = ACL_FORMAT.get(fmt, fmt)
    doc = {"inputs": [spec],
           "outputs": [{"name": "output1", "dims": [-1 if dynamic else batch, OUT_DIM], "dtype": 0}]}
    if dynamic:
        doc["dynamic_batch"] = list(dynamic)
    with open(path, "w") as f:
        json.dump(doc, f)
    return str(path)


def write_pixels(folder, hwc=HWC, n=N_IMAGES):
    """`n` uint8 HWC files img1.bin ... (what imagenet_torch_preprocess.py --dtype uint8 writes)."""
    folder.mkdir()
    data = np.random.default_rng(7).integers(0, 256, size=(n, *hwc), dtype=np.uint8)
    for i, x in enumerate(data):
        x.tofile(folder / f"img{i + 1}.bin")
    return str(folder), data


def write_info(path, folder, n, width, height) -> str:
    """get_info.py's bin format: `index path width height`."""
    path.write_text("".join(f"{i} {folder}/img{i + 1}.bin {width} {height}\n" for i in range(n)))
    return str(path)


def guide_line(model, info, width, height):
    """The guide's benchmark command line, in its own order."""
    return ["-model_type=vision", f"-om_path={model}", "-device_id=0", "-batch_size=1",
            f"-input_text_path={info}", f"-input_width={width}", f"-input_height={height}",
            "-output_binary=False", "-useDvpp=False"]


@pytest.mark.parametrize("shape,reported,layout,size", [
    ((3, 224, 224), None, "NCHW", (224, 224)),
    ((224, 224, 3), None, "NHWC", (224, 224)),
    ((3, 4, 6), None, "NCHW", (6, 4)),
    ((4, 6, 3), None, "NHWC", (6, 4)),
    ((4, 6, 3), "NCHW", "NHWC", (6, 4)),  # channels last whatever the report: atc makes AIPP inputs NHWC
    ((3, 5, 3), None, "NCHW", (3, 5)),  # 3 at both ends: the shape cannot tell, CHW
    ((3, 5, 3), "NHWC", "NHWC", (5, 3)),  # ... and the runtime's report decides
    ((1, 8, 8), "NCHW", "NCHW", (8, 8)),
    ((8, 8, 1), "NHWC", "NHWC", (8, 8)),
    ((10,), None, "NCHW", None),
])
def test_image_size_follows_the_input_layout(shape, reported, layout, size):
    """Oracle: (width, height) read by hand from each shape in its layout."""
    from mocoinfer.backends import Backend

    be = Backend()
    be.input_shape, be.input_format = shape, reported
    assert (be.input_layout, be.image_size()) == (layout, size)


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW", "not reported"])
def test_guides_benchmark_line_runs_on_an_aipp_om(acl, tmp_path, monkeypatch, capsys, fmt):
    """The issue's case: the guide's line with -input_width=224 -input_height=224 on a uint8 NHWC
    224x224x3 .om. Oracle: the stand-in's `2 * pixel + 1` on each file's first OUT_DIM pixels.
    Whatever the runtime says of the layout (NHWC; NCHW, the atc line's --input_format; or no
    get_input_format at all), a 224x224x3 input is read as a 224x224 image."""
    import run_om_infer

    if fmt == "not reported":
        monkeypatch.delattr(acl.mdl, "get_input_format")
    n = 3
    model = write_aipp_om(tmp_path / "moco-v2-atc-bs1-aipp.om", hwc=(224, 224, 3),
                          fmt=None if fmt == "not reported" else fmt)
    folder, data = write_pixels(tmp_path / "prep_dataset", hwc=(224, 224, 3), n=n)
    info = write_info(tmp_path / "dataset_prep_bin.info", folder, n, 224, 224)
    monkeypatch.chdir(tmp_path)
    assert run_main(run_om_infer.main, guide_line(model, info, 224, 224)) == 0, capsys.readouterr().err
    folder_out = tmp_path / "result" / "dumpOutput_device0"
    got = np.stack([read_result(str(folder_out / f"img{i + 1}_1.txt")) for i in range(n)])
    np.testing.assert_array_equal(got, oracle(data))
    assert acl.CALLS.count("acl.mdl.execute") == n + 1  # one warm-up, then one batch per image
    assert acl.leaks() == {}


def test_every_command_form_reads_width_and_height_of_an_nhwc_model(acl, tmp_path, monkeypatch, capsys):
    """A 4x6x3 (HWC) input is width 6, height 4 in every form that takes them: the benchmark's
    -input_width/-input_height, the own form's --input-width/--input-height (one device and
    several), and ais_bench's form, which has no such flags, on the same model as it is.
    Oracle: the stand-in's `2 * pixel + 1` per file, written out by `oracle`."""
    import run_om_infer

    folder, data = write_pixels(tmp_path / "prep")
    expected = oracle(data)
    monkeypatch.chdir(tmp_path)
    fixed = write_aipp_om(tmp_path / "bs1-aipp.om")
    dynamic = write_aipp_om(tmp_path / "dyn-aipp.om", dynamic=[1, 2, 4])
    info = write_info(tmp_path / "prep.info", folder, N_IMAGES, 6, 4)

    def run(argv):
        assert run_main(run_om_infer.main, argv) == 0, capsys.readouterr().err

    def results_in(out, suffix):
        return np.stack([read_result(os.path.join(out, f"img{i + 1}{suffix}")) for i in range(N_IMAGES)])

    run(guide_line(fixed, info, 6, 4))
    np.testing.assert_array_equal(results_in(str(tmp_path / "result" / "dumpOutput_device0"), "_1.txt"), expected)
    for devices in ("0", "0,1"):
        out = str(tmp_path / f"own-{devices}")
        run(["--model", dynamic, "--input", folder, "--output", out, "--batch-size", "2", "--outfmt", "bin",
             "--device-id", devices, "--input-width", "6", "--input-height", "4", "--no-progress"])
        np.testing.assert_array_equal(results_in(os.path.join(out, "dumpOutput_device0"), "_1.bin"), expected)
    out = str(tmp_path / "ais")
    run(["--model", dynamic, "--input", folder, "--output", out, "--output_dirname", "res", "--outfmt", "BIN",
         "--batchsize", "2"])
    np.testing.assert_array_equal(results_in(os.path.join(out, "res"), "_0.bin"), expected)
    assert acl.leaks() == {}


def test_width_and_height_read_from_the_wrong_axes_are_refused_before_any_copy(acl, tmp_path, monkeypatch,
                                                                              capsys):
    """-input_width=4 -input_height=6 on a 4x6x3 (HWC) input: what an NCHW reading of the shape
    would have accepted. Oracle: the shape, width 6 and height 4, by hand."""
    import run_om_infer

    folder, _ = write_pixels(tmp_path / "prep")
    model = write_aipp_om(tmp_path / "bs1-aipp.om")
    info = write_info(tmp_path / "prep.info", folder, N_IMAGES, 4, 6)
    monkeypatch.chdir(tmp_path)
    assert run_main(run_om_infer.main, guide_line(model, info, 4, 6)) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert "-input_width=4 -input_height=6 do not match" in errors[0] and "bs1-aipp.om" in errors[0]
    assert errors[0].endswith("its image is 6x4 (NHWC)")
    assert "acl.rt.memcpy" not in acl.CALLS and "acl.mdl.execute" not in acl.CALLS
    assert acl.leaks() == {}


def test_streamed_images_into_an_nhwc_model_with_width_and_height(acl, tmp_path, capsys):
    """The own form on an image folder (decoded as the model runs) with --input-width and
    --input-height, into a uint8 8x8x3 .om. Oracle: the uint8 .bin files preprocessing writes from
    the same images with the same resize and crop, through the stand-in's `2 * pixel + 1`."""
    import run_om_infer
    from mocoinfer.demo import make_sample_images
    from mocoinfer.preprocess import preprocess_folder

    images, prep, out = str(tmp_path / "val"), str(tmp_path / "prep"), str(tmp_path / "result")
    make_sample_images(images, 3)
    preprocess_folder(images, prep, resize=8, crop=8, workers=1, progress=False, dtype="uint8")
    names = sorted(n[:-4] for n in os.listdir(prep) if n.endswith(".bin"))
    assert len(names) == 3
    data = np.stack([np.fromfile(os.path.join(prep, n + ".bin"), np.uint8) for n in names])
    model = write_aipp_om(tmp_path / "m8-aipp.om", hwc=(8, 8, 3), dynamic=[1, 2, 4])
    argv = ["--model", model, "--input", images, "--output", out, "--resize", "8", "--crop", "8", "--workers", "1",
            "--input-width", "8", "--input-height", "8", "--outfmt", "bin", "--no-progress"]
    assert run_main(run_om_infer.main, argv) == 0, capsys.readouterr().err
    got = np.stack([read_result(os.path.join(out, "dumpOutput_device0", f"{n}_1.bin")) for n in names])
    np.testing.assert_array_equal(got, oracle(data))
    assert acl.leaks() == {}


@pytest.mark.parametrize("case", ["float NCHW", "AIPP NHWC", "format 29", "no get_input_format"])
def test_load_logs_the_input_format_and_dims_once(acl, tmp_path, monkeypatch, capsys, case):
    """One info line at load: the data input's name, format, dims and data type. Oracle: the
    model files written here (dims, data type, the aclFormat code), by hand."""
    if case == "float NCHW":
        model = write_om(tmp_path / "m.om", batch=2)
        want = "input 'actual_input_1' format NCHW, dims [2, 3, 4, 4], float32"
    elif case == "AIPP NHWC":
        model = write_aipp_om(tmp_path / "m.om", dynamic=[1, 2, 4])
        want = "input 'actual_input_1' format NHWC, dims [-1, 4, 6, 3], uint8"
    elif case == "format 29":  # FRACTAL_NZ, a format the backend has no name for: logged by number
        model = write_aipp_om(tmp_path / "m.om", fmt=29)
        want = "input 'actual_input_1' format format 29, dims [1, 4, 6, 3], uint8"
    else:
        monkeypatch.delattr(acl.mdl, "get_input_format")
        model = write_aipp_om(tmp_path / "m.om")
        want = "input 'actual_input_1' format not reported (no acl.mdl.get_input_format), dims [1, 4, 6, 3], uint8"
    capsys.readouterr()
    with open_backend("auto", model) as be:
        assert be.image_size() == ((4, 4) if case == "float NCHW" else (6, 4))
    lines = [line for line in capsys.readouterr().err.splitlines() if " format " in line]
    assert lines == [f"{model}: {want}"]
    assert acl.leaks() == {}

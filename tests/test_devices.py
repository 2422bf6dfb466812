"""Several devices in one run (`--device-id 0,1,2,3`): shards, one worker process per device, failures.

Oracles: hand counts for the shards and core shares; the stand-in acl model's
`output = 2 * (first D input values) + 1` (tests/fake_acl, four devices, one state per process,
each process reporting its leaks at exit) for the acl runs; a one-process run of the same ONNX
model on the same files for ONNX Runtime on the CPU (results must be identical).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys

import numpy as np
import pytest

from mocoinfer.cli import parse_device_ids, run_main
from mocoinfer.devices import cpu_shares, shards
from mocoinfer.errors import UserError
from mocoinfer.formats import read_result
from mocoinfer.runner import run_inference
from tests.tiny_model import tiny_net

FAKE_DIR = os.path.join(os.path.dirname(__file__), "fake_acl")
HWC = (4, 4, 3)
OUT_DIM = 10
N_IMAGES = 11


def test_device_ids():
    assert parse_device_ids(3) == [3] and parse_device_ids("0,1,2,3") == [0, 1, 2, 3]
    assert parse_device_ids(" 2, 0") == [2, 0] and parse_device_ids([1, 3]) == [1, 3]
    for bad in ("0,0", "a", "-1", "0,,1", ""):
        with pytest.raises(UserError, match="^--device-id"):
            parse_device_ids(bad)


def test_shards_are_contiguous_in_order_and_even():
    # 11 images on 4 devices: 3, 3, 3, 2 (by hand).
    assert shards(11, 4) == [(0, 3), (3, 6), (6, 9), (9, 11)]
    assert shards(2, 2) == [(0, 1), (1, 2)] and shards(0, 1) == [(0, 0)]


def test_cpu_shares():
    assert cpu_shares(2, [0, 1]) == [[0], [1]]
    assert cpu_shares(2, [0, 1, 2, 3, 4]) == [[0, 1, 2], [3, 4]]
    assert cpu_shares(4, [5, 6]) == [[5], [6], [5], [6]]  # fewer cores than workers: shared


# --------------------------------------------------------------------------- acl, four devices

@pytest.fixture
def acl(monkeypatch, tmp_path):
    """The stand-in `acl` importable here and in spawned workers; each process reports at exit."""
    monkeypatch.syspath_prepend(FAKE_DIR)
    reports = tmp_path / "acl-reports"
    reports.mkdir()
    monkeypatch.setenv("FAKE_ACL_REPORT_DIR", str(reports))
    monkeypatch.delenv("FAKE_ACL_FAIL_ON_DEVICE", raising=False)
    sys.modules.pop("acl", None)
    module = importlib.import_module("acl")
    module.reset()
    try:
        yield reports
    finally:
        sys.modules.pop("acl", None)


def _aipp_om(path, dynamic=(1, 2, 4)) -> str:
    """An AIPP-like OM: uint8 NHWC input (reported as NHWC, aclFormat 1), dynamic batch."""
    doc = {"inputs": [{"name": "actual_input_1", "dims": [-1, *HWC], "dtype": 4, "format": 1}],
           "outputs": [{"name": "output1", "dims": [-1, OUT_DIM], "dtype": 0}], "dynamic_batch": list(dynamic)}
    with open(path, "w") as f:
        json.dump(doc, f)
    return str(path)


@pytest.fixture
def pixels(tmp_path):
    folder = tmp_path / "u8"
    folder.mkdir()
    data = np.random.default_rng(4).integers(0, 256, size=(N_IMAGES, *HWC), dtype=np.uint8)
    for i, x in enumerate(data):
        x.tofile(folder / f"img{i + 1}.bin")
    return str(folder), (2.0 * data.reshape(N_IMAGES, -1)[:, :OUT_DIM].astype(np.float32) + 1.0)


def _reports(folder):
    return [json.load(open(os.path.join(folder, n))) for n in sorted(os.listdir(folder))]


def test_acl_uint8_dynamic_model_on_four_devices(acl, pixels, tmp_path):
    folder, expected = pixels
    out = str(tmp_path / "result")
    s = run_inference(_aipp_om(tmp_path / "m.om", dynamic=(2, 4)), folder, out, device_id="0,1,2,3",
                      batch_size=4, outfmt="bin", progress=False)
    res = os.path.join(out, "dumpOutput_device0")
    # Every image's result; the folder's own manifest and lock are hidden files beside them.
    assert sorted(n for n in os.listdir(res) if not n.startswith(".")) == sorted(
        f"img{i + 1}_1.bin" for i in range(N_IMAGES))
    for i in range(N_IMAGES):
        np.testing.assert_array_equal(read_result(os.path.join(res, f"img{i + 1}_1.bin")), expected[i])
    # Shards 3, 3, 3, 2 in natural order; batch 4 of sizes (2, 4): a 3-image shard runs as 4 (one
    # padded), the 2-image one as 2.
    assert [(d["device_id"], d["images"], d["padded_images"]) for d in s["devices"]] == \
        [(0, 3, 1), (1, 3, 1), (2, 3, 1), (3, 2, 0)]
    assert s["padded_images"] == 3 and s["batch_size"] == 4
    assert [d["device"] for d in s["devices"]] == ["npu:0", "npu:1", "npu:2", "npu:3"]
    listed = sorted(n for n in os.listdir(out) if not n.startswith("."))
    assert listed == sorted(["dumpOutput_device0", "summary.json"] + [
        f"perf_vision_batchsize_4_device_{d}.txt" for d in range(4)])
    with open(os.path.join(out, "summary.json")) as f:
        written = json.load(f)
    assert written["images"] == N_IMAGES and written["result_files"] == N_IMAGES
    assert written["e2e"]["throughput_images_per_s"] == pytest.approx(N_IMAGES / written["wall_seconds"])
    # Every worker set exactly its own device and released everything.
    reports = _reports(acl)
    assert sorted(r["devices_used"][0] for r in reports) == [0, 1, 2, 3]
    assert all(r["leaks"] == {} and len(r["devices_used"]) == 1 for r in reports)


def test_acl_rerun_on_several_devices_runs_again(acl, pixels, tmp_path):
    """Issue 21: the same several-device run again runs every image again on the devices and
    replaces each result (a new inode); with resume=True nothing runs. Oracle: the stand-in's
    `2 * x + 1` for every result, hand counts, os.stat."""
    folder, expected = pixels
    out = str(tmp_path / "result")
    res = os.path.join(out, "dumpOutput_device0")
    model = _aipp_om(tmp_path / "m.om")
    kw = dict(device_id="0,1", batch_size=1, outfmt="bin", progress=False)
    run_inference(model, folder, out, **kw)
    inode = os.stat(os.path.join(res, "img1_1.bin")).st_ino
    s = run_inference(model, folder, out, **kw)
    assert s["images"] == N_IMAGES and s["skipped"] == 0 and [d["images"] for d in s["devices"]] == [6, 5]
    assert os.stat(os.path.join(res, "img1_1.bin")).st_ino != inode
    for i in range(N_IMAGES):
        np.testing.assert_array_equal(read_result(os.path.join(res, f"img{i + 1}_1.bin")), expected[i])
    s = run_inference(model, folder, out, resume=True, **kw)
    assert s["nothing_to_do"] and s["skipped"] == N_IMAGES


def test_acl_failure_on_one_device_stops_the_run_and_leaves_nothing_allocated(acl, pixels, tmp_path,
                                                                             monkeypatch, capsys):
    folder, expected = pixels
    # Device 2: the warm-up and the first batch execute, the second batch fails.
    monkeypatch.setenv("FAKE_ACL_FAIL_ON_DEVICE", "2:acl.mdl.execute=507011:2")
    out = str(tmp_path / "result")
    model = _aipp_om(tmp_path / "m.om")
    from run_om_infer import main

    rc = run_main(main, ["--model", model, "--input", folder, "--output", out, "--device-id", "0,1,2,3",
                         "--batch-size", "1", "--outfmt", "bin", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "error: device 2: acl.mdl.execute failed with return code 507011" in err and "Traceback" not in err
    reports = _reports(acl)
    assert sorted(r["devices_used"][0] for r in reports) == [0, 1, 2, 3]
    assert all(r["leaks"] == {} for r in reports)
    res = os.path.join(out, "dumpOutput_device0")
    names = [n for n in os.listdir(res) if not n.startswith(".")]
    assert "img7_1.bin" in names and "img8_1.bin" not in names  # device 2's first image, not its second
    for name in names:  # what the other devices wrote is kept, whole and right
        i = int(name[3:-6]) - 1
        np.testing.assert_array_equal(read_result(os.path.join(res, name)), expected[i])
    assert not os.path.exists(os.path.join(out, "summary.json"))
    # The rerun, every device well: only the images without a proven result run (oracle: the
    # hand count of files kept above), and every result is right.
    monkeypatch.delenv("FAKE_ACL_FAIL_ON_DEVICE")
    kept = len(names)
    rc = run_main(main, ["--model", model, "--input", folder, "--output", out, "--device-id", "0,1,2,3",
                         "--batch-size", "1", "--outfmt", "bin", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert summary["skipped"] == kept and summary["images"] == N_IMAGES - kept
    for i in range(N_IMAGES):
        np.testing.assert_array_equal(read_result(os.path.join(res, f"img{i + 1}_1.bin")), expected[i])


def test_acl_mix_of_file_kinds_across_shards_is_refused_before_any_device_opens(acl, pixels, tmp_path):
    """Oracle: shard 0 holds only uint8 files and shard 1 only float32 ones, so no worker alone
    would see the mix; the parent must refuse it, naming one file of each."""
    folder, _ = pixels
    odd = os.path.join(folder, f"img{N_IMAGES}.bin")
    np.zeros(int(np.prod(HWC)), np.float32).tofile(odd)
    with pytest.raises(UserError) as err:
        run_inference(_aipp_om(tmp_path / "m.om"), folder, str(tmp_path / "o"), device_id="0,1", progress=False)
    assert str(err.value).startswith(f"{odd}: 192 bytes, but {folder}/img1.bin holds 48")
    assert _reports(acl) == []


def test_acl_device_that_does_not_exist(acl, pixels, tmp_path):
    folder, _ = pixels
    with pytest.raises(UserError, match=r"^device 4: acl.rt.set_device failed with return code 107001"):
        run_inference(_aipp_om(tmp_path / "m.om"), folder, str(tmp_path / "o"), device_id="3,4", progress=False)
    assert all(r["leaks"] == {} for r in _reports(acl))



@pytest.mark.parametrize("sig,rc", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_acl_stopped_run_on_four_devices_keeps_its_results_and_resumes(acl, tmp_path, sig, rc):
    """Stop a four-device run part-way (each execute made slow), as a user's Ctrl-C or kill does.
    Oracles: the stand-in's `2 * x + 1` for every value, the files the stopped run left (each in
    the manifest, a summary marked partial with that count) for what the rerun must skip, and the
    stand-in's per-process reports for what stayed allocated (nothing)."""
    import subprocess
    import time

    from mocoinfer import sidecar

    n = 40
    folder = tmp_path / "u8"
    folder.mkdir()
    data = np.random.default_rng(5).integers(0, 256, size=(n, *HWC), dtype=np.uint8)
    for i, x in enumerate(data):
        x.tofile(folder / f"img{i + 1}.bin")
    expected = 2.0 * data.reshape(n, -1)[:, :OUT_DIM].astype(np.float32) + 1.0
    model = _aipp_om(tmp_path / "m.om")
    out = tmp_path / "result"
    res = out / "dumpOutput_device0"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = [sys.executable, os.path.join(root, "run_om_infer.py"), "--model", model, "--input", str(folder),
            "--output", str(out), "--device-id", "0,1,2,3", "--batch-size", "1", "--outfmt", "bin",
            "--warmup", "0", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([FAKE_DIR, root]), FAKE_ACL_EXECUTE_DELAY="0.05")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (res.is_dir() and len(list(res.glob("*_1.bin"))) >= 6):
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == rc, err
    # One stop message for the run, whatever each worker saw; each worker's load line aside.
    loads = [ln for ln in err.splitlines() if ln.startswith(f"{model}: input 'actual_input_1' format NHWC")]
    lines = [ln for ln in err.splitlines() if ln.strip() and ln not in loads]
    assert len(loads) <= 4 and len(lines) == 1 and "interrupted" in lines[0], err
    kept = sorted(p.name for p in res.glob("*_1.bin"))
    assert 6 <= len(kept) < n
    doc = sidecar.read_manifest(str(res))
    assert doc["status"] == sidecar.INCOMPLETE and sorted(doc["files"]) == kept
    with open(out / "summary.json") as f:
        partial = json.load(f)
    assert partial["partial"] is True and partial["images"] == len(kept)
    assert partial["stopped_by"] == ("SIGTERM" if sig == signal.SIGTERM else "SIGINT")
    assert all(r["leaks"] == {} for r in _reports(acl))

    env["FAKE_ACL_EXECUTE_DELAY"] = "0"
    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    with open(out / "summary.json") as f:
        summary = json.load(f)
    assert summary["skipped"] == len(kept) and summary["images"] == n - len(kept)
    for i in range(n):
        np.testing.assert_array_equal(read_result(str(res / f"img{i + 1}_1.bin")), expected[i])
    assert sidecar.read_manifest(str(res))["status"] == sidecar.COMPLETE


# --------------------------------------------------------------------------- ONNX Runtime on the CPU

@pytest.fixture(scope="module")
def onnx_work(tmp_path_factory):

    from mocoinfer.export import export_model

    root = tmp_path_factory.mktemp("devices")
    export_model(tiny_net(), str(root / "tiny-dyn.onnx"), batch_size=1, dynamic=True, verify=False)
    bins = root / "bins"
    bins.mkdir()
    data = np.random.default_rng(0).standard_normal((7, 3, 224, 224)).astype(np.float32)
    for i, x in enumerate(data):
        x.tofile(bins / f"img{i + 1}.bin")
    return {"model": str(root / "tiny-dyn.onnx"), "bins": str(bins)}


def _all_results(out, device=0):
    folder = os.path.join(out, f"dumpOutput_device{device}")
    return {n: read_result(os.path.join(folder, n)).tobytes() for n in sorted(os.listdir(folder))
            if not n.startswith(".")}


@pytest.mark.parametrize("bs", [1, 2])
def test_onnxruntime_two_workers_equal_one_process(onnx_work, tmp_path, capsys, bs):
    one = str(tmp_path / "one")
    run_inference(onnx_work["model"], onnx_work["bins"], one, batch_size=bs, outfmt="bin", progress=False)
    two = str(tmp_path / "two")
    from run_om_infer import main

    assert main(["--model", onnx_work["model"], "--input", onnx_work["bins"], "--output", two,
                 "--batch-size", str(bs), "--device-id", "0,1", "--outfmt", "bin", "--no-progress"]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"7 inputs → 7 result files in {two}/dumpOutput_device0 on 2 devices")
    assert _all_results(two) == _all_results(one) and len(_all_results(one)) == 7
    with open(os.path.join(two, "summary.json")) as f:
        s = json.load(f)
    # Each worker had its share of the usable cores (one each on a 2-core machine).
    shares = cpu_shares(2)
    assert [d["threads"] for d in s["devices"]] == [len(c) for c in shares]
    assert [d["images"] for d in s["devices"]] == [4, 3]
    assert s["perf_files"] == [os.path.join(two, f"perf_vision_batchsize_{bs}_device_{d}.txt") for d in (0, 1)]
    assert all(os.path.exists(p) for p in s["perf_files"])


def test_pure_data_takes_one_device(onnx_work):
    from mocoinfer.runner import run_pure_inference

    with pytest.raises(UserError, match="one --device-id"):
        run_pure_inference(onnx_work["model"], device_id="0,1", loop=1)


def test_several_devices_warn_of_no_stale_results_in_a_fresh_folder(onnx_work, tmp_path, capfd):
    """Oracle: a fresh output folder holds no result of an earlier run, so no process (the parent or
    a device worker, whose stderr only capfd sees) may say it does; each worker's folder also holds
    the other devices' results, which are this run's."""
    from run_om_infer import main

    out = str(tmp_path / "two")
    assert main(["--model", onnx_work["model"], "--input", onnx_work["bins"], "--output", out,
                 "--batch-size", "1", "--device-id", "0,1", "--outfmt", "bin", "--no-progress"]) == 0
    err = capfd.readouterr().err
    assert "earlier run" not in err, err


def test_acl_workers_end_when_their_parent_is_killed(acl, tmp_path):
    """Issue 20, class 2: after `kill -9` of a several-device run's parent, its workers stop
    writing into the folder whose lock died with the parent. Oracle: the result folder's listing
    stops changing within a few seconds, while the inputs left would take the workers far longer."""
    import subprocess
    import time

    n = 400
    folder = tmp_path / "u8"
    folder.mkdir()
    data = np.random.default_rng(6).integers(0, 256, size=(n, *HWC), dtype=np.uint8)
    for i, x in enumerate(data):
        x.tofile(folder / f"img{i + 1}.bin")
    model = _aipp_om(tmp_path / "m.om")
    res = tmp_path / "result" / "dumpOutput_device0"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = [sys.executable, os.path.join(root, "run_om_infer.py"), "--model", model, "--input", str(folder),
            "--output", str(tmp_path / "result"), "--device-id", "0,1", "--batch-size", "1", "--outfmt", "bin",
            "--warmup", "0", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([FAKE_DIR, root]), FAKE_ACL_EXECUTE_DELAY="0.05")
    from safety_helpers import tree

    inputs = tree(str(folder))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (res.is_dir() and len(list(res.glob("*_1.bin"))) >= 4):
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    time.sleep(2.0)  # the workers' watch polls every 0.2 s
    settled = sorted(p.name for p in res.glob("*_1.bin"))
    time.sleep(2.0)  # at 0.05 s an image, two live workers would write about 80 more meanwhile
    assert sorted(p.name for p in res.glob("*_1.bin")) == settled and len(settled) < n
    assert tree(str(folder)) == inputs


def test_acl_failed_device_leaves_an_earlier_runs_leftover_unproven(acl, pixels, tmp_path, monkeypatch, capsys):
    """Issue 20, class 1: a result file an earlier run left for an input that the failed device
    never ran (no manifest lists it) is not recorded as proven; the rerun computes it. Oracle:
    the stand-in's `2 * x + 1` for every result, the manifest's list against the leftover."""
    from mocoinfer import sidecar

    folder, expected = pixels
    out = str(tmp_path / "result")
    res = os.path.join(out, "dumpOutput_device0")
    os.makedirs(res)
    leftover = os.path.join(res, "img8_1.bin")  # device 2's second image, which it will not run
    np.full(expected[7].shape, -1, dtype=np.float32).tofile(leftover)
    # Left by an interrupted run of this tool, after its manifest's last rewrite: the manifest,
    # marked incomplete, does not list it (a file in a folder without one would be a user's,
    # which no run replaces: issue 21).
    sidecar.write_manifest(res, sidecar.new_manifest("run_om_infer.py", {}, res))
    monkeypatch.setenv("FAKE_ACL_FAIL_ON_DEVICE", "2:acl.mdl.execute=507011:2")
    model = _aipp_om(tmp_path / "m.om")
    from run_om_infer import main

    argv = ["--model", model, "--input", folder, "--output", out, "--device-id", "0,1,2,3", "--batch-size", "1",
            "--outfmt", "bin", "--no-progress"]
    from safety_helpers import fingerprint, tree

    inputs = tree(str(folder)), fingerprint(model)
    assert run_main(main, argv) == 1
    assert "img8_1.bin" not in sidecar.read_manifest(res)["files"]
    assert "img7_1.bin" in sidecar.read_manifest(res)["files"]
    monkeypatch.delenv("FAKE_ACL_FAIL_ON_DEVICE")
    assert run_main(main, argv) == 0, capsys.readouterr().err
    for i in range(N_IMAGES):
        np.testing.assert_array_equal(read_result(os.path.join(res, f"img{i + 1}_1.bin")), expected[i])
    assert (tree(str(folder)), fingerprint(model)) == inputs

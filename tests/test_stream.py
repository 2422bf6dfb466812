"""Streamed inference (run_om_infer.py --input VAL_DIR): the same results as the .bin path, no .bin files.

Oracles: the `.bin` path itself (imagenet_torch_preprocess.py, whose bytes test_preprocess.py holds
to torchvision, then run_om_infer.py on its output) for every result file, byte for byte;
preprocessing's failed.txt for the bad inputs it can handle; the preprocessed `.bin` bytes for
what a recording backend receives; hand-written expected orders; the feed's own window for the
memory bound.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest
from PIL import Image
from test_preprocess import awkward_images, bad_folder, picture, save
from test_runner import _tiny_net

import run_om_infer
from mocoinfer import formats, stream
from mocoinfer.backends import Backend
from mocoinfer.cli import run_main
from mocoinfer.preprocess import preprocess_folder
from mocoinfer.runner import run_inference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DUMP = "dumpOutput_device0"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny 224x224 classifier as ONNX, at fixed batch 4 (pads the last batch) and dynamic."""
    from mocoinfer.export import export_model

    root = tmp_path_factory.mktemp("models")
    net = _tiny_net()
    export_model(net, str(root / "tiny-bs4.onnx"), batch_size=4, verify=False)
    export_model(net, str(root / "tiny-dyn.onnx"), batch_size=1, dynamic=True, verify=False)
    return {"fixed": str(root / "tiny-bs4.onnx"), "dyn": str(root / "tiny-dyn.onnx")}


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Every awkward kind of image: modes, sizes, EXIF, PNG behind .JPEG, GIF, TIFF, WebP."""
    folder = str(tmp_path_factory.mktemp("val"))
    awkward_images(folder)
    return folder


def files_of(folder) -> dict:
    """The result files of a folder; the `.bin` run's manifest and lock are hidden files beside them."""
    out = {}
    for name in os.listdir(folder):
        if name.startswith("."):
            continue
        with open(os.path.join(folder, name), "rb") as f:
            out[name] = f.read()
    return out


def bin_path_results(image_dir, model, work, interpolation="bicubic", **run) -> tuple:
    """The oracle: preprocess to .bin files, then run them; (result files, summary)."""
    prep = os.path.join(work, "prep")
    s = preprocess_folder(image_dir, prep, interpolation=interpolation, workers=2, progress=False)
    out = os.path.join(work, "result_bin")
    summary = run_inference(model, prep, out, progress=False, **run)
    return files_of(os.path.join(out, DUMP)), summary, s


def run_cli(argv, capsys):
    code = run_main(run_om_infer.main, [*argv, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def bins_under(folder) -> list:
    return [os.path.join(d, n) for d, _, names in os.walk(folder) for n in names if n.endswith(".bin")]


@pytest.mark.parametrize("which,interpolation,batch", [("fixed", "bilinear", None), ("dyn", "bicubic", 3)])
def test_results_are_the_bin_paths_byte_for_byte_and_no_bin_is_written(models, image_dir, tmp_path, capsys,
                                                                       monkeypatch, which, interpolation, batch):
    expected, bin_summary, _ = bin_path_results(image_dir, models[which], str(tmp_path / "oracle"),
                                                interpolation, batch_size=batch)
    assert len(expected) == len(os.listdir(image_dir))
    # The streamed run works in its own folder and temporary dir, so any .bin it wrote would show.
    work = tmp_path / "stream"
    (work / "tmp").mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(work / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", None)
    out = str(work / "result")
    argv = ["--model", models[which], "--input", image_dir, "--output", out, "--interpolation", interpolation,
            "--workers", "2"] + (["--batch-size", str(batch)] if batch else [])
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    assert files_of(os.path.join(out, DUMP)) == expected
    assert bins_under(str(work)) == [] and bins_under(image_dir) == []
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    for key in ("images", "batch_size", "batches", "padded_images", "result_files", "outfmt"):
        assert s[key] == bin_summary[key], key
    assert set(s) == set(bin_summary) | {"stream"}
    def listed(folder):
        return sorted(n for n in os.listdir(folder) if not n.startswith("."))

    assert listed(out) == listed(os.path.join(str(tmp_path / "oracle"), "result_bin"))
    perf_name = formats.perf_filename(s["batch_size"], 0)
    with open(os.path.join(out, perf_name)) as f:
        perf = formats.parse_perf(f.read())
    assert list(perf) == ["e2e", "data read", "preprocess", "infer", "post"]
    st = s["stream"]
    assert st["images_failed"] == 0 and st["workers"] == 2 and st["bounded_by"] in ("decoding", "model")
    assert st["decode_rate_images_per_s"] > 0
    # The summary line names the decode rate and the side that bounded the run.
    assert "decoded by 2 workers at" in stdout and f"bounded by {st['bounded_by']}" in stdout


def test_an_info_file_of_images_is_streamed_in_its_order(models, image_dir, tmp_path, capsys):
    """Oracle: the .bin path's results; the info file lists the images reversed (get_info.py jpg's format)."""
    expected, _, _ = bin_path_results(image_dir, models["dyn"], str(tmp_path / "oracle"))
    names = sorted(os.listdir(image_dir), key=formats.natural_key)[::-1]
    info = str(tmp_path / "val.info")
    formats.write_info(info, [(os.path.join(image_dir, n), 1, 1) for n in names])
    rec = Recorder()
    s = run_recorded(rec, info, str(tmp_path / "result"))
    assert rec.keys == [formats.image_key(n) for n in names]
    assert s["stream"]["source"] == f"info file {info}"
    out = str(tmp_path / "result_ort")
    code, _, err = run_cli(["--model", models["dyn"], "--input", info, "--output", out], capsys)
    assert code == 0, err
    assert files_of(os.path.join(out, DUMP)) == expected


class Recorder(Backend):
    """Zero-cost backend that keeps every batch it is given; its one output is each sample's index
    in the run, so the recorded batches can be matched to result files."""

    name = "recorder"

    def __init__(self, dtype=np.float32, delay: float = 0.0, shape=(3, 224, 224)) -> None:
        super().__init__()
        self.input_shape, self.input_dtype, self.batch_size = shape, np.dtype(dtype), None
        self.model_path, self.delay, self.samples, self.seen = "recorder", delay, [], 0
        self.keys: list = []

    def run(self, batch):
        time.sleep(self.delay)
        self.timing.compute.append(0.0)
        self.samples.extend(np.array(x) for x in batch)
        idx = np.arange(self.seen, self.seen + len(batch), dtype=np.float32)[:, None]
        self.seen += len(batch)
        return [idx]


def run_recorded(rec: Recorder, input_path: str, out: str, **options) -> dict:
    """run_inference with no warm-up (so every batch is an image batch); sets `rec.keys`, the
    image keys in the order the batches carried them, read back from the result files."""
    s = run_inference("rec", input_path, out, backend=rec, warmup=0, progress=False, **options)
    order = {}
    for name in os.listdir(s["result_dir"]):
        if name.startswith("."):  # the result folder's manifest
            continue
        order[int(formats.read_result(os.path.join(s["result_dir"], name))[0])] = formats.result_key(name)
    rec.keys = [order[i] for i in sorted(order)]
    return s


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_batches_hold_exactly_the_preprocessed_bytes_in_natural_order(image_dir, tmp_path, dtype):
    """Oracle: preprocessing's .bin files (float32 CHW, or uint8 HWC for a uint8-input model),
    in the natural order of their names, which is the .bin folder's order."""
    prep = str(tmp_path / "prep")
    preprocess_folder(image_dir, prep, workers=2, progress=False, dtype=dtype)
    bins = sorted((n for n in os.listdir(prep) if n.endswith(".bin")), key=formats.natural_key)
    shape = (224, 224, 3) if dtype == "uint8" else (3, 224, 224)
    rec = Recorder(dtype=dtype, shape=shape)
    s = run_recorded(rec, image_dir, str(tmp_path / "result"), batch_size=5, stream=stream.StreamOptions(workers=2))
    assert rec.keys == [b[:-4] for b in bins]
    assert len(rec.samples) == len(bins)
    for name, sample in zip(bins, rec.samples):
        with open(os.path.join(prep, name), "rb") as f:
            assert sample.tobytes() == f.read(), name
    assert s["stream"]["model_input"] == ("uint8 pixels" if dtype == "uint8" else "float32, normalised by the reader")


def test_natural_order_of_keys(tmp_path):
    """Hand-written order: numbers compare as numbers, and the key (before the first '.') decides."""
    folder = tmp_path / "val"
    folder.mkdir()
    img = Image.fromarray(picture(40, 30, 1))
    for name in ("img10.JPEG", "img2.png", "img1.JPEG", "img1b.JPEG", "img9.x.JPEG", "IMG3.JPEG"):
        img.save(folder / name, "PNG")
    rec = Recorder()
    run_recorded(rec, str(folder), str(tmp_path / "result"), batch_size=4)
    assert rec.keys == ["IMG3", "img1", "img1b", "img2", "img9", "img10"]


def test_bad_images_are_listed_as_preprocessing_lists_them_and_the_rest_run(models, image_dir, tmp_path, capsys):
    """Oracle: preprocessing's failed.txt for the same folder, and the .bin path's results for the
    good images; a FIFO and a socket (which preprocessing would block on or fail) are failed by name."""
    folder, bad = bad_folder(tmp_path, image_dir)
    expected, _, prep_summary = bin_path_results(folder, models["fixed"], str(tmp_path / "oracle"))
    prep_failed = dict(formats.read_failed(os.path.join(str(tmp_path / "oracle"), "prep", "failed.txt")))
    assert len(prep_failed) == len(bad) and len(expected) == 3
    os.mkfifo(os.path.join(folder, "val_34_fifo.JPEG"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(folder, "val_35_sock.JPEG"))
    (tmp_path / "val" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    out = str(tmp_path / "result")
    try:
        code, stdout, err = run_cli(["--model", models["fixed"], "--input", folder, "--output", out], capsys)
    finally:
        sock.close()
    assert code == 1
    failed = dict(formats.read_failed(os.path.join(out, "failed.txt")))
    fifo, sock_path = os.path.join(folder, "val_34_fifo.JPEG"), os.path.join(folder, "val_35_sock.JPEG")
    # Named by preprocessing's own listing, which never opens a special file.
    assert "FIFO" in failed.pop(fifo) and "socket" in failed.pop(sock_path)
    assert failed == prep_failed
    for path, reason in prep_failed.items():
        assert f"  {path}: {reason}" in err
    assert "7 input image(s) failed" in err and "--skip-bad" in err
    assert "note: " in err and "skipped 1 hidden file(s) (e.g. .DS_Store)" in err
    assert files_of(os.path.join(out, DUMP)) == expected
    assert "7 failed" in stdout

    code, _, err = run_cli(["--model", models["fixed"], "--input", folder, "--output", out, "--skip-bad"], capsys)
    assert code == 0 and "warning: 7 image(s) could not be decoded" in err
    # With the bad inputs gone, a rerun removes the failed.txt it wrote before.
    for name in [*bad, "val_34_fifo.JPEG", "val_35_sock.JPEG"]:
        path = os.path.join(folder, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    code, _, err = run_cli(["--model", models["fixed"], "--input", folder, "--output", out], capsys)
    assert code == 0, err
    assert not os.path.exists(os.path.join(out, "failed.txt"))


def test_a_fifo_in_an_info_file_is_failed_without_blocking(tmp_path, capsys):
    """The worker path of the FIFO check (an info file's entries are not listed first): it must
    return, within the timeout, with the FIFO failed and the good image run."""
    good = save(Image.fromarray(picture(300, 260, 2)), str(tmp_path / "a.JPEG"), "JPEG")
    fifo = str(tmp_path / "b.JPEG")
    os.mkfifo(fifo)
    info = str(tmp_path / "val.info")
    formats.write_info(info, [(good, 300, 260), (fifo, 1, 1)])
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        s=run_recorded(Recorder(), info, str(tmp_path / "out"))), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the run blocked on the FIFO"
    s = result["s"]
    assert s["images"] == 1
    assert s["stream"]["failed"] == [{"path": fifo, "reason": "a FIFO (named pipe), not an image file"}]


def test_all_images_bad_is_an_error_even_with_skip_bad(models, tmp_path, capsys):
    folder = tmp_path / "val"
    folder.mkdir()
    (folder / "a.JPEG").write_bytes(b"")
    code, _, err = run_cli(["--model", models["dyn"], "--input", str(folder), "--output", str(tmp_path / "r"),
                            "--skip-bad"], capsys)
    assert code == 1 and "no image could be decoded" in err


def test_two_images_with_one_key_are_refused_before_any_work(models, image_dir, tmp_path, capsys):
    folder = tmp_path / "val"
    folder.mkdir()
    shutil.copy(os.path.join(image_dir, "val_01.JPEG"), folder / "a.JPEG")
    shutil.copy(os.path.join(image_dir, "val_08.png"), folder / "a.png")
    code, _, err = run_cli(["--model", models["dyn"], "--input", str(folder), "--output", str(tmp_path / "r")],
                           capsys)
    assert code == 1 and "a.JPEG and a.png → a.bin" in err
    assert not (tmp_path / "r").exists()


def test_a_model_of_another_input_size_is_refused(models, image_dir, tmp_path, capsys):
    code, _, err = run_cli(["--model", models["dyn"], "--input", image_dir, "--output", str(tmp_path / "r"),
                            "--crop", "200"], capsys)
    assert code == 1 and "streamed images are 200x200 crops (--crop 200)" in err


def test_images_in_flight_stay_within_the_feed_window(tmp_path):
    """Oracle: the window (workers x CHUNKS_PER_WORKER chunks) bounds the decoded images held at
    once, however many images there are and however slow the model is."""
    folder = tmp_path / "val"
    folder.mkdir()
    img = Image.fromarray(picture(64, 48, 3))
    n = 120
    for i in range(n):
        img.save(folder / f"i{i}.png", "PNG")
    rec = Recorder(delay=0.01)
    s = run_recorded(rec, str(folder), str(tmp_path / "result"), batch_size=1, stream=stream.StreamOptions(workers=1))
    st = s["stream"]
    chunk = max(1, min(stream.MAX_CHUNK, n // 8))
    window = stream.CHUNKS_PER_WORKER * chunk
    assert s["images"] == n and 0 < st["max_images_in_flight"] <= window < n
    # A model sleeping 10 ms per image against 1-2 ms decodes: the reader waits for the model.
    assert st["bounded_by"] == "model", st


def _ours_alive(marker: str) -> list:
    """Processes whose command line holds `marker` (the run's unique output folder)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(pid))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to look for left-over workers")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_the_pool_cleanly(models, tmp_path, sig):
    """Oracle: the exit status 130, the resume message, and no process of the run left behind,
    all within a timeout (a hang fails the test)."""
    folder = tmp_path / "val"
    folder.mkdir()
    img = Image.fromarray(picture(320, 240, 4))
    for i in range(200):
        img.save(folder / f"i{i}.JPEG", "JPEG")
    out = str(tmp_path / f"result-{sig.name}")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "run_om_infer.py"), "--model", models["dyn"],
                             "--input", str(folder), "--output", out, "--workers", "2", "--loop", "40",
                             "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    dump = os.path.join(out, DUMP)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.isdir(dump) and len(os.listdir(dump)) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()[1]
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C reaches the whole process group
    else:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the run did not stop within 30 s")
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), err
    assert "rerun the same command to resume" in err and "Traceback" not in err
    deadline = time.monotonic() + 10
    while _ours_alive(out) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ours_alive(out) == []
    assert len(os.listdir(dump)) < 200


def test_streamed_images_with_several_devices_are_refused(models, image_dir, tmp_path, capsys):
    """Oracle: the rule itself; a device list must not silently run on its first device only, and
    nothing is written before the refusal."""
    out = tmp_path / "result"
    code, _, err = run_cli(["--model", models["dyn"], "--input", image_dir, "--output", str(out),
                            "--device-id", "0,1"], capsys)
    assert code == 1 and "one device" in err and "--device-id 0,1" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()

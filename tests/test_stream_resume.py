"""Resuming a streamed run (issue 11 through issue 9 item 3): a rerun decodes and runs only what
the result folder's manifest does not prove.

Oracles: hand counts of the images a backend was asked to run and of the images the pool
decoded; each result against the channel means of preprocessing's own float32 tensor for that
image (`EvalTransform.from_file`, which test_preprocess.py holds to torchvision); the manifest's
recorded digest against hashlib over the image file; and, for a real interrupted subprocess, the
number of result files the stopped run left.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys

import numpy as np
import pytest
from PIL import Image
from test_preprocess import picture

from mocoinfer import formats, sidecar
from mocoinfer.backends import Backend
from mocoinfer.runner import run_inference
from mocoinfer.stream import StreamOptions
from mocoinfer.transforms import EvalTransform
from tests.interrupt_helpers import stop_and_rerun, write_slow_runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 10


class Means(Backend):
    """Zero-cost backend: each sample's three channel means; counts the images it runs."""

    name = "means"

    def __init__(self) -> None:
        super().__init__()
        self.input_shape, self.input_dtype, self.batch_size = (3, 224, 224), np.dtype(np.float32), None
        self.model_path, self.images = "means", 0

    def run(self, batch):
        self.images += len(batch)
        self.timing.compute.append(0.0)
        return [batch.mean(axis=(2, 3))]


@pytest.fixture
def case(tmp_path):
    val = tmp_path / "val"
    val.mkdir()
    for i in range(N):
        Image.fromarray(picture(64 + 4 * i, 48, i)).save(val / f"im{i}.JPEG", "PNG")
    out = tmp_path / "out"
    return {"val": str(val), "out": str(out), "res": str(out / "dumpOutput_device0")}


def _run(case, interpolation="bicubic", **kw):
    """A run; a rerun reuses proven results (--resume) unless it asks for --overwrite."""
    be = Means()
    kw.setdefault("resume", not kw.get("overwrite"))
    s = run_inference("means", case["val"], case["out"], backend=be, warmup=0, progress=False, batch_size=3,
                      stream=StreamOptions(workers=2, interpolation=interpolation), **kw)
    return s, be.images


def _expected(path, interpolation="bicubic"):
    return EvalTransform(interpolation=interpolation).from_file(path).mean(axis=(1, 2))


def _check_results(case, interpolation="bicubic"):
    for i in range(N):
        got = formats.read_result(os.path.join(case["res"], f"im{i}_1.txt"))
        np.testing.assert_array_equal(got, _expected(os.path.join(case["val"], f"im{i}.JPEG"), interpolation))


def test_rerun_decodes_and_runs_only_the_unproven_images(case, capsys):
    s, ran = _run(case)
    assert (ran, s["skipped"], s["stream"]["images_decoded"]) == (N, 0, N)
    _check_results(case)
    doc = sidecar.read_manifest(case["res"])
    assert doc["status"] == sidecar.COMPLETE and doc["settings"]["interpolation"] == "bicubic"
    image = os.path.join(case["val"], "im4.JPEG")
    with open(image, "rb") as f:
        raw = f.read()
    # The proof the worker sent back is the image's stat, and, the file being racy (written by the
    # test just now), the hash of its bytes (oracles: os.stat and hashlib over the file).
    proof, st = doc["files"]["im4_1.txt"]["source_proof"], os.stat(image)
    assert proof["sha256"] == hashlib.sha256(raw).hexdigest()
    assert proof["stat"] == [len(raw), st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]

    s, ran = _run(case)
    assert ran == 0 and s["nothing_to_do"] and s["skipped"] == N and s["stream"]["images_decoded"] == 0
    for i in (1, 5, 8):
        os.unlink(os.path.join(case["res"], f"im{i}_1.txt"))
    capsys.readouterr()
    s, ran = _run(case)
    # Hand count: 3 results deleted → 3 images decoded and run, 7 skipped; the rate is over the 3.
    assert (ran, s["images"], s["skipped"], s["inputs"], s["stream"]["images_decoded"]) == (3, 3, N - 3, N, 3)
    assert s["e2e"]["throughput_images_per_s"] == pytest.approx(3 / s["wall_seconds"])
    assert f"skipping {N - 3} of {N} images" in capsys.readouterr().err
    _check_results(case)


def test_a_changed_image_is_decoded_again(case):
    """Other pixels under the same name and mtime: the proof is the hash, so only it runs again."""
    _run(case)
    path = os.path.join(case["val"], "im3.JPEG")
    st = os.stat(path)
    Image.fromarray(picture(64 + 4 * 3, 48, 99)).save(path, "PNG")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    s, ran = _run(case)
    assert (ran, s["skipped"]) == (1, N - 1)
    _check_results(case)


def test_other_settings_replace_the_results_and_overwrite_redoes_everything(case, capsys):
    """Issue 21: another transform or format into the folder replaces the results this tool wrote
    there (one line says so), --resume or not; a format change removes the earlier files. Oracle:
    hand counts, os.listdir, the transform's own output."""
    _run(case)
    capsys.readouterr()
    s, ran = _run(case, interpolation="bilinear")
    assert (ran, s["skipped"]) == (N, 0)
    assert "replacing 10 result files of means (bs 3, txt, streamed images)" in capsys.readouterr().err
    _check_results(case, "bilinear")
    s, ran = _run(case, interpolation="bilinear", outfmt="bin")
    assert (ran, s["skipped"]) == (N, 0)
    assert sorted(os.listdir(case["res"])) == sorted(f"im{i}_1.bin" for i in range(N))
    s, ran = _run(case, interpolation="bilinear", outfmt="bin", overwrite=True)
    assert (ran, s["skipped"]) == (N, 0)


def test_results_of_bin_files_are_not_proven_for_images(case, tmp_path, capsys):
    """A folder written from .bin files is replaced by a streamed run, --resume or not (their
    proofs are of the .bin files, not the images), naming the change of input kind."""
    from mocoinfer.preprocess import preprocess_folder

    prep = str(tmp_path / "prep")
    preprocess_folder(case["val"], prep, workers=1, progress=False)
    run_inference("means", prep, case["out"], backend=Means(), warmup=0, progress=False)
    capsys.readouterr()
    s, ran = _run(case)
    assert ran == N and "(inputs .bin files → images)" in capsys.readouterr().err
    _check_results(case)


def test_bad_images_make_no_result_and_are_tried_again(case):
    bad = os.path.join(case["val"], "im10.JPEG")
    with open(bad, "wb") as f:
        f.write(b"not an image")
    s, ran = _run(case)
    assert ran == N and [f["path"] for f in s["stream"]["failed"]] == [bad]
    s, ran = _run(case)
    # Hand count: the N good images are proven; the bad one is decoded again and listed again.
    assert (ran, s["skipped"], s["stream"]["images_decoded"]) == (0, N, 1)
    assert [f["path"] for f in s["stream"]["failed"]] == [bad]
    Image.fromarray(picture(70, 50, 10)).save(bad, "PNG")
    s, ran = _run(case)
    assert (ran, s["skipped"], s["stream"]["images_failed"]) == (1, N, 0)
    np.testing.assert_array_equal(formats.read_result(os.path.join(case["res"], "im10_1.txt")), _expected(bad))


def test_cli_rerun_with_nothing_to_decode_still_reports_bad_entries(case, monkeypatch, capsys):
    """The command line: a rerun whose images are all proven says so and exits 0, but an entry
    that is not an image (a folder, failed at listing) is still listed and fails the stage
    without --skip-bad (oracle: preprocessing's exit policy)."""
    import run_om_infer
    from mocoinfer import onepass
    from mocoinfer.cli import run_main

    class Loaded(Means):
        @classmethod
        def load(cls, path, **kw):
            return cls()

    monkeypatch.setattr(onepass, "choose_backend", lambda model, name="auto": Loaded)
    os.mkdir(os.path.join(case["val"], "sub.JPEG"))
    model = os.path.join(os.path.dirname(case["val"]), "m.onnx")
    with open(model, "wb") as f:
        f.write(b"stand-in")
    argv = ["--model", model, "--input", case["val"], "--output", case["out"], "--no-progress"]
    assert run_main(run_om_infer.main, argv + ["--skip-bad"]) == 0
    capsys.readouterr()
    assert run_main(run_om_infer.main, argv + ["--resume"]) == 1
    out, err = capsys.readouterr()
    assert f"{N} of {N + 1} images have proven results" in out and "nothing to decode or run" in out
    assert "sub.JPEG: is a directory, not an image" in err and "--skip-bad" in err
    assert run_main(run_om_infer.main, argv + ["--skip-bad", "--resume"]) == 0
    _check_results(case)


# --------------------------------------------------------------------------- a real interrupted run




@pytest.mark.parametrize("sig,rc", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_stream_keeps_results_and_rerun_computes_only_the_rest(tmp_path, sig, rc):
    """Stop a real streamed run mid-way; the oracle for the rerun is the number of result files
    the stopped run left (each proven by the manifest): the rerun decodes and runs exactly the others."""
    n = 40
    val = tmp_path / "val"
    val.mkdir()
    for i in range(n):
        Image.fromarray(picture(40 + i, 32, i)).save(val / f"im{i}.JPEG", "PNG")
    (tmp_path / "slow.om").write_bytes(b"slow model")
    script = tmp_path / "slow_runner.py"
    write_slow_runner(script, ROOT, (3, 224, 224), 'batch.mean(axis=(2, 3))')
    res = tmp_path / "out" / "dumpOutput_device0"
    argv = [sys.executable, str(script), "--model", str(tmp_path / "slow.om"), "--input", str(val),
            "--output", str(tmp_path / "out"), "--warmup", "0", "--workers", "2", "--no-progress"]
    kept, partial, _ = stop_and_rerun(tmp_path, argv, sig, rc, n, 0.1)
    assert partial["skipped"] == 0
    with open(tmp_path / "out" / "summary.json") as f:
        assert json.load(f)["stream"]["images_decoded"] == n - len(kept)
    for i in range(n):
        got = formats.read_result(str(res / f"im{i}_1.txt"))
        np.testing.assert_array_equal(got, _expected(str(val / f"im{i}.JPEG")))


def test_a_finished_streamed_run_runs_again_without_resume(case, capsys):
    """Issue 21: the same streamed command again decodes and runs every image again and replaces
    the results (new inodes); with --resume nothing is decoded. Oracle: hand counts, os.stat."""
    _run(case)
    inode = os.stat(os.path.join(case["res"], "im0_1.txt")).st_ino
    capsys.readouterr()
    s, ran = _run(case, resume=False)
    assert (ran, s["skipped"], s["stream"]["images_decoded"]) == (N, 0, N)
    assert "replacing 10 result files of means" in capsys.readouterr().err
    assert os.stat(os.path.join(case["res"], "im0_1.txt")).st_ino != inode
    _check_results(case)

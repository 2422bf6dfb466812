"""imagenet_torch_preprocess.py under the output policy (issue 13), one test per fault class.

Oracles: the bytes of every input hashed before and after each failing case (safety_helpers),
and for .bin contents `EvalTransform.from_file`, which tests/test_preprocess.py proves bit-identical
to torchvision's Resize -> CenterCrop -> ToTensor -> Normalize.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from safety_helpers import one_line_error, tree

import imagenet_torch_preprocess as stage
from mocoinfer import atomic, preprocess, sidecar
from mocoinfer.cli import run_main
from mocoinfer.transforms import EvalTransform

LOCK = [sidecar.LEGACY_LOCK_NAME]  # an older version kept its lock in the folder; ours lives beside it
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def images(folder, n=4, seed=0):
    """n small, distinct JPEGs `img_<i>.JPEG` (their transforms differ pixel for pixel)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = rng.integers(0, 256, (60 + 7 * i, 80, 3), dtype=np.uint8)
        Image.fromarray(arr).save(os.path.join(folder, f"img_{i}.JPEG"), "JPEG", quality=90)
    return str(folder)


def expected(path, interpolation="bicubic"):
    return EvalTransform(interpolation=interpolation).from_file(path).tobytes()


def run(argv, capsys):
    code = run_main(stage.main, [*argv, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def bins(folder):
    return {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder) if n.endswith(".bin")}


def test_interrupted_overwrite_with_other_settings_is_never_reported_as_up_to_date(tmp_path, capsys, monkeypatch):
    """Class: reuse assumed, not proven. An --overwrite --interpolation bicubic run stopped after
    one image leaves three bilinear .bin files; the rerun must redo exactly those three."""
    src = images(tmp_path / "val")
    out = str(tmp_path / "prep")
    assert run([src, out, "--workers", "1", "--interpolation", "bilinear"], capsys)[0] == 0
    real = preprocess.Worker.__call__
    calls = []

    def stop_after_one(self, task):
        if calls:
            raise KeyboardInterrupt
        calls.append(task)
        return real(self, task)

    monkeypatch.setattr(preprocess.Worker, "__call__", stop_after_one)
    assert run([src, out, "--workers", "1", "--overwrite", "--interpolation", "bicubic"], capsys)[0] == 130
    monkeypatch.undo()
    manifest = sidecar.read_manifest(out)
    assert manifest["status"] == "incomplete" and list(manifest["files"]) == ["img_0.bin"]
    # The same settings without --overwrite: one proven, three redone.
    code, stdout, _ = run([src, out, "--workers", "1", "--interpolation", "bicubic"], capsys)
    assert code == 0 and "3 written, 1 already up to date" in stdout
    assert bins(out) == {f"img_{i}.bin": expected(os.path.join(src, f"img_{i}.JPEG"), "bicubic") for i in range(4)}
    assert sidecar.read_manifest(out)["status"] == "complete"
    # Other settings again: refused, nothing touched.
    before = tree(out, LOCK)
    code, _, err = run([src, out, "--interpolation", "bilinear"], capsys)
    assert code == 1 and one_line_error(err, out, "other settings", "--overwrite") and tree(out, LOCK) == before


def test_an_image_replaced_by_an_older_file_is_redone(tmp_path, capsys):
    """Class: reuse assumed. `cp -p` gives the new image an older mtime; its content hash differs."""
    src = images(tmp_path / "val")
    out = str(tmp_path / "prep")
    assert run([src, out], capsys)[0] == 0
    other = images(tmp_path / "other", n=1, seed=9)
    shutil.copy2(os.path.join(other, "img_0.JPEG"), os.path.join(src, "img_1.JPEG"))
    os.utime(os.path.join(src, "img_1.JPEG"), (1_000_000, 1_000_000))  # 1970: older than every .bin
    code, stdout, _ = run([src, out], capsys)
    assert code == 0 and "1 written, 3 already up to date" in stdout
    assert bins(out)["img_1.bin"] == expected(os.path.join(src, "img_1.JPEG"))


def test_existing_bins_without_a_manifest_are_not_trusted(tmp_path, capsys):
    """Class: reuse assumed. .bin files nobody recorded (older version, by hand) are refused
    without --overwrite, and left as they are."""
    src = images(tmp_path / "val", n=2)
    out = tmp_path / "prep"
    out.mkdir()
    (out / "img_0.bin").write_bytes(b"\0" * 602112)
    before, inputs = tree(str(out), LOCK), tree(src)
    code, _, err = run([src, str(out)], capsys)
    assert code == 1 and one_line_error(err, "img_0.bin", "no manifest", "--overwrite")
    assert tree(str(out), LOCK) == before and tree(src) == inputs


LOCK_HOLDER = """
import sys, time
from mocoinfer.sidecar import FolderLock
with FolderLock(sys.argv[1], command="imagenet_torch_preprocess.py val prep --interpolation bicubic"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_run_into_a_locked_output_dir_stops_naming_the_first(tmp_path, capsys):
    """Class: no lock. Oracle: a live process holding the folder's lock."""
    src = images(tmp_path / "val", n=2)
    out = tmp_path / "prep"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        inputs = tree(src)
        code, _, err = run([src, str(out)], capsys)
        assert code == 1 and one_line_error(err, str(out), f"pid {holder.pid}", "--interpolation bicubic")
        assert tree(src) == inputs and not bins(str(out))
    finally:
        holder.kill()
        holder.wait()
    assert run([src, str(out)], capsys)[0] == 0  # released when its holder died


def test_a_users_failed_txt_and_lookalike_temporaries_are_never_deleted(tmp_path, capsys):
    """Class: deleting what it did not write."""
    src = images(tmp_path / "val", n=2)
    out = tmp_path / "prep"
    out.mkdir()
    (out / "failed.txt").write_text("my own notes\n")
    (out / ".img_0.bin.tmp4242").write_text("looks like an old temporary")
    (out / ".img_1.bin.tmp1-0badc0de").write_text("looks like a new one, of no recorded run")
    mine = tree(str(out), LOCK)
    assert run([src, str(out)], capsys)[0] == 0
    assert {k: v for k, v in tree(str(out), LOCK).items() if k in mine} == mine
    # With a failing input the user's failed.txt is still not replaced; stderr lists the failure.
    (tmp_path / "val" / "bad.JPEG").write_bytes(b"not an image")
    code, _, err = run([src, str(out), "--skip-bad"], capsys)
    assert code == 0 and "bad.JPEG: not an image" in err and "failed.txt: not written" in err
    assert (out / "failed.txt").read_text() == "my own notes\n"


def test_a_dead_runs_recorded_temporaries_are_cleaned(tmp_path, capsys):
    """A temporary carrying the run id the folder's lock recorded for its last (dead) holder is
    that run's own leftover, and goes; the lock file is the record."""
    src = images(tmp_path / "val", n=1)
    out = tmp_path / "prep"
    out.mkdir()
    dead = atomic.new_run_id()
    (out / sidecar.LEGACY_LOCK_NAME).write_text(f'{{"pid": 1, "run_id": "{dead}", "command": "x"}}\n')
    leftover = os.path.basename(atomic.temp_name(str(out / "img_0.bin"), dead))
    (out / leftover).write_bytes(b"\0" * 10)
    assert run([src, str(out)], capsys)[0] == 0
    assert not (out / leftover).exists()


def test_hidden_images_are_skipped_with_a_note(tmp_path, capsys):
    """Class: hidden files. `.b.JPEG` would become `.bin`, a hidden output nothing lists."""
    src = images(tmp_path / "val", n=1)
    shutil.copy(os.path.join(src, "img_0.JPEG"), os.path.join(src, ".b.JPEG"))
    out = str(tmp_path / "prep")
    code, stdout, err = run([src, out], capsys)
    assert code == 0 and "1 written" in stdout and "skipped 1 hidden file(s) (e.g. .b.JPEG)" in err
    assert sorted(bins(out)) == ["img_0.bin"] and not os.path.exists(os.path.join(out, ".bin"))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_special_files_are_failures_by_name_and_never_opened(tmp_path, workers):
    """Class: special files. A FIFO with no writer would hang a plain open(); a socket, a device,
    a symlink loop and a broken link are each listed by name. Run as a process with a timeout,
    so a hang fails the test instead of stalling it."""
    src = images(tmp_path / "val", n=2)
    os.mkfifo(os.path.join(src, "pipe.JPEG"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(src, "sock.JPEG"))
    os.symlink("loop_b.JPEG", os.path.join(src, "loop_a.JPEG"))
    os.symlink("loop_a.JPEG", os.path.join(src, "loop_b.JPEG"))
    os.symlink("missing.JPEG", os.path.join(src, "dangling.JPEG"))
    inputs = tree(src)
    out = str(tmp_path / "prep")
    try:
        proc = subprocess.run([sys.executable, "imagenet_torch_preprocess.py", src, out, "--workers", workers,
                               "--skip-bad"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        sock.close()
    assert proc.returncode == 0, proc.stderr
    for name, why in (("pipe.JPEG", "FIFO"), ("sock.JPEG", "socket"), ("loop_a.JPEG", "symbolic link loop"),
                      ("loop_b.JPEG", "symbolic link loop"), ("dangling.JPEG", "broken symbolic link")):
        assert f"{os.path.join(src, name)}: " in proc.stderr and why in proc.stderr.split(name + ": ", 1)[1]
    assert "2 written" in proc.stdout and sorted(bins(out)) == ["img_0.bin", "img_1.bin"]
    assert tree(src) == inputs


@pytest.mark.parametrize("nested", ["prep", "sub/prep"])
def test_an_output_dir_inside_the_input_dir_works_on_every_rerun(tmp_path, capsys, nested):
    """Class: special files (the output dir is not an input, however deep, on any run)."""
    src = images(tmp_path / "val", n=2)
    out = os.path.join(src, nested)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    for expected_line in ("2 written, 0 already up to date, 0 failed", "0 written, 2 already up to date, 0 failed",
                          "0 written, 2 already up to date, 0 failed"):
        code, stdout, err = run([src, out], capsys)
        assert code == 0 and expected_line in stdout, err


@pytest.mark.parametrize("args,needle", [
    (["--crop", "100000"], "--crop must be between 8 and 4096"),
    (["--resize", "100000", "--crop", "224"], "--resize must be between 8 and 4096"),
    (["--resize", "200", "--crop", "224"], "--crop (224) must not exceed --resize (200)"),
])
def test_crop_and_resize_are_range_checked_before_any_work(tmp_path, capsys, args, needle):
    """Class: arguments not checked (`--crop 100000` made the pool respawn forever)."""
    src = images(tmp_path / "val", n=1)
    inputs = tree(src)
    out = tmp_path / "prep"
    code, _, err = run([src, str(out), *args], capsys)
    assert code == 1 and one_line_error(err, needle) and not out.exists() and tree(src) == inputs


def test_a_worker_that_cannot_start_stops_the_pool_with_one_error(tmp_path, capsys, monkeypatch):
    """The pool's workers are forked from this process, so a Worker that raises on construction
    here raises in every worker's initializer (which used to respawn forever)."""
    src = images(tmp_path / "val", n=4)

    def broken(self, *a, **k):
        raise MemoryError("cannot allocate the output buffer")

    monkeypatch.setattr(preprocess.Worker, "__init__", broken)
    start = time.monotonic()
    code, _, err = run([src, str(tmp_path / "prep"), "--workers", "2"], capsys)
    assert code == 1 and one_line_error(err, "worker process could not start", "MemoryError")
    assert time.monotonic() - start < 60


def test_full_or_read_only_output_dir_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    """Class: resource errors. statvfs is what the policy reads (root ignores mode bits)."""
    src = images(tmp_path / "val", n=2)
    out = tmp_path / "prep"
    out.mkdir()
    real = os.statvfs(str(out))

    class Vfs:
        f_flag, f_bavail, f_frsize = real.f_flag, 1, 4096

    monkeypatch.setattr(atomic.os, "statvfs", lambda p: Vfs)
    code, _, err = run([src, str(out)], capsys)
    assert code == 1 and one_line_error(err, str(out), "needs about 1.2 MB", "free") and not bins(str(out))
    Vfs.f_flag, Vfs.f_bavail = real.f_flag | os.ST_RDONLY, real.f_bavail
    code, _, err = run([src, str(out)], capsys)
    assert code == 1 and one_line_error(err, str(out), "read-only file system")

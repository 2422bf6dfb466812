"""get_info.py under the output policy (issue 13): an info file never replaces an input or a
special file, FIFOs are never opened, hidden files are noted.

Oracles: every input hashed before and after each failing case (safety_helpers), hand-written
expected info lines.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from safety_helpers import fingerprint, one_line_error, tree

import get_info as stage
from mocoinfer.cli import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_BYTES = 602112


def run(argv, capsys):
    code = run_main(stage.main, argv)
    out, err = capsys.readouterr()
    return code, out, err


def bins(folder, names):
    os.makedirs(folder, exist_ok=True)
    for i, name in enumerate(names):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(bytes([i]) * BIN_BYTES)
    return str(folder)


def jpeg(path, width, height):
    arr = np.random.default_rng(width).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, "JPEG")


def test_info_file_equal_to_a_listed_bin_or_the_folder_is_refused(tmp_path, capsys):
    """Class: an output replaces an input. The listed .bin (by path, through a symlink to the
    folder, or a hard link) and the folder itself are refused; nothing changes."""
    folder = bins(tmp_path / "prep", ["a.bin", "b.bin"])
    os.symlink(folder, tmp_path / "alias")
    os.link(os.path.join(folder, "a.bin"), tmp_path / "hard.info")
    before = tree(str(tmp_path))
    for info, needle in ((os.path.join(folder, "b.bin"), "same file as the input"),
                         (str(tmp_path / "alias" / "a.bin"), "same file as the input"),
                         (str(tmp_path / "hard.info"), "same file as the input"),
                         (folder, "is a folder")):
        code, _, err = run(["bin", folder, info, "224", "224"], capsys)
        assert code == 1 and one_line_error(err, info, needle), err
    assert tree(str(tmp_path)) == before


def test_info_file_that_is_a_symlink_or_a_device_is_refused(tmp_path, capsys):
    """Class: an output that is not a regular file. A private device node like /dev/null
    (1, 3) stands in for the real one, which this test must never risk."""
    folder = bins(tmp_path / "prep", ["a.bin"])
    (tmp_path / "real.info").write_text("old\n")
    os.symlink(tmp_path / "real.info", tmp_path / "link.info")
    cases = [(str(tmp_path / "link.info"), "symbolic link")]
    os.mkfifo(tmp_path / "fifo.info")
    cases.append((str(tmp_path / "fifo.info"), "FIFO"))
    try:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        cases.append((str(tmp_path / "null"), "character device"))
    except PermissionError:
        pass  # not root: the symlink and FIFO cases still run
    before = tree(str(tmp_path))
    for info, needle in cases:
        code, _, err = run(["bin", folder, info, "224", "224"], capsys)
        assert code == 1 and one_line_error(err, info, needle), err
    assert tree(str(tmp_path)) == before


def test_jpg_mode_lists_a_fifo_by_name_without_opening_it(tmp_path):
    """Class: special files. A process with a timeout: opening the FIFO would hang."""
    folder = tmp_path / "val"
    folder.mkdir()
    jpeg(str(folder / "a.jpg"), 40, 30)
    os.mkfifo(folder / "pipe.jpg")
    before = tree(str(folder))
    proc = subprocess.run([sys.executable, "get_info.py", "jpg", str(folder), str(tmp_path / "x.info")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and one_line_error(proc.stderr, "pipe.jpg", "FIFO"), proc.stderr
    assert not (tmp_path / "x.info").exists() and tree(str(folder)) == before


@pytest.mark.parametrize("mode", ["bin", "jpg"])
def test_hidden_files_are_skipped_with_a_note(tmp_path, capsys, mode):
    """Class: hidden files: `.b.bin` / `.c.jpg` are not listed, and the user is told."""
    folder = tmp_path / "in"
    if mode == "bin":
        bins(folder, ["a.bin", ".b.bin"])
        argv = ["bin", str(folder), str(tmp_path / "x.info"), "224", "224"]
        line = f"0 {folder}/a.bin 224 224\n"
    else:
        folder.mkdir()
        jpeg(str(folder / "a.jpg"), 40, 30)
        jpeg(str(folder / ".c.jpg"), 50, 30)
        argv = ["jpg", str(folder), str(tmp_path / "x.info")]
        line = f"0 {folder}/a.jpg 40 30\n"
    code, _, err = run(argv, capsys)
    assert code == 0 and "skipped 1 hidden file(s)" in err
    assert (tmp_path / "x.info").read_text() == line


def test_read_only_or_full_info_folder_is_one_line(tmp_path, capsys, monkeypatch):
    """Class: resource errors: a read-only folder (statvfs, as root ignores mode bits) is
    refused before the listing; a full disk during the write is one line and leaves nothing."""
    import errno

    from mocoinfer import atomic

    folder = bins(tmp_path / "prep", ["a.bin"])
    info = str(tmp_path / "x.info")
    real = os.statvfs(str(tmp_path))

    class Vfs:
        f_flag, f_bavail, f_frsize = real.f_flag | os.ST_RDONLY, real.f_bavail, real.f_frsize

    monkeypatch.setattr(atomic.os, "statvfs", lambda p: Vfs)
    code, _, err = run(["bin", folder, info, "224", "224"], capsys)
    assert code == 1 and one_line_error(err, str(tmp_path), "read-only file system")
    monkeypatch.undo()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "replace", full)
    code, _, err = run(["bin", folder, info, "224", "224"], capsys)
    assert code == 1 and one_line_error(err, info, "no space left on device")
    assert sorted(os.listdir(tmp_path)) == ["prep"] and fingerprint(os.path.join(folder, "a.bin"))[0] == "file"

"""The output policy of mocoinfer/atomic.py, class by class (issue 13).

Oracles: the file system itself (lstat types, inode numbers, bytes hashed before and after), and
for the lock, a second process that really holds it.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import sys
import time

import pytest
from safety_helpers import fingerprint, read_only_statvfs

from mocoinfer import atomic, sidecar
from mocoinfer.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fake_null(path: str) -> str:
    """A character device like /dev/null (major 1, minor 3) in a temporary folder: what the
    policy must never replace. Creating one needs root; without it the test is skipped."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    return path


def test_outputs_never_replace_special_files_or_symlinks(tmp_path):
    """Class: an output path that is not a regular file is replaced. Each is refused with a
    message naming the path and saying what it is, and is still the same node afterwards."""
    target = tmp_path / "real.txt"
    target.write_text("keep me")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = str(tmp_path / "sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(sock_path)
    null = _fake_null(str(tmp_path / "null"))
    cases = {str(link): "symbolic link", str(fifo): "FIFO", sock_path: "socket", null: "character device",
             str(tmp_path): "folder"}
    before = {p: fingerprint(p) for p in [*cases, str(target)]}
    try:
        for path, kind in cases.items():
            with pytest.raises(UserError, match=kind) as info:
                atomic.atomic_write_text(path, "x" * 1000)
            assert str(info.value).startswith(path) and "\n" not in str(info.value)
            with pytest.raises(UserError, match=kind):
                atomic.check_output(path)
    finally:
        sock.close()
    assert {p: fingerprint(p) for p in before} == before
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]  # no temporary left behind


def test_a_target_that_becomes_a_symlink_while_writing_is_not_replaced(tmp_path):
    """atomic_path checks again just before the rename (oracle: the link is still a link)."""
    out = tmp_path / "out.txt"
    with pytest.raises(UserError, match="symbolic link"), atomic.atomic_path(str(out)) as tmp:
        with open(tmp, "w") as f:
            f.write("new")
        out.symlink_to(tmp_path / "elsewhere")
    assert out.is_symlink()


def test_an_output_that_is_an_input_is_refused(tmp_path):
    """Class: an output replaces an input; same path, a hard link (same inode) and a symlink
    to the input all name the input."""
    src = tmp_path / "in.bin"
    src.write_bytes(b"input")
    hard = tmp_path / "hard.bin"
    os.link(src, hard)
    via_link = tmp_path / "via"
    via_link.symlink_to(src)
    for out, inputs in ((src, [src]), (hard, [src]), (src, [via_link]), (tmp_path / "." / "in.bin", [src])):
        with pytest.raises(UserError, match="same file as the input") as info:
            atomic.check_output(str(out), [str(p) for p in inputs])
        assert str(info.value).startswith(str(out))
    atomic.check_output(str(tmp_path / "new.bin"), [str(src)])  # a new name is fine
    assert src.read_bytes() == b"input"


def test_read_only_folder_and_full_disk_are_one_line(tmp_path, monkeypatch):
    """Class: resource errors. Root ignores permission bits, so the read-only mount and the full
    disk are simulated where the policy reads them: statvfs, and the write itself."""
    vfs = read_only_statvfs(monkeypatch, str(tmp_path))
    with pytest.raises(UserError, match="read-only file system"):
        atomic.check_writable_dir(str(tmp_path))
    vfs.f_flag = vfs.writable_flag
    vfs.f_bavail, vfs.f_frsize = 10, 4096
    with pytest.raises(UserError, match=r"needs about 1\.0 MB .* only 41\.0 kB is free"):
        atomic.check_writable_dir(str(tmp_path), need_bytes=1_000_000)
    monkeypatch.undo()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out = tmp_path / "r.json"
    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(UserError, match="no space left on device") as info:
        atomic.write_json(str(out), {"a": 1})
    assert str(info.value).startswith(str(out)) and not os.listdir(tmp_path)


def test_open_regular_never_blocks_on_a_fifo(tmp_path):
    """A FIFO with no writer would block a plain open() forever; here it is refused at once."""
    fifo = tmp_path / "pipe.JPEG"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(OSError, match="FIFO"):
        atomic.open_regular(str(fifo))
    assert time.monotonic() - start < 5


HOLDER = """
import sys, time
from mocoinfer.sidecar import FolderLock
with FolderLock(sys.argv[1], command="imagenet_torch_preprocess.py in out-A"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_second_run_into_a_locked_folder_names_the_first(tmp_path):
    """Class: no lock. Oracle: a real second process holding the flock."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(UserError) as info:
            sidecar.FolderLock(str(tmp_path)).acquire()
        msg = str(info.value)
        assert f"pid {proc.pid}" in msg and "imagenet_torch_preprocess.py in out-A" in msg and "\n" not in msg
    finally:
        proc.kill()
        proc.wait()
    # The kernel released it with the process: the next run gets it and learns who was there.
    with sidecar.FolderLock(str(tmp_path)) as lock:
        assert lock.previous["pid"] == proc.pid and lock.previous_run_ids() == [lock.previous["run_id"]]


def test_only_own_and_previous_runs_temporaries_are_deleted(tmp_path):
    """Class: deleting what it did not write. Files merely named like temporaries stay."""
    prev = atomic.new_run_id()
    mine = atomic.temp_name(str(tmp_path / "a.bin"), prev)
    user_files = [".a.bin.tmp12345", ".b.bin.tmp1-deadbeef", "a.bin.tmp" + prev, ".notes"]
    for name in user_files + [os.path.basename(mine)]:
        (tmp_path / name).write_text("x")
    assert atomic.temp_run_id(mine) == prev
    assert atomic.remove_temporaries(str(tmp_path), [prev]) == 1
    assert sorted(os.listdir(tmp_path)) == sorted(user_files)


def test_manifest_round_trip_and_untrusted_manifests(tmp_path, capsys):
    """A manifest reads back as written; a corrupt one is ignored with a warning (nothing proven)."""
    doc = sidecar.new_manifest("tool.py", {"crop": 224}, str(tmp_path), "1-00000000")
    doc["files"]["a.bin"] = {"source": "a.JPEG", "source_size": 3, "source_sha256": atomic.digest_bytes(b"abc")}
    sidecar.write_manifest(str(tmp_path), doc)
    assert sidecar.read_manifest(str(tmp_path)) == doc and doc["status"] == sidecar.INCOMPLETE
    with open(sidecar.manifest_path(str(tmp_path)), "w") as f:
        f.write("{not json")
    assert sidecar.read_manifest(str(tmp_path)) is None
    assert "ignoring an unreadable manifest" in capsys.readouterr().err

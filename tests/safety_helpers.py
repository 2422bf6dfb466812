"""Shared by the safety tests: fingerprints that prove no input changed, and a stand-in file system.

A failing case hashes every input before and after the run (the oracle: SHA-256 of the bytes,
plus the file type, so a device or FIFO replaced by a regular file is caught too).
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Dict, Iterable, Tuple


def fingerprint(path: str) -> Tuple[str, str]:
    """(kind, sha256 or link target) of one path, never opening a special file."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "link", os.readlink(path)
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            return "file", hashlib.sha256(f.read()).hexdigest()
    return f"mode {stat.S_IFMT(st.st_mode):o}", f"{st.st_rdev}"


def tree(folder: str, skip: Iterable[str] = ()) -> Dict[str, Tuple[str, str]]:
    """{relative path: fingerprint} of everything under `folder` (symlinks not followed), but the
    names in `skip` (an output folder's lock file, which every run rewrites with its own record)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            if name in skip:
                continue
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = fingerprint(path)
    return out


def one_line_error(err: str, *needles: str) -> bool:
    """The stage's error is one `prog: error: ...` line holding every needle, and no traceback."""
    lines = [ln for ln in err.splitlines() if ": error: " in ln]
    return ("Traceback" not in err and len(lines) == 1 and all(n in lines[0] for n in needles))


def read_only_statvfs(monkeypatch, path: str):
    """Make the output policy see `path`'s file system as read-only: root ignores mode bits, so
    the policy is tested where it reads the mount (statvfs). Returns the stand-in, whose
    `f_flag` (`writable_flag` clears the read-only bit), `f_bavail` and `f_frsize` a test may
    change to stage a full disk instead."""
    from mocoinfer import atomic

    real = os.statvfs(path)

    class Vfs:
        f_flag = real.f_flag | os.ST_RDONLY
        f_bavail = real.f_bavail
        f_frsize = real.f_frsize
        writable_flag = real.f_flag & ~os.ST_RDONLY

    monkeypatch.setattr(atomic.os, "statvfs", lambda p: Vfs)
    return Vfs

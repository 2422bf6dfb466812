"""Writes that appear whole or not at all, and the output policy every stage follows.

Every output is written under a hidden temporary name beside its target and renamed into
place (`atomic_path`, `atomic_write_bytes`, `atomic_write_text`, `write_json`), so a reader never
sees half a file. Around that, one policy for what a stage may write and delete:

- `check_output(path, inputs)`: before any heavy work, refuse an output path that is the same
  file as an input (same real path, or same device and inode: a hard link), or that is not a
  regular file: renaming onto a symlink replaces the link instead of writing through it, and
  renaming onto a device, FIFO or socket replaces the node itself (as root, `/dev/null`).
  `atomic_path` repeats the special-file check just before it renames, for writers that skip it.
- `check_writable_dir(folder, need_bytes)`: the output folder exists, is not on a read-only
  mount, is writable, and has room for the run, checked before the run starts.
- Temporaries carry their run's id (`.<name>.tmp<pid>-<8 hex>`): a stage deletes only its own,
  and those of the previous holder of the folder's lock (a run of this tool, now gone), never a
  user's file that merely looks like one (`remove_temporaries`, in temporaries.py). A data
  folder's temporaries live in its bookkeeping folder beside it, never in it (temporaries.py).
- `open_regular(path)` opens an input only after checking it is a regular file, and never
  blocks (O_NONBLOCK): a FIFO or device among the inputs is reported by name, not read.
- `file_digest` / `digest_bytes`: the one hasher (SHA-256) for every proof that reads bytes.

The lock, the manifest and the stat proofs of reuse are in `sidecar.py`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

from .errors import UserError

# Run ids and temporaries live in their own module; re-exported, as the stages use them from here.
from .temporaries import (  # noqa: F401
    RUN_ID,
    new_run_id,
    remove_temporaries,
    temp_name,
    temp_owner_pid,
    temp_run_id,
)

# The output policy.

def special_kind(mode: int) -> Optional[str]:
    """What a non-regular file is, in words, or None for a regular file."""
    for test, words in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return None if stat.S_ISREG(mode) else "not a regular file"


def describe_os_error(exc: OSError) -> str:
    """The file system's reason in words a user acts on (full disk, read-only mount, ...)."""
    hints = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
             errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
             errno.EPERM: "operation not permitted", errno.EFBIG: "file too large"}
    return hints.get(exc.errno, exc.strerror or str(exc))  # type: ignore[arg-type]


def check_target(path: str, what: str = "output") -> None:
    """Refuse an existing `path` that a rename would destroy rather than write: a symlink,
    device, FIFO, socket or folder. A missing path or a regular file is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UserError(f"{path}: cannot check the {what} path ({describe_os_error(exc)})") from None
    kind = special_kind(st.st_mode)
    if kind is None:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UserError(f"{path}: {what} path is a symbolic link (to {os.readlink(path)}); outputs are "
                        "written under a temporary name and renamed, which would replace the link, not "
                        "write through it: give the real path, or remove the link")
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{path}: {what} path is a folder; give a file name")
    raise UserError(f"{path}: {what} path is {kind}; outputs are written under a temporary name and "
                    f"renamed into place, which would replace the {kind.split(' ', 1)[1]} itself: give a "
                    "regular file path")


def same_file(a: str, b: str) -> bool:
    """True when `a` and `b` name one file: the same real path, or the same device and inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def make_folder(folder: str, what: str = "output folder",
                if_file: str = "output path is a file, not a folder; give a folder with --output") -> List[str]:
    """Create an output folder (and its parents) before heavy work: a path that is a file, or a
    folder that cannot be made, is one line naming it (`if_file`, or "cannot create the `what`").
    Returns the folders it made, deepest first (for `remove_empty_folders` after a refusal)."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"{folder}: {if_file}")
    missing = []
    path = os.path.abspath(folder)
    while not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{folder}: cannot create the {what} ({describe_os_error(exc)})") from None
    return missing


def remove_empty_folders(folders: Sequence[str]) -> None:
    """Remove the folders `make_folder` made, deepest first, each only while it is empty: a run
    refused before it wrote anything leaves no empty folder behind, and nothing that holds a file
    goes."""
    for folder in sorted(set(folders), key=lambda f: -len(f)):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def check_writable_dir(folder: str, need_bytes: int = 0, what: str = "output folder") -> None:
    """The folder exists, is writable (not on a read-only mount, which stops root too), and has
    `need_bytes` free; one UserError naming the folder otherwise."""
    if not os.path.isdir(folder):
        raise UserError(f"{folder}: {what} does not exist" if not os.path.exists(folder)
                        else f"{folder}: {what} is not a folder")
    try:
        vfs = os.statvfs(folder)
    except OSError as exc:
        raise UserError(f"{folder}: cannot check the {what} ({describe_os_error(exc)})") from None
    if vfs.f_flag & os.ST_RDONLY:
        raise UserError(f"{folder}: {what} is on a read-only file system")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{folder}: {what} is not writable (permission denied)")
    free = vfs.f_bavail * vfs.f_frsize
    if need_bytes > free:
        from .sizes import two_sizes

        # Units that show the figures (12 bytes, 40.0 kB), exact bytes when both would read alike.
        need_words, free_words = two_sizes(need_bytes, free)
        raise UserError(f"{folder}: {what} needs about {need_words} for this run but only {free_words} is free")


def check_output(path: str, inputs: Iterable[str] = (), what: str = "output", need_bytes: int = 0) -> None:
    """The whole policy for one output file, to call before heavy work: not an input (real path
    or inode), not a special file or symlink, in a writable folder with room."""
    check_target(path, what)
    try:
        st = os.stat(path)
    except OSError:
        st = None  # not there yet, so no existing input can be it
    for source in inputs if st is not None else ():
        try:
            ss = os.stat(source)
        except OSError:
            continue
        # The output is a regular file (checked above), so device and inode decide: this also
        # catches a hard link, or an input reached through a symlink.
        if (ss.st_dev, ss.st_ino) == (st.st_dev, st.st_ino):
            raise UserError(f"{path}: {what} path is the same file as the input {source}; writing it would "
                            f"destroy that input: give another {what} path")
    check_writable_dir(os.path.dirname(os.path.abspath(path)), need_bytes, what=f"{what} folder")


# Atomic writes.

@contextlib.contextmanager
def atomic_path(path: str, run_id: Optional[str] = None) -> Iterator[str]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    The target is checked (`check_target`) before and again just before the rename, so no
    writer ever renames over a symlink, device, FIFO or socket.
    """
    check_target(path)
    tmp = temp_name(path, run_id)
    try:
        yield tmp
        check_target(path)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # A data folder that is a mount point of its own: its bookkeeping folder is on another
            # file system, so the temporary is copied beside the target and renamed from there.
            local = os.path.join(os.path.dirname(path), os.path.basename(tmp))
            try:
                shutil.copyfile(tmp, local)
                os.replace(local, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(local)
                raise
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# open(path, "wb")'s flags. os-level calls rather than a file object: no fstat, isatty ioctl
# and lseek per file, which count when a run writes thousands of small result files a second.
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def _write_new_file(path: str, data: bytes) -> None:
    fd = os.open(path, _WRITE_FLAGS, 0o666)
    try:
        view = memoryview(data)
        while view:  # a write may be short (a signal, a quota); the rest follows, as a file object does
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def atomic_write_bytes(path: str, data: bytes, run_id: Optional[str] = None) -> None:
    """Write `data` atomically; a full disk or read-only folder is one UserError naming `path`."""
    try:
        with atomic_path(path, run_id) as tmp:
            _write_new_file(tmp, data)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({describe_os_error(exc)})") from None


def atomic_write_text(path: str, text: str, run_id: Optional[str] = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), run_id)


def write_json(path: str, obj, indent: Optional[int] = 2, run_id: Optional[str] = None) -> None:
    """Write JSON atomically (summary files meant for machines and people)."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n", run_id)


# Reading inputs safely.

class NotRegularFile(OSError):
    """An input that is not a regular file (`kind` says what it is, in words): never read."""

    def __init__(self, kind: str, path: str) -> None:
        super().__init__(errno.EINVAL, f"is {kind}, not a regular file", path)
        self.kind = kind


def open_regular(path: str):
    """Open an input for binary reading only if it is a regular file, never blocking.

    Anything else (FIFO, socket, device, folder) raises `NotRegularFile` (an `OSError(EINVAL)`) whose message says what
    it is. `stat` comes first so nothing special is ever opened, and O_NONBLOCK covers the race
    where a regular file is swapped for a FIFO in between.
    """
    fd, _ = _open_regular_fd(path)
    try:
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_regular_fd(path: str) -> Tuple[int, os.stat_result]:
    """`open_regular`'s checks and open, as a descriptor and its fstat."""
    kind = special_kind(os.stat(path).st_mode)
    if kind is not None:
        raise NotRegularFile(kind, path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        kind = special_kind(st.st_mode)
        if kind is not None:
            raise NotRegularFile(kind, path)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def digest_bytes(data) -> str:
    """SHA-256 hex of a bytes-like object (hashlib releases the GIL on large buffers)."""
    return hashlib.sha256(data).hexdigest()


_DIGEST_CHUNK = 1 << 20


def file_digest(path: str) -> Tuple[int, str]:
    """(size, SHA-256 hex) of a regular file's content, opened with `open_regular`'s checks."""
    h = hashlib.sha256()
    size = 0
    fd, st = _open_regular_fd(path)
    # Reads sized to the file (one read and the end-of-file read for a small result file, where
    # a buffered file object would allocate 1 MB a read): a rerun's proofs hash thousands of them.
    chunk_size = min(_DIGEST_CHUNK, max(st.st_size, 0) + 1)
    try:
        while True:
            chunk = os.read(fd, chunk_size)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
            chunk_size = _DIGEST_CHUNK
    finally:
        os.close(fd)
    return size, h.hexdigest()

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
- `FolderLock(folder)`: an `fcntl` lock file per output folder; a second run into the same
  folder stops with one line naming the run that holds it (pid and command). The lock file
  keeps the last holder's record, so the next run knows which run left any temporaries.
- Temporaries carry their run's id (`.<name>.tmp<pid>-<8 hex>`): a stage deletes only its own,
  and those of the previous holder of the folder's lock (a run of this tool, now gone), never a
  user's file that merely looks like one (`remove_temporaries`, in temporaries.py).
- A manifest per output folder (`read_manifest`, `new_manifest`, `write_manifest`): the settings
  and source that made the folder, per output the size and SHA-256 of the source it came from,
  and `status` complete/incomplete, so a rerun can prove each file it reuses still matches.
- `open_regular(path)` opens an input only after checking it is a regular file, and never
  blocks (O_NONBLOCK): a FIFO or device among the inputs is reported by name, not read.

How a stage adopts it (preprocess.py is the worked example):

    check_writable_dir(out_dir)
    with FolderLock(out_dir) as lock:
        remove_temporaries(out_dir, lock.previous_run_ids())
        manifest = read_manifest(out_dir)          # None: nothing here is proven
        ...decide what is reused: manifest["files"][name]["source_sha256"] == file_digest(src)...
        doc = new_manifest("tool.py", settings, source, lock.run_id)
        write_manifest(out_dir, doc)               # status incomplete while the run is on
        ...atomic_path(target, lock.run_id) for every output...
        doc["status"] = COMPLETE; write_manifest(out_dir, doc)

The lock and the manifest are hidden files (`.mocoinfer.lock`, `.mocoinfer-manifest.json`), so
folder listings that skip hidden names (get_info, the result-dir reader) are unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shlex
import stat
import sys
import time
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

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
                if_file: str = "output path is a file, not a folder; give a folder with --output") -> None:
    """Create an output folder (and its parents) before heavy work: a path that is a file, or a
    folder that cannot be made, is one line naming it (`if_file`, or "cannot create the `what`")."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"{folder}: {if_file}")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{folder}: cannot create the {what} ({describe_os_error(exc)})") from None


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
        raise UserError(f"{folder}: {what} needs about {_mb(need_bytes)} for this run but only "
                        f"{_mb(free)} is free")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


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
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str, data: bytes, run_id: Optional[str] = None) -> None:
    """Write `data` atomically; a full disk or read-only folder is one UserError naming `path`."""
    try:
        with atomic_path(path, run_id) as tmp, open(tmp, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({describe_os_error(exc)})") from None


def atomic_write_text(path: str, text: str, run_id: Optional[str] = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), run_id)


def write_json(path: str, obj, indent: Optional[int] = 2, run_id: Optional[str] = None) -> None:
    """Write JSON atomically (summary files meant for machines and people)."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n", run_id)


# Reading inputs safely.

def open_regular(path: str):
    """Open an input for binary reading only if it is a regular file, never blocking.

    Anything else (FIFO, socket, device, folder) raises `OSError(EINVAL)` whose message says what
    it is. `stat` comes first so nothing special is ever opened, and O_NONBLOCK covers the race
    where a regular file is swapped for a FIFO in between.
    """
    kind = special_kind(os.stat(path).st_mode)
    if kind is not None:
        raise OSError(errno.EINVAL, f"is {kind}, not a regular file", path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = special_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise OSError(errno.EINVAL, f"is {kind}, not a regular file", path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: str) -> Tuple[int, str]:
    """(size, SHA-256 hex) of a regular file's content, read through `open_regular`."""
    h = hashlib.sha256()
    size = 0
    with open_regular(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


# The folder lock.

LOCK_NAME = ".mocoinfer.lock"


def _command_line() -> str:
    argv = list(sys.argv) or ["python"]
    argv[0] = os.path.basename(argv[0])
    return " ".join(shlex.quote(a) for a in argv)


class FolderLock:
    """An exclusive `fcntl.flock` on `<folder>/.mocoinfer.lock` for the length of a run.

    The file holds the holder's pid, run id, command and start time; it is left in place on
    release, so the next holder can read who was there before (`previous`) and clean up that
    run's temporaries. The kernel drops the lock when the holder dies, however it dies.
    """

    def __init__(self, folder: str, run_id: Optional[str] = None, command: Optional[str] = None):
        self.folder = folder
        self.path = os.path.join(folder, LOCK_NAME)
        self.run_id = run_id or RUN_ID
        self.command = command or _command_line()
        self.previous: Dict[str, object] = {}
        self._fd: Optional[int] = None

    def acquire(self) -> FolderLock:
        check_target(self.path, "lock file")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot create the lock file ({describe_os_error(exc)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_record(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise UserError(f"{self.path}: cannot lock ({describe_os_error(exc)})") from None
            who = (f"pid {holder.get('pid', '?')}: {holder.get('command', '?')}" if holder
                   else "another process")
            raise UserError(f"{self.folder}: in use by another run ({who}); wait for it to finish or "
                            "give another folder") from None
        self.previous = _read_record(fd)
        record = {"pid": os.getpid(), "run_id": self.run_id, "command": self.command,
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        data = (json.dumps(record) + "\n").encode("utf-8")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError as exc:
            os.close(fd)
            raise UserError(f"{self.path}: cannot write the lock file ({describe_os_error(exc)})") from None
        self._fd = fd
        return self

    def previous_run_ids(self) -> List[str]:
        """The run that held this folder last (it is gone: we hold the lock now)."""
        run = self.previous.get("run_id")
        return [run] if isinstance(run, str) and run != self.run_id else []

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_record(fd: int) -> Dict[str, object]:
    try:
        raw = os.pread(fd, 4096, 0)
        doc = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


# The manifest.

MANIFEST_NAME = ".mocoinfer-manifest.json"
MANIFEST_FORMAT = 1
COMPLETE, INCOMPLETE = "complete", "incomplete"
#: names the policy keeps in an output folder; stages do not treat them as outputs or strays.
POLICY_FILES = (LOCK_NAME, MANIFEST_NAME)


def new_manifest(tool: str, settings: Dict[str, object], source: str, run_id: Optional[str] = None) -> dict:
    """A manifest for a run starting now: status incomplete until the run marks it complete.

    `files` maps an output's name to what proves it: at least `source` (the input's path),
    `source_size` and `source_sha256`; a stage may add more (the output's own size, ...).
    """
    return {"format": MANIFEST_FORMAT, "tool": tool, "status": INCOMPLETE, "run_id": run_id or RUN_ID,
            "command": _command_line(), "settings": settings, "source": os.path.abspath(source), "files": {}}


def read_manifest(folder: str) -> Optional[dict]:
    """The folder's manifest, or None when there is none or it cannot be trusted (then nothing
    in the folder counts as proven; a warning says why)."""
    from .progress import log

    path = os.path.join(folder, MANIFEST_NAME)
    try:
        with open_regular(path) as f:
            doc = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning(f"{path}: ignoring an unreadable manifest ({exc}); nothing in the folder counts as proven")
        return None
    if (not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT
            or not isinstance(doc.get("files"), dict) or not isinstance(doc.get("settings"), dict)):
        log.warning(f"{path}: ignoring a manifest of an unknown layout; nothing in the folder counts as proven")
        return None
    return doc


def write_manifest(folder: str, doc: dict, run_id: Optional[str] = None) -> None:
    write_json(os.path.join(folder, MANIFEST_NAME), doc, indent=1, run_id=run_id or doc.get("run_id"))

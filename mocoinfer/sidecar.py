"""A data folder's bookkeeping, kept beside it: the run's lock, the manifest, and proofs of reuse by stat.

A result folder or a preprocessed folder holds data only, because the guide's scripts and
ais_bench read every entry of it as data. What a run needs to stay safe and to resume lives in
`.<name>.mocoinfer/` beside the folder (`temporaries.bookkeeping_dir`):

- `FolderLock(folder)`: an exclusive `fcntl.flock` on `lock` there for the length of a run; a
  second run into the same folder stops with one line naming the first (pid and command). A run
  that ends removes its lock file (and the bookkeeping folder when nothing else is in it); a run
  that was killed leaves it, with its record, so the next run knows whose temporaries to remove.
  What stays after a finished run is the manifest, which a rerun needs to tell this tool's
  results from a user's; the folder also holds a `.gitignore` of `*`, as `.pytest_cache/` does,
  so that an output folder inside a git work tree (`--output ./`) does not show it.
- The manifest (`read_manifest`, `new_manifest`, `write_manifest`): the settings and source that
  made the folder, per output what proves it, and `status` complete/incomplete.
- Proofs (`proof_of`, `still_proven`), as git decides whether a tracked file changed: a file is
  trusted when its size, mtime and ctime (nanoseconds), inode and device all match what was
  recorded. `cp -p`, `rsync -a` and `tar x` keep the mtime but not the ctime nor the inode, and
  nothing sets a ctime back, so a replaced file is never trusted. A file whose mtime or ctime was
  not older than the moment it was recorded ("racy": it could change again within the same tick
  of the file system's clock without its stat data moving) is hashed when recorded and hashed
  again when proven. No other file is read to prove it.

Folders written by an older version kept `.mocoinfer.lock` and `.mocoinfer-manifest.json` inside
the folder: the manifest is read from there once and written here, and both old files go.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shlex
import stat
import sys
import time
from typing import Dict, List, Optional

from .atomic import (
    atomic_write_bytes,
    check_target,
    describe_os_error,
    digest_bytes,
    file_digest,
    make_folder,
    open_regular,
    special_kind,
    write_json,
)
from .errors import UserError
from .temporaries import RUN_ID, bookkeeping_dir, register_data_folder, temp_run_id

LOCK_FILE = "lock"
MANIFEST_FILE = "manifest.json"
#: keeps the bookkeeping folder out of `git status` wherever the output folder is
GITIGNORE = ".gitignore"
GITIGNORE_TEXT = "# written by mocoinfer: a data folder's lock and manifest, not data\n*\n"
#: where an older version kept them, inside the data folder
LEGACY_LOCK_NAME = ".mocoinfer.lock"
LEGACY_MANIFEST_NAME = ".mocoinfer-manifest.json"
#: names an older version kept in a data folder; readers of such a folder skip them
LEGACY_FILES = (LEGACY_LOCK_NAME, LEGACY_MANIFEST_NAME)
MANIFEST_FORMAT = 1
COMPLETE, INCOMPLETE = "complete", "incomplete"
#: how close to "now" a file's mtime or ctime makes it racy: the coarsest common file-system
#: clock (FAT's 2 s), so no file system's tick can hide a second change.
RACY_NS = 2_000_000_000


def command_line() -> str:
    """This process's command line as the user typed it (program name without its folder)."""
    argv = list(sys.argv) or ["python"]
    argv[0] = os.path.basename(argv[0])
    return " ".join(shlex.quote(a) for a in argv)


# The lock.

class FolderLock:
    """An exclusive lock on data folder `folder` for the length of a run, held on the lock file
    in its bookkeeping folder. The kernel drops it when the holder dies, however it dies. While a
    run holds it, the temporaries of files written into the folder live beside it too."""

    def __init__(self, folder: str, run_id: Optional[str] = None, command: Optional[str] = None):
        self.folder = folder
        self.dir = bookkeeping_dir(folder)
        self.path = os.path.join(self.dir, LOCK_FILE)
        self.run_id = run_id or RUN_ID
        self.command = command or command_line()
        self.previous: Dict[str, object] = {}
        self._fd: Optional[int] = None

    def acquire(self) -> FolderLock:
        fd = -1
        for _ in range(10):
            _make_bookkeeping_dir(self.folder)
            check_target(self.path, "lock file")
            fd = _lock_fd(self.path, self.folder, create=True)
            if _still_linked(fd, self.path):
                break
            # The previous holder removed the file between our open and our lock: lock the new one.
            os.close(fd)
            fd = -1
        if fd < 0:
            raise UserError(f"{self.path}: cannot lock (the lock file keeps being replaced)")
        self.previous = _read_record(fd)
        legacy = os.path.join(self.folder, LEGACY_LOCK_NAME)
        if os.path.isfile(legacy) and not os.path.islink(legacy):
            try:
                old = _lock_fd(legacy, self.folder, create=False)
            except BaseException:
                os.close(fd)
                raise
            self.previous = self.previous or _read_record(old)
            with contextlib.suppress(OSError):
                os.unlink(legacy)
            os.close(old)
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
        register_data_folder(self.folder)
        return self

    def previous_run_ids(self) -> List[str]:
        """The run that held this folder last (it is gone: we hold the lock now)."""
        run = self.previous.get("run_id")
        return [run] if isinstance(run, str) and run != self.run_id else []

    def release(self) -> None:
        """Remove the lock file while still holding it (a run that opened it meanwhile sees it
        unlinked and locks a new one), then unlock. A temporary left in the bookkeeping folder
        keeps the file, whose record names the run to clean up after."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                if _still_linked(self._fd, self.path) and not _temporaries_in(self.dir):
                    os.unlink(self.path)
                    remove_bookkeeping_if_idle(self.folder)
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _make_bookkeeping_dir(folder: str) -> None:
    side = bookkeeping_dir(folder)
    make_folder(side, what="bookkeeping folder",
                if_file="is a file where this tool keeps the folder's lock and manifest; move it away")
    ignore = os.path.join(side, GITIGNORE)
    if not os.path.lexists(ignore):
        with contextlib.suppress(OSError, UserError):  # a convenience: never a reason to stop a run
            atomic_write_bytes(ignore, GITIGNORE_TEXT.encode("utf-8"))


def remove_bookkeeping_if_idle(folder: str) -> bool:
    """Remove data folder `folder`'s bookkeeping folder when it holds nothing but our
    `.gitignore` (no lock, manifest or temporary); True when it is gone."""
    side = bookkeeping_dir(folder)
    try:
        names = os.listdir(side)
    except OSError:
        return not os.path.lexists(side)
    if names not in ([], [GITIGNORE]):
        return False
    ignore = os.path.join(side, GITIGNORE)
    if names and os.path.isfile(ignore) and not os.path.islink(ignore):
        with open_regular(ignore) as f:
            if f.read().decode("utf-8", "replace") != GITIGNORE_TEXT:
                return False  # a user's own: the folder is not ours to remove
        os.unlink(ignore)
    os.rmdir(side)
    return True


def _still_linked(fd: int, path: str) -> bool:
    """The locked descriptor is still the file at `path` (not one unlinked by its last holder)."""
    try:
        a, b = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev) and a.st_nlink > 0


def _temporaries_in(side: str) -> bool:
    try:
        return any(temp_run_id(name) is not None for name in os.listdir(side))
    except OSError:
        return False


def _lock_fd(path: str, folder: str, create: bool) -> int:
    """An fd holding the exclusive lock on `path`; one line naming the holder when it is taken."""
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise UserError(f"{path}: cannot open the lock file ({describe_os_error(exc)})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _read_record(fd)
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise UserError(f"{path}: cannot lock ({describe_os_error(exc)})") from None
        who = f"pid {holder.get('pid', '?')}: {holder.get('command', '?')}" if holder else "another process"
        raise UserError(f"{folder}: in use by another run ({who}); wait for it to finish or "
                        "give another folder") from None
    return fd


def _read_record(fd: int) -> Dict[str, object]:
    try:
        raw = os.pread(fd, 4096, 0)
        doc = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


# The manifest.

def new_manifest(tool: str, settings: Dict[str, object], source: str, run_id: Optional[str] = None) -> dict:
    """A manifest for a run starting now: status incomplete until the run marks it complete.
    `files` maps an output's name to what proves it (the stage decides what it records)."""
    return {"format": MANIFEST_FORMAT, "tool": tool, "status": INCOMPLETE, "run_id": run_id or RUN_ID,
            "command": command_line(), "settings": settings, "source": os.path.abspath(source), "files": {}}


def manifest_path(folder: str) -> str:
    return os.path.join(bookkeeping_dir(folder), MANIFEST_FILE)


def has_manifest(folder: str) -> bool:
    """Whether this tool keeps a manifest for `folder` (readable or not)."""
    return any(os.path.lexists(p) for p in (manifest_path(folder), os.path.join(folder, LEGACY_MANIFEST_NAME)))


def read_manifest(folder: str) -> Optional[dict]:
    """The folder's manifest (or an older version's, inside the folder), or None when there is
    none or it cannot be trusted (then nothing in the folder counts as proven; a warning says why)."""
    from .progress import log

    for path in (manifest_path(folder), os.path.join(folder, LEGACY_MANIFEST_NAME)):
        try:
            with open_regular(path) as f:
                doc = json.loads(f.read().decode("utf-8"))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, ValueError, RecursionError) as exc:
            log.warning(f"{path}: ignoring an unreadable manifest ({exc}); nothing in the folder counts as proven")
            return None
        if (not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT
                or not isinstance(doc.get("files"), dict) or not isinstance(doc.get("settings"), dict)
                or not all(isinstance(v, dict) for v in doc["files"].values())):
            log.warning(f"{path}: ignoring a manifest of an unknown layout; nothing in the folder counts as proven")
            return None
        return doc
    return None


def write_manifest(folder: str, doc: dict, run_id: Optional[str] = None) -> None:
    """Write the manifest beside `folder`; an older version's copy inside the folder goes."""
    _make_bookkeeping_dir(folder)
    write_json(manifest_path(folder), doc, indent=None, run_id=run_id or doc.get("run_id"))
    legacy = os.path.join(folder, LEGACY_MANIFEST_NAME)
    if os.path.isfile(legacy) and not os.path.islink(legacy):
        with contextlib.suppress(OSError):
            os.unlink(legacy)


# Proofs of reuse.

def stat_key(st: os.stat_result) -> List[int]:
    """What a proof compares: size, mtime and ctime in nanoseconds, inode, device."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def is_racy(st: os.stat_result, now_ns: int) -> bool:
    """Changed too close to `now_ns` for its stat data alone to prove it later."""
    return max(st.st_mtime_ns, st.st_ctime_ns) >= now_ns - RACY_NS


def read_proof(st: os.stat_result, data, now_ns: int) -> dict:
    """The proof of a file a reader has just read: `st` its fstat before the read, `data` the
    bytes read (hashed only when the file is racy, so only those few cost a hash)."""
    proof: dict = {"stat": stat_key(st)}
    if is_racy(st, now_ns):
        proof["sha256"] = digest_bytes(data)
    return proof


def proof_of(path: str, st: Optional[os.stat_result] = None, now_ns: Optional[int] = None,
             follow: bool = True) -> Optional[dict]:
    """What proves `path` as it is now: its stat key, and its SHA-256 when it is racy. `st` is a
    stat the caller already took (the reader's fstat of the file it read). None when the path
    is missing or not a regular file (`follow=False`: a symlink is not one)."""
    try:
        if st is None:
            st = os.stat(path) if follow else os.lstat(path)
        if special_kind(st.st_mode) is not None:
            return None
        proof: dict = {"stat": stat_key(st)}
        if is_racy(st, time.time_ns() if now_ns is None else now_ns):
            size, digest = file_digest(path)
            if size != st.st_size:
                return None  # changing while we look: proves nothing
            proof["sha256"] = digest
    except OSError:
        return None
    return proof


def prove_outputs(folder: str, files: Dict[str, dict], names: List[str]) -> None:
    """Add its own proof to the record of each output `names[i]` in `folder`, taken now, just
    before the manifest is written (git's racy rule: only those changed within `RACY_NS` of now
    are hashed); a record whose output is gone or not a regular file is dropped."""
    now = time.time_ns()
    for name in names:
        proof = proof_of(os.path.join(folder, name), now_ns=now, follow=False)
        if proof is None:
            files.pop(name, None)
        elif name in files:
            files[name]["proof"] = proof


def still_proven(path: str, proof: object, follow: bool = True) -> bool:
    """Whether `path` is still the file `proof` (from `proof_of`) was taken of."""
    if not isinstance(proof, dict) or not isinstance(proof.get("stat"), list):
        return False
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or stat_key(st) != proof["stat"]:
        return False
    if "sha256" not in proof:
        return True
    try:
        return file_digest(path) == (st.st_size, proof["sha256"])
    except OSError:
        return False


# The failed-images list (`failed.txt`): one rule for every stage that writes one.

def failed_list_is_ours(path: str, manifest: Optional[dict]) -> bool:
    """True when `failed.txt` is absent or is the one a run of this tool wrote (same content)."""
    try:
        size, digest = file_digest(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    rec = (manifest or {}).get("failed_list") or {}
    return rec.get("size") == size and rec.get("sha256") == digest


def replace_failed_list(path: str, failures, ours: bool, doc: dict, run_id: Optional[str] = None) -> str:
    """Write `failures` ((path, reason) pairs) to `failed.txt` at `path`, or delete the list an
    earlier run of this tool left when nothing failed now; a `failed.txt` this tool did not write
    (`ours` False) is never replaced nor deleted. Records the list in manifest `doc`; returns
    `path` when written, else ""."""
    from .formats import format_failed
    from .progress import log

    if not ours:
        if failures:
            log.warning(f"{path}: not written: a file of that name is already there and this tool did not "
                        "write it; the failures are listed on stderr only")
        return ""
    if failures:
        data = format_failed(failures).encode("utf-8")
        atomic_write_bytes(path, data, run_id)
        # Recorded so that a later run knows this failed.txt is its own to replace or delete.
        doc["failed_list"] = {"size": len(data), "sha256": digest_bytes(data)}
        return path
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    doc.pop("failed_list", None)
    return ""

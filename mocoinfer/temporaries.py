"""Run ids, the hidden temporaries named after them, and where a data folder's bookkeeping lives.

Every output is written under `.<name>.tmp<pid>-<8 hex>` (`temp_name`) and renamed into place
(`atomic.atomic_path`). The run id in the name tells whose a temporary is: a stage removes its own
and those of the previous holder of the folder's lock, a run of this tool now gone
(`remove_temporaries`), never a user's file that merely looks like one.

A data folder (a result folder, a preprocessed folder) holds data only: the guide's own scripts
and ais_bench list it with `os.listdir` and read every entry as data, so one lock file, manifest
or leftover temporary makes them fail. Its bookkeeping lives beside it, in `.<name>.mocoinfer/`
in the same parent (`bookkeeping_dir`): the lock, the manifest, and the temporaries of the files
written into the folder while a run holds it (`register_data_folder`), renamed across one folder
boundary on the same file system.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from typing import Dict, Iterable, Optional

#: the suffix of a data folder's bookkeeping folder, `.<name>.mocoinfer` beside it
BOOKKEEPING_SUFFIX = ".mocoinfer"


def new_run_id() -> str:
    """`<pid>-<8 hex>`: unique per run even when pids are reused (containers restart at pid 1)."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


#: this process's run id; a stage passes its own (FolderLock.run_id) to worker processes.
RUN_ID = new_run_id()

# Temporaries.

_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp(?P<run>(?P<pid>\d+)-[0-9a-f]{8})$")


# Data folders registered by this process: folder as given and its absolute path → bookkeeping
# folder. A dict lookup per write, where a realpath per result file would cost more than the write.
_DATA_FOLDERS: Dict[str, str] = {}


def bookkeeping_dir(folder: str) -> str:
    """`<parent>/.<name>.mocoinfer`: where the lock, manifest and temporaries of data folder
    `folder` live, beside it and on the same file system as a rule."""
    # The real path: a folder reached through a symlink keeps one bookkeeping folder, beside it.
    path = os.path.realpath(folder)
    parent, name = os.path.split(path)
    if not name:
        raise ValueError(f"{folder}: a file system root cannot be a data folder")
    return os.path.join(parent, f".{name}{BOOKKEEPING_SUFFIX}")


def register_data_folder(folder: str) -> str:
    """Make `folder`'s bookkeeping folder and send the temporaries of files written into
    `folder` by this process there; returns its path."""
    side = bookkeeping_dir(folder)
    os.makedirs(side, exist_ok=True)
    _DATA_FOLDERS[folder] = _DATA_FOLDERS[os.path.abspath(folder)] = side
    return side


def temp_name(path: str, run_id: Optional[str] = None) -> str:
    """The hidden temporary for `path` for run `run_id` (default: this process's): beside it, or
    in its folder's bookkeeping folder when that folder is a registered data folder."""
    folder, name = os.path.split(path)
    side = _DATA_FOLDERS.get(folder)
    if side is None and _DATA_FOLDERS:
        side = _DATA_FOLDERS.get(os.path.abspath(folder or "."))
    return os.path.join(side or folder, f".{name}.tmp{run_id or RUN_ID}")


def temp_run_id(file_name: str) -> Optional[str]:
    """The run id in a temporary's name, or None when the name is not one of ours."""
    m = _TEMP_NAME.match(os.path.basename(file_name))
    return m.group("run") if m else None


def temp_owner_pid(file_name: str) -> Optional[int]:
    """The pid that wrote a temporary of `atomic_path`, else None."""
    m = _TEMP_NAME.match(os.path.basename(file_name))
    return int(m.group("pid")) if m else None


def remove_temporaries(folder: str, run_ids: Iterable[str]) -> int:
    """Delete the temporaries of the given runs in `folder` and in its bookkeeping folder (only
    those; an older version left them in the folder itself); returns how many."""
    wanted = {r for r in run_ids if r}
    removed = 0
    if not wanted:
        return 0
    for place in (folder, bookkeeping_dir(folder)):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(place) as it:
            for entry in it:
                if temp_run_id(entry.name) in wanted and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed += 1
    return removed

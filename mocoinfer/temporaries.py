"""Run ids, and the hidden temporaries named after them, so a stage can delete only its own.

Every output is written under `.<name>.tmp<pid>-<8 hex>` beside its target (`temp_name`) and
renamed into place (`atomic.atomic_path`). The run id in the name tells whose a temporary is: a
stage removes its own and those of the previous holder of the folder's lock, a run of this tool
now gone (`remove_temporaries`), never a user's file that merely looks like one.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from typing import Iterable, Optional


def new_run_id() -> str:
    """`<pid>-<8 hex>`: unique per run even when pids are reused (containers restart at pid 1)."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


#: this process's run id; a stage passes its own (FolderLock.run_id) to worker processes.
RUN_ID = new_run_id()

# Temporaries.

_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp(?P<run>(?P<pid>\d+)-[0-9a-f]{8})$")


def temp_name(path: str, run_id: Optional[str] = None) -> str:
    """The hidden temporary beside `path` for run `run_id` (default: this process's)."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.tmp{run_id or RUN_ID}")


def temp_run_id(file_name: str) -> Optional[str]:
    """The run id in a temporary's name, or None when the name is not one of ours."""
    m = _TEMP_NAME.match(os.path.basename(file_name))
    return m.group("run") if m else None


def temp_owner_pid(file_name: str) -> Optional[int]:
    """The pid that wrote a temporary of `atomic_path`, else None."""
    m = _TEMP_NAME.match(os.path.basename(file_name))
    return int(m.group("pid")) if m else None


def remove_temporaries(folder: str, run_ids: Iterable[str]) -> int:
    """Delete the temporaries of the given runs in `folder` (only those); returns how many."""
    wanted = {r for r in run_ids if r}
    removed = 0
    if not wanted:
        return 0
    with os.scandir(folder) as it:
        for entry in it:
            if temp_run_id(entry.name) in wanted and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    return removed

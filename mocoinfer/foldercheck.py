"""What the metric checks of a result folder this runner wrote, before scoring it, and of its json output.

A folder whose manifest (`sidecar.py`) says the run did not finish, or that holds result files
the manifest does not list or that changed since they were written, is refused (or scored with
a warning under `--allow-incomplete`); a folder with no manifest of this runner (ais_bench's,
the benchmark's) is read as it is. The json output must not be one of the result files.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from . import atomic, sidecar
from .errors import UserError
from .formats import is_result_name, natural_key
from .progress import log
from .reruns import TOOL, result_still_proven


def check_result_folder(folder: str, allow_incomplete: bool = False) -> Optional[str]:
    """Refuse (or, with `allow_incomplete`, warn about) a result folder whose manifest says the
    run that wrote it did not finish, or which holds result files the manifest does not list or
    that are no longer the files it wrote (a mixed or edited folder: a result replaced, edited,
    or made a symlink). Returns None (a folder with no manifest, written by ais_bench, the
    benchmark or another tool, is read as it is)."""
    doc = sidecar.read_manifest(folder)
    if doc is None or doc.get("tool") != TOOL:
        return None
    problems = []
    if doc.get("status") != sidecar.COMPLETE:
        problems.append("the run that wrote it did not finish (manifest status incomplete)")
    files = doc.get("files", {})
    foreign, changed = [], []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or not is_result_name(entry.name):
            continue
        listed = files.get(entry.name)
        if listed is None:
            foreign.append(entry.name)
        elif not result_still_proven(folder, entry.name, listed):  # edited, replaced, or now a symlink
            changed.append(entry.name)
    if foreign:
        problems.append(f"{len(foreign)} result files not written by its run (mixed; e.g. "
                        f"{sorted(foreign, key=natural_key)[0]})")
    if changed:
        problems.append(f"{len(changed)} result files changed since written "
                        f"(e.g. {sorted(changed, key=natural_key)[0]})")
    if problems:
        message = f"{folder}: {'; '.join(problems)}"
        if not allow_incomplete:
            raise UserError(message + "; rerun the inference command to complete it, or pass --allow-incomplete")
        log.warning(message + "; scoring it anyway (--allow-incomplete)")
    return None


def check_metric_output(path: str, inputs: Sequence[str], result_dirs: Sequence[str]) -> None:
    """The metric's json output under the policy: not the label file or another input, not a
    special file or symlink, not one of the result files it reads (by inode: a hard link too),
    in a writable folder."""
    atomic.check_output(path, inputs, what="json output")
    try:
        st = os.stat(path)
    except OSError:
        return
    for folder in result_dirs:
        try:
            dev = os.stat(folder).st_dev
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.inode() == st.st_ino and dev == st.st_dev:
                        raise UserError(f"{path}: json output path is the same file as the result "
                                        f"{entry.path}; writing it would destroy that result: give another path")
        except OSError:
            continue


__all__ = ["check_metric_output", "check_result_folder"]

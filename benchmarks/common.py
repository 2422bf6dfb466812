"""What the stage benchmarks share (imported by the bench_*.py scripts beside it)."""

from __future__ import annotations

import compileall
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: set by run_all.py (`make bench`): the file each `report` call appends its JSON line to.
REPORT_ENV = "MOCOINFER_BENCH_REPORT"


def compile_package(root: str = ROOT) -> None:
    """Write mocoinfer's bytecode caches first, as an install or a first run does. With
    PYTHONDONTWRITEBYTECODE set (as on some machines) every timed run of ours would otherwise
    compile the package from source, about 20 ms a command, measured; the guide's side is one
    script, compiled on every run either way, as our entry script is."""
    compileall.compile_dir(os.path.join(root, "mocoinfer"), quiet=1)


def wait_racy(folder: str) -> None:
    """Sleep until no file in `folder` is racy (`sidecar.is_racy`: changed in the last 2 s).

    The runner proves each input it reads by its stat data, but hashes a racy one (about 0.3 ms
    for a 602 KB file on the 2-core test VM, more than reading it): a dataset preprocessed
    earlier has none, while a benchmark's inputs written (or hard-linked: that changes the
    inode's ctime) just before its first run would all be, and that run would time the hashing."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from mocoinfer.sidecar import RACY_NS

    newest = max(max(st.st_mtime_ns, st.st_ctime_ns) for st in (os.stat(e.path) for e in os.scandir(folder)))
    time.sleep(max(0.0, (newest + RACY_NS - time.time_ns()) / 1e9 + 0.05))


def spread_block_groups(folder: str) -> str:
    """Mark the benchmark's work folder a top directory (`chattr +T`, where it works) and say so.

    On a journal-less ext4 (this project's test VMs), creating a file skips every inode freed in
    its block group in the last 30 seconds, one by one: after thousands of deletions there (the
    other jobs on the machine, or a benchmark's own clean-up), each new file costs ~0.45 ms of
    kernel time instead of ~20 us, measured, and a result-writing figure measures that instead of
    the runner. Subfolders of a +T folder are placed in block groups of their own, as top-level
    folders are. Nothing else changes; where chattr is missing or refused the figure says so."""
    chattr = shutil.which("chattr")
    if chattr is None:
        return "result folders in the file system's default block groups (no chattr)"
    done = subprocess.run([chattr, "+T", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode != 0:
        return "result folders in the file system's default block groups (chattr +T refused)"
    return "work folder marked a top directory (chattr +T): its result folders get block groups of their own"


def report(name: str, figure, target, met: Optional[bool]) -> None:
    """Record one judged figure for `make bench`'s closing table: what it is (`name`), the figure
    and the target as printed (`"1.69x"`, `">= 1.3x"`), and whether it met the target: True or
    False where the benchmark judges it (its exit status depends on it), None where it only
    reports the figure. A benchmark calls this where it decides, beside its
    own printed line, which stays as it was. Run alone (no REPORT_ENV) it does nothing."""
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    # bool(): a comparison of numpy figures gives numpy.bool_, which json cannot write.
    line = json.dumps({"name": name, "figure": str(figure), "target": str(target),
                       "met": None if met is None else bool(met)})
    # One whole line per call, appended: a benchmark that dies later keeps what it reported.
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")

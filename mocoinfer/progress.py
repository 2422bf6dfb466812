"""One progress bar and one logger for every stage.

Every stage shows the same tqdm bar on stderr, switched off the same way (`--no-progress`, with
`--quiet` kept as an alias where it existed), and warnings go through `logging` with a plain
format so what the user reads is exactly `warning: ...` on stderr, as before. Library code calls
`log.warning(...)`; only the stage scripts print their results on stdout.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional

#: the package's logger; `setup_logging` gives it a plain stderr handler once.
log = logging.getLogger("mocoinfer")


class _PlainFormatter(logging.Formatter):
    """`warning: text` for warnings and errors, the bare text for info: the wording users and
    log scrapers already know."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {msg}"
        return msg


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of the message, so a redirected or
    captured stderr (tests, wrappers) gets the warnings too."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # logging assigns it in __init__; the property wins
        pass


def setup_logging(verbose: bool = False) -> None:
    """Install the plain stderr handler once (idempotent)."""
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_PlainFormatter())
        log.addHandler(handler)


def add_progress_args(parser, quiet_alias: bool = False) -> None:
    """`--no-progress` (and `--quiet`/`-q` as an alias where a stage had it) on a stage's parser."""
    flags = ["--no-progress"] + (["--quiet", "-q"] if quiet_alias else [])
    parser.add_argument(*flags, dest="no_progress", action="store_true", help="no progress bar")


def progress_bar(total: int, desc: str, show: Optional[bool] = None, unit: str = "img", min_total: int = 0):
    """A tqdm bar on stderr. `show=None` lets tqdm decide (off when stderr is not a terminal, so
    logs and CI stay clean); False never shows it. Bars below `min_total` items are not shown."""
    from tqdm import tqdm

    disable = True if (show is False or total < min_total) else None
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable, leave=False,
                dynamic_ncols=True)


def usable_cpus() -> int:
    """CPUs this process may run on: the affinity mask (taskset, containers' cpusets) where the
    OS has one, else the machine's count. Preprocessing, the metric and ONNX Runtime all size
    their workers from this, so a pinned job never oversubscribes its cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


setup_logging()

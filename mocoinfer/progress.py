"""One progress convention and one logger for every stage.

Every stage reports progress through `progress_bar`, switched off the same way (`--no-progress`,
with `--quiet` kept as an alias where it existed). On a terminal it is a tqdm bar on stderr. When
stderr is not a terminal (nohup, CI, a scheduler) a bar would only fill the log with carriage-return
redraws, and no bar at all makes a long run look hung, so it is a plain line every
`LOG_EVERY_S` seconds instead, as torchvision's references' MetricLogger prints:

    preprocess: 12000/50000 (24%), 118.3 img/s, ETA 0:05:21

and, where at least one such line was printed, a last line when the stage ends (`..., in
0:07:03`). A run shorter than the interval prints nothing, so short runs and tests keep a clean
stderr. `MOCOINFER_PROGRESS_SECONDS` overrides the interval.

Warnings go through `logging` with a plain format so what the user reads is exactly
`warning: ...` on stderr, as before. Library code calls `log.warning(...)`; only the stage
scripts print their results on stdout.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
import time
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


#: seconds between two progress lines when stderr is not a terminal.
LOG_EVERY_S = 10.0
#: the environment variable that overrides `LOG_EVERY_S` (seconds, a positive number).
PROGRESS_SECONDS_ENV = "MOCOINFER_PROGRESS_SECONDS"


def progress_bar(total: int, desc: str, show: Optional[bool] = None, unit: str = "img", min_total: int = 0):
    """The progress of `total` items, for a stage's loop to `update(n)` and `close()` (or use as a
    context manager). On a terminal, a tqdm bar on stderr; otherwise a plain line every
    `LOG_EVERY_S` seconds (see the module's text). `show=None` or True: shown as just said; False
    (`--no-progress`): nothing. Runs below `min_total` items show nothing."""
    stream = sys.stderr
    if show is False or total < min_total or stream is None:
        return _Silent(total)
    if _is_terminal(stream):
        # Imported here: a stage that draws no bar is spared tqdm's import time (a twentieth of a
        # second, a fifth of a small metric run's start-up).
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=stream, leave=False, dynamic_ncols=True)
    return LogLines(total, desc, unit, stream, log_interval())


def log_interval() -> float:
    """`LOG_EVERY_S`, or the environment's override where it is a positive number."""
    text = os.environ.get(PROGRESS_SECONDS_ENV, "").strip()
    if not text:
        return LOG_EVERY_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:  # also catches nan
        log.warning(f"{PROGRESS_SECONDS_ENV}={text!r} is not a positive number of seconds; "
                    f"progress lines every {LOG_EVERY_S:g} s")
        return LOG_EVERY_S
    return value


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _Silent:
    """The bar interface that shows nothing (`--no-progress`)."""

    def __init__(self, total: int) -> None:
        self.total, self.n = total, 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LogLines:
    """The bar interface for a log: `desc: done/total (pct%), rate unit/s, ETA h:mm:ss` every
    `interval` seconds, whole lines only (no carriage returns), flushed at once so that `tail -f` sees them.
    `close` adds a last line (`..., in h:mm:ss`) only where a line was printed before."""

    def __init__(self, total: int, desc: str, unit: str, stream, interval: float) -> None:
        self.total, self.desc, self.unit, self.stream, self.interval = total, desc, unit, stream, interval
        self.n = 0
        self.start = self.last = time.monotonic()
        self.printed = self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._line(now, final=False)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.printed:
            self._line(time.monotonic(), final=True)

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def format(self, elapsed: float, final: bool) -> str:
        """The line for `elapsed` seconds after the start (kept apart from the clock for tests)."""
        pct = f"{100.0 * self.n / self.total:.0f}%" if self.total else "-"
        rate = self.n / elapsed if elapsed > 0 else 0.0
        if final:
            tail = f"in {_clock(elapsed)}"
        elif rate > 0:
            tail = f"ETA {_clock(max(0, self.total - self.n) / rate)}"
        else:
            tail = "ETA unknown"
        return f"{self.desc}: {self.n}/{self.total} ({pct}), {rate:.1f} {self.unit}/s, {tail}"

    def _line(self, now: float, final: bool) -> None:
        self.printed = True
        try:
            self.stream.write(self.format(now - self.start, final) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken log must not stop the stage's work
            pass


def _clock(seconds: float) -> str:
    """h:mm:ss, as MetricLogger writes its ETA (`str(timedelta)` of whole seconds)."""
    return str(datetime.timedelta(seconds=int(seconds)))


def usable_cpus() -> int:
    """CPUs this process may run on: the affinity mask (taskset, containers' cpusets) where the
    OS has one, else the machine's count. Preprocessing, the metric and ONNX Runtime all size
    their workers from this, so a pinned job never oversubscribes its cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


setup_logging()

"""What every stage script shares at its edge: the exit policy and the guide's two argument forms.

Library code raises `UserError` for anything the user can fix (a bad path, a malformed file, a
wrong argument). `run_main` turns it into one line on stderr and a non-zero exit, so no stage
ever shows a traceback for bad input, and Ctrl-C exits with the conventional 130 (SIGTERM, raised
as `errors.Terminated`, with 143).
"""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import Callable, Iterator, List, Optional, Sequence, Union

from .errors import Terminated, UserError
from .progress import setup_logging


def either_form(parser, guide_value, new_value, what: str):
    """The value of a setting the guide's scripts take positionally and their newer versions as
    a flag: whichever was given; the parser exits with usage when both disagree."""
    if guide_value is not None and new_value is not None and guide_value != new_value:
        parser.error(f"{what} given twice with different values ({guide_value} and {new_value})")
    return guide_value if guide_value is not None else new_value


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """Let `kill` (SIGTERM) stop a stage as Ctrl-C does: a `Terminated` (a KeyboardInterrupt) is
    raised in the main thread, every cleanup runs, and `run_main` exits 143 instead of 130."""
    def handler(signum, frame):
        raise Terminated(signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def run_main(main: Callable[[Optional[List[str]]], int], argv: Optional[List[str]] = None) -> int:
    """Call a stage's `main(argv)` and map failures to exit codes and one-line messages."""
    prog = sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else "mocoinfer"
    setup_logging()
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        # Terminated (SIGTERM) carries its own code, 143; Ctrl-C is 130.
        print(f"{prog}: interrupted; completed outputs are kept, rerun the same command to resume",
              file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_INTERRUPTED))


def parse_device_ids(value: Union[int, str, Sequence[int]]) -> List[int]:
    """Device ids from `--device-id` / `-device_id=` / `DEVICE_ID`: `0`, `"0,1,2,3"` or a list."""
    if isinstance(value, int):
        items: List = [value]
    elif isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    else:
        items = list(value)
    ids = []
    for item in items:
        try:
            dev = int(item)
        except (TypeError, ValueError):
            raise UserError(f"--device-id {value}: {item!r} is not a device id (e.g. 0 or 0,1,2,3)") from None
        if dev < 0:
            raise UserError(f"--device-id {value}: device ids are >= 0")
        ids.append(dev)
    if not ids:
        raise UserError("--device-id: no device id given")
    if len(set(ids)) != len(ids):
        raise UserError(f"--device-id {value}: a device id is listed twice")
    return ids

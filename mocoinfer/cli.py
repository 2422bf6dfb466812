"""What every stage script shares at its edge: the exit policy and the guide's two argument forms.

Library code raises `UserError` for anything the user can fix (a bad path, a malformed file, a
wrong argument). `run_main` turns it into one line on stderr and a non-zero exit, so no stage
ever shows a traceback for bad input, and Ctrl-C exits with the conventional 130 (SIGTERM, raised
as `errors.Terminated`, with 143).
"""

from __future__ import annotations

import contextlib
import errno
import os
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
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE, what a shell tool whose reader went away exits with


class StdoutClosed(Exception):
    """Standard output's reader went away (`| head`): not an error worth a message."""


def _detach_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so that the interpreter's own flush at exit (which
    would retry the data a full disk or a closed pipe refused) prints no traceback."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _refused(exc: OSError) -> Exception:
    """What a write to standard output that failed with `exc` becomes (after detaching it)."""
    _detach_stdout()
    if exc.errno == errno.EPIPE:
        return StdoutClosed()
    from .atomic import describe_os_error

    return UserError(f"standard output: cannot write ({describe_os_error(exc)}); redirect it to a file "
                     "with room")


def flush_stdout() -> None:
    """Flush standard output; a write it refuses (`> /dev/full`, a full disk) is one UserError."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        raise _refused(exc) from None


def write_stdout(text: str) -> None:
    """Print `text` (a report, JSON) to standard output and flush it, under `flush_stdout`'s rule."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        raise _refused(exc) from None


def run_main(main: Callable[[Optional[List[str]]], int], argv: Optional[List[str]] = None) -> int:
    """Call a stage's `main(argv)` and map failures to exit codes and one-line messages."""
    prog = sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else "mocoinfer"
    setup_logging()
    try:
        code = int(main(argv) or 0)
        flush_stdout()  # what is still buffered fails here, as one line, not at interpreter exit
        return code
    except StdoutClosed:
        return EXIT_PIPE_CLOSED
    except UserError as exc:
        from .formats import shown

        # A path whose name is not valid UTF-8 is shown with its bytes escaped, never a second error.
        print(f"{prog}: error: {shown(str(exc))}", file=sys.stderr)
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


# The output policy for the files the shell steps write (scripts/env.sh: check_outputs,
# install_output): the same `atomic.check_output` every Python stage applies to its outputs.

def _setting(text: str):
    name, sep, path = text.partition("=")
    if not sep or not name:
        raise ValueError(text)  # argparse says "invalid _setting value" with the text
    return name, path


def check_shell_outputs(outputs, inputs) -> None:
    """Each output (NAME, PATH) under `atomic.check_output`, against every input and every other
    output: not a symlink, special file or folder, not the same file (inode, or the same real
    path even before it exists) as another setting's, in a writable folder."""
    from . import atomic

    others = list(inputs) + list(outputs)
    for name, path in outputs:
        if not path:
            raise UserError(f"{name} is empty: give it a file path")
        against = [(n, p) for n, p in others if n != name and p]
        atomic.check_output(path, [p for _, p in against], what=name)
        for other, p in against:
            if os.path.realpath(p) == os.path.realpath(path):
                raise UserError(f"{path}: {name} names the same file as {other}; writing it would destroy "
                                f"that file: give {name} another path")


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m mocoinfer.cli",
                                description="The output policy for paths the shell steps write.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check-output", help="refuse an output that would destroy an input or a special file")
    c.add_argument("--output", action="append", default=[], type=_setting, metavar="NAME=PATH",
                   help="a file this step writes; repeatable")
    c.add_argument("--input", action="append", default=[], type=_setting, metavar="NAME=PATH",
                   help="a file or folder the pipeline reads (or another step writes); repeatable")
    args = p.parse_args(argv)
    check_shell_outputs(args.output, args.input)
    return 0


if __name__ == "__main__":
    # The step that called it (its STEP_NAME, passed as MOCOINFER_STEP) names the refusal.
    sys.argv[0] = os.environ.get("MOCOINFER_STEP") or sys.argv[0]
    sys.exit(run_main(main))

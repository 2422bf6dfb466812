"""The one error type a user sees as a single line.

Library code raises `UserError` for anything the user can fix: a bad path, a malformed file, a
wrong argument, a full disk. `cli.run_main` turns it into `prog: error: message` on stderr and a
non-zero exit, so no stage ever shows a traceback for bad input.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment; the message is shown as one line."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (runtimes raise multi-line ones), or its type name
    when it has none: what goes inside a one-line error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Terminated(KeyboardInterrupt):
    """SIGTERM (or another stop signal) turned into the same clean stop as Ctrl-C.

    It is a KeyboardInterrupt, so every `except KeyboardInterrupt` cleanup runs; `exit_code`
    is the shell's convention, 128 + the signal number (143 for SIGTERM).
    """

    def __init__(self, signum: int = 15):
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum

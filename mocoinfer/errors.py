"""The one error type a user sees as a single line.

Library code raises `UserError` for anything the user can fix: a bad path, a malformed file, a
wrong argument, a full disk. `cli.run_main` turns it into `prog: error: message` on stderr and a
non-zero exit, so no stage ever shows a traceback for bad input.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment; the message is shown as one line."""

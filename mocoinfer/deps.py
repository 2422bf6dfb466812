"""Are the packages a stage needs importable by the Python running it? One line if not.

A stage run by a Python that lacks its packages (the system `python3` instead of `.venv`'s, a
fresh shell without `source .venv/bin/activate`) would end in a `ModuleNotFoundError` traceback,
sometimes after minutes of work (the export loads the checkpoint, then dies on torchvision). Each
root script calls `require` before its heavy imports: `importlib.util.find_spec` only looks the
package up on the path, it imports nothing, so the check costs about a millisecond. What is missing
is named in one line on stderr with the Python that lacks it and the fix, and the script exits 1.

This module imports the standard library only: it must work in a Python that has nothing else.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import List, Optional, Sequence

#: the pip name where it differs from the import name, so the line names what to install
PIP_NAMES = {"PIL": "pillow"}
EXIT_MISSING = 1


def missing_packages(packages: Sequence[str]) -> List[str]:
    """The import names in `packages` that the running Python cannot find (none imported)."""
    missing = []
    for name in packages:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken parent package, or a module without a spec
            found = False
        if not found:
            missing.append(name)
    return missing


def missing_message(missing: Sequence[str]) -> str:
    """The one line: what is missing, from which Python, and how to get a Python that has it."""
    names = ", ".join(f"{m} (pip: {PIP_NAMES[m]})" if m in PIP_NAMES else m for m in missing)
    verb = "is" if len(missing) == 1 else "are"
    version = ".".join(str(v) for v in sys.version_info[:3])
    return (f"{names} {verb} not installed for the Python running this script ({sys.executable or 'python'}, "
            f"{version}); run `make setup` once in the repository, then `source .venv/bin/activate` "
            "(or run the script with .venv/bin/python)")


def require(*packages: str, prog: Optional[str] = None) -> None:
    """Exit with the one line (status 1) unless every package in `packages` can be imported."""
    missing = missing_packages(packages)
    if missing:
        if prog is None:
            prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "mocoinfer"
        print(f"{prog}: error: {missing_message(missing)}", file=sys.stderr)
        sys.exit(EXIT_MISSING)

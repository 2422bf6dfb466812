"""What the stage benchmarks share (imported by the bench_*.py scripts beside it)."""

from __future__ import annotations

import compileall
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def compile_package() -> None:
    """Write mocoinfer's bytecode caches first, as an install or a first run does. With
    PYTHONDONTWRITEBYTECODE set (as on some machines) every timed run of ours would otherwise
    compile the package from source, about 20 ms a command, measured; the guide's side is one
    script, compiled on every run either way, as our entry script is."""
    compileall.compile_dir(os.path.join(ROOT, "mocoinfer"), quiet=1)

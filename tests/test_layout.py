"""The package's layout rules (issue 12): no product module over 400 lines, and the file formats
reached through `mocoinfer.formats` only.

Oracles: `wc -l` for a module's length (the number of newline bytes, counted here the same way
and checked against `wc -l` itself on one file), and the imports as `ast` reads them. That no
product module imports from tests/ is checked in test_acl_backend.py
(`test_stand_in_is_not_importable_by_the_product`).
"""

from __future__ import annotations

import ast
import glob
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 400
MODULES = sorted(glob.glob(os.path.join(ROOT, "mocoinfer", "**", "*.py"), recursive=True))
FORMATS_DIR = os.path.join(ROOT, "mocoinfer", "formats")


def line_count(path: str) -> int:
    """What `wc -l` prints: the number of newline bytes."""
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def test_the_modules_were_found():
    names = {os.path.relpath(p, ROOT) for p in MODULES}
    assert {"mocoinfer/atomic.py", "mocoinfer/formats/__init__.py", "mocoinfer/backends/acl.py"} <= names


@pytest.mark.skipif(shutil.which("wc") is None, reason="no wc on this machine")
def test_line_count_is_what_wc_prints():
    path = os.path.join(ROOT, "mocoinfer", "atomic.py")
    out = subprocess.run(["wc", "-l", path], check=True, capture_output=True, text=True).stdout
    assert line_count(path) == int(out.split()[0])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: os.path.relpath(p, ROOT))
def test_module_is_at_most_400_lines(path):
    assert line_count(path) <= MAX_LINES


def _formats_imports(path: str, package: str):
    """(line, module) of every import of a `mocoinfer.formats` submodule in `path`, a module of
    `package` (for relative imports)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # resolve `from .formats import x` / `from ..formats.results import y`
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # `from mocoinfer.formats import results` names a submodule too.
            mods = [base] + [f"{base}.{a.name}" for a in node.names if base == "mocoinfer.formats"]
        else:
            continue
        for m in mods:
            if m.startswith("mocoinfer.formats.") and m.split(".")[2] in _SUBMODULES:
                yield node.lineno, m


_SUBMODULES = {os.path.splitext(n)[0] for n in os.listdir(FORMATS_DIR) if n.endswith(".py")} - {"__init__"}


def test_formats_are_imported_from_the_package_only():
    """Code outside mocoinfer/formats/ imports `mocoinfer.formats`, never one of its submodules,
    so the formats stay one interface however the package is cut."""
    sources = glob.glob(os.path.join(ROOT, "*.py")) + [
        p for d in ("mocoinfer", "tests", "benchmarks")
        for p in glob.glob(os.path.join(ROOT, d, "**", "*.py"), recursive=True)]
    offenders = [f"{os.path.relpath(p, ROOT)}:{line}: imports {m}"
                 for p in sources if not p.startswith(FORMATS_DIR + os.sep)
                 for line, m in _formats_imports(p, os.path.dirname(os.path.relpath(p, ROOT)).replace(os.sep, "."))]
    assert len(sources) > len(MODULES) and offenders == []


def test_the_submodule_check_bites(tmp_path):
    """The check above finds a submodule import: absolute, relative, and `from mocoinfer.formats import info`."""
    path = tmp_path / "probe.py"
    path.write_text("from .formats.results import read_result\nimport mocoinfer.formats.perf\n"
                    "from mocoinfer.formats import info, read_info\nfrom .formats import read_labels\n"
                    "from ..formats.bins import bin_name\n", encoding="utf-8")
    found = [m for _, m in _formats_imports(str(path), "mocoinfer")]
    assert found == ["mocoinfer.formats.results", "mocoinfer.formats.perf", "mocoinfer.formats.info"]
    # From a subpackage (mocoinfer/backends/), `..formats.bins` is a submodule import as well.
    assert [m for _, m in _formats_imports(str(path), "mocoinfer.backends")][-1] == "mocoinfer.formats.bins"

"""The product code stays valid on Python 3.8, the oldest CANN Python on Ascend hosts.

Oracle: CPython's own parser in its 3.8 grammar mode (`ast.parse(..., feature_version=(3, 8))`),
which rejects `match`, parenthesised context managers and other newer syntax. Runtime-only
constructs (`X | Y` outside annotations) are left to ruff's py38 target and to review.
"""

from __future__ import annotations

import ast
import glob
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The package and the stage scripts run on the Ascend host; tests, benchmarks and the demo's
# tooling run where the test tools are installed.
PRODUCT = sorted(glob.glob(os.path.join(ROOT, "mocoinfer", "**", "*.py"), recursive=True)
                 + glob.glob(os.path.join(ROOT, "*.py")))


def test_the_check_rejects_newer_syntax():
    """The oracle bites on this interpreter: a 3.10 `match` is refused in 3.8 mode."""
    with pytest.raises(SyntaxError):
        ast.parse("match x:\n    case 1:\n        pass\n", feature_version=(3, 8))


def test_product_files_were_found():
    names = {os.path.relpath(p, ROOT) for p in PRODUCT}
    assert {"mocoinfer/formats/results.py", "mocoinfer/backends/acl.py", "run_om_infer.py"} <= names


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: os.path.relpath(p, ROOT))
def test_parses_as_python_3_8(path):
    with open(path, encoding="utf-8") as f:
        source = f.read()
    ast.parse(source, filename=path, feature_version=(3, 8))

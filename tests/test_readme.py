"""Every ```bash block of README.md runs as printed, in order, in a fresh copy of the repository.

The copy holds the files git tracks (and new ones it does not ignore) plus a `.venv` that borrows
this test's environment, so `make demo` (the README's first block) runs there as on a fresh clone
without installing anything. Each later block then runs with `bash -euo pipefail` from the copy's
root with that environment active, as the README tells its reader to.

Oracles: each block's exit status, and the copy's file list before and after it: a block may
write under `work/` (git-ignored) and nowhere else. Blocks that need an NPU or CANN are ```text
in the README, so nothing here is skipped: a ```bash block either runs or fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import List, NamedTuple, Set

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
# Inherited settings would change what the README's commands do; the README must not rely on any.
CLEARED = {"BS", "DEVICE_ID", "CHIP_NAME", "WORK_DIR", "CKPT", "VAL_DIR", "LABELS", "INTERPOLATION", "BACKEND",
           "MODEL", "OUTFMT", "BATCH_SIZES", "PERF_BACKENDS", "PERF_LOOP", "PERF_WARMUP", "PERF_DIR", "RESULT_DIR",
           "PREP_DIR", "INFO_FILE", "ONNX_MODEL", "OM_BASE", "REFERENCE", "PERF", "OVERWRITE", "REFERENCE_DIR",
           "RESUME", "PYTHON", "PYTHONPATH", "VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
# Where the README's commands may write: the walkthrough's folder and what the set-up makes.
ALLOWED_TOP = {"work", ".venv"}


class Block(NamedTuple):
    lang: str
    line: int  # 1-based line of the opening fence
    code: str


def readme_blocks(text: str) -> List[Block]:
    blocks, lang, start, lines = [], None, 0, []
    for i, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^```(\S*)\s*$", line)
        if fence and lang is None:
            lang, start, lines = fence.group(1), i, []
        elif line.rstrip() == "```" and lang is not None:
            blocks.append(Block(lang, start, "\n".join(lines) + "\n"))
            lang = None
        elif lang is not None:
            lines.append(line)
    assert lang is None, f"README.md:{start}: unclosed code block"
    return blocks


with open(README, encoding="utf-8") as _f:
    BASH = [b for b in readme_blocks(_f.read()) if b.lang == "bash"]


def _source_venv() -> str:
    """The virtual environment to lend the copy: the repository's, else the one running the tests."""
    own = os.path.join(ROOT, ".venv")
    if os.path.isfile(os.path.join(own, "pyvenv.cfg")):
        return own
    assert sys.prefix != sys.base_prefix, "the README test needs a virtual environment (run make setup)"
    return sys.prefix


def _lend_venv(src: str, dest: str) -> None:
    """A `.venv` in the copy whose python finds `src`'s packages: pyvenv.cfg beside bin/, the
    executables (and `activate`, which points at `src`) linked, lib/ linked. Its own set-up stamp
    tells make that set-up is done, so nothing is installed into `src`."""
    os.makedirs(os.path.join(dest, "bin"))
    shutil.copy2(os.path.join(src, "pyvenv.cfg"), os.path.join(dest, "pyvenv.cfg"))
    for name in os.listdir(os.path.join(src, "bin")):
        os.symlink(os.path.join(src, "bin", name), os.path.join(dest, "bin", name))
    for name in os.listdir(src):
        if name.startswith("lib"):
            os.symlink(os.path.join(src, name), os.path.join(dest, name))
    with open(os.path.join(dest, ".installed"), "w"):
        pass


def _files(root: str) -> Set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == ".":
            dirnames[:] = [d for d in dirnames if d not in ALLOWED_TOP]
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        out.update(os.path.normpath(os.path.join(rel, f)) for f in filenames)
    return out


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A copy of the working tree as a fresh clone would have it, with a lent .venv."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    dest = str(tmp_path_factory.mktemp("readme") / "repo")
    for rel in filter(None, listed):
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src):  # deleted in the working tree but not yet in the index
            continue
        os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel))
    _lend_venv(_source_venv(), os.path.join(dest, ".venv"))
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["PATH"] = f"{dest}/.venv/bin:/usr/local/bin:/usr/bin:/bin"
    env["VIRTUAL_ENV"] = os.path.join(dest, ".venv")
    # No CANN: NPU commands are text blocks, and the demo's numbers must not depend on the host.
    env["CANN_SET_ENV"] = os.path.join(dest, "no-cann", "set_env.sh")
    return {"root": dest, "env": env, "failed": []}


def test_readme_has_bash_blocks_and_no_usage_syntax():
    """Usage syntax (`[--x N]`, `a|b`) cannot be pasted into a shell; it belongs in ```text."""
    assert len(BASH) >= 8
    assert BASH[0].code.split()[:2] == ["make", "demo"], "the first bash block must be `make demo`"
    for b in BASH:
        for line in b.code.splitlines():
            code = line.split(" #", 1)[0]
            assert not re.search(r"\[--?\w", code), f"README.md:{b.line}: usage syntax in a bash block: {line}"
            assert not re.search(r"\w\|\w", code), f"README.md:{b.line}: usage syntax in a bash block: {line}"


@pytest.mark.slow
@pytest.mark.parametrize("block", BASH, ids=[f"line{b.line}" for b in BASH])
def test_readme_block_runs(clone, block):
    if clone["failed"]:
        pytest.fail(f"an earlier block failed (README.md:{clone['failed'][0]}); this one may depend on it")
    before = _files(clone["root"])
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=clone["root"], env=clone["env"],
                          capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        clone["failed"].append(block.line)
    assert proc.returncode == 0, (f"README.md:{block.line}: exit {proc.returncode}\n{block.code}\n"
                                  f"stdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-3000:]}")
    new = sorted(_files(clone["root"]) - before)
    assert not new, f"README.md:{block.line}: wrote outside work/: {new}"

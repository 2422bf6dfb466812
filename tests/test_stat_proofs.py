"""Proofs of reuse by stat, as git's (issue 18): a rerun reads no input to prove it, and never
trusts a file that was replaced, edited or swapped for a link.

Oracles: a counting stand-in backend (which inputs ran), `os.stat`, and a `file_digest` that
fails the test when a non-racy file is hashed.
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

from mocoinfer import atomic, sidecar
from mocoinfer.backends import Backend
from mocoinfer.errors import UserError
from mocoinfer.runner import run_inference

N = 6


class Doubler(Backend):
    """4 float32 in, their doubles out; records the first value of every sample it ran."""

    name = "doubler"

    def __init__(self) -> None:
        super().__init__()
        self.input_shape, self.input_dtype, self.batch_size = (4,), np.dtype(np.float32), None
        self.model_path = "doubler"
        self.ran = []

    def run(self, batch):
        self.ran += [float(x[0]) for x in batch]
        self.timing.compute.append(0.0)
        return [batch * 2.0]


def _inputs(folder, n=N):
    os.makedirs(folder)
    for i in range(n):
        np.full(4, i, dtype=np.float32).tofile(os.path.join(folder, f"x{i}.bin"))


def _run(bins, out):
    be = Doubler()
    s = run_inference("doubler", bins, out, backend=be, outfmt="bin", warmup=0, progress=False, resume=True)
    return s, be.ran


@pytest.fixture
def done(tmp_path):
    """A finished run over inputs older than the racy window, so stat data alone prove them."""
    bins, out = str(tmp_path / "bins"), str(tmp_path / "out")
    _inputs(bins)
    time.sleep(sidecar.RACY_NS / 1e9 + 0.1)
    _run(bins, out)
    time.sleep(sidecar.RACY_NS / 1e9 + 0.1)
    return bins, out, os.path.join(out, "dumpOutput_device0")


def test_a_rerun_proves_every_result_without_reading_a_file(done, monkeypatch):
    bins, out, _ = done
    _run(bins, out)  # the manifest written now holds no racy entry: every file is older than 2 s

    def no_reading(path):
        raise AssertionError(f"{path} was read to prove it")

    monkeypatch.setattr(sidecar, "file_digest", no_reading)
    monkeypatch.setattr(atomic, "file_digest", no_reading)
    s, ran = _run(bins, out)
    assert s.get("nothing_to_do") is True and s["skipped"] == N and ran == []


def test_a_replaced_input_with_its_old_mtime_and_size_runs_again(done, tmp_path):
    """`cp -p` keeps the mtime and size; the inode and ctime still change."""
    bins, out, res = done
    other = tmp_path / "other.bin"
    np.full(4, 40, dtype=np.float32).tofile(other)
    target = os.path.join(bins, "x2.bin")
    st = os.stat(target)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    shutil.copy2(other, target + ".new")
    os.replace(target + ".new", target)
    assert (os.stat(target).st_size, os.stat(target).st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    s, ran = _run(bins, out)
    assert ran == [40.0] and s["skipped"] == N - 1
    np.testing.assert_array_equal(np.fromfile(os.path.join(res, "x2_1.bin"), np.float32), np.full(4, 80.0))


def test_an_edited_result_of_the_same_size_is_redone(done):
    bins, out, res = done
    path = os.path.join(res, "x3_1.bin")
    with open(path, "r+b") as f:  # same size, same inode, other bytes
        f.write(np.full(4, -1, dtype=np.float32).tobytes())
    s, ran = _run(bins, out)
    assert ran == [3.0]
    np.testing.assert_array_equal(np.fromfile(path, np.float32), np.full(4, 6.0))


def test_a_result_swapped_for_a_link_is_redone_and_refused_by_the_metric(done):
    """Issue 20, class 5: a result replaced by a symlink to another image's result."""
    from safety_helpers import tree

    from mocoinfer.resume import check_result_folder

    bins, out, res = done
    inputs = tree(bins)
    os.unlink(os.path.join(res, "x4_1.bin"))
    os.symlink(os.path.join(res, "x5_1.bin"), os.path.join(res, "x4_1.bin"))
    with pytest.raises(UserError, match="1 result files changed since written"):
        check_result_folder(res)
    with pytest.raises(UserError, match="symbolic link"):  # the run never writes through the link
        _run(bins, out)
    assert tree(bins) == inputs and os.path.islink(os.path.join(res, "x4_1.bin"))


def test_a_racy_input_is_hashed_and_a_same_size_edit_within_its_tick_is_caught(tmp_path):
    """Inputs written just before the run are racy: the proof holds their hash, so an edit that
    keeps the size and lands within the same clock tick (stat data unchanged) is still seen."""
    bins, out = str(tmp_path / "bins"), str(tmp_path / "out")
    _inputs(bins)
    _run(bins, out)
    doc = sidecar.read_manifest(os.path.join(out, "dumpOutput_device0"))
    entry = doc["files"]["x1_1.bin"]
    assert entry["source_proof"]["sha256"] == atomic.digest_bytes(np.full(4, 1, dtype=np.float32).tobytes())
    path = os.path.join(bins, "x1.bin")
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.write(np.full(4, 9, dtype=np.float32).tobytes())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    # Pretend the edit kept the stat data (same tick): only the hash can tell.
    entry["source_proof"]["stat"] = sidecar.stat_key(os.stat(path))
    sidecar.write_manifest(os.path.join(out, "dumpOutput_device0"), doc)
    s, ran = _run(bins, out)
    assert ran == [9.0]

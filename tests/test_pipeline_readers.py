"""The runner's pipeline with several reader threads (issue 18's speed): batches still reach the
backend in plan order, results match their inputs, the first bad file in plan order is the error
reported whichever reader reached its file first, and the batch buffers stay within their budget.

Oracles: the input files' own values (input i holds the value i, so its result must hold 2*i),
hand-made bad files (a short file and a folder), and a hand count of buffers (`batch_buffers`'s
read-ahead plus two, or one per reader plus one).
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from mocoinfer import pipeline
from mocoinfer.backends import Backend
from mocoinfer.errors import UserError
from mocoinfer.formats import BENCHMARK_STYLE

SAMPLE = 4  # float32 values per input


class Doubler(Backend):
    """4 float32 in, their doubles out; records each batch's first values and its buffer."""

    name = "doubler"

    def __init__(self, batch_size=None) -> None:
        super().__init__()
        self.input_shape, self.input_dtype, self.batch_size = (SAMPLE,), np.dtype(np.float32), batch_size
        self.model_path = "doubler"
        self.ran, self.buffers = [], set()

    def run(self, batch):
        self.ran.append([float(x[0]) for x in batch])
        self.buffers.add(batch.__array_interface__["data"][0])
        self.timing.compute.append(0.0)
        return [batch * 2.0]


class Bar:
    def update(self, n):
        pass

    def close(self):
        pass


def _inputs(folder, n):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"x{i:03d}.bin")
        np.full(SAMPLE, i, dtype=np.float32).tofile(path)
        paths.append(path)
    return paths


def _run(be, paths, batch_size, out):
    os.makedirs(out, exist_ok=True)
    plan = pipeline.plan_batches(len(paths), batch_size, be)
    return pipeline.run_pipeline(be, paths, plan, batch_size, out, "bin", 1, Bar(), style=BENCHMARK_STYLE), plan


@pytest.fixture
def lanes_seen(monkeypatch):
    """Which reader lanes read something: the pipeline's FileReader, spied on."""
    seen = set()

    class Spy(pipeline.FileReader):
        def work(self):
            seen.add((self.lane, self.lanes, threading.current_thread().name))
            super().work()

    monkeypatch.setattr(pipeline, "FileReader", Spy)
    return seen


@pytest.mark.parametrize("batch_size,fixed", [(1, None), (2, None), (3, 3)])
def test_several_readers_keep_plan_order_and_each_result_matches_its_input(tmp_path, monkeypatch, lanes_seen,
                                                                          batch_size, fixed):
    """11 inputs, 3 readers: the backend sees 0..10 in order (a fixed batch of 3 pads the last
    batch with its first sample, input 9, as ais_bench does), and result i holds 2*i."""
    monkeypatch.setenv(pipeline.READERS_ENV, "3")
    n = 11
    paths = _inputs(str(tmp_path / "in"), n)
    be = Doubler(fixed)
    out = str(tmp_path / "out")
    times, plan = _run(be, paths, batch_size, out)
    assert {(lane, lanes) for lane, lanes, _ in lanes_seen} == {(0, 3), (1, 3), (2, 3)}
    assert len({name for _, _, name in lanes_seen}) == 3  # three threads
    seen = [v for batch in be.ran for v in batch]
    expect = list(range(n))
    if fixed:
        expect += [9.0] * (fixed - n % fixed)  # the padding: copies of the short batch's first sample
    assert seen == expect
    assert times.result_files == n and len(times.read) == len(plan) == times.batches
    for i in range(n):
        got = np.fromfile(os.path.join(out, f"x{i:03d}_1.bin"), dtype=np.float32)
        assert got.tolist() == [2.0 * i] * SAMPLE


def test_the_first_bad_file_in_plan_order_is_reported_even_when_a_later_one_fails_first(tmp_path, monkeypatch):
    """Inputs 3 (reader 0's second batch) and 4 (reader 1's second batch) are bad; reader 0 starts
    late, so reader 1 fails first in time. The error names input 3 (a short file), and every
    batch before it ran, in order."""
    monkeypatch.setenv(pipeline.READERS_ENV, "3")
    paths = _inputs(str(tmp_path / "in"), 9)
    with open(paths[3], "wb") as f:
        f.write(b"\0" * 6)  # 6 bytes, not 16
    os.remove(paths[4])
    os.mkdir(paths[4])  # a folder where a file should be
    failed_at = {}

    class Late(pipeline.FileReader):
        def run(self):
            if self.lane == 0:
                time.sleep(0.3)
            super().run()
            if self.error is not None:
                failed_at[self.lane] = time.perf_counter()

    monkeypatch.setattr(pipeline, "FileReader", Late)
    be = Doubler()
    with pytest.raises(UserError) as err:
        _run(be, paths, 1, str(tmp_path / "out"))
    assert paths[3] in str(err.value) and "read 6 bytes, expected 16" in str(err.value)
    assert failed_at[1] < failed_at[0]  # the later file failed first in time
    assert [b[0] for b in be.ran] == [0.0, 1.0, 2.0]


def test_a_folder_among_the_inputs_is_the_error_with_several_readers(tmp_path, monkeypatch):
    """A folder at input 5 of 8 (reader 1 of 2): open()'s own error for a folder, naming it."""
    monkeypatch.setenv(pipeline.READERS_ENV, "2")
    paths = _inputs(str(tmp_path / "in"), 8)
    os.remove(paths[5])
    os.mkdir(paths[5])
    be = Doubler()
    with pytest.raises(IsADirectoryError) as err:
        _run(be, paths, 1, str(tmp_path / "out"))
    assert err.value.filename == paths[5]
    assert [b[0] for b in be.ran] == [0.0, 1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("readers,read_ahead,budget", [(3, 2, 4), (6, 2, 7), (2, 5, 7)])
def test_batch_buffers_stay_within_the_budget_whatever_the_readers(tmp_path, monkeypatch, readers, read_ahead,
                                                                   budget):
    """Hand count: read-ahead + 2 buffers (one filling, one on the device), or one per reader
    plus the device's where readers outnumber that; 60 batches run through no more buffers."""
    monkeypatch.setenv(pipeline.READERS_ENV, str(readers))
    batch_bytes = 2 * SAMPLE * 4
    monkeypatch.setattr(pipeline, "READ_AHEAD_BYTES", read_ahead * batch_bytes)
    assert pipeline.batch_buffers(batch_bytes) == budget
    paths = _inputs(str(tmp_path / "in"), 120)
    be = Doubler()
    _run(be, paths, 2, str(tmp_path / "out"))
    assert [v for batch in be.ran for v in batch] == list(range(120))
    assert 1 < len(be.buffers) <= budget


def test_reader_threads_follow_the_environment_and_never_outnumber_the_batches(monkeypatch):
    """Hand count: the override, capped by the batches; without it at most 4 and at most the cores."""
    monkeypatch.setenv(pipeline.READERS_ENV, "5")
    assert pipeline.reader_threads() == 5 and pipeline.reader_threads(2) == 2 and pipeline.reader_threads(0) == 1
    monkeypatch.delenv(pipeline.READERS_ENV)
    n = pipeline.reader_threads()
    assert 1 <= n <= pipeline.MAX_READERS and n <= len(os.sched_getaffinity(0))

"""The throughput table's spread and load (mocoinfer.sweep, issue 21): each figure with the
slowest and fastest of its timed batches, and the host's load average beside the table.

Oracle: summaries written here by hand, whose figures are worked out by hand below.
"""

from __future__ import annotations

import json
import os

from mocoinfer import sweep
from mocoinfer.pure import load_average


def _summary(folder, bs, mean_ms, min_ms, max_ms, load=None):
    folder.mkdir(parents=True)
    s = {"batch_size": bs, "throughput_images_per_s": 1000.0 * bs / mean_ms, "device": "cpu",
         "phases": {"compute": {"latency_ms": {"min": min_ms, "max": max_ms, "mean": mean_ms}}}}
    if load is not None:
        s["load_average"] = load
    (folder / "pure_summary.json").write_text(json.dumps(s))


def test_cells_show_the_slowest_and_fastest_batch(tmp_path):
    """Batch 4, compute 50 ms mean, 40 ms fastest, 80 ms slowest: 1000 x 4 / 50 = 80.0 images/s,
    4000 / 80 = 50.0 and 4000 / 40 = 100.0."""
    _summary(tmp_path / "onnxruntime" / "bs4", 4, 50.0, 40.0, 80.0, load=[0.5, 0.75])
    table = sweep.markdown(str(tmp_path))
    assert "| 4 | 80.0 (50.0–100.0) |" in table
    assert "1-minute load average 0.50–0.75 during the runs" in table
    assert "busy host" not in table  # below one runnable thread per core


def test_a_load_above_the_core_count_is_called_busy(tmp_path):
    """A load of cores + 1 means threads waited for a core: the table says the figures are lower."""
    cores = os.cpu_count() or 1
    _summary(tmp_path / "torch" / "bs1", 1, 10.0, 10.0, 10.0, load=[cores + 1.0])
    table = sweep.markdown(str(tmp_path))
    assert "| 1 | 100.0 (100.0–100.0) |" in table
    assert f"load average {cores + 1.0:.2f} during the runs (a busy host" in table


def test_summaries_without_latencies_or_load_keep_the_plain_figure(tmp_path):
    """Older summaries (no phases, no load): the figure alone, and no load sentence."""
    folder = tmp_path / "onnxruntime" / "bs2"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"batch_size": 2, "throughput_images_per_s": 12.5}))
    table = sweep.markdown(str(tmp_path))
    assert "| 2 | 12.5 |" in table and "load average" not in table


def test_load_average_is_the_os_figure():
    """Oracle: os.getloadavg()'s first value, read just before and after (it moves slowly)."""
    before = os.getloadavg()[0]
    got = load_average()
    after = os.getloadavg()[0]
    assert got is not None and min(before, after) - 0.01 <= got <= max(before, after) + 0.01

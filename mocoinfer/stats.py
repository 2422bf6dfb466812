"""Rates and per-batch latency statistics, as summary.json and the perf file report them."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np


def latency_stats(seconds: Sequence[float]) -> Dict[str, float]:
    """min/max/mean/median/p90/p99 in milliseconds."""
    if not len(seconds):
        return {}
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"min": float(ms.min()), "max": float(ms.max()), "mean": float(ms.mean()),
            "median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)), "count": int(ms.size)}


def rate(images: float, seconds: float) -> float:
    """Images per second; 0 when nothing was timed."""
    return images / seconds if seconds > 0 else 0.0


def phase(images: float, seconds: Sequence[float]) -> Dict[str, object]:
    """One phase of summary.json: throughput over the summed time, and per-batch latency."""
    return {"throughput_images_per_s": rate(images, float(sum(seconds))), "seconds": float(sum(seconds)),
            "latency_ms": latency_stats(seconds)}

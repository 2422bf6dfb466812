"""The perf files the benchmark writes: `perf_vision_batchsize_{bs}_device_{id}.txt` (its five
lines) and the pure-inference `PureInfer_perf_of_{om name}_in_device_{id}.txt` (one line).
"""

from __future__ import annotations

import os
import re
from typing import Dict


def perf_filename(batch_size: int, device_id: int) -> str:
    return f"perf_vision_batchsize_{batch_size}_device_{device_id}.txt"


def pure_perf_filename(model_path: str, device_id: int) -> str:
    """The benchmark's pure-inference perf file: `PureInfer_perf_of_{om name}_in_device_{id}.txt`."""
    return f"PureInfer_perf_of_{os.path.basename(model_path).split('.', 1)[0]}_in_device_{device_id}.txt"


def format_pure_perf(rate: float, latency_ms: float) -> str:
    """`ave_throughputRate = 155.975samples/s, ave_latency = 6.42435ms`, as the benchmark writes it."""
    return f"ave_throughputRate = {_g(rate)}samples/s, ave_latency = {_g(latency_ms)}ms\n"


def _g(x: float) -> str:
    # The benchmark is C++ and prints with ostream's default: six significant digits.
    return f"{x:.6g}"


def format_perf(*, e2e_rate: float, e2e_latency_ms: float,
                read_rate: float, read_latency_ms: float,
                pre_rate: float, pre_latency_ms: float,
                infer_rate: float, interface_rate: float, infer_latency_ms: float,
                post_rate: float, post_latency_ms: float) -> str:
    """The benchmark's five-line perf file; ModelZoo's parse.py reads `[infer]`'s second number."""
    return (
        f"[e2e] throughputRate: {_g(e2e_rate)}, latency: {_g(e2e_latency_ms)}\n"
        f"[data read] throughputRate: {_g(read_rate)}, moduleLatency: {_g(read_latency_ms)}\n"
        f"[preprocess] throughputRate: {_g(pre_rate)}, moduleLatency: {_g(pre_latency_ms)}\n"
        f"[infer] throughputRate: {_g(infer_rate)}, Interface throughputRate: {_g(interface_rate)}, "
        f"moduleLatency: {_g(infer_latency_ms)}\n"
        f"[post] throughputRate: {_g(post_rate)}, moduleLatency: {_g(post_latency_ms)}\n"
    )


_PERF_LINE = re.compile(r"^\[(?P<section>[^\]]+)\]\s*(?P<body>.*)$")


def parse_perf(text: str) -> Dict[str, Dict[str, float]]:
    """{section: {key: value}} from a perf file, e.g. out['infer']['Interface throughputRate']."""
    out: Dict[str, Dict[str, float]] = {}
    for line in text.splitlines():
        m = _PERF_LINE.match(line.strip())
        if not m:
            continue
        fields = {}
        for part in m.group("body").split(","):
            if ":" in part:
                k, v = part.split(":", 1)
                fields[k.strip()] = float(v)
        out[m.group("section")] = fields
    return out

"""Pure inference: time batches of generated data on a model, as ais_bench's pure-data mode and
the benchmark's `-round=N` do. No input files, no result files: throughput and latency only,
written as pure_summary.json (never a file run's summary.json) and the benchmark's PureInfer
perf file.
"""

from __future__ import annotations

import os
import time
from typing import List, Optional, Sequence

import numpy as np

from .atomic import FolderLock, check_output, make_folder
from .errors import UserError
from .formats import format_pure_perf, pure_perf_filename
from .perf import PURE_SUMMARY_NAME
from .runner import (
    PURE_DATA,
    RunSettings,
    _chosen,
    _finish,
    _opened,
    _run_phases,
    _warm_up,
    check_batch_memory,
    resolve_batch_size,
)


def run_pure_inference(model: str, output: Optional[str] = None, pure_data: str = "zeros", seed: int = 0,
                       **options) -> dict:
    """Time `loop` batches of generated data (after `warmup` untimed ones): throughput and
    latency only, as ais_bench's pure-data mode. `options` are `RunSettings` fields (`loop`
    defaults to 10 here). Writes pure_summary.json (never a file run's summary.json) and the
    benchmark's PureInfer perf file under `output` when given."""
    from .devices import parse_device_ids

    options.setdefault("loop", 10)
    device_ids = parse_device_ids(options.get("device_id", 0))
    if len(device_ids) > 1:
        raise UserError(f"pure inference (--pure-data) measures one device; give one --device-id, "
                        f"not {len(device_ids)}")
    options["device_id"] = device_ids[0]
    settings = RunSettings(**options)
    if pure_data not in PURE_DATA:
        raise UserError(f"unknown --pure-data {pure_data!r} (choose from {', '.join(PURE_DATA)})")
    settings.check()
    cls = _chosen(model, settings)
    if cls is not None:
        cls.check_precision(model, settings.precision)
    loop = settings.loop
    perf_name = pure_perf_filename(model, settings.device_id) if settings.write_perf else None
    summary_file = None
    if output:
        summary_file = settings.summary_file or os.path.join(output, PURE_SUMMARY_NAME)
        _check_output_folder(output, [summary_file] + ([os.path.join(output, perf_name)] if perf_name else []),
                             [model])
    with _opened(model, settings, cls) as be:
        bs = resolve_batch_size(be, settings.batch_size)
        # The generated batch, the warm-up's and the runtime's copy.
        check_batch_memory(bs, be.sample_bytes, 2)
        shape = (bs,) + tuple(be.input_shape)
        if pure_data == "zeros":
            data = np.zeros(shape, dtype=be.input_dtype)
        else:
            data = np.random.default_rng(seed).standard_normal(shape).astype(be.input_dtype)
        _warm_up(be, bs, settings.warmup)
        run_seconds: List[float] = []
        for _ in range(loop):
            t0 = time.perf_counter()
            be.run(data)
            run_seconds.append(time.perf_counter() - t0)
        phases = _run_phases(be, bs * loop, run_seconds)
    compute = phases.get("compute", phases["run"])
    mean_ms = compute["latency_ms"]["mean"]
    summary = {"model": model, "backend": be.name, "device": be.device, "device_id": settings.device_id,
               "pure_data": pure_data, "batch_size": bs, "loop": loop, "warmup": settings.warmup,
               "precision": getattr(be, "precision", "fp32"),
               "throughput_images_per_s": 1000.0 * bs / mean_ms if mean_ms else 0.0,
               "phases": phases}
    if output:
        with FolderLock(output):
            _finish(summary, be, output, perf_name, format_pure_perf(summary["throughput_images_per_s"], mean_ms),
                    summary_file, settings.summary_doc)
    else:
        _finish(summary, be, None, None, "")
    return summary


def _check_output_folder(output: str, files: Sequence[str], inputs: Sequence[str]) -> None:
    """Pure inference's outputs, before the load: a folder that can be made and written, files
    that are neither an input nor a special file."""
    make_folder(output)
    for f in files:
        check_output(f, inputs, what="output")

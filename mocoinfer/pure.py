"""Pure inference: time batches of generated data on a model, as ais_bench's pure-data mode and
the benchmark's `-round=N` do. No input files: throughput and latency, written as
pure_summary.json (never a file run's summary.json) and the benchmark's PureInfer perf file; in
ais_bench's form with --output, the generated batch's outputs too (`pure_infer_data_{k}`, as
its `io_oprations.PURE_INFER_FAKE_FILE` names them).
"""

from __future__ import annotations

import os
import time
from typing import List, Optional, Sequence

import numpy as np

from .atomic import atomic_write_text, check_output, make_folder, remove_empty_folders, write_json
from .cli import parse_device_ids
from .errors import UserError
from .formats import format_pure_perf, pure_perf_filename, result_filename, write_result
from .onepass import RunSettings, backend_facts, check_batch_memory, compute_ms, resolve_batch_size, run_phases, warm_up
from .perf import DEFINITIONS, PURE_SUMMARY_NAME
from .progress import progress_bar

PURE_DATA = ("zeros", "random")
#: the input name of ais_bench's generated data (`io_oprations.PURE_INFER_FAKE_FILE`), which names its results
PURE_INFER_NAME = "pure_infer_data"


def run_pure_inference(model: str, output: Optional[str] = None, pure_data: str = "zeros", seed: int = 0,
                       write_summary: bool = True, **options) -> dict:
    """Time `loop` batches of generated data (after `warmup` untimed ones): throughput and
    latency only, as ais_bench's pure-data mode. `options` are `RunSettings` fields (`loop`
    defaults to 10 here). Writes pure_summary.json (never a file run's summary.json) and the
    benchmark's PureInfer perf file under `output` when given."""
    options.setdefault("loop", 10)
    device_ids = parse_device_ids(options.get("device_id", 0))
    if len(device_ids) > 1:
        raise UserError(f"pure inference measures one device at a time; give one --device-id, "
                        f"not {len(device_ids)}")
    options["device_id"] = device_ids[0]
    settings = RunSettings(**options)
    if pure_data not in PURE_DATA:
        raise UserError(f"unknown --pure-data {pure_data!r} (choose from {', '.join(PURE_DATA)})")
    settings.check()
    cls = settings.backend_class(model)
    if cls is not None:
        cls.check_precision(model, settings.precision)
    perf_name = pure_perf_filename(model, settings.device_id) if settings.write_perf else None
    summary_file = None
    created: List[str] = []
    try:
        if output:
            summary_file = settings.summary_file or os.path.join(output, PURE_SUMMARY_NAME)
            created = _check_output_folder(output, [summary_file] + (
                [os.path.join(output, perf_name)] if perf_name else []), [model])
        if settings.result_dir:  # ais_bench's form keeps the last batch's outputs, as its pure mode does
            created += _check_output_folder(settings.result_dir, [os.path.join(settings.result_dir, result_filename(
                PURE_INFER_NAME, settings.outfmt, 0, settings.style))], [model])
        return _pure(model, output, pure_data, seed, write_summary, settings, cls, perf_name, summary_file)
    except BaseException:
        remove_empty_folders(created)  # a refused run leaves no empty output folder behind
        raise


def _pure(model: str, output: Optional[str], pure_data: str, seed: int, write_summary: bool, settings: RunSettings,
          cls, perf_name: Optional[str], summary_file: Optional[str]) -> dict:
    """The timed loop and the files, once the arguments and the output folder are checked."""
    loop = settings.loop
    with settings.opened(model, cls) as be:
        bs = resolve_batch_size(be, settings.batch_size, hint=settings.batch_hint)
        # The generated batch, the warm-up's and the runtime's copy.
        check_batch_memory(bs, be.sample_bytes, 2)
        shape = (bs,) + tuple(be.input_shape)
        if pure_data == "zeros":
            data = np.zeros(shape, dtype=be.input_dtype)
        else:
            data = np.random.default_rng(seed).standard_normal(shape).astype(be.input_dtype)
        warm_up(be, bs, settings.warmup)
        load_before = load_average()
        run_seconds: List[float] = []
        outputs = None
        started = time.time()
        with progress_bar(loop, "pure inference", settings.progress, unit="batch") as bar:
            for _ in range(loop):
                t0 = time.perf_counter()
                outputs = be.run(data)
                run_seconds.append(time.perf_counter() - t0)
                bar.update(1)
        ended = time.time()
        phases = run_phases(be, bs * loop, run_seconds)
        compute_list = compute_ms(be, run_seconds)
    compute = phases.get("compute", phases["run"])
    mean_ms = compute["latency_ms"]["mean"]
    summary = {"model": model, "device_id": settings.device_id, "pure_data": pure_data, "batch_size": bs,
               "loop": loop, "warmup": settings.warmup,
               "throughput_images_per_s": 1000.0 * bs / mean_ms if mean_ms else 0.0, "phases": phases,
               "compute_ms": compute_list, "started": started, "ended": ended,
               # the 1-minute load before and after the timed batches: figures taken on a busy host
               # are lower, and runtimes can swap places, so the table shows it beside them
               "load_average": [x for x in (load_before, load_average()) if x is not None]}
    summary.update(backend_facts(be))
    if settings.result_dir and outputs is not None:
        # ais_bench's pure mode saves each output of its one batch whole (`pure_infer_data_{k}`).
        summary["result_dir"] = settings.result_dir
        summary["result_paths"] = [write_result(settings.result_dir, PURE_INFER_NAME, out, settings.outfmt, index=k,
                                                style=settings.style) for k, out in enumerate(outputs)]
    summary["definitions"] = DEFINITIONS
    # Two files written whole by rename: no lock, and no bookkeeping left in the output folder.
    if output and perf_name is not None:
        summary["perf_file"] = os.path.join(output, perf_name)
        atomic_write_text(summary["perf_file"], format_pure_perf(summary["throughput_images_per_s"], mean_ms))
    if output and write_summary:
        summary["summary_file"] = summary_file
        write_json(summary_file, summary)
    return summary


def load_average() -> Optional[float]:
    """The host's 1-minute load average (`os.getloadavg`), or None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _check_output_folder(output: str, files: Sequence[str], inputs: Sequence[str]) -> List[str]:
    """Pure inference's outputs, before the load: a folder that can be made and written, files
    that are neither an input nor a special file. Returns the folders it made."""
    created = make_folder(output)
    try:
        for f in files:
            check_output(f, inputs, what="output")
    except BaseException:
        remove_empty_folders(created)
        raise
    return created

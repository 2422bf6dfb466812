"""Stage 5: run preprocessed `.bin` files through a model and write the benchmark's outputs.

This module orchestrates a run: it lists and checks the inputs (`inputs`), opens the backend,
settles the batch size, warms up, runs the thread pipeline (`pipeline`) and writes the perf file
and summary.json (`perf`). Pure inference times generated batches instead of files, and shares
the same path for assembling phases and writing the summary.

Before any batch runs, every input file is checked with `os.stat` against the model's
per-sample input size; for ONNX and PyTorch the model's input is read from the file before the
runtime starts, for an `.om` it is read from the model description right after the load (the
only place pyACL gives it), before anything is copied or executed.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Type, Union

import numpy as np

from .backends import Backend, Probe, choose_backend, open_backend
from .errors import UserError
from .formats import (
    RESULT_FORMATS,
    atomic_write_text,
    format_pure_perf,
    is_result_name,
    natural_key,
    perf_filename,
    pure_perf_filename,
    result_filename,
    write_json,
)
from .inputs import check_input_sizes, check_names, list_inputs, stat_inputs
from .perf import DEFINITIONS, SUMMARY_NAME, perf_text
from .pipeline import plan_batches, run_pipeline
from .progress import log, progress_bar
from .stats import phase, rate
from .stream import StreamOptions, open_feed

RESULT_SUBDIR = "dumpOutput_device{device_id}"
PURE_DATA = ("zeros", "random")


@dataclass
class RunSettings:
    """How to run: the options both modes share, and those of a file run."""

    batch_size: Optional[int] = None
    device_id: int = 0
    backend: Union[str, Backend] = "auto"
    providers: Optional[Sequence[str]] = None
    warmup: int = 1
    loop: int = 1
    threads: int = 0
    outfmt: str = "txt"
    progress: Optional[bool] = None
    expect_hw: Optional[Tuple[int, int]] = None
    stream: Optional[StreamOptions] = None  # how images are decoded when the input holds images

    def check(self) -> None:
        if self.loop < 1 or self.warmup < 0:
            raise UserError(f"--loop must be >= 1 and --warmup >= 0 (got {self.loop} and {self.warmup})")


def resolve_batch_size(backend: Backend, requested: Optional[int]) -> int:
    """The run's batch size: the model's own when fixed, else the request (default 1, or the
    largest size a dynamic-batch OM lists)."""
    if requested is not None and requested < 1:
        raise UserError(f"--batch-size must be >= 1, got {requested}")
    fixed = backend.batch_size
    if fixed is not None:
        if requested is not None and requested != fixed:
            raise UserError(f"--batch-size {requested} does not fit {backend.model_path}: the model has a fixed "
                            f"batch of {fixed} (omit --batch-size, or export/convert the model at batch {requested})")
        return fixed
    choices = backend.batch_choices
    if choices:
        if requested is None:
            return max(choices)
        if requested not in choices:
            raise UserError(f"--batch-size {requested} does not fit {backend.model_path}: its dynamic batch sizes "
                            f"are {', '.join(map(str, choices))}")
        return requested
    return requested or 1


def _opened(model: str, settings: RunSettings, cls: Optional[Type[Backend]]):
    """A context manager over the backend: ours (class `cls`) is closed on every exit path, the
    caller's (`cls` None) is not."""
    if cls is None:
        return contextlib.nullcontext(settings.backend)
    return open_backend(cls, model, device_id=settings.device_id, providers=settings.providers,
                        threads=settings.threads)


def _chosen(model: str, settings: RunSettings) -> Optional[Type[Backend]]:
    """The backend class to load, chosen once; None when the caller passed an open backend."""
    return None if isinstance(settings.backend, Backend) else choose_backend(model, settings.backend)


def _probe(cls: Optional[Type[Backend]], model: str) -> Optional[Probe]:
    """The model's input read from its file before any runtime starts, where the backend can."""
    if cls is None or not os.path.isfile(model):
        return None  # a missing model: open_backend gives the error
    return cls.probe(model)


def _check_hw(backend: Backend, expect_hw: Optional[Tuple[int, int]]) -> None:
    if expect_hw is None:
        return
    w, h = expect_hw
    shape = backend.input_shape
    if len(shape) < 2 or (shape[-1], shape[-2]) != (w, h):
        raise UserError(f"-input_width={w} -input_height={h} do not match {backend.describe()}")


def _warm_up(backend: Backend, batch_size: int, warmup: int) -> None:
    if warmup > 0:
        dummy = np.zeros((batch_size,) + tuple(backend.input_shape), dtype=backend.input_dtype)
        for _ in range(warmup):
            backend.run(dummy)
    backend.timing.clear()


def _run_phases(be: Backend, images: int, run_seconds: Sequence[float]) -> Dict[str, object]:
    """`run` and the phases the backend separates (h2d, compute, d2h), in that order."""
    phases = {"run": phase(images, run_seconds)}
    for name, seconds in be.timing.phases():
        phases[name] = phase(images, seconds)
    return phases


def _finish(summary: dict, be: Backend, output: Optional[str], perf_name: str, perf: str) -> None:
    """Complete `summary` with what both modes report; with an `output` folder, write the perf
    file and summary.json there."""
    summary["definitions"] = DEFINITIONS
    if be.name == "onnxruntime":
        summary["providers"] = list(getattr(be, "providers", []))
    if not output:
        return
    os.makedirs(output, exist_ok=True)
    summary["perf_file"] = os.path.join(output, perf_name)
    atomic_write_text(summary["perf_file"], perf)
    summary["summary_file"] = os.path.join(output, SUMMARY_NAME)
    write_json(summary["summary_file"], summary)


def run_inference(model: str, input_path: str, output: str = "result", **options) -> dict:
    """Run every input through the model; write result files, the perf file and summary.json.

    `options` are `RunSettings` fields. Its `backend` is a name (`auto`, `acl`, `onnxruntime`,
    `torch`) or an open `Backend`, which the caller keeps ownership of. Returns the summary dict
    that summary.json holds.
    """
    settings = RunSettings(**options)
    outfmt = settings.outfmt
    if outfmt not in RESULT_FORMATS:
        raise UserError(f"unknown --outfmt {outfmt!r} (choose from {', '.join(RESULT_FORMATS)})")
    settings.check()
    feed = open_feed(input_path, settings.stream)  # images: decoded as they are run (stream.py)
    if feed is None:
        paths, source = list_inputs(input_path)
        check_names(paths, outfmt)
        sizes = stat_inputs(paths, source)
    cls = _chosen(model, settings)
    probed = _probe(cls, model)
    if probed is not None and feed is None:
        # Checked before any runtime starts: a wrong input never reaches the device.
        check_input_sizes(paths, sizes, probed.sample_bytes, probed.describe(model))
    with feed or contextlib.nullcontext(), _opened(model, settings, cls) as be:
        if feed is not None:
            feed.check_model(be)
            paths = feed.names  # filled, with the plan, as the images arrive
        elif probed is None:  # only the loaded runtime can tell (an .om), or the caller's backend
            check_input_sizes(paths, sizes, be.sample_bytes, be.describe())
        _check_hw(be, settings.expect_hw)
        bs = resolve_batch_size(be, settings.batch_size)
        plan = feed.plan if feed is not None else plan_batches(len(paths), bs, be)
        _warm_up(be, bs, settings.warmup)
        result_dir = os.path.join(output, RESULT_SUBDIR.format(device_id=settings.device_id))
        os.makedirs(result_dir, exist_ok=True)
        bar = progress_bar(feed.total if feed is not None else len(paths), "infer", settings.progress)
        times = run_pipeline(be, paths, plan, bs, result_dir, outfmt, settings.loop, bar,
                             make_reader=feed.reader(bs, be) if feed is not None else None)
        n = len(paths)
        phases = {"read": phase(n, times.read), "preprocess": phase(n, times.prepare)}
        phases.update(_run_phases(be, n * settings.loop, times.run))
        phases["write"] = phase(n, times.write)
    summary = {"images": n, "batch_size": bs, "batches": times.batches, "padded_images": times.padded_images,
               "result_files": times.result_files, "wall_seconds": times.wall,
               "e2e": {"throughput_images_per_s": rate(n, times.wall), "latency_ms": times.wall * 1000.0},
               "phases": phases}
    _verify_results(result_dir, paths, outfmt, times.n_outputs, summary)
    summary.update({"model": model, "backend": be.name, "device": be.device, "device_id": settings.device_id,
                    "input": input_path, "outfmt": outfmt, "warmup": settings.warmup, "loop": settings.loop,
                    "model_batch_size": be.batch_size, "result_dir": result_dir})
    if feed is not None:
        feed.report(summary, output)
    _finish(summary, be, output, perf_filename(bs, settings.device_id), perf_text(summary))
    return summary


def _verify_results(result_dir: str, paths, fmt: str, n_outputs: int, summary: dict) -> None:
    """N inputs must have given exactly N result files per output; stale ones are pointed out."""
    expected = {result_filename(p, fmt, k) for p in paths for k in range(1, n_outputs + 1)}
    present = {e.name for e in os.scandir(result_dir) if e.is_file() and is_result_name(e.name)}
    missing = expected - present
    if missing or summary["result_files"] != len(expected):
        example = sorted(missing, key=natural_key)[:3]
        raise UserError(f"{result_dir}: {len(paths)} inputs gave {len(expected) - len(missing)} of "
                        f"{len(expected)} result files (missing e.g. {', '.join(example) or '-'})")
    stale = present - expected
    summary["stale_result_files"] = len(stale)
    if stale:
        log.warning(f"{result_dir} also holds {len(stale)} result files from an earlier run "
            f"(e.g. {sorted(stale, key=natural_key)[0]}); a metric over the folder would count them")


def run_pure_inference(model: str, output: Optional[str] = None, pure_data: str = "zeros", seed: int = 0,
                       **options) -> dict:
    """Time `loop` batches of generated data (after `warmup` untimed ones): throughput and
    latency only, as ais_bench's pure-data mode. `options` are `RunSettings` fields (`loop`
    defaults to 10 here). Writes summary.json and the benchmark's PureInfer perf file under
    `output` when given."""
    options.setdefault("loop", 10)
    settings = RunSettings(**options)
    if pure_data not in PURE_DATA:
        raise UserError(f"unknown --pure-data {pure_data!r} (choose from {', '.join(PURE_DATA)})")
    settings.check()
    loop = settings.loop
    with _opened(model, settings, _chosen(model, settings)) as be:
        bs = resolve_batch_size(be, settings.batch_size)
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
               "throughput_images_per_s": 1000.0 * bs / mean_ms if mean_ms else 0.0,
               "phases": phases}
    _finish(summary, be, output, pure_perf_filename(model, settings.device_id),
            format_pure_perf(summary["throughput_images_per_s"], mean_ms))
    return summary

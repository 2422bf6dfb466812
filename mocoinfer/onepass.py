"""One pass of an inference run on one device: the steps every kind of run shares, written once.

`run_pass` takes an open backend and a source (`.bin` files, streamed images: `sources.py`) and
does what a run does between loading the model and writing its summary: check the model takes
what the source gives, settle the batch size, check the host memory, warm up, run the pipeline
(`pipeline.py`), time the phases and verify that N inputs gave N result files per output. The
runner calls it for one device, each worker process of `devices.py` for its share, so a run
on one device and a run on four compute and report the same way. Pure inference (`pure.py`)
uses the same opening, batch and warm-up steps on generated batches.

`RunSettings` holds how to run; the front ends (the benchmark's, ais_bench's, the own form)
translate their flags into it. Nothing here imports the runner, the devices fan-out or a front end.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, Type, Union

import numpy as np

from .backends import Backend, Probe, choose_backend, open_backend
from .errors import UserError
from .formats import BENCHMARK_STYLE, STYLES, is_result_name, natural_key, result_filename
from .pipeline import batch_buffers, run_pipeline
from .progress import log
from .sizes import available_memory, two_sizes
from .stats import phase, rate

RESULT_SUBDIR = "dumpOutput_device{device_id}"


@dataclass
class RunSettings:
    """How to run: what every kind of run shares (a front end's flags, translated)."""

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
    #: redo every input, deleting the results the result folder's manifest lists
    overwrite: bool = False
    #: reuse a finished run's proven results (an interrupted run's are reused without it)
    resume: bool = False
    #: the result folder, when not the benchmark's `dumpOutput_device{id}` in the output folder
    result_dir: Optional[str] = None
    #: the summary file, when not summary.json in the output folder
    summary_file: Optional[str] = None
    write_perf: bool = True
    #: the number of the first output in result names: 1 as the benchmark, 0 as ais_bench
    first_index: int = 1
    #: fp32, or bf16 / fp16 where the backend takes them (torch; fp16 with ORT's TensorRT provider)
    precision: str = "fp32"
    #: the result files' names and bytes: the benchmark's, or ais_bench's (`formats.STYLES`)
    style: str = BENCHMARK_STYLE
    #: ais_bench's --batchsize: the batch where the model's batch axis is free; a fixed batch is
    #: kept (with a note), as ais_bench only scales its throughput figure by it
    batch_hint: Optional[int] = None

    def check(self) -> None:
        """Every range, before any file is read or any runtime starts."""
        if self.loop < 1 or self.warmup < 0:
            raise UserError(f"--loop must be >= 1 and --warmup >= 0 (got {self.loop} and {self.warmup})")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.device_id < 0:
            raise UserError(f"--device-id must be >= 0, got {self.device_id}")
        if self.style not in STYLES:
            raise UserError(f"unknown result file style {self.style!r} (choose from {', '.join(STYLES)})")
        if self.threads < 0:
            raise UserError(f"--threads must be >= 0 (0: one per usable CPU), got {self.threads}")
        if self.overwrite and self.resume:
            raise UserError("--overwrite and --resume contradict each other: --overwrite recomputes every "
                            "result, --resume reuses the proven ones; give one")

    def backend_class(self, model: str) -> Optional[Type[Backend]]:
        """The backend class to load, chosen once; None when the caller passed an open backend."""
        return None if isinstance(self.backend, Backend) else choose_backend(model, self.backend)

    def opened(self, model: str, cls: Optional[Type[Backend]]):
        """A context manager over the backend: ours (class `cls`) is closed on every exit path,
        the caller's (`cls` None) is not."""
        if cls is None:
            return contextlib.nullcontext(self.backend)
        return open_backend(cls, model, device_id=self.device_id, providers=self.providers,
                            threads=self.threads, precision=self.precision)


def probe(cls: Optional[Type[Backend]], model: str) -> Optional[Probe]:
    """The model's input read from its file before any runtime starts, where the backend can."""
    if cls is None or not os.path.isfile(model):
        return None  # a missing model: open_backend gives the error
    return cls.probe(model)


def resolve_batch_size(backend: Backend, requested: Optional[int], n_inputs: Optional[int] = None,
                       hint: Optional[int] = None) -> int:
    """The run's batch size: the model's own when fixed, else the request (default 1, or the
    largest size a dynamic-batch OM lists). On a free batch axis a request above `n_inputs` is
    capped to it, with a note: a bigger batch would only allocate memory for nothing. `hint`
    (ais_bench's --batchsize) is a request that a fixed batch overrides, with a note."""
    if requested is not None and requested < 1:
        raise UserError(f"--batch-size must be >= 1, got {requested}")
    fixed = backend.batch_size
    if requested is None and hint is not None:
        if fixed is not None and hint != fixed:
            log.info(f"note: --batchsize {hint}: {backend.model_path} has a fixed batch of {fixed}, which the run "
                     f"uses; as in ais_bench, --batchsize {hint} only scales the throughput figure")
            return fixed
        if fixed is None and backend.batch_choices and hint not in backend.batch_choices:
            return max(backend.batch_choices)
        requested = hint
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
    if requested is not None and n_inputs is not None and requested > n_inputs > 0:
        log.info(f"note: --batch-size {requested} capped to {n_inputs}, the number of inputs to run")
        return n_inputs
    return requested or 1


def check_batch_memory(batch_size: int, sample_bytes: int, buffers: int) -> None:
    """Refuse a batch whose host buffers alone (`buffers` batches, plus the runtime's own copy of
    the input) would not fit in the memory available now, before anything is allocated."""
    need = (buffers + 1) * batch_size * sample_bytes
    free = available_memory()
    if free is not None and need > free:
        need_words, free_words = two_sizes(need, free)
        raise UserError(f"--batch-size {batch_size} needs about {need_words} of host memory for its input "
                        f"buffers alone ({batch_size} x {sample_bytes} bytes x {buffers + 1}), but only "
                        f"{free_words} is available: use a smaller batch")


def check_hw(backend: Backend, expect_hw: Optional[Tuple[int, int]]) -> None:
    """The benchmark's -input_width / -input_height against the model's image, in its layout."""
    if expect_hw is None:
        return
    w, h = expect_hw
    size = backend.image_size()
    if size != (w, h):
        seen = f"; its image is {size[0]}x{size[1]} ({backend.input_layout})" if size else ""
        raise UserError(f"-input_width={w} -input_height={h} do not match {backend.describe()}{seen}")


def warm_up(backend: Backend, batch_size: int, warmup: int) -> None:
    """`warmup` untimed batches of zeros; the backend's timing starts empty after them."""
    if warmup > 0:
        dummy = np.zeros((batch_size,) + tuple(backend.input_shape), dtype=backend.input_dtype)
        for _ in range(warmup):
            backend.run(dummy)
    backend.timing.clear()


def run_phases(be: Backend, images: int, run_seconds: Sequence[float]) -> Dict[str, object]:
    """`run` and the phases the backend separates (h2d, compute, d2h), in that order."""
    phases = {"run": phase(images, run_seconds)}
    for name, seconds in be.timing.phases():
        phases[name] = phase(images, seconds)
    return phases


def compute_ms(be: Backend, run_seconds: Sequence[float]) -> List[float]:
    """Each timed execution's compute time in ms (ais_bench's `npu_compute_time_list`): the
    runtime's compute phase where it separates one, else the whole run call."""
    seconds = dict(be.timing.phases()).get("compute", run_seconds)
    return [1000.0 * t for t in seconds]


def backend_facts(be: Backend) -> Dict[str, object]:
    """What every summary says of the runtime that ran: its device, precision, the label of its
    compute phase (ais_bench's `NPU_compute_time` on an NPU), and what it adds itself."""
    facts = {"backend": be.name, "device": be.device, "precision": getattr(be, "precision", "fp32"),
             "compute_label": be.compute_label, "model_batch_size": be.batch_size}
    facts.update(be.summary_extras())
    return facts


def check_against_model(be: Backend, source, settings: RunSettings) -> int:
    """What the open model says of the run's arguments: the inputs it takes, the benchmark's
    -input_width/-input_height, the batch size; returns the batch size. Also run when every
    result is proven and nothing runs, so arguments are checked the same either way."""
    source.check_model(be)
    check_hw(be, settings.expect_hw)
    return resolve_batch_size(be, settings.batch_size, source.batch_cap, settings.batch_hint)


def run_pass(be: Backend, source, settings: RunSettings, result_dir: str, bar, cancel=None,
             on_written: Optional[Callable[[int, int, str], None]] = None,
             on_batch: Optional[Callable[[], None]] = None,
             check_batch: Optional[Callable[[int], None]] = None) -> dict:
    """Run `source`'s inputs through the open backend `be` into `result_dir`; the pass's summary.

    `source` (`sources.FileSource`, `sources.ImageSource`) checks the model against what it
    gives, plans the batches and hands the pipeline its reader. `on_written(i, k, name)` is called
    once result `name` of input i (the source's own index) is in place; `cancel` stops the pass
    between batches (another device of the run failed); `check_batch(batch_size)` runs once
    the batch size is settled, before the warm-up.
    """
    bs = check_against_model(be, source, settings)
    check_batch_memory(bs, be.sample_bytes, batch_buffers(bs * be.sample_bytes))
    if check_batch is not None:  # what needs the batch size (a perf file's name), before any batch runs
        check_batch(bs)
    plan = source.plan(bs, be)
    warm_up(be, bs, settings.warmup)
    written = None if on_written is None else (lambda i, k, name: on_written(source.index(i), k, name))
    times = run_pipeline(be, source.names, plan, bs, result_dir, settings.outfmt, settings.loop, bar,
                         first_index=settings.first_index, on_written=written, on_batch=on_batch, cancel=cancel,
                         style=settings.style, **source.pipeline_options(bs, be))
    n = len(source.names)
    phases = {"read": phase(n, times.read), "preprocess": phase(n, times.prepare)}
    phases.update(run_phases(be, n * settings.loop, times.run))
    compute_list = compute_ms(be, times.run)
    phases["write"] = phase(n, times.write)
    summary = {"images": n, "batch_size": bs, "batches": times.batches, "padded_images": times.padded_images,
               "result_files": times.result_files, "wall_seconds": times.wall,
               "e2e": {"throughput_images_per_s": rate(n, times.wall), "latency_ms": times.wall * 1000.0},
               "phases": phases, "device_id": settings.device_id, "warmup": settings.warmup,
               "loop": settings.loop, "n_outputs": times.n_outputs, "input_files": source.describe(be),
               "result_dir": result_dir, "first_read": times.started, "last_write": times.ended,
               "compute_ms": compute_list}
    summary.update(backend_facts(be))
    verify_results(result_dir, source.names, settings.outfmt, times.n_outputs, times.result_files,
                   settings.first_index, settings.style)
    return summary


def result_names(names: Sequence[str], fmt: str, ks: Sequence[int], style: str = BENCHMARK_STYLE) -> Set[str]:
    """The result file names that inputs `names` give for the outputs numbered `ks`."""
    ks = list(ks)
    if not names or not ks:
        return set()
    if style != BENCHMARK_STYLE:
        return {result_filename(p, fmt, k, style) for p in names for k in ks}
    result_filename(names[0], fmt)  # refuses an unknown format
    # result_filename's stem once per input, not once per input and output: 50,000 names twice a run.
    suffixes = [f"_{k}.{fmt}" for k in ks]
    return {os.path.splitext(os.path.basename(p))[0] + suffix for p in names for suffix in suffixes}


def results_in(result_dir: str) -> Set[str]:
    """The names of the result files in a folder (what a metric over it would read)."""
    return {e.name for e in os.scandir(result_dir)
            if e.is_file() and is_result_name(e.name) and not e.name.startswith(".")}


def verify_results(result_dir: str, names: Sequence[str], fmt: str, n_outputs: int, written: int,
                   first_index: int = 1, style: str = BENCHMARK_STYLE) -> None:
    """The N inputs run must have given exactly N result files per output, all in place."""
    expected = result_names(names, fmt, range(first_index, first_index + n_outputs), style)
    missing = expected - results_in(result_dir)
    if missing or written != len(expected):
        example = sorted(missing, key=natural_key)[:3]
        raise UserError(f"{result_dir}: {len(names)} inputs gave {len(expected) - len(missing)} of "
                        f"{len(expected)} result files (missing e.g. {', '.join(example) or '-'})")


def warn_stale_results(result_dir: str, names: Sequence[str], fmt: str, n_outputs: int, first_index: int,
                       summary: dict, style: str = BENCHMARK_STYLE) -> None:
    """Point out result files in the folder that none of the run's inputs (`names`, skipped ones
    included) gives: a metric over the folder would count them."""
    expected = result_names(names, fmt, range(first_index, first_index + n_outputs), style)
    stale = results_in(result_dir) - expected
    summary["stale_result_files"] = len(stale)
    if stale:
        log.warning(f"{result_dir} also holds {len(stale)} result files from an earlier run "
                    f"(e.g. {sorted(stale, key=natural_key)[0]}); a metric over the folder would count them")

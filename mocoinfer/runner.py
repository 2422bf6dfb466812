"""Stage 5: run preprocessed `.bin` files through a model and write the benchmark's outputs.

This module orchestrates a run: it lists and checks the inputs (`inputs`), opens the backend,
settles the batch size, warms up, runs the thread pipeline (`pipeline`) and writes the perf file
and summary.json (`perf`). Pure inference (`pure.py`) times generated batches instead of files
and shares this module's steps for opening, warming up and writing the summary.

Before any batch runs, every input file is checked with `os.stat` against the model's
per-sample input size; for ONNX and PyTorch the model's input is read from the file before the
runtime starts, for an `.om` it is read from the model description right after the load (the
only place pyACL gives it), before anything is copied or executed.

The output side follows the output policy (`resume.ResultFolder`): every argument and output path
is checked before the model loads, the output folder is locked for the run, and the result
folder's manifest lets a rerun of the same command skip the inputs whose results it proves. A
run stopped by Ctrl-C or SIGTERM keeps its finished results, records them in the manifest and
writes a summary marked `"partial": true` before the stop reaches the caller.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, Type, Union

import numpy as np

from .atomic import atomic_write_text, check_output, write_json
from .backends import Backend, Probe, choose_backend, open_backend
from .errors import UserError
from .formats import RESULT_FORMATS, is_result_name, natural_key, perf_filename, result_filename
from .inputs import InputKind, check_names, input_kind, list_inputs, list_many, stat_inputs
from .perf import DEFINITIONS, SUMMARY_NAME, perf_text
from .pipeline import batch_buffers, plan_batches, run_pipeline
from .progress import log, progress_bar
from .resume import ResultFolder, model_identity
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
    #: redo every input, deleting the results the result folder's manifest lists
    overwrite: bool = False
    #: where results, the summary and the perf file go when not the benchmark's layout (ais_bench)
    result_dir: Optional[str] = None
    summary_file: Optional[str] = None
    write_perf: bool = True
    #: the number of the first output in result names: 1 as the benchmark, 0 as ais_bench
    first_index: int = 1
    #: turns the summary dict into the document written to the summary file (ais_bench's keys)
    summary_doc: Optional[Callable[[dict], dict]] = None
    #: fp32, or bf16 / fp16 where the backend takes them (torch; fp16 with ORT's TensorRT provider)
    precision: str = "fp32"
    #: how images are decoded when the input holds images (streaming, `stream.py`)
    stream: Optional[StreamOptions] = None

    def summary_path(self, output: str) -> str:
        """Where the run's summary goes: `summary_file` (ais_bench's), else summary.json in `output`."""
        return self.summary_file or os.path.join(output, SUMMARY_NAME)

    def check(self) -> None:
        """Every range, before any file is read or any runtime starts."""
        if self.loop < 1 or self.warmup < 0:
            raise UserError(f"--loop must be >= 1 and --warmup >= 0 (got {self.loop} and {self.warmup})")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.device_id < 0:
            raise UserError(f"--device-id must be >= 0, got {self.device_id}")
        if self.threads < 0:
            raise UserError(f"--threads must be >= 0 (0: one per usable CPU), got {self.threads}")


def resolve_batch_size(backend: Backend, requested: Optional[int], n_inputs: Optional[int] = None) -> int:
    """The run's batch size: the model's own when fixed, else the request (default 1, or the
    largest size a dynamic-batch OM lists). On a free batch axis a request above `n_inputs` is
    capped to it, with a note: a bigger batch would only allocate memory for nothing."""
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
    if requested is not None and n_inputs is not None and requested > n_inputs > 0:
        log.info(f"note: --batch-size {requested} capped to {n_inputs}, the number of inputs to run")
        return n_inputs
    return requested or 1


def _available_memory() -> Optional[int]:
    """MemAvailable from /proc/meminfo in bytes, or None where the OS does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_batch_memory(batch_size: int, sample_bytes: int, buffers: int) -> None:
    """Refuse a batch whose host buffers alone (`buffers` batches, plus the runtime's own copy of
    the input) would not fit in the memory available now, before anything is allocated."""
    need = (buffers + 1) * batch_size * sample_bytes
    free = _available_memory()
    if free is not None and need > free:
        raise UserError(f"--batch-size {batch_size} needs about {need / 2**30:.1f} GiB of host memory for its input "
                        f"buffers alone ({batch_size} x {sample_bytes} bytes x {buffers + 1}), but only "
                        f"{free / 2**30:.1f} GiB is available: use a smaller batch")


def _opened(model: str, settings: RunSettings, cls: Optional[Type[Backend]]):
    """A context manager over the backend: ours (class `cls`) is closed on every exit path, the
    caller's (`cls` None) is not."""
    if cls is None:
        return contextlib.nullcontext(settings.backend)
    return open_backend(cls, model, device_id=settings.device_id, providers=settings.providers,
                        threads=settings.threads, precision=settings.precision)


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
    # Read in the input's layout: an AIPP .om takes NHWC 224x224x3, the guide's ONNX model NCHW.
    size = backend.image_size()
    if size != (w, h):
        seen = f"; its image is {size[0]}x{size[1]} ({backend.input_layout})" if size else ""
        raise UserError(f"-input_width={w} -input_height={h} do not match {backend.describe()}{seen}")


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


def _finish(summary: dict, be: Backend, output: Optional[str], perf_name: Optional[str], perf: str,
            summary_file: Optional[str] = None, doc: Optional[Callable[[dict], dict]] = None) -> None:
    """Complete `summary` with what both modes report; with an `output` folder, write the perf
    file (unless `perf_name` is None) and the summary (summary.json, or `summary_file`) there."""
    summary["definitions"] = DEFINITIONS
    if be.name == "onnxruntime":
        summary["providers"] = list(getattr(be, "providers", []))
    if not output:
        return
    if perf_name is not None:
        summary["perf_file"] = os.path.join(output, perf_name)
        atomic_write_text(summary["perf_file"], perf)
    write_summary(summary, summary_file or os.path.join(output, SUMMARY_NAME), doc)


def write_summary(summary: dict, path: str, doc: Optional[Callable[[dict], dict]] = None) -> None:
    """The summary at `path` (recorded in it as summary_file), as `doc` makes it when given."""
    summary["summary_file"] = path
    write_json(path, doc(summary) if doc else summary)


def run_inference(model: str, input_path: Union[str, Sequence[str]], output: str = "result", **options) -> dict:
    """Run every input through the model; write result files, the perf file and summary.json.

    `options` are `RunSettings` fields. Its `backend` is a name (`auto`, `acl`, `onnxruntime`,
    `torch`) or an open `Backend`, which the caller keeps ownership of. Inputs whose results the
    result folder's manifest proves are skipped (`overwrite` redoes them). Returns the summary
    dict that summary.json holds. `input_path` may be a list (ais_bench's comma list).
    `device_id` may list several devices ("0,1,2,3" or a list): one worker process per device
    (`mocoinfer.devices`), every result in the first device's result folder.
    """
    from .devices import parse_device_ids

    device_ids = parse_device_ids(options.get("device_id", 0))
    options["device_id"] = device_ids[0]
    settings = RunSettings(**options)
    outfmt = settings.outfmt
    if outfmt not in RESULT_FORMATS:
        raise UserError(f"unknown --outfmt {outfmt!r} (choose from {', '.join(RESULT_FORMATS)})")
    settings.check()
    if isinstance(input_path, str):
        feed = open_feed(input_path, settings.stream)  # images: decoded as they are run (stream.py)
        if feed is not None:
            from .stream import run_streamed

            if len(device_ids) > 1:
                raise UserError(f"{input_path}: streamed images run on one device; give one --device-id, or "
                                f"preprocess them to .bin files for --device-id {','.join(map(str, device_ids))}")

            return run_streamed(model, input_path, output, settings, _chosen(model, settings), feed)
        paths, source = list_inputs(input_path)
    else:
        paths, source = list_many(input_path)
        input_path = ",".join(input_path)
    check_names(paths, outfmt)
    sizes = stat_inputs(paths, source)
    cls = _chosen(model, settings)
    if cls is not None:
        cls.check_precision(model, settings.precision)
    backend_name = cls.name if cls is not None else settings.backend.name  # type: ignore[union-attr]
    result_dir = settings.result_dir or os.path.join(output, RESULT_SUBDIR.format(device_id=settings.device_id))
    summary_file = settings.summary_path(output)
    probed = _probe(cls, model)
    kind = None
    if probed is not None:
        # Checked before any runtime starts or any output is made: a wrong input never reaches the device.
        kind = input_kind(paths, sizes, probed.shape, probed.dtype, probed.describe(model))
    folder = ResultFolder(output, result_dir, outfmt, settings.first_index, settings.overwrite)
    # The perf file's name needs the batch size, known after the load; its folder is checked here.
    folder.check_paths(paths, [model] + input_path.split(","), [summary_file])
    with folder.locked():
        identity = model_identity(model)
        recorded = dict(identity, backend=backend_name, outfmt=outfmt, first_index=settings.first_index,
                        input=",".join(os.path.abspath(p) for p in input_path.split(",")),
                        batch_size=settings.batch_size)
        todo = folder.plan(paths, recorded)
        skipped = len(paths) - len(todo)
        base = {"model": model, "backend": backend_name, "device_id": settings.device_id, "input": input_path,
                "outfmt": outfmt, "inputs": len(paths), "skipped": skipped, "result_dir": result_dir}
        if not todo:
            folder.finish()
            return dict(base, images=0, nothing_to_do=True)
        if skipped:
            log.info(f"note: skipping {skipped} of {len(paths)} inputs whose results in {result_dir} are proven "
                     "by its manifest (--overwrite redoes them)")
        run_paths = [paths[i] for i in todo]
        if len(device_ids) > 1:
            from .devices import run_resumable

            return run_resumable(model, input_path, output, settings, device_ids, kind, folder, paths, sizes, todo,
                                 base)
        try:
            summary = _run_files(model, settings, cls, kind, folder, run_paths, todo, sizes, dict(base),
                                 paths)
        except KeyboardInterrupt as exc:
            _record_partial(folder, base, summary_file, exc, settings.summary_doc)
            raise
        except BaseException:
            with contextlib.suppress(UserError, OSError):
                folder.flush()
            raise
    return summary


def _run_files(model: str, settings: RunSettings, cls, kind: Optional[InputKind], folder: ResultFolder,
               paths: List[str], todo: List[int], sizes: Sequence[int], base: dict,
               all_paths: Sequence[str]) -> dict:
    """The run over the inputs not yet done: load, warm up, pipeline, verify, summary files."""
    outfmt, output = settings.outfmt, folder.output
    with _opened(model, settings, cls) as be:
        if kind is None:  # only the loaded runtime can tell (an .om), or the caller's backend
            kind = input_kind(paths, [sizes[i] for i in todo], be.input_shape, be.input_dtype, be.describe())
        _check_hw(be, settings.expect_hw)
        bs = resolve_batch_size(be, settings.batch_size, len(paths))
        batch_bytes = bs * be.sample_bytes
        check_batch_memory(bs, be.sample_bytes, batch_buffers(batch_bytes))
        perf_name = perf_filename(bs, settings.device_id) if settings.write_perf else None
        if perf_name is not None:
            check_output(os.path.join(output, perf_name), [model] + base["input"].split(","), what="perf file")
        plan = plan_batches(len(paths), bs, be)
        _warm_up(be, bs, settings.warmup)
        bar = progress_bar(len(paths), "infer", settings.progress)
        times = run_pipeline(be, paths, plan, bs, folder.result_dir, outfmt, settings.loop, bar,
                             first_index=settings.first_index, digests=folder.digests, index_of=todo,
                             on_written=lambda i, k, name: folder.record(todo[i], k, name),
                             on_batch=folder.maybe_flush, host_normalize=kind.host_normalize)
        n = len(paths)
        phases = {"read": phase(n, times.read), "preprocess": phase(n, times.prepare)}
        phases.update(_run_phases(be, n * settings.loop, times.run))
        phases["write"] = phase(n, times.write)
    summary = dict(base)
    summary.update({"images": n, "batch_size": bs, "batches": times.batches, "padded_images": times.padded_images,
                    "result_files": times.result_files, "wall_seconds": times.wall,
                    "e2e": {"throughput_images_per_s": rate(n, times.wall), "latency_ms": times.wall * 1000.0},
                    "phases": phases})
    _verify_results(folder.result_dir, paths, outfmt, times.n_outputs, summary, settings.first_index,
                    all_paths)
    folder.finish(times.n_outputs)
    summary.update({"device": be.device, "warmup": settings.warmup, "loop": settings.loop,
                    "model_batch_size": be.batch_size, "precision": getattr(be, "precision", "fp32"),
                    "input_files": _input_files(kind, be), "n_outputs": times.n_outputs})
    _finish(summary, be, output, perf_name, perf_text(summary), settings.summary_file, settings.summary_doc)
    return summary


def _input_files(kind: InputKind, be: Backend) -> str:
    if kind.host_normalize:
        return "uint8 pixels, normalised on the host"
    return f"{be.input_dtype.name}, as the model takes them"


def _record_partial(folder: ResultFolder, base: dict, summary_file: str, exc: BaseException,
                    doc: Optional[Callable[[dict], dict]] = None) -> None:
    """After Ctrl-C or SIGTERM: the finished results go into the manifest (still incomplete) and a
    summary marked partial says how far the run got. A fault here must not hide the stop."""
    signal_name = "SIGTERM" if getattr(exc, "signum", None) == 15 else "SIGINT"
    with contextlib.suppress(UserError, OSError):
        folder.flush()
    done = folder.done_inputs()
    summary = dict(base, partial=True, stopped_by=signal_name, images=done, result_files=len(folder.done),
                   summary_file=summary_file)
    with contextlib.suppress(UserError, OSError):
        write_json(summary_file, doc(summary) if doc else summary)


def _verify_results(result_dir: str, paths, fmt: str, n_outputs: int, summary: dict, first_index: int = 1,
                    all_paths: Optional[Sequence[str]] = None, warn_stale: bool = True) -> None:
    """The N inputs run must have given exactly N result files per output; result files of none
    of `all_paths` (the run's inputs, skipped ones included) are pointed out as stale (not by a
    device worker, whose folder also holds the other devices' results: its parent checks)."""
    ks = range(first_index, first_index + n_outputs)
    expected = result_names(paths, fmt, ks)
    present = _results_in(result_dir)
    missing = expected - present
    if missing or summary["result_files"] != len(expected):
        example = sorted(missing, key=natural_key)[:3]
        raise UserError(f"{result_dir}: {len(paths)} inputs gave {len(expected) - len(missing)} of "
                        f"{len(expected)} result files (missing e.g. {', '.join(example) or '-'})")
    if not warn_stale:  # a device worker's folder also holds the other devices' results: its parent checks
        return
    if all_paths is not None and len(all_paths) != len(paths):
        expected = result_names(all_paths, fmt, ks)
    warn_stale_results(result_dir, expected, summary, present)


def result_names(paths: Sequence[str], fmt: str, ks: Sequence[int]) -> Set[str]:
    """The result file names that `paths` give for the outputs numbered `ks`."""
    return {result_filename(p, fmt, k) for p in paths for k in ks}


def _results_in(result_dir: str) -> Set[str]:
    return {e.name for e in os.scandir(result_dir)
            if e.is_file() and is_result_name(e.name) and not e.name.startswith(".")}


def warn_stale_results(result_dir: str, expected: Set[str], summary: dict, present: Optional[Set[str]] = None) -> None:
    """Point out result files in the folder that are not `expected` (the names the run's inputs,
    skipped ones included, give): a metric over the folder would count them."""
    stale = (_results_in(result_dir) if present is None else present) - expected
    summary["stale_result_files"] = len(stale)
    if stale:
        log.warning(f"{result_dir} also holds {len(stale)} result files from an earlier run "
                    f"(e.g. {sorted(stale, key=natural_key)[0]}); a metric over the folder would count them")


def run_pure_inference(model: str, output: Optional[str] = None, pure_data: str = "zeros", seed: int = 0,
                       **options) -> dict:
    """Pure inference on generated data (`pure.run_pure_inference`, which see)."""
    from .pure import run_pure_inference as run

    return run(model, output, pure_data, seed, **options)

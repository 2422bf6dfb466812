"""Stage 5: run preprocessed `.bin` files through a model and write the benchmark's outputs.

The host side is a three-stage pipeline so that it never holds the device back:

    reader thread ──(bounded queue of batches)──▶ backend.run in this thread
                  ──(bounded queue of results)──▶ writer threads

The reader fills preallocated batch buffers with one `readinto` per file (no per-image arrays,
no concatenation) and pads a fixed-batch model's short last batch with copies of its first
sample, as ais_bench does; the writer writes one result file per real image, atomically. Both
queues are bounded (and the batch buffers recycled), so memory stays flat whatever the number
of images.

Before any batch runs, every input file is checked with `os.stat` against the model's
per-sample input size; for ONNX and PyTorch the model's input is read from the file before the
runtime starts, for an `.om` it is read from the model description right after the load (the
only place pyACL gives it), before anything is copied or executed.

What each reported figure counts (N = real images, padding excluded; batch figures per batch):
- e2e: N / wall time from the first file read to the last result written (load and warm-up excluded).
- data read: the reader's time inside file reads; preprocess: the reader's whole batch preparation
  (reads and padding; the `.bin` files are already preprocessed).
- infer: `backend.run` wall time (copies + compute + runtime overhead); Interface: compute only
  (pyACL: `acl.mdl.execute`; ONNX Runtime and PyTorch on CPU do everything in one call, so the two
  are nearly equal there); h2d / d2h: the copies, where the runtime separates them.
- post: the writer's time encoding and writing result files.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .backends import Backend, backend_for, open_backend
from .errors import UserError
from .formats import (
    RESULT_FORMATS,
    atomic_write_text,
    format_perf,
    format_pure_perf,
    is_result_name,
    natural_key,
    perf_filename,
    pure_perf_filename,
    read_info,
    result_filename,
    write_json,
    write_result,
)

RESULT_SUBDIR = "dumpOutput_device{device_id}"
SUMMARY_NAME = "summary.json"
PURE_DATA = ("zeros", "random")
# Read-ahead by bytes rather than batches: many small batches or a couple of big ones.
READ_AHEAD_BYTES = 64 << 20
MAX_READ_AHEAD = 32
WRITE_BEHIND_BATCHES = 64
# Creating, writing and renaming a small file is a few syscalls that release the GIL; on a VM
# they cost ~0.3 ms each, so one writer thread caps a run at ~1,300 files/s. Several writers
# overlap those waits.
WRITER_THREADS = 4
_POLL = 0.1  # seconds between checks of the stop flag while a thread waits on a queue

DEFINITIONS = {
    "e2e": "images / wall time from the first input read to the last result written "
           "(model load and warm-up excluded)",
    "read": "images / reader time inside file reads",
    "preprocess": "images / reader time preparing batches (reads and padding, waits excluded)",
    "run": "images / backend.run wall time (host-to-device + compute + device-to-host + runtime overhead)",
    "h2d": "images / host-to-device copy time",
    "compute": "images / compute time (acl: acl.mdl.execute; onnxruntime and CPU torch: the whole run call)",
    "d2h": "images / device-to-host copy time, fp16 to float32 conversion included",
    "write": "images / writer time encoding and writing result files (summed over the writer threads)",
    "latency_ms": "per batch, milliseconds",
    "images": "real inputs; padding of a short last batch is not counted in any rate",
}


# --------------------------------------------------------------------------- inputs

def list_inputs(input_path: str) -> Tuple[List[str], str]:
    """Input `.bin` paths in order, and a description of where they came from.

    A folder gives its `.bin` files in natural order; an info file gives its lines in order
    (relative paths against the current folder as the benchmark resolves them, else against the
    info file's folder); a single `.bin` file gives itself.
    """
    if os.path.isdir(input_path):
        names = [e.name for e in os.scandir(input_path)
                 if e.name.endswith(".bin") and not e.name.startswith(".") and e.is_file()]
        if not names:
            raise UserError(f"{input_path}: no .bin files in this folder")
        names.sort(key=natural_key)
        return [os.path.join(input_path, n) for n in names], f"folder {input_path}"
    if not os.path.exists(input_path):
        raise UserError(f"{input_path}: input not found (expected an info file or a folder of .bin files)")
    if input_path.endswith(".bin"):
        return [input_path], f"file {input_path}"
    base = os.path.dirname(os.path.abspath(input_path))
    paths = []
    for entry in read_info(input_path):
        p = entry.path
        if not os.path.isabs(p) and not os.path.exists(p) and os.path.exists(os.path.join(base, p)):
            p = os.path.join(base, p)
        paths.append(p)
    return paths, f"info file {input_path}"


def _stat_inputs(paths: Sequence[str], source: str) -> List[int]:
    sizes = []
    for i, p in enumerate(paths):
        try:
            sizes.append(os.stat(p).st_size)
        except FileNotFoundError:
            raise UserError(f"{p}: input file not found (entry {i} of {source})") from None
        except OSError as exc:
            raise UserError(f"{p}: cannot read input file ({exc.strerror})") from None
    return sizes


def _check_names(paths: Sequence[str], fmt: str) -> None:
    """Refuse two inputs that would write the same result file."""
    seen: Dict[str, str] = {}
    for p in paths:
        name = result_filename(p, fmt)
        if name in seen:
            raise UserError(f"{p}: writes the same result file {name} as {seen[name]}; input names must be unique")
        seen[name] = p


def check_input_sizes(paths: Sequence[str], sizes: Sequence[int], sample_bytes: int, model_desc: str) -> None:
    """Every input must hold exactly one sample of the model's input."""
    for p, size in zip(paths, sizes):
        if size != sample_bytes:
            raise UserError(f"{p}: {size} bytes, but {model_desc} takes {sample_bytes} bytes per sample")


def probe_model(backend_name: str, model_path: str):
    """(per-sample shape, dtype, fixed batch or None) read from the file without starting a
    runtime, or None where only the runtime can tell (an `.om` needs pyACL and the device)."""
    if not os.path.isfile(model_path):
        return None  # open_backend gives the error
    if backend_name == "onnxruntime":
        from .backends.onnxruntime import probe
        return probe(model_path)
    if backend_name == "torch":
        from .backends.torch import probe
        return probe(model_path)
    return None


# --------------------------------------------------------------------------- batch size

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


def plan_batches(n_images: int, batch_size: int, backend: Backend) -> List[Tuple[int, int, int]]:
    """(first image, real images, batch run) per batch. A fixed-batch model runs its short last
    batch padded to full size; a dynamic-batch OM pads to its smallest size that fits; a free
    batch axis runs it as it is."""
    plan = []
    for start in range(0, n_images, batch_size):
        n = min(batch_size, n_images - start)
        run = n
        if backend.batch_size is not None:
            run = backend.batch_size
        elif backend.batch_choices:
            run = min(b for b in backend.batch_choices if b >= n)
        plan.append((start, n, run))
    return plan


# --------------------------------------------------------------------------- statistics

def latency_stats(seconds: Sequence[float]) -> Dict[str, float]:
    """min/max/mean/median/p90/p99 in milliseconds."""
    if not len(seconds):
        return {}
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"min": float(ms.min()), "max": float(ms.max()), "mean": float(ms.mean()),
            "median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)), "count": int(ms.size)}


def _rate(images: float, seconds: float) -> float:
    return images / seconds if seconds > 0 else 0.0


def _phase(images: float, seconds: Sequence[float]) -> Dict[str, object]:
    return {"throughput_images_per_s": _rate(images, float(sum(seconds))), "seconds": float(sum(seconds)),
            "latency_ms": latency_stats(seconds)}


def _mean_ms(seconds: Sequence[float]) -> float:
    return float(np.mean(seconds)) * 1000.0 if len(seconds) else 0.0


# --------------------------------------------------------------------------- pipeline threads

class _Stop(Exception):
    """Raised inside a worker thread when the run is being abandoned."""


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            q.put(item, timeout=_POLL)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event):
    while True:
        if stop.is_set():
            raise _Stop
        try:
            return q.get(timeout=_POLL)
        except queue.Empty:
            continue


class _Reader(threading.Thread):
    """Fills recycled batch buffers from the input files, in order, ahead of the device."""

    def __init__(self, paths, plan, sample_bytes, free: queue.Queue, ready: queue.Queue, stop) -> None:
        super().__init__(name="mocoinfer-reader", daemon=True)
        self.paths, self.plan, self.sample_bytes = paths, plan, sample_bytes
        self.free, self.ready, self.stop = free, ready, stop
        self.read_seconds: List[float] = []
        self.prep_seconds: List[float] = []
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            sb = self.sample_bytes
            for start, n, n_run in self.plan:
                buf = _get(self.free, self.stop)
                t0 = time.perf_counter()
                view = memoryview(buf).cast("B")
                for i in range(n):
                    path = self.paths[start + i]
                    with open(path, "rb", buffering=0) as f:
                        got = f.readinto(view[i * sb:(i + 1) * sb])
                    if got != sb:
                        raise UserError(f"{path}: read {got} bytes, expected {sb} (file changed during the run?)")
                t1 = time.perf_counter()
                if n_run > n:
                    buf[n:n_run] = buf[0]
                t2 = time.perf_counter()
                self.read_seconds.append(t1 - t0)
                self.prep_seconds.append(t2 - t0)
                _put(self.ready, (start, n, n_run, buf), self.stop)
            _put(self.ready, None, self.stop)
        except _Stop:
            pass
        except BaseException as exc:  # the main thread sees the stop flag and raises it
            self.error = exc
            self.stop.set()


class _Writer(threading.Thread):
    """Writes one result file per real image per output, behind the device."""

    def __init__(self, folder, paths, fmt, todo: queue.Queue, stop) -> None:
        super().__init__(name="mocoinfer-writer", daemon=True)
        self.folder, self.paths, self.fmt, self.todo, self.stop = folder, paths, fmt, todo, stop
        self.seconds: List[float] = []
        self.written = 0
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            while True:
                item = _get(self.todo, self.stop)
                if item is None:
                    return
                start, n, outputs = item
                t0 = time.perf_counter()
                for k, out in enumerate(outputs, 1):
                    for i in range(n):
                        write_result(self.folder, self.paths[start + i], out[i], self.fmt, index=k)
                        self.written += 1
                self.seconds.append(time.perf_counter() - t0)
        except _Stop:
            pass
        except BaseException as exc:
            self.error = exc
            self.stop.set()


def _first_error(writers) -> Optional[BaseException]:
    return next((w.error for w in writers if w.error is not None), None)


def _raise_first(writers) -> None:
    error = _first_error(writers)
    if error is not None:
        raise error


def _read_ahead(batch_bytes: int) -> int:
    return max(2, min(MAX_READ_AHEAD, READ_AHEAD_BYTES // max(1, batch_bytes)))


# --------------------------------------------------------------------------- file mode

def _opened(backend: Union[str, Backend], model: str, device_id: int, providers, threads, precision="fp32"):
    """A context manager over the backend: ours is closed on every exit path, the caller's is not."""
    if isinstance(backend, Backend):
        return contextlib.nullcontext(backend)
    return open_backend(backend, model, device_id=device_id, providers=providers, threads=threads,
                        precision=precision)


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


def run_inference(model: str, input_path: str, output: str = "result", batch_size: Optional[int] = None,
                  device_id: int = 0, outfmt: str = "txt", backend: Union[str, Backend] = "auto",
                  providers: Optional[Sequence[str]] = None, warmup: int = 1, loop: int = 1, threads: int = 0,
                  progress: Optional[bool] = None, expect_hw: Optional[Tuple[int, int]] = None,
                  log=None, precision: str = "fp32") -> dict:
    """Run every input through the model; write result files, the perf file and summary.json.

    `backend` is a name (`auto`, `acl`, `onnxruntime`, `torch`) or an open `Backend`, which the
    caller keeps ownership of. Returns the summary dict that summary.json holds.
    """
    from tqdm import tqdm

    log = log or (lambda msg: print(msg, file=sys.stderr))
    if outfmt not in RESULT_FORMATS:
        raise UserError(f"unknown --outfmt {outfmt!r} (choose from {', '.join(RESULT_FORMATS)})")
    if loop < 1 or warmup < 0:
        raise UserError(f"--loop must be >= 1 and --warmup >= 0 (got {loop} and {warmup})")
    paths, source = list_inputs(input_path)
    _check_names(paths, outfmt)
    sizes = _stat_inputs(paths, source)
    name = backend.name if isinstance(backend, Backend) else backend_for(model, backend)
    probed = None if isinstance(backend, Backend) else probe_model(name, model)
    if probed is not None:
        # Checked before any runtime starts: a wrong input never reaches the device.
        shape, dtype, _ = probed
        sample = int(np.prod(shape)) * np.dtype(dtype).itemsize
        check_input_sizes(paths, sizes, sample, f"{model} (input {np.dtype(dtype).name} "
                                                f"{'x'.join(map(str, shape))})")
    with _opened(backend, model, device_id, providers, threads, precision) as be:
        check_input_sizes(paths, sizes, be.sample_bytes, be.describe())
        _check_hw(be, expect_hw)
        bs = resolve_batch_size(be, batch_size)
        plan = plan_batches(len(paths), bs, be)
        _warm_up(be, bs, warmup)
        result_dir = os.path.join(output, RESULT_SUBDIR.format(device_id=device_id))
        os.makedirs(result_dir, exist_ok=True)
        summary = _pipeline(be, paths, plan, bs, result_dir, outfmt, loop, progress, tqdm)
    n_out = summary.pop("_outputs")
    _verify_results(result_dir, paths, outfmt, n_out, summary, log)
    summary.update({"model": model, "backend": be.name, "device": be.device, "device_id": device_id,
                    "input": input_path, "outfmt": outfmt, "warmup": warmup, "loop": loop,
                    "model_batch_size": be.batch_size, "result_dir": result_dir,
                    "precision": getattr(be, "precision", "fp32"), "definitions": DEFINITIONS})
    if be.name == "onnxruntime":
        summary["providers"] = list(getattr(be, "providers", []))
    perf_path = os.path.join(output, perf_filename(bs, device_id))
    summary["perf_file"] = perf_path
    atomic_write_text(perf_path, _perf_text(summary))
    summary_path = os.path.join(output, SUMMARY_NAME)
    summary["summary_file"] = summary_path
    write_json(summary_path, summary)
    return summary


def _pipeline(be: Backend, paths, plan, bs, result_dir, outfmt, loop, progress, tqdm) -> dict:
    n_images = len(paths)
    shape = (bs,) + tuple(be.input_shape)
    batch_bytes = int(np.prod(shape)) * be.input_dtype.itemsize
    depth = _read_ahead(batch_bytes)
    stop = threading.Event()
    free: queue.Queue = queue.Queue()
    for _ in range(depth + 2):  # in the reader's hands, in the queue, and on the device
        free.put(np.empty(shape, dtype=be.input_dtype))
    ready: queue.Queue = queue.Queue(maxsize=depth)
    todo: queue.Queue = queue.Queue(maxsize=WRITE_BEHIND_BATCHES)
    reader = _Reader(paths, plan, be.sample_bytes, free, ready, stop)
    writers = [_Writer(result_dir, paths, outfmt, todo, stop) for _ in range(WRITER_THREADS)]
    run_seconds: List[float] = []
    n_outputs = 0
    bar = tqdm(total=n_images, unit="img", file=sys.stderr, disable=(None if progress is None else not progress),
               desc="infer", leave=False)
    t_start = time.perf_counter()
    reader.start()
    for w in writers:
        w.start()
    try:
        while True:
            item = _get(ready, stop)
            if item is None:
                break
            start, n, n_run, buf = item
            batch = buf[:n_run]
            for _ in range(loop):
                t0 = time.perf_counter()
                outputs = be.run(batch)
                run_seconds.append(time.perf_counter() - t0)
            free.put(buf)
            for k, out in enumerate(outputs):
                if out.shape[0] != n_run:
                    raise UserError(f"{be.model_path}: output {k} has {out.shape[0]} rows for a batch of {n_run}")
            n_outputs = len(outputs)
            # Only real images go on; the padding's results are dropped here.
            _put(todo, (start, n, [o[:n] for o in outputs]), stop)
            bar.update(n)
            _raise_first(writers)
        for _ in writers:
            _put(todo, None, stop)
        for w in writers:
            while w.is_alive():
                w.join(_POLL)
        _raise_first(writers)
        t_end = time.perf_counter()
    except _Stop:
        raise (_first_error(writers) or reader.error or UserError("inference stopped")) from None
    finally:
        stop.set()
        bar.close()
        reader.join(5)
        for w in writers:
            w.join(5)
    padded = sum(r - n for _, n, r in plan)
    wall = t_end - t_start
    phases = {"read": _phase(n_images, reader.read_seconds),
              "preprocess": _phase(n_images, reader.prep_seconds),
              "run": _phase(n_images * loop, run_seconds)}
    for phase, seconds in be.timing.phases():
        phases[phase] = _phase(n_images * loop, seconds)
    phases["write"] = _phase(n_images, [t for w in writers for t in w.seconds])
    return {"images": n_images, "batch_size": bs, "batches": len(plan), "padded_images": padded,
            "result_files": sum(w.written for w in writers), "wall_seconds": wall,
            "e2e": {"throughput_images_per_s": _rate(n_images, wall), "latency_ms": wall * 1000.0},
            "phases": phases, "_outputs": n_outputs}


def _verify_results(result_dir: str, paths, fmt: str, n_outputs: int, summary: dict, log) -> None:
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
        log(f"warning: {result_dir} also holds {len(stale)} result files from an earlier run "
            f"(e.g. {sorted(stale, key=natural_key)[0]}); a metric over the folder would count them")


def _perf_text(s: dict) -> str:
    p, n = s["phases"], s["images"]
    empty = {"throughput_images_per_s": 0.0, "latency_ms": {}}
    compute = p.get("compute", p["run"])

    def rate(phase):
        return p.get(phase, empty)["throughput_images_per_s"]

    def mean(phase):
        return p.get(phase, empty)["latency_ms"].get("mean", 0.0)

    return format_perf(e2e_rate=s["e2e"]["throughput_images_per_s"], e2e_latency_ms=s["e2e"]["latency_ms"],
                       read_rate=rate("read"), read_latency_ms=mean("read"),
                       pre_rate=rate("preprocess"), pre_latency_ms=mean("preprocess"),
                       infer_rate=rate("run"), interface_rate=compute["throughput_images_per_s"],
                       infer_latency_ms=mean("run"),
                       post_rate=rate("write") if n else 0.0, post_latency_ms=mean("write"))


def summary_line(s: dict) -> str:
    p = s["phases"]
    compute = p.get("compute", p["run"])
    pad = f", {s['padded_images']} padded" if s["padded_images"] else ""
    return (f"{s['images']} inputs → {s['result_files']} result files in {s['result_dir']} "
            f"(batch {s['batch_size']}{pad}, {s.get('precision', 'fp32')}); "
            f"e2e {s['e2e']['throughput_images_per_s']:.1f} img/s, "
            f"infer {p['run']['throughput_images_per_s']:.1f} img/s, compute "
            f"{compute['throughput_images_per_s']:.1f} img/s; {s['perf_file']}, {s['summary_file']}")


# --------------------------------------------------------------------------- pure inference

def run_pure_inference(model: str, batch_size: Optional[int] = None, device_id: int = 0,
                       backend: Union[str, Backend] = "auto", providers: Optional[Sequence[str]] = None,
                       pure_data: str = "zeros", warmup: int = 1, loop: int = 10, threads: int = 0,
                       output: Optional[str] = None, seed: int = 0, precision: str = "fp32") -> dict:
    """Time `loop` batches of generated data (after `warmup` untimed ones): throughput and
    latency only, as ais_bench's pure-data mode. Writes summary.json and the benchmark's
    PureInfer perf file under `output` when given."""
    if pure_data not in PURE_DATA:
        raise UserError(f"unknown --pure-data {pure_data!r} (choose from {', '.join(PURE_DATA)})")
    if loop < 1 or warmup < 0:
        raise UserError(f"--loop must be >= 1 and --warmup >= 0 (got {loop} and {warmup})")
    with _opened(backend, model, device_id, providers, threads, precision) as be:
        bs = resolve_batch_size(be, batch_size)
        shape = (bs,) + tuple(be.input_shape)
        if pure_data == "zeros":
            data = np.zeros(shape, dtype=be.input_dtype)
        else:
            data = np.random.default_rng(seed).standard_normal(shape).astype(be.input_dtype)
        _warm_up(be, bs, warmup)
        run_seconds = []
        for _ in range(loop):
            t0 = time.perf_counter()
            be.run(data)
            run_seconds.append(time.perf_counter() - t0)
        phases = {"run": _phase(bs * loop, run_seconds)}
        for phase, seconds in be.timing.phases():
            phases[phase] = _phase(bs * loop, seconds)
    compute = phases.get("compute", phases["run"])
    mean_ms = compute["latency_ms"]["mean"]
    summary = {"model": model, "backend": be.name, "device": be.device, "device_id": device_id,
               "pure_data": pure_data, "batch_size": bs, "loop": loop, "warmup": warmup,
               "precision": getattr(be, "precision", "fp32"),
               "throughput_images_per_s": 1000.0 * bs / mean_ms if mean_ms else 0.0,
               "phases": phases, "definitions": DEFINITIONS}
    if be.name == "onnxruntime":
        summary["providers"] = list(getattr(be, "providers", []))
    if output:
        os.makedirs(output, exist_ok=True)
        perf_path = os.path.join(output, pure_perf_filename(model, device_id))
        atomic_write_text(perf_path, format_pure_perf(summary["throughput_images_per_s"], mean_ms))
        summary["perf_file"] = perf_path
        summary["summary_file"] = os.path.join(output, SUMMARY_NAME)
        write_json(summary["summary_file"], summary)
    return summary


def pure_summary_text(s: dict) -> str:
    """ais_bench's performance summary, for the phases this runtime measured."""
    labels = {"h2d": "H2D_latency", "compute": "NPU_compute_time" if s["backend"] == "acl" else "compute_time",
              "d2h": "D2H_latency", "run": "run_latency"}
    lines = ["[INFO] -----------------Performance Summary------------------"]
    for phase in ("h2d", "compute", "d2h", "run"):
        st = s["phases"].get(phase, {}).get("latency_ms")
        if st:
            lines.append(f"[INFO] {labels[phase]} (ms): min = {st['min']:.4f}, max = {st['max']:.4f}, "
                         f"mean = {st['mean']:.4f}, median = {st['median']:.4f}, "
                         f"percentile(90%) = {st['p90']:.4f}, percentile(99%) = {st['p99']:.4f}")
    compute = s["phases"].get("compute", s["phases"]["run"])["latency_ms"]
    lines.append(f"[INFO] throughput 1000*batchsize.mean({s['batch_size']})/{labels['compute']}.mean"
                 f"({compute['mean']:.4f}): {s['throughput_images_per_s']:.4f}")
    lines.append(f"[INFO] precision: {s.get('precision', 'fp32')}")
    lines.append("[INFO] ------------------------------------------------------")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the benchmark's command line

_BENCH_ARG = re.compile(r"^-(?P<key>[A-Za-z_]+)=(?P<value>.*)$")
BENCHMARK_KEYS = ("model_type", "batch_size", "device_id", "input_text_path", "input_width", "input_height",
                  "om_path", "useDvpp", "output_binary")


def _bool(key: str, value: str) -> bool:
    if value in ("True", "true"):
        return True
    if value in ("False", "false"):
        return False
    raise UserError(f"-{key}={value}: expected True, False, true or false")


def translate_benchmark_args(argv: Sequence[str]) -> List[str]:
    """Rewrite the `benchmark` tool's `-key=value` arguments into this runner's options;
    anything else passes through unchanged, so both forms can be mixed."""
    out: List[str] = []
    for arg in argv:
        m = _BENCH_ARG.match(arg)
        if not m:
            out.append(arg)
            continue
        key, value = m.group("key"), m.group("value")
        if key == "model_type":
            if value != "vision":
                raise UserError(f"-model_type={value}: only vision models are supported")
        elif key == "useDvpp":
            if _bool(key, value):
                raise UserError("-useDvpp=True is not supported: DVPP decodes JPEGs on the NPU, and this runner "
                                "takes preprocessed .bin files; use -useDvpp=False with the info file of "
                                "imagenet_torch_preprocess.py's output")
        elif key == "output_binary":
            out += ["--outfmt", "bin" if _bool(key, value) else "txt"]
        elif key in ("batch_size", "device_id", "input_width", "input_height"):
            out += [f"--{key.replace('_', '-')}", value]
        elif key == "input_text_path":
            out += ["--input", value]
        elif key == "om_path":
            out += ["--model", value]
        else:
            raise UserError(f"-{key}={value}: unknown benchmark option (known: "
                            f"{', '.join('-' + k for k in BENCHMARK_KEYS)})")
    return out

"""The runner's host-side pipeline: a reader thread, the backend in the calling thread, writer threads.

    reader thread ──(bounded queue of batches)──▶ backend.run in this thread
                  ──(bounded queue of results)──▶ writer threads

The reader fills preallocated batch buffers with one `readinto` per file (no per-image arrays,
no concatenation) and pads a fixed-batch model's short last batch with copies of its first
sample, as ais_bench does; the writers write one result file per real image, atomically. Both
queues are bounded (and the batch buffers recycled), so memory stays flat whatever the number
of images.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Sequence

import numpy as np

from .backends import Backend
from .errors import UserError
from .formats import write_result

# Read-ahead by bytes rather than batches: many small batches or a couple of big ones.
READ_AHEAD_BYTES = 64 << 20
MAX_READ_AHEAD = 32
WRITE_BEHIND_BATCHES = 64
# Creating, writing and renaming a small file is a few syscalls that release the GIL; on a VM
# they cost ~0.3 ms each, so one writer thread caps a run at ~1,300 files/s. Several writers
# overlap those waits.
WRITER_THREADS = 4
_POLL = 0.1  # seconds between checks of the stop flag while a thread waits on a queue


class Batch(NamedTuple):
    """One step of the plan: images `start .. start+n-1`, run as a batch of `n_run` (n plus padding)."""

    start: int
    n: int
    n_run: int


def plan_batches(n_images: int, batch_size: int, backend: Backend) -> List[Batch]:
    """The batches that cover `n_images`. A fixed-batch model runs its short last batch padded to
    full size; a dynamic-batch OM pads to its smallest size that fits; a free batch axis runs it
    as it is."""
    plan = []
    for start in range(0, n_images, batch_size):
        n = min(batch_size, n_images - start)
        run = n
        if backend.batch_size is not None:
            run = backend.batch_size
        elif backend.batch_choices:
            run = min(b for b in backend.batch_choices if b >= n)
        plan.append(Batch(start, n, run))
    return plan


@dataclass
class PipelineTimes:
    """What one pass of the pipeline measured, in seconds per batch, and what it wrote."""

    wall: float
    read: List[float]
    prepare: List[float]
    run: List[float]
    write: List[float]
    result_files: int
    n_outputs: int
    padded_images: int
    batches: int


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

    def __init__(self, paths: Sequence[str], plan: Sequence[Batch], sample_bytes: int,
                 free: queue.Queue, ready: queue.Queue, stop: threading.Event) -> None:
        super().__init__(name="mocoinfer-reader", daemon=True)
        self.paths, self.plan, self.sample_bytes = paths, plan, sample_bytes
        self.free, self.ready, self.stop = free, ready, stop
        self.read_seconds: List[float] = []
        self.prep_seconds: List[float] = []
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            sb = self.sample_bytes
            for batch in self.plan:
                buf = _get(self.free, self.stop)
                t0 = time.perf_counter()
                view = memoryview(buf).cast("B")
                for i in range(batch.n):
                    path = self.paths[batch.start + i]
                    with open(path, "rb", buffering=0) as f:
                        got = f.readinto(view[i * sb:(i + 1) * sb])
                    if got != sb:
                        raise UserError(f"{path}: read {got} bytes, expected {sb} (file changed during the run?)")
                t1 = time.perf_counter()
                if batch.n_run > batch.n:
                    buf[batch.n:batch.n_run] = buf[0]
                t2 = time.perf_counter()
                self.read_seconds.append(t1 - t0)
                self.prep_seconds.append(t2 - t0)
                _put(self.ready, (batch, buf), self.stop)
            _put(self.ready, None, self.stop)
        except _Stop:
            pass
        except BaseException as exc:  # the main thread sees the stop flag and raises it
            self.error = exc
            self.stop.set()


class _Writer(threading.Thread):
    """Writes one result file per real image per output, behind the device."""

    def __init__(self, folder: str, paths: Sequence[str], fmt: str, todo: queue.Queue,
                 stop: threading.Event) -> None:
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


def run_pipeline(be: Backend, paths: Sequence[str], plan: Sequence[Batch], batch_size: int,
                 result_dir: str, outfmt: str, loop: int, bar, make_reader=None) -> PipelineTimes:
    """Run every batch of `plan` through `be` (each `loop` times), writing results into
    `result_dir`; `bar` (a progress bar) advances by the real images of each batch.

    `make_reader` replaces the `.bin` file reader: called as `_Reader` is, it returns a thread
    with the same attributes that puts `(Batch, buffer)` items on `ready`, then None (streamed
    images: it appends to `paths` and `plan` as it goes)."""
    shape = (batch_size,) + tuple(be.input_shape)
    batch_bytes = int(np.prod(shape)) * be.input_dtype.itemsize
    depth = _read_ahead(batch_bytes)
    stop = threading.Event()
    free: queue.Queue = queue.Queue()
    for _ in range(depth + 2):  # in the reader's hands, in the queue, and on the device
        free.put(np.empty(shape, dtype=be.input_dtype))
    ready: queue.Queue = queue.Queue(maxsize=depth)
    todo: queue.Queue = queue.Queue(maxsize=WRITE_BEHIND_BATCHES)
    reader = (make_reader or _Reader)(paths, plan, be.sample_bytes, free, ready, stop)
    writers = [_Writer(result_dir, paths, outfmt, todo, stop) for _ in range(WRITER_THREADS)]
    run_seconds: List[float] = []
    n_outputs = 0
    t_start = time.perf_counter()
    reader.start()
    for w in writers:
        w.start()
    try:
        while True:
            item = _get(ready, stop)
            if item is None:
                break
            batch, buf = item
            inputs = buf[:batch.n_run]
            for _ in range(loop):
                t0 = time.perf_counter()
                outputs = be.run(inputs)
                run_seconds.append(time.perf_counter() - t0)
            free.put(buf)
            for k, out in enumerate(outputs):
                if out.shape[0] != batch.n_run:
                    raise UserError(f"{be.model_path}: output {k} has {out.shape[0]} rows for a batch "
                                    f"of {batch.n_run}")
            n_outputs = len(outputs)
            # Only real images go on; the padding's results are dropped here.
            _put(todo, (batch.start, batch.n, [o[:batch.n] for o in outputs]), stop)
            bar.update(batch.n)
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
    return PipelineTimes(wall=t_end - t_start, read=reader.read_seconds, prepare=reader.prep_seconds,
                         run=run_seconds, write=[t for w in writers for t in w.seconds],
                         result_files=sum(w.written for w in writers), n_outputs=n_outputs,
                         padded_images=sum(b.n_run - b.n for b in plan), batches=len(plan))

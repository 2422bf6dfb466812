"""The runner's host-side pipeline: a reader thread, the backend in the calling thread, writer threads.

    reader thread ──(bounded queue of batches)──▶ backend.run in this thread
                  ──(bounded queue of results)──▶ writer threads

The reader fills preallocated batch buffers with one read per file (`os.readv` straight into the
buffer: no per-image arrays, no concatenation; uint8 pixel files for a float32 model go through
one staging buffer and are normalised into the batch with preprocessing's own look-up,
`transforms.normalize_batch`) and
pads a fixed-batch model's short last batch with copies of its first sample, as ais_bench does;
the writers write one result file per real image, atomically. Both queues are bounded (and the
batch buffers recycled), so memory stays flat whatever the number of images.
"""

from __future__ import annotations

import errno
import os
import queue
import stat
import threading
import time
from dataclasses import dataclass
from typing import Callable, List, NamedTuple, Optional, Sequence

import numpy as np

from .backends import Backend
from .errors import UserError
from .formats import BENCHMARK_STYLE, NPY_SUFFIXES, encode_results, npy_data_span, write_result_bytes
from .sidecar import read_proof
from .transforms import normalize_batch

# Read-ahead by bytes rather than batches: many small batches or a couple of big ones.
READ_AHEAD_BYTES = 64 << 20
MAX_READ_AHEAD = 32
WRITE_BEHIND_BATCHES = 64
# Creating, writing and renaming a small file is a few syscalls that release the GIL; on a VM
# they cost ~0.3 ms each, so one writer thread caps a run at ~1,300 files/s. Several writers
# overlap those waits.
WRITER_THREADS = 4
_POLL = 0.1  # seconds between checks of the stop flag while a thread waits on a queue
# open()'s own flags for "rb" (Python sets O_CLOEXEC on every file it opens).
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


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
    started: float = 0.0  # time.time() at the first read and after the last write, to merge
    ended: float = 0.0  # the wall times of several devices' runs


class Stopped(Exception):
    """Raised inside a worker thread when the run is being abandoned."""


def put_item(q: queue.Queue, item, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise Stopped
        try:
            q.put(item, timeout=_POLL)
            return
        except queue.Full:
            continue


def get_item(q: queue.Queue, stop: threading.Event):
    while True:
        if stop.is_set():
            raise Stopped
        try:
            return q.get(timeout=_POLL)
        except queue.Empty:
            continue


class StageThread(threading.Thread):
    """One thread of the pipeline (a reader or a writer). `work()` runs until it is done or the
    run is abandoned (`Stopped`); any other error is kept in `error` and sets the shared stop flag,
    which the main thread turns into that error."""

    def __init__(self, name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.stop = stop
        self.error: Optional[BaseException] = None

    def work(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        try:
            self.work()
        except Stopped:
            pass
        except BaseException as exc:  # the main thread sees the stop flag and raises it
            self.error = exc
            self.stop.set()


class FileReader(StageThread):
    """Fills recycled batch buffers from the input files, in order, ahead of the device."""

    def __init__(self, paths: Sequence[str], plan: Sequence[Batch], sample_bytes: int,
                 free: queue.Queue, ready: queue.Queue, stop: threading.Event,
                 proofs: Optional[List] = None, index_of: Optional[Sequence[int]] = None,
                 staging: Optional[np.ndarray] = None) -> None:
        super().__init__("mocoinfer-reader", stop)
        self.paths, self.plan, self.sample_bytes = paths, plan, sample_bytes
        self.free, self.ready = free, ready
        self.staging = staging  # uint8 pixel files land here, then are normalised into the batch
        # proofs[index_of[i]] = the proof of input i as read (its fstat; its hash only if racy):
        # what the resume manifest records, at the cost of one fstat per file.
        self.proofs, self.index_of = proofs, index_of
        self.read_seconds: List[float] = []
        self.prep_seconds: List[float] = []

    def work(self) -> None:
        sb = self.sample_bytes
        proofs, index_of = self.proofs, self.index_of
        for batch in self.plan:
            buf = get_item(self.free, self.stop)
            t0 = time.perf_counter()
            now = time.time_ns()
            view = memoryview(buf if self.staging is None else self.staging).cast("B")
            for i in range(batch.n):
                path = self.paths[batch.start + i]
                if path.endswith(NPY_SUFFIXES):  # ais_bench's form: the array data after the header
                    with open(path, "rb", buffering=0) as f:
                        st = os.fstat(f.fileno())
                        npy_data_span(f, path)
                        got = f.readinto(view[i * sb:(i + 1) * sb])
                else:
                    # os-level calls, not a file object: four syscalls a file (open, fstat, one read
                    # straight into the batch, close) and no Python object per file.
                    fd = os.open(path, _READ_FLAGS)
                    try:
                        st = os.fstat(fd)
                        if stat.S_ISDIR(st.st_mode):  # what open() says of a folder
                            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
                        got = os.readv(fd, [view[i * sb:(i + 1) * sb]])
                    finally:
                        os.close(fd)
                if got != sb:
                    raise UserError(f"{path}: read {got} bytes, expected {sb} (file changed during the run?)")
                if proofs is not None:
                    j = batch.start + i
                    proofs[index_of[j] if index_of is not None else j] = read_proof(st, view[i * sb:(i + 1) * sb],
                                                                                   now)
            t1 = time.perf_counter()
            if self.staging is not None:
                normalize_batch(self.staging[:batch.n], buf[:batch.n])
            if batch.n_run > batch.n:
                buf[batch.n:batch.n_run] = buf[0]
            t2 = time.perf_counter()
            self.read_seconds.append(t1 - t0)
            self.prep_seconds.append(t2 - t0)
            put_item(self.ready, (batch, buf), self.stop)
        put_item(self.ready, None, self.stop)


class _Writer(StageThread):
    """Writes one result file per real image per output, behind the device."""

    def __init__(self, folder: str, paths: Sequence[str], fmt: str, todo: queue.Queue,
                 stop: threading.Event, first_index: int = 1,
                 on_written: Optional[Callable[[int, int, str], None]] = None, style: str = BENCHMARK_STYLE) -> None:
        super().__init__("mocoinfer-writer", stop)
        self.folder, self.paths, self.fmt, self.todo = folder, paths, fmt, todo
        self.first_index, self.on_written, self.style = first_index, on_written, style
        self.seconds: List[float] = []
        self.written = 0

    def work(self) -> None:
        while True:
            item = get_item(self.todo, self.stop)
            if item is None:
                return
            start, n, outputs = item
            t0 = time.perf_counter()
            for k, out in enumerate(outputs, self.first_index):
                # One conversion per batch and output (encode_result's bytes, row by row).
                blobs = encode_results(out, self.fmt, self.style)
                for i in range(n):
                    path = write_result_bytes(self.folder, self.paths[start + i], blobs[i], self.fmt, index=k,
                                              style=self.style)
                    self.written += 1
                    if self.on_written is not None:
                        self.on_written(start + i, k, os.path.basename(path))
            self.seconds.append(time.perf_counter() - t0)


def _first_error(writers) -> Optional[BaseException]:
    return next((w.error for w in writers if w.error is not None), None)


def _raise_first(writers) -> None:
    error = _first_error(writers)
    if error is not None:
        raise error


def _read_ahead(batch_bytes: int) -> int:
    return max(2, min(MAX_READ_AHEAD, READ_AHEAD_BYTES // max(1, batch_bytes)))


def batch_buffers(batch_bytes: int) -> int:
    """How many batch buffers `run_pipeline` allocates: the read-ahead, one being filled, one on
    the device (the runner checks they fit in memory before the run)."""
    return _read_ahead(batch_bytes) + 2


def run_pipeline(be: Backend, paths: Sequence[str], plan: Sequence[Batch], batch_size: int,
                 result_dir: str, outfmt: str, loop: int, bar, first_index: int = 1,
                 proofs: Optional[List] = None, index_of: Optional[Sequence[int]] = None,
                 on_written: Optional[Callable[[int, int, str], None]] = None,
                 on_batch: Optional[Callable[[], None]] = None, host_normalize: bool = False,
                 cancel=None, make_reader=None, style: str = BENCHMARK_STYLE) -> PipelineTimes:
    """Run every batch of `plan` through `be` (each `loop` times), writing results into
    `result_dir`; `bar` (a progress bar) advances by the real images of each batch.

    Result files are numbered from `first_index` (1: the benchmark, 0: ais_bench) and written in
    `style` (`formats.STYLES`: the benchmark's files or ais_bench's). With
    `proofs`, the reader stores each input's proof (`sidecar.read_proof`) at `proofs[index_of[i]]`;
    `on_written(i, k, name)` is called by a writer thread once result `name` of input i is in
    place, and `on_batch()` by this thread after each batch (the resume manifest's hooks).

    `host_normalize`: the files are uint8 HWC pixels for the model's float32 3xHxW input.
    `cancel` (anything with `is_set()`, e.g. a multiprocessing Event) stops the run between
    batches with a UserError: another device of the run has failed.
    `make_reader` replaces the `.bin` file reader: called as `FileReader` is, it returns a thread
    with the same attributes that puts `(Batch, buffer)` items on `ready`, then None
    (streamed images: it appends to `paths` and `plan` as it goes).
    """
    shape = (batch_size,) + tuple(be.input_shape)
    staging = None
    file_bytes = be.sample_bytes
    if host_normalize:
        _, height, width = be.input_shape
        staging = np.empty((batch_size, height, width, 3), dtype=np.uint8)
        file_bytes = staging[0].nbytes
    batch_bytes = int(np.prod(shape)) * be.input_dtype.itemsize
    depth = _read_ahead(batch_bytes)
    stop = threading.Event()
    free: queue.Queue = queue.Queue()
    for _ in range(batch_buffers(batch_bytes)):  # in the reader's hands, in the queue, and on the device
        free.put(np.empty(shape, dtype=be.input_dtype))
    ready: queue.Queue = queue.Queue(maxsize=depth)
    todo: queue.Queue = queue.Queue(maxsize=WRITE_BEHIND_BATCHES)
    if make_reader is not None:
        reader = make_reader(paths, plan, be.sample_bytes, free, ready, stop)
    else:
        reader = FileReader(paths, plan, file_bytes, free, ready, stop, proofs, index_of, staging)
    writers = [_Writer(result_dir, paths, outfmt, todo, stop, first_index, on_written, style)
               for _ in range(WRITER_THREADS)]
    run_seconds: List[float] = []
    n_outputs = 0
    t_start, started = time.perf_counter(), time.time()
    reader.start()
    for w in writers:
        w.start()
    try:
        while True:
            item = get_item(ready, stop)
            if item is None:
                break
            if cancel is not None and cancel.is_set():
                raise UserError(f"{result_dir}: stopped, another device of this run failed")
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
            put_item(todo, (batch.start, batch.n, [o[:batch.n] for o in outputs]), stop)
            bar.update(batch.n)
            _raise_first(writers)
            if on_batch is not None:
                on_batch()
        for _ in writers:
            put_item(todo, None, stop)
        for w in writers:
            while w.is_alive():
                w.join(_POLL)
        _raise_first(writers)
        t_end, ended = time.perf_counter(), time.time()
    except Stopped:
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
                         padded_images=sum(b.n_run - b.n for b in plan), batches=len(plan),
                         started=started, ended=ended)

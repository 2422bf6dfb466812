"""Streaming inference: a folder of images in, result files out, in one pass and with no `.bin` files.

`run_om_infer.py --input VAL_DIR` (or a `get_info.py jpg` info file) lands here through one hook
in `runner.run_inference` (`open_feed`). The images are the ones preprocessing would turn into
`.bin` files, and each gives the result file the `.bin` path gives:

- a pool of worker processes opens, decodes and transforms each image with the project's
  transform (`transforms.EvalTransform`, preprocessing's own code and defaults) and sends back
  the cropped uint8 pixels, HWC (150 KB at 224, a quarter of the float32 tensor);
- a reader thread in the runner's pipeline (`pipeline.run_pipeline`'s `make_reader`) takes them
  in input order and writes them into the batch buffer: normalised by the same table look-up
  (`EvalTransform.to_normalized`), so the batch holds the bits the `.bin` files would, or copied
  as they are for a model that takes uint8 pixels;
- the order is the `.bin` folder's: natural order of the keys (the name before the first '.',
  which names the `.bin` and so the result `<key>_1.txt`), or an info file's order.

Memory stays flat whatever the number of images: at most `window` chunks of images are in the
pool's hands or waiting for the reader, and the pipeline's queues are bounded.

Bad inputs are handled as preprocessing handles them: each is listed with its reason on stderr
and in `failed.txt` beside the results, the others still run, and the stage exits 1 unless
`--skip-bad`. Hidden files are skipped with a note; a FIFO, socket or device is failed by name
and never opened blocking (workers open with O_NONBLOCK and check the file type first).
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import signal
import stat
import sys
import threading
import time
from dataclasses import dataclass
from typing import Deque, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from . import formats
from .backends import Backend
from .cli import signals_as_interrupt
from .errors import UserError
from .pipeline import Batch, _get, _put, _Stop, plan_batches, run_pipeline
from .prepplan import list_inputs as list_image_dir
from .prepplan import plan_tasks
from .preprocess import describe_failure
from .progress import log, progress_bar, usable_cpus
from .transforms import DEFAULT_CROP, DEFAULT_INTERPOLATION, DEFAULT_RESIZE, EvalTransform, load_rgb

_POLL = 0.1  # seconds between checks of the stop flag while the reader waits on the pool
# Images per pool task: enough to amortise a round trip (~0.1 ms) against a decode (~5-10 ms),
# few enough that the pool's first results come back quickly.
MAX_CHUNK = 8
# Chunks in flight per worker: one being decoded, one queued so the worker never idles, and one
# finished and waiting for the reader.
CHUNKS_PER_WORKER = 3

#: summary.json's "stream" section: what its figures count.
STREAM_DEFINITIONS = {
    "read": "in a streamed run: images / reader time waiting for the decoded crops of each batch",
    "preprocess": "in a streamed run: images / reader time preparing batches (waiting for crops, "
                  "normalising them into the batch, padding)",
    "decode_rate_images_per_s": "images decoded and transformed per second by the pool: images x "
                                "workers / the workers' summed seconds per image",
    "decode_wait_seconds": "reader time waiting for decoded crops from the pool",
    "model_wait_seconds": "reader time waiting for the model side (a free batch buffer or room in the queue)",
    "model_rate_images_per_s": "the run phase's rate: images / backend.run wall time",
    "bounded_by": "the slower side: decoding when the pool's decode rate is below the model's rate, else the "
                  "model (more cores help the first, a faster device the second)",
}


@dataclass
class StreamOptions:
    """How images are turned into model inputs: preprocessing's settings and defaults."""

    workers: Optional[int] = None  # default: usable_cpus()
    interpolation: str = DEFAULT_INTERPOLATION
    resize: int = DEFAULT_RESIZE
    crop: int = DEFAULT_CROP

    def transform(self) -> EvalTransform:
        try:
            return EvalTransform(resize=self.resize, crop=self.crop, interpolation=self.interpolation)
        except ValueError as exc:
            raise UserError(str(exc)) from None


# --------------------------------------------------------------------------- what to stream

def is_image_input(input_path: str) -> bool:
    """Whether `input_path` is streamed: a folder with visible entries but no `.bin` file, or an
    info file whose entries are not `.bin` files (`get_info.py jpg`). Everything else goes the
    `.bin` way."""
    if os.path.isdir(input_path):
        try:
            with os.scandir(input_path) as it:
                visible = [e.name for e in it if not e.name.startswith(".")]
        except OSError:
            return False  # the .bin path reports it
        # An empty folder stays on the .bin path, whose error names what it expected.
        return bool(visible) and not any(n.endswith(formats.BIN_SUFFIX) for n in visible)
    if not os.path.isfile(input_path) or input_path.endswith(formats.BIN_SUFFIX):
        return False
    try:
        entries = formats.read_info(input_path)
    except (UserError, OSError, UnicodeDecodeError):
        return False
    return bool(entries) and not entries[0].path.endswith(formats.BIN_SUFFIX)


class Candidate(NamedTuple):
    """One input in run order; `key` names its results: `<key>.bin` is the `.bin` path's input
    name, so `result_filename` gives `<key>_1.txt` as it does there."""

    index: int
    path: str
    key: str


def _special_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


def list_folder(input_dir: str) -> Tuple[List[Candidate], List[Tuple[int, str, str]], List[str]]:
    """The images of a folder in the `.bin` folder's order; the entries already known to fail
    (index, path, reason); the hidden names skipped."""
    # Preprocessing's listing: hidden names skipped, special files failed by name, never opened.
    found = list_image_dir(input_dir)
    hidden, entries = list(found.hidden), list(found.entries)
    if not entries and not found.failed:
        raise UserError(f"{input_dir}: no images in this folder (only hidden files)")
    tasks = plan_tasks(input_dir, "", entries)  # refuses two images with one key, as preprocessing does
    # The .bin folder is listed in natural order of the .bin names; the same order gives the same batches.
    tasks.sort(key=lambda t: formats.natural_key(t.target))
    good, failed = [], []
    for run_index, task in enumerate(tasks):
        try:
            mode = os.stat(task.source).st_mode
        except OSError as exc:
            failed.append((run_index, task.source, describe_failure(task.source, exc)))
            continue
        if stat.S_ISDIR(mode):
            failed.append((run_index, task.source, "is a directory, not an image"))
        elif not stat.S_ISREG(mode):
            failed.append((run_index, task.source, f"{_special_kind(mode)}, not an image file"))
        else:
            good.append(Candidate(run_index, task.source, task.target))
    for j, (name, reason) in enumerate(found.failed, len(tasks)):
        failed.append((j, os.path.join(input_dir, name), reason))
    return good, failed, hidden


def list_info(info_path: str) -> List[Candidate]:
    """The images of a `get_info.py jpg` info file, in its order (relative paths as `inputs.list_inputs`
    resolves them); two images with one key are refused."""
    base = os.path.dirname(os.path.abspath(info_path))
    out, owner = [], {}
    for i, entry in enumerate(formats.read_info(info_path)):
        p = entry.path
        if not os.path.isabs(p) and not os.path.exists(p) and os.path.exists(os.path.join(base, p)):
            p = os.path.join(base, p)
        key = formats.bin_name(p)
        if key in owner:
            raise UserError(f"{info_path}: {owner[key]} and {p} are named the same before their first '.' "
                            f"(both would write {formats.result_filename(key, 'txt')}); input names must be unique")
        owner[key] = p
        out.append(Candidate(i, p, key))
    return out


# --------------------------------------------------------------------------- the workers

class _SpecialFile(OSError):
    """An input that is not a regular file: never read, reported by its kind."""


def _open_regular(path: str):
    """The file opened for reading, refusing without blocking anything but a regular file (a
    FIFO opened plainly would wait for a writer forever)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(mode):
            raise _SpecialFile(f"{_special_kind(mode)}, not an image file")
        return os.fdopen(fd, "rb")  # O_NONBLOCK does nothing to a regular file's reads
    except BaseException:
        os.close(fd)
        raise


def decode(transform: EvalTransform, path: str) -> Tuple[Optional[np.ndarray], str]:
    """(uint8 crop, "") for a good image, (None, reason) for a bad one: preprocessing's
    `pixels_from_file` and `describe_failure`, opened as `_open_regular` does."""
    try:
        with _open_regular(path) as f:
            return transform.pixels(load_rgb(f)), ""
    except _SpecialFile as exc:
        return None, str(exc)
    except Exception as exc:  # any decoder error is this file's problem, not the run's
        return None, describe_failure(path, exc)


def _decode_chunk(transform: EvalTransform,
                  chunk: Sequence[Tuple[int, str]]) -> List[Tuple[int, Optional[np.ndarray], str, float]]:
    """(index, crop or None, reason, seconds) per image of the chunk."""
    out = []
    for index, path in chunk:
        t0 = time.perf_counter()
        pixels, reason = decode(transform, path)
        out.append((index, pixels, reason, time.perf_counter() - t0))
    return out


def _worker_main(conn, transform: EvalTransform, inherited: Sequence) -> None:
    """One decoding process: chunks in, results out, over its own pipe, until None or the pipe closes."""
    # Ctrl-C reaches the whole process group: only the parent handles it, then stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for c in inherited:  # the parent's ends, so that the parent's death closes this pipe
        c.close()
    while True:
        try:
            chunk = conn.recv()
            if chunk is None:
                return
            conn.send(_decode_chunk(transform, chunk))
        except (EOFError, OSError):  # the parent is gone
            return


class DecodePool:
    """Worker processes with one pipe each, no shared queue or lock: chunk k goes to worker
    k mod n, so reading the workers in turn gives the results in order, and stopping is killing
    the processes (a shared queue's lock held by a killed or blocked worker cannot hang it).

    fork starts workers in milliseconds with the transform's one-time Pillow check inherited;
    the feed starts them before the backend loads, so no runtime thread is forked.
    """

    def __init__(self, n: int, transform: EvalTransform) -> None:
        fork = "fork" in multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if fork else "spawn")
        self.conns: list = []
        self.procs: list = []
        self._next = 0
        try:
            for i in range(n):
                parent, child = ctx.Pipe()
                self.conns.append(parent)
                proc = ctx.Process(target=_worker_main, name=f"mocoinfer-decode-{i}", daemon=True,
                                   args=(child, transform, list(self.conns) if fork else []))
                proc.start()
                self.procs.append(proc)
                child.close()
        except BaseException:
            self.stop(finished=False)
            raise

    def submit(self, chunk: Sequence[Tuple[int, str]]) -> int:
        """Send a chunk to the next worker in turn; returns that worker's number."""
        w = self._next
        self._next = (w + 1) % len(self.conns)
        self.conns[w].send(list(chunk))
        return w

    def receive(self, w: int, stop: threading.Event):
        """The oldest pending result of worker `w`; raises _Stop when `stop` is set meanwhile."""
        conn, proc = self.conns[w], self.procs[w]
        while not conn.poll(_POLL):
            if stop.is_set():
                raise _Stop
            if not proc.is_alive():
                raise UserError(f"decoding worker {proc.pid} died (exit code {proc.exitcode}); "
                                "out of memory? try fewer --workers")
        try:
            return conn.recv()
        except EOFError:
            raise UserError(f"decoding worker {proc.pid} died (exit code {proc.exitcode})") from None

    def stop(self, finished: bool) -> None:
        """Finished: let the workers exit; else kill them. Either way, reap them all."""
        if finished:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.send(None)
        else:
            for proc in self.procs:
                proc.terminate()
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()
        self.procs, self.conns = [], []


# --------------------------------------------------------------------------- the feed

class ImageFeed:
    """The images of one run, decoded by a pool and consumed in order by `StreamReader`.

    A context manager: entering starts the pool (before the model loads, so the first images
    decode meanwhile) and makes SIGTERM stop the run as Ctrl-C does; leaving stops the pool.
    `names` and `plan` are the runner's `paths` and batch plan, filled by the reader as good
    images arrive (the writers only look at batches already handed on).
    """

    def __init__(self, input_path: str, options: Optional[StreamOptions] = None) -> None:
        options = options or StreamOptions()
        self.input_path = input_path
        self.options = options
        self.transform = options.transform()
        workers = usable_cpus() if options.workers is None else options.workers
        if workers < 1:
            raise UserError(f"--workers must be >= 1, got {workers}")
        self.hidden: List[str] = []
        if os.path.isdir(input_path):
            self.candidates, self.failed, self.hidden = list_folder(input_path)
            self.source = f"image folder {input_path}"
        else:
            self.candidates, self.failed = list_info(input_path), []
            self.source = f"info file {input_path}"
        self.total = len(self.candidates) + len(self.failed)
        self.workers = max(1, min(workers, len(self.candidates)))
        self.chunk = max(1, min(MAX_CHUNK, len(self.candidates) // (self.workers * 8)))
        self.window = self.workers * CHUNKS_PER_WORKER
        self.by_index = {c.index: c for c in self.candidates}
        self.uint8 = False  # set by check_model
        self.names: List[str] = []
        self.plan: List[Batch] = []
        self.decode_seconds = 0.0
        self.decode_wait = 0.0
        self.model_wait = 0.0
        self.max_in_flight = 0  # images submitted and not yet taken by the reader, at most
        self._in_flight = 0
        self._chunks = iter([self.candidates[i:i + self.chunk] for i in range(0, len(self.candidates), self.chunk)])
        self._pending: Deque = collections.deque()
        self._pool = None
        self._stack = contextlib.ExitStack()
        self.finished = False

    # ---- pool lifetime
    def __enter__(self) -> ImageFeed:
        if self.hidden:
            log.info(f"note: {self.input_path}: skipped {len(self.hidden)} hidden file(s) "
                     f"(e.g. {', '.join(self.hidden[:3])})")
        self._stack.enter_context(signals_as_interrupt())
        if self.candidates:
            self._pool = DecodePool(self.workers, self.transform)
            self._stack.callback(self._stop_pool)
            self._fill_window()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stack.close()

    def _stop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        pool.stop(self.finished)

    def _fill_window(self) -> None:
        while len(self._pending) < self.window:
            chunk = next(self._chunks, None)
            if chunk is None:
                return
            self._pending.append((self._pool.submit([(c.index, c.path) for c in chunk]), len(chunk)))
            self._in_flight += len(chunk)
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def results(self, stop: threading.Event) -> Iterator[Tuple[int, Optional[np.ndarray], str]]:
        """(index, crop or None, reason) per candidate, in order; the time spent waiting for the
        pool goes to `decode_wait`."""
        while self._pending:
            worker, _ = self._pending[0]
            t0 = time.perf_counter()
            items = self._pool.receive(worker, stop)
            self.decode_wait += time.perf_counter() - t0
            self._pending.popleft()
            self._in_flight -= len(items)
            self._fill_window()
            for index, pixels, reason, seconds in items:
                self.decode_seconds += seconds
                yield index, pixels, reason

    # ---- the model side
    def check_model(self, be: Backend) -> None:
        """The model must take what the transform makes: float32 3 x crop x crop (normalised
        here) or uint8 crop x crop x 3 (the pixels as they are)."""
        c = self.options.crop
        self.uint8 = be.input_dtype == np.uint8
        want = (c, c, 3) if self.uint8 else (3, c, c)
        if tuple(be.input_shape) != want or be.input_dtype not in (np.float32, np.uint8):
            raise UserError(f"{be.describe()}: streamed images are {c}x{c} crops (--crop {c}), given to a "
                            f"model as float32 3x{c}x{c} or uint8 {c}x{c}x3; this model takes something else")

    def reader(self, batch_size: int, be: Backend):
        """The pipeline's `make_reader` for this feed."""
        def make(paths, plan, sample_bytes, free, ready, stop):
            return StreamReader(self, batch_size, be, free, ready, stop)
        return make

    # ---- after the run
    def report(self, summary: Dict, output: str) -> None:
        """Add the "stream" section to `summary`; write `failed.txt` in `output`, or remove the
        one an earlier run left when nothing failed now."""
        self.failed.sort()
        rate = len(self.candidates) * self.workers / self.decode_seconds if self.decode_seconds > 0 else 0.0
        model_rate = summary["phases"]["run"]["throughput_images_per_s"]
        failed_list = os.path.join(output, formats.FAILED_LIST_NAME)
        if self.failed:
            formats.write_failed(failed_list, [(p, r) for _, p, r in self.failed])
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(failed_list)
        summary["stream"] = {
            "source": self.source, "workers": self.workers, "interpolation": self.options.interpolation,
            "resize": self.options.resize, "crop": self.options.crop,
            "model_input": "uint8 pixels" if self.uint8 else "float32, normalised by the reader",
            "images_listed": self.total, "images_failed": len(self.failed), "hidden_skipped": len(self.hidden),
            "failed_file": failed_list if self.failed else None,
            "decode_rate_images_per_s": rate, "decode_seconds": self.decode_seconds,
            "decode_wait_seconds": self.decode_wait, "model_wait_seconds": self.model_wait,
            "model_rate_images_per_s": model_rate,
            "bounded_by": "decoding" if rate < model_rate else "model",
            "max_images_in_flight": self.max_in_flight,
            "failed": [{"path": p, "reason": r} for _, p, r in self.failed],
            "definitions": STREAM_DEFINITIONS,
        }


class StreamReader(threading.Thread):
    """The pipeline's reader for streamed images: good crops into batch buffers, in order."""

    def __init__(self, feed: ImageFeed, batch_size: int, be: Backend, free, ready, stop: threading.Event) -> None:
        super().__init__(name="mocoinfer-stream-reader", daemon=True)
        self.feed, self.batch_size, self.be = feed, batch_size, be
        self.free, self.ready, self.stop = free, ready, stop
        self.uint8 = be.input_dtype == np.uint8
        self.read_seconds: List[float] = []
        self.prep_seconds: List[float] = []
        self.error: Optional[BaseException] = None

    def _take_buffer(self):
        t0 = time.perf_counter()
        buf = _get(self.free, self.stop)
        self.feed.model_wait += time.perf_counter() - t0
        return buf

    def _hand_on(self, buf, n: int, read: float, prep: float) -> None:
        feed = self.feed
        t0 = time.perf_counter()
        start = len(feed.names) - n
        batch = plan_batches(n, self.batch_size, self.be)[0]._replace(start=start)
        if batch.n_run > n:
            buf[n:batch.n_run] = buf[0]
        prep += time.perf_counter() - t0
        feed.plan.append(batch)
        self.read_seconds.append(read)
        self.prep_seconds.append(prep)
        t1 = time.perf_counter()
        _put(self.ready, (batch, buf, []), self.stop)  # no hashes to wait for: nothing is resumed
        feed.model_wait += time.perf_counter() - t1

    def run(self) -> None:
        feed = self.feed
        try:
            buf, n, read, prep = None, 0, 0.0, 0.0
            waited = feed.decode_wait
            for index, pixels, reason in feed.results(self.stop):
                # Waiting for the pool is this batch's "read" time, as file reads are on the .bin path.
                read += feed.decode_wait - waited
                prep += feed.decode_wait - waited
                if pixels is None:
                    feed.failed.append((index, feed.by_index[index].path, reason))
                    waited = feed.decode_wait
                    continue
                if buf is None:
                    buf = self._take_buffer()
                t0 = time.perf_counter()
                if self.uint8:
                    buf[n] = pixels
                else:
                    self.feed.transform.to_normalized(pixels, out=buf[n])
                feed.names.append(feed.by_index[index].key)
                n += 1
                prep += time.perf_counter() - t0
                waited = feed.decode_wait
                if n == self.batch_size:
                    self._hand_on(buf, n, read, prep)
                    buf, n, read, prep = None, 0, 0.0, 0.0
            if n:
                self._hand_on(buf, n, read, prep)
            feed.finished = True
            _put(self.ready, None, self.stop)
        except _Stop:
            pass
        except BaseException as exc:  # the main thread sees the stop flag and raises it
            self.error = exc
            self.stop.set()


def open_feed(input_path: str, options: Optional[StreamOptions]) -> Optional[ImageFeed]:
    """The runner's hook: an `ImageFeed` when `input_path` holds images, None for `.bin` inputs."""
    if not is_image_input(input_path):
        if options is not None and options != StreamOptions():
            log.warning(f"{input_path}: holds .bin files, so --workers, --interpolation, --resize and --crop "
                        "(settings for streamed images) are ignored")
        return None
    return ImageFeed(input_path, options)


def summary_line(s: Dict) -> str:
    """The file run's one line with what streaming adds: the decode rate and the bounding side."""
    from .perf import summary_line as file_run_line

    st = s["stream"]
    failed = f", {st['images_failed']} failed" if st["images_failed"] else ""
    return (f"{file_run_line(s)}; decoded by {st['workers']} worker{'s' if st['workers'] != 1 else ''} at "
            f"{st['decode_rate_images_per_s']:.1f} img/s{failed}; bounded by {st['bounded_by']} "
            f"(model {st['model_rate_images_per_s']:.1f} img/s)")


def report(summary: Dict, skip_bad: bool = False) -> int:
    """Print a streamed run's failures (stderr) and summary line (stdout); the exit status, as
    preprocessing's `report` decides it: bad images fail the stage unless `skip_bad`."""
    st = summary["stream"]
    failures = st["failed"]
    if failures:
        word = "warning" if skip_bad else "error"
        lines = [f"{word}: {len(failures)} image(s) could not be decoded (also listed in {st['failed_file']}):"]
        lines += [f"  {f['path']}: {f['reason']}" for f in failures]
        print("\n".join(lines), file=sys.stderr)
    print(summary_line(summary))
    if failures and not skip_bad:
        raise UserError(f"{len(failures)} input image(s) failed, listed above and in {st['failed_file']}; every "
                        "other image was run; fix or remove them and rerun, or pass --skip-bad to accept the loss")
    if summary["images"] == 0:
        raise UserError(f"{summary['input']}: no image could be decoded")
    return 0


def run_streamed(model: str, input_path: str, output: str, settings, cls, feed: ImageFeed) -> Dict:
    """`runner.run_inference` for a folder (or jpg info file) of images: the same result files,
    perf file and summary as the `.bin` path, decoded as they run. The output folder is locked
    and checked as for `.bin` inputs; nothing is resumed (a rerun decodes every image again)."""
    from . import atomic
    from .formats import perf_filename
    from .perf import SUMMARY_NAME, perf_text
    from .runner import (
        RESULT_SUBDIR,
        _check_hw,
        _finish,
        _opened,
        _run_phases,
        _verify_results,
        _warm_up,
        resolve_batch_size,
    )
    from .stats import phase, rate

    if cls is not None:
        cls.check_precision(model, settings.precision)
    if settings.result_dir is not None or settings.summary_doc is not None:
        raise UserError(f"{input_path}: images are streamed with this runner's own form only (the benchmark's "
                        "layout); preprocess them for ais_bench's flags")
    result_dir = os.path.join(output, RESULT_SUBDIR.format(device_id=settings.device_id))
    summary_file = os.path.join(output, SUMMARY_NAME)
    for folder in (output, result_dir):
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UserError(f"{folder}: output path is a file, not a folder; give a folder with --output")
    os.makedirs(result_dir, exist_ok=True)
    atomic.check_writable_dir(result_dir, 0, what="result folder")
    atomic.check_output(summary_file, [model, input_path], what="summary")
    with atomic.FolderLock(output), feed, _opened(model, settings, cls) as be:
        feed.check_model(be)
        paths = feed.names  # filled, with the plan, as the images arrive
        _check_hw(be, settings.expect_hw)
        bs = resolve_batch_size(be, settings.batch_size)
        _warm_up(be, bs, settings.warmup)
        bar = progress_bar(feed.total, "infer", settings.progress)
        times = run_pipeline(be, paths, feed.plan, bs, result_dir, settings.outfmt, settings.loop, bar,
                             make_reader=feed.reader(bs, be))
        n = len(paths)
        phases = {"read": phase(n, times.read), "preprocess": phase(n, times.prepare)}
        phases.update(_run_phases(be, n * settings.loop, times.run))
        phases["write"] = phase(n, times.write)
        summary = {"images": n, "batch_size": bs, "batches": times.batches, "padded_images": times.padded_images,
                   "result_files": times.result_files, "wall_seconds": times.wall,
                   "e2e": {"throughput_images_per_s": rate(n, times.wall), "latency_ms": times.wall * 1000.0},
                   "phases": phases}
        _verify_results(result_dir, paths, settings.outfmt, times.n_outputs, summary)
        summary.update({"model": model, "backend": be.name, "device": be.device, "device_id": settings.device_id,
                        "input": input_path, "outfmt": settings.outfmt, "warmup": settings.warmup,
                        "loop": settings.loop, "model_batch_size": be.batch_size, "result_dir": result_dir,
                        "precision": getattr(be, "precision", "fp32"), "n_outputs": times.n_outputs,
                        "inputs": feed.total, "skipped": 0,
                        "input_files": "images, decoded and cropped by worker processes as the model runs"})
        feed.report(summary, output)
        _finish(summary, be, output, perf_filename(bs, settings.device_id), perf_text(summary), summary_file)
    return summary

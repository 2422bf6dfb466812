"""What a streamed run decodes, and the processes that decode it.

- The listing: `is_image_input` tells a streamed `--input` (images) from a `.bin` one;
  `list_folder` gives a folder's images in the `.bin` folder's order (preprocessing's own
  listing: hidden names skipped, special files failed by name, two images with one key refused),
  `list_info` an info file's images in its order. Each image is a `Candidate` whose key names
  its results as the `.bin` of the same image would.
- The pool: `DecodePool` runs `decode` in worker processes, one pipe each. A worker reads the
  whole file once (opened without blocking, the file type checked first), hashes those bytes
  (what the result folder's manifest records to prove the result on a rerun) and decodes them
  with preprocessing's transform, sending back the uint8 crop, or the reason it failed.
"""

from __future__ import annotations

import collections
import contextlib
import io
import multiprocessing
import os
import signal
import stat
import threading
import time
from dataclasses import dataclass
from typing import Deque, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from . import formats, imagetree
from .atomic import NotRegularFile, open_regular, special_kind
from .errors import UserError
from .pipeline import Stopped
from .prepplan import list_images as list_image_dir
from .prepplan import plan_tasks
from .preprocess import describe_failure
from .sidecar import read_proof
from .transforms import EvalTransform, keep_pillow_buffers, load_rgb

_POLL = 0.1  # seconds between checks of the stop flag while the reader waits on the pool

#: the proof of an image as read by the worker that decoded it (`sidecar.read_proof`)
Digest = dict


@dataclass
class DecodeStats:
    """What the pool did, for the summary: images decoded (good and bad), the workers' summed
    seconds on them, the consumer's seconds waiting for them, the most images in flight."""

    decoded: int = 0
    seconds: float = 0.0
    wait: float = 0.0
    max_in_flight: int = 0


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
        # A stray .bin among the images must not turn the folder into a .bin folder that ignores
        # every image (nor a stray image the other way): a mix is refused, naming one of each.
        # Class folders (every entry a folder) are images; their files are checked when listed.
        imagetree.check_one_kind(input_path, visible)
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


def list_folder(input_dir: str, output: Optional[str] = None) -> Tuple[List[Candidate], List[Tuple[int, str, str]],
                                                                       List[str]]:
    """The images of a folder in the `.bin` folder's order; the entries already known to fail
    (index, path, reason); the hidden names skipped. `output`, the run's output folder, is no
    input when it lies inside the image folder (a rerun must not read it as one)."""
    # Preprocessing's listing: hidden names skipped, special files failed by name, never opened.
    found = list_image_dir(input_dir, output)
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
            failed.append((run_index, task.source, f"{special_kind(mode)}, not an image file"))
        else:
            good.append(Candidate(run_index, task.source, task.target))
    for j, (name, reason) in enumerate(found.failed, len(tasks)):
        failed.append((j, os.path.join(input_dir, name), reason))
    return good, failed, hidden


def list_info(info_path: str) -> List[Candidate]:
    """The images of a `get_info.py jpg` info file, in its order (relative paths as `inputs.list_bin_inputs`
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


def decode(transform: EvalTransform, path: str) -> Tuple[Optional[np.ndarray], str, Optional[dict]]:
    """(uint8 crop, "", proof) for a good image, (None, reason, None) for a bad one: preprocessing's
    read-then-decode (`preprocess.Worker`) and `describe_failure`, opened by `atomic.open_regular`.
    The proof is the fstat of the file read (and the hash of the bytes decoded where the file is
    racy), so a result's proof is of exactly what made it."""
    try:
        with open_regular(path) as f:
            st = os.fstat(f.fileno())
            raw = f.read()
        proof = read_proof(st, raw, time.time_ns())
        return transform.pixels(load_rgb(io.BytesIO(raw))), "", proof
    except NotRegularFile as exc:
        return None, f"{exc.kind}, not an image file", None
    except Exception as exc:  # any decoder error is this file's problem, not the run's
        return None, describe_failure(path, exc), None


def _decode_chunk(transform: EvalTransform, chunk: Sequence[Tuple[int, str]]) -> List[tuple]:
    """(position, crop or None, reason, seconds, digest or None) per image of the chunk."""
    out = []
    for pos, path in chunk:
        t0 = time.perf_counter()
        pixels, reason, digest = decode(transform, path)
        out.append((pos, pixels, reason, time.perf_counter() - t0, digest))
    return out


def _worker_main(conn, transform: EvalTransform, inherited: Sequence) -> None:
    """One decoding process: chunks in, results out, over its own pipe, until None or the pipe closes."""
    # Ctrl-C reaches the whole process group: only the parent handles it, then stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for c in inherited:  # the parent's ends, so that the parent's death closes this pipe
        c.close()
    keep_pillow_buffers()
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
    At most `window` chunks are in the workers' hands or waiting to be read: memory stays flat.

    fork starts workers in milliseconds with the transform's one-time Pillow check inherited;
    the feed starts them before the backend loads, so no runtime thread is forked.
    """

    def __init__(self, n: int, transform: EvalTransform, jobs: Sequence[Tuple[int, str]], chunk: int,
                 window: int, stats: DecodeStats) -> None:
        fork = "fork" in multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if fork else "spawn")
        self.conns: list = []
        self.procs: list = []
        self.stats, self.window = stats, window
        self._chunks = iter([jobs[i:i + chunk] for i in range(0, len(jobs), chunk)])
        self._pending: Deque[Tuple[int, int]] = collections.deque()  # (worker, images) per chunk sent
        self._in_flight = 0
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
            self._fill_window()
        except BaseException:
            self.stop(finished=False)
            raise

    def _fill_window(self) -> None:
        while len(self._pending) < self.window:
            chunk = next(self._chunks, None)
            if chunk is None:
                return
            w = self._next
            self._next = (w + 1) % len(self.conns)
            self.conns[w].send(list(chunk))
            self._pending.append((w, len(chunk)))
            self._in_flight += len(chunk)
            self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)

    def results(self, stop: threading.Event) -> Iterator[Tuple[int, Optional[np.ndarray], str, Optional[Digest]]]:
        """(job id, crop or None, reason, digest or None) per job, in the order given; raises
        Stopped when `stop` is set while waiting."""
        while self._pending:
            t0 = time.perf_counter()
            items = self._receive(self._pending[0][0], stop)
            self.stats.wait += time.perf_counter() - t0
            self._in_flight -= self._pending.popleft()[1]
            self._fill_window()
            for job, pixels, reason, seconds, digest in items:
                self.stats.seconds += seconds
                self.stats.decoded += 1
                yield job, pixels, reason, digest

    def _receive(self, w: int, stop: threading.Event):
        """The oldest pending result of worker `w`."""
        conn, proc = self.conns[w], self.procs[w]
        while not conn.poll(_POLL):
            if stop.is_set():
                raise Stopped
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

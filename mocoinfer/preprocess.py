"""Stage 3: a folder of images → one float32 (or uint8) `<image key>.bin` per image, on all cores.

What `imagenet_torch_preprocess.py` runs. The transform is `transforms.EvalTransform`
(bit-identical to torchvision's); this module finds the inputs, decides what is left to do,
spreads it over worker processes and reports:

- inputs are every entry of the input dir, in natural order; two that would write the same
  `.bin` stop the run before any work;
- a `.bin` of the right size is complete (every write is atomic), so a rerun skips it unless
  its input is newer, and an interrupted run finishes by running the same command again; one
  reused `.bin` is recomputed and compared first, so a rerun with other settings does not
  silently mix two transforms;
- a file that cannot be preprocessed does not stop the others: every failure is listed, with
  its reason, on stderr and in `failed.txt` in the output dir.

Workers receive file names and write their own `.bin`, returning only a short status, so
memory stays bounded whatever the folder size.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import formats
from .errors import UserError
from .transforms import DEFAULT_CROP, DEFAULT_INTERPOLATION, DEFAULT_RESIZE, EvalTransform

WRITTEN, FAILED, FATAL = "written", "failed", "fatal"


class Task(NamedTuple):
    index: int
    source: str
    target: str


class Summary(NamedTuple):
    output_dir: str
    written: int
    up_to_date: int
    failed: List[Tuple[str, str]]
    seconds: float
    workers: int
    transform: str = ""

    @property
    def processed(self) -> int:
        return self.written + len(self.failed)

    def line(self) -> str:
        rate = self.processed / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.output_dir}: {self.written} written, {self.up_to_date} already up to date, "
                f"{len(self.failed)} failed in {self.seconds:.1f}s ({rate:.1f} images/s, "
                f"{self.workers} worker{'s' if self.workers != 1 else ''}{', ' if self.transform else ''}"
                f"{self.transform})")


def default_workers() -> int:
    """The cores this process may run on (the affinity mask, which containers and taskset set)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- planning

def list_inputs(input_dir: str) -> List[Tuple[str, bool]]:
    """(name, is_dir) for every entry of the input dir, in natural order."""
    if not os.path.exists(input_dir):
        raise UserError(f"{input_dir}: input image dir not found")
    if not os.path.isdir(input_dir):
        raise UserError(f"{input_dir}: not a directory (give the folder that holds the images)")
    try:
        entries = [(e.name, e.is_dir()) for e in os.scandir(input_dir)]
    except OSError as exc:
        raise UserError(f"{input_dir}: cannot list input dir ({exc.strerror or exc})") from None
    if not entries:
        raise UserError(f"{input_dir}: input image dir is empty")
    entries.sort(key=lambda e: formats.natural_key(e[0]))
    return entries


def plan_tasks(input_dir: str, output_dir: str, entries: Sequence[Tuple[str, bool]]) -> List[Task]:
    """One task per input; an error naming them when two inputs would write the same `.bin`."""
    tasks, owner, clashes = [], {}, []
    for index, (name, is_dir) in enumerate(entries):
        target = formats.bin_name(name)
        # A folder is reported as a bad input by its worker; it never writes, so cannot clash.
        if not is_dir:
            if target in owner:
                clashes.append(f"{owner[target]} and {name} → {target}")
            else:
                owner[target] = name
        tasks.append(Task(index, os.path.join(input_dir, name), os.path.join(output_dir, target)))
    if clashes:
        more = f" (and {len(clashes) - 3} more)" if len(clashes) > 3 else ""
        raise UserError(f"{input_dir}: {len(clashes)} output name clash{'es' if len(clashes) > 1 else ''}, "
                        f"inputs named the same before their first '.': {'; '.join(clashes[:3])}{more}; "
                        "rename or move them, nothing was written")
    return tasks


def prepare_output_dir(input_dir: str, output_dir: str) -> None:
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UserError(f"{output_dir}: output dir exists and is not a directory")
    if os.path.isdir(output_dir) and os.path.samefile(input_dir, output_dir):
        raise UserError(f"{output_dir}: output dir is the input dir; give another folder")
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{output_dir}: cannot create output dir ({exc.strerror or exc})") from None


def remove_stale_temporaries(output_dir: str) -> int:
    """Delete temporaries left by killed runs (their pid is gone); a live writer's are kept."""
    removed = 0
    for entry in os.scandir(output_dir):
        pid = formats.temp_owner_pid(entry.name)
        if pid is None or _pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def existing_bins(output_dir: str) -> Dict[str, Tuple[int, int]]:
    """{name: (size, mtime in ns)} of the `.bin` files already in the output dir."""
    found = {}
    for entry in os.scandir(output_dir):
        if entry.name.endswith(formats.BIN_SUFFIX) and not entry.name.startswith("."):
            with contextlib.suppress(OSError):
                if entry.is_file():
                    st = entry.stat()
                    found[entry.name] = (st.st_size, st.st_mtime_ns)
    return found


def is_up_to_date(task: Task, existing: Dict[str, Tuple[int, int]], expected_size: int) -> bool:
    """A `.bin` of the right size (so complete: writes are atomic) and not older than its input."""
    found = existing.get(os.path.basename(task.target))
    if found is None or found[0] != expected_size:
        return False
    try:
        return os.stat(task.source).st_mtime_ns <= found[1]
    except OSError:
        return False  # let the worker report what is wrong with the input


# --------------------------------------------------------------------------- one image

def describe_failure(path: str, exc: BaseException) -> str:
    """One line saying why an input could not be preprocessed, in the user's terms."""
    if isinstance(exc, IsADirectoryError) or os.path.isdir(path):
        return "is a directory, not an image"
    with contextlib.suppress(OSError):
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, UnidentifiedImageError):
        return "not an image PIL can read (cannot identify image file)"
    if isinstance(exc, Image.DecompressionBombError):
        return f"refused as a decompression bomb ({text})"
    if "truncated" in text:
        return f"truncated image ({text})"
    if isinstance(exc, OSError) and exc.errno is not None:  # the file system's error, not the decoder's
        return f"cannot read ({exc.strerror or text})"
    if isinstance(exc, (OSError, SyntaxError, ValueError)):
        return f"corrupt image ({text})"
    return f"{type(exc).__name__}: {text}"


class Worker:
    """Preprocesses single files: decode, transform, atomic write. One per process."""

    def __init__(self, transform: EvalTransform, overwrite: bool = False, dtype: str = formats.DEFAULT_BIN_DTYPE):
        self.transform = transform
        self.overwrite = overwrite
        self.dtype = dtype
        self._out = np.empty(transform.output_shape, dtype=np.float32)

    def __call__(self, task: Task) -> Tuple[int, str, str]:
        try:
            data = _transformed(self.transform, task.source, self.dtype, self._out)
        except Exception as exc:  # any decoder error is this file's problem, not the run's
            if self.overwrite:
                # The old .bin no longer matches its input: drop it rather than leave it looking current.
                with contextlib.suppress(OSError):
                    os.unlink(task.target)
            return task.index, FAILED, describe_failure(task.source, exc)
        try:
            with formats.atomic_path(task.target) as tmp, open(tmp, "wb") as f:
                f.write(data.data)
        except OSError as exc:
            return task.index, FATAL, f"{task.target}: cannot write ({exc.strerror or exc})"
        return task.index, WRITTEN, ""


def _transformed(transform: EvalTransform, path: str, dtype: str, out: Optional[np.ndarray] = None) -> np.ndarray:
    """What one `.bin` holds: uint8 HWC pixels, or the float32 CHW tensor made from them."""
    if dtype == "uint8":
        return transform.pixels_from_file(path)
    return transform.from_file(path, out)


_worker: Optional[Worker] = None


def _init_worker(transform: EvalTransform, overwrite: bool, dtype: str) -> None:
    global _worker
    # Ctrl-C reaches every process of the terminal's group: the parent alone handles it,
    # stopping the pool, so workers do not each print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent's SIGTERM handler came with fork; the pool stops its workers with SIGTERM.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _worker = Worker(transform, overwrite, dtype)


def _run_task(task: Task) -> Tuple[int, str, str]:
    assert _worker is not None
    return _worker(task)


def _chunksize(n_tasks: int, workers: int) -> int:
    # Big enough to amortise inter-process traffic (one image is a few ms), small enough that
    # the last chunks still spread over all workers.
    return max(1, min(16, n_tasks // (workers * 8)))


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let `kill` stop the run as Ctrl-C does, so the pool's workers go down with it."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _results(tasks: List[Task], transform: EvalTransform, overwrite: bool,
             workers: int, dtype: str = formats.DEFAULT_BIN_DTYPE) -> Iterator[Tuple[int, str, str]]:
    if workers <= 1 or len(tasks) <= 1:
        worker = Worker(transform, overwrite, dtype)
        for task in tasks:
            yield worker(task)
        return
    with multiprocessing.Pool(workers, initializer=_init_worker, initargs=(transform, overwrite, dtype)) as pool:
        yield from pool.imap_unordered(_run_task, tasks, chunksize=_chunksize(len(tasks), workers))


# --------------------------------------------------------------------------- the stage

def check_reused(task: Task, transform: EvalTransform, dtype: str = formats.DEFAULT_BIN_DTYPE) -> None:
    """Recompute one `.bin` that a rerun would keep and stop if it differs from what is on disk."""
    try:
        expected = _transformed(transform, task.source, dtype)
    except Exception:
        return  # the input itself is unreadable now: nothing to compare against
    try:
        with open(task.target, "rb") as f:
            if f.read() == expected.tobytes():
                return
    except OSError:
        return  # unreadable now: get_info or the benchmark will say so
    raise UserError(f"{task.target}: already exists but differs from what these settings make of "
                    f"{task.source} ({transform.interpolation}, resize {transform.resize}, crop {transform.crop}, "
                    f"{dtype}); "
                    "it was made with other settings or from another image: pass --overwrite to redo "
                    "the output dir, or give a new one")


def preprocess_folder(input_dir: str, output_dir: str, *, interpolation: str = DEFAULT_INTERPOLATION,
                      resize: int = DEFAULT_RESIZE, crop: int = DEFAULT_CROP, workers: Optional[int] = None,
                      overwrite: bool = False, progress: bool = True,
                      dtype: str = formats.DEFAULT_BIN_DTYPE) -> Summary:
    """Preprocess every image of `input_dir` into `output_dir`; returns the counts and failures.

    Failures do not raise: they are returned (and written to `failed.txt`) for the caller's
    exit policy. Bad arguments, name clashes and unwritable output raise `UserError`.
    """
    start = time.perf_counter()
    if dtype not in formats.BIN_DTYPES:
        raise UserError(f"unknown dtype {dtype!r} (choose from {', '.join(formats.BIN_DTYPES)})")
    try:
        transform = EvalTransform(resize=resize, crop=crop, interpolation=interpolation)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    entries = list_inputs(input_dir)
    if os.path.isdir(output_dir):
        # An output dir inside the input dir is not an input.
        entries = [e for e in entries if not (e[1] and os.path.samefile(os.path.join(input_dir, e[0]), output_dir))]
        if not entries:
            raise UserError(f"{input_dir}: input image dir holds nothing but the output dir")
    tasks = plan_tasks(input_dir, output_dir, entries)
    prepare_output_dir(input_dir, output_dir)
    remove_stale_temporaries(output_dir)

    expected_size = formats.bin_file_size(crop, crop, dtype=dtype)
    existing = existing_bins(output_dir)
    if overwrite:
        todo, reused = tasks, []
    else:
        todo, reused = [], []
        for task in tasks:
            (reused if is_up_to_date(task, existing, expected_size) else todo).append(task)
        if reused:
            check_reused(reused[0], transform, dtype)
    _warn_orphans(output_dir, existing, tasks)

    failed: List[Tuple[int, str]] = []
    written = 0
    if todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="img", desc="preprocess", file=sys.stderr, disable=not progress,
                   dynamic_ncols=True, mininterval=0.2 if sys.stderr.isatty() else 10.0)
        with _sigterm_as_interrupt(), bar:
            for index, status, reason in _results(todo, transform, overwrite, min(workers, len(todo)), dtype):
                if status == WRITTEN:
                    written += 1
                elif status == FAILED:
                    failed.append((index, reason))
                else:
                    raise UserError(reason)
                bar.update(1)
    failed.sort()
    failures = [(tasks[i].source, reason) for i, reason in failed]
    failed_list = os.path.join(output_dir, formats.FAILED_LIST_NAME)
    if failures:
        formats.write_failed(failed_list, failures)
    else:
        # A list from an earlier run would now be wrong.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(failed_list)
    return Summary(output_dir, written, len(reused), failures, time.perf_counter() - start,
                   min(workers, max(1, len(todo))), f"{interpolation}, resize {resize}, crop {crop}, {dtype}")


def _warn_orphans(output_dir: str, existing: dict, tasks: Sequence[Task]) -> None:
    """Say so when the output dir holds .bin files no input made: get_info would list them too."""
    ours = {os.path.basename(t.target) for t in tasks}
    orphans = sorted((n for n in existing if n not in ours), key=formats.natural_key)
    if orphans:
        print(f"warning: {output_dir} holds {len(orphans)} .bin file(s) that no input here makes "
              f"(e.g. {', '.join(orphans[:3])}); `get_info.py bin` will list them too",
              file=sys.stderr)


def report(summary: Summary, skip_bad: bool = False) -> int:
    """Print the failures and the summary line; the exit status the stage should end with."""
    failures = summary.failed
    if failures:
        failed_list = os.path.join(summary.output_dir, formats.FAILED_LIST_NAME)
        word = "warning" if skip_bad else "error"
        print(f"{word}: {len(failures)} file(s) could not be preprocessed (also listed in {failed_list}):",
              file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
    print(summary.line())
    if failures and not skip_bad:
        raise UserError(f"{len(failures)} input file(s) failed, listed above and in "
                        f"{os.path.join(summary.output_dir, formats.FAILED_LIST_NAME)}; every other image was "
                        "written; fix or remove them and rerun, or pass --skip-bad to accept the loss")
    if summary.written + summary.up_to_date == 0:
        raise UserError(f"{summary.output_dir}: no image could be preprocessed")
    return 0

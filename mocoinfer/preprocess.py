"""Stage 3: a folder of images → one float32 (or uint8) `<image key>.bin` per image, on all cores.

What `imagenet_torch_preprocess.py` runs. The transform is `transforms.EvalTransform`
(bit-identical to torchvision's); this module finds the inputs, decides what is left to do,
spreads it over worker processes and reports. It follows the output policy of `atomic.py`:

- the output dir is locked for the run (a second run into it stops, naming the first);
- inputs are the entries of the input dir in natural order; hidden names are skipped with a
  note (they would make hidden outputs), FIFOs, sockets, devices and broken or looping
  symlinks are failures by name and never opened, and a folder that is or holds the output
  dir is not an input; two inputs that would write the same `.bin` stop the run before any work;
- reuse is proven, file by file: the folder's manifest records the settings and, per `.bin`,
  the size and SHA-256 of the image it was made from; a rerun keeps a `.bin` only when the
  settings are the same and its image's content still hashes the same (mtimes are not trusted).
  A rerun with other settings refuses without `--overwrite`; the manifest says `incomplete`
  until a run finishes, and an interrupted run resumes by running the same command again;
- a file that cannot be preprocessed does not stop the others: every failure is listed, with
  its reason, on stderr and in `failed.txt` in the output dir (a `failed.txt` this tool did not
  write is never replaced or deleted);
- only this run's temporaries, and those of the previous holder of the folder's lock, are deleted.

Workers receive file names and write their own `.bin`, returning only a short status and the
image's hash, so memory stays bounded whatever the folder size.
"""

from __future__ import annotations

import contextlib
import errno
import io
import multiprocessing
import os
import signal
import sys
import time
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import atomic, formats, imagetree, sidecar
from .cli import signals_as_interrupt
from .errors import UserError
from .prepplan import (
    Inputs,
    Task,
    existing_bins,
    list_images,
    plan_reuse,
    plan_tasks,
    prepare_output_dir,
    settings_of,
)
from .progress import log, progress_bar, usable_cpus
from .transforms import (
    DEFAULT_CROP,
    DEFAULT_INTERPOLATION,
    DEFAULT_RESIZE,
    EvalTransform,
    keep_pillow_buffers,
    load_rgb,
)

WRITTEN, FAILED, FATAL = "written", "failed", "fatal"
TOOL = "imagenet_torch_preprocess.py"
# Sizes outside this range are typos (`--crop 100000` would allocate gigabytes per worker).
MIN_SIZE, MAX_SIZE = 8, 4096
# How often the manifest is saved during a run, so a killed run loses little proven work.
MANIFEST_EVERY_S = 10.0


class Summary(NamedTuple):
    output_dir: str
    written: int
    up_to_date: int
    failed: List[Tuple[str, str]]
    seconds: float
    workers: int
    transform: str = ""
    failed_list: str = ""  # where the failures were written ("" when not written)

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
    """One worker per usable CPU (the affinity mask, which containers and taskset set)."""
    return usable_cpus()


def check_sizes(resize: int, crop: int) -> None:
    """`--resize` and `--crop` in a sane range, and the crop inside the resized short edge."""
    for name, value in (("resize", resize), ("crop", crop)):
        if not MIN_SIZE <= value <= MAX_SIZE:
            raise UserError(f"--{name} must be between {MIN_SIZE} and {MAX_SIZE}, got {value}")
    if crop > resize:
        raise UserError(f"--crop ({crop}) must not exceed --resize ({resize}): the crop is taken from the "
                        "resized image's short edge")


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
    if isinstance(exc, OSError) and exc.errno == errno.EINVAL and exc.strerror:
        return f"{exc.strerror} (not opened)"
    if isinstance(exc, OSError) and exc.errno is not None:  # the file system's error, not the decoder's
        return f"cannot read ({exc.strerror or text})"
    if isinstance(exc, (OSError, SyntaxError, ValueError)):
        return f"corrupt image ({text})"
    return f"{type(exc).__name__}: {text}"


class Worker:
    """Preprocesses single files: read (never blocking), hash, decode, transform, atomic write."""

    def __init__(self, transform: EvalTransform, overwrite: bool = False, run_id: Optional[str] = None,
                 dtype: str = formats.DEFAULT_BIN_DTYPE):
        self.transform = transform
        self.overwrite = overwrite
        self.run_id = run_id
        self.dtype = dtype
        self._out = np.empty(transform.output_shape, dtype=np.float32)
        keep_pillow_buffers()

    def __call__(self, task: Task) -> Tuple[int, str, str, Optional[dict]]:
        try:
            with atomic.open_regular(task.source) as f:
                st = os.fstat(f.fileno())
                raw = f.read()
            source_proof = sidecar.read_proof(st, raw, time.time_ns())
            img = load_rgb(io.BytesIO(raw))
            # uint8: the cropped RGB pixels, HWC; float32: the normalised CHW tensor made from them.
            data = self.transform.pixels(img) if self.dtype == "uint8" else self.transform(img, self._out)
        except Exception as exc:  # any decoder error is this file's problem, not the run's
            if task.drop_on_failure:
                # The old .bin no longer matches its input: drop it rather than leave it looking current.
                with contextlib.suppress(OSError):
                    os.unlink(task.target)
            return task.index, FAILED, describe_failure(task.source, exc), None
        try:
            with atomic.atomic_path(task.target, self.run_id) as tmp, open(tmp, "wb") as f:
                f.write(data.data)
        except OSError as exc:
            return task.index, FATAL, f"{task.target}: cannot write ({atomic.describe_os_error(exc)})", None
        except UserError as exc:  # the target became a symlink or special file meanwhile
            return task.index, FATAL, str(exc), None
        # The .bin's own proof is taken by the parent when it writes the manifest (`_save`): by
        # then most are old enough for their stat data alone, and only the racy few are hashed.
        record = {"source": os.path.basename(task.source), "source_proof": source_proof, "size": data.nbytes}
        return task.index, WRITTEN, "", record


_worker: Optional[Worker] = None
_worker_error = ""


def _init_worker(transform: EvalTransform, overwrite: bool, run_id: Optional[str], dtype: str) -> None:
    global _worker, _worker_error
    # Ctrl-C reaches every process of the terminal's group: the parent alone handles it,
    # stopping the pool, so workers do not each print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent's SIGTERM handler came with fork; the pool stops its workers with SIGTERM.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        _worker = Worker(transform, overwrite, run_id, dtype)
    except Exception as exc:
        # An initializer that raises makes the pool respawn the worker forever; report it as
        # every task's fatal error instead, which stops the run with one message.
        _worker_error = f"a worker process could not start ({type(exc).__name__}: {' '.join(str(exc).split())})"


def _run_task(task: Task) -> Tuple[int, str, str, Optional[dict]]:
    if _worker is None:
        return task.index, FATAL, _worker_error or "a worker process could not start", None
    return _worker(task)


def _chunksize(n_tasks: int, workers: int) -> int:
    # Big enough to amortise inter-process traffic (one image is a few ms), small enough that
    # the last chunks still spread over all workers.
    return max(1, min(16, n_tasks // (workers * 8)))


def _results(tasks: List[Task], transform: EvalTransform, overwrite: bool, workers: int,
             run_id: Optional[str] = None,
             dtype: str = formats.DEFAULT_BIN_DTYPE) -> Iterator[Tuple[int, str, str, Optional[dict]]]:
    if workers <= 1 or len(tasks) <= 1:
        worker = Worker(transform, overwrite, run_id, dtype)
        for task in tasks:
            yield worker(task)
        return
    initargs = (transform, overwrite, run_id, dtype)
    with multiprocessing.Pool(workers, initializer=_init_worker, initargs=initargs) as pool:
        yield from pool.imap_unordered(_run_task, tasks, chunksize=_chunksize(len(tasks), workers))


def preprocess_folder(input_dir: str, output_dir: str, *, interpolation: str = DEFAULT_INTERPOLATION,
                      resize: int = DEFAULT_RESIZE, crop: int = DEFAULT_CROP, workers: Optional[int] = None,
                      overwrite: bool = False, progress: bool = True,
                      dtype: str = formats.DEFAULT_BIN_DTYPE) -> Summary:
    """Preprocess every image of `input_dir` into `output_dir`; returns the counts and failures.

    Failures do not raise: they are returned (and written to `failed.txt`) for the caller's
    exit policy. Bad arguments, name clashes, unprovable reuse, a locked or unwritable output
    dir raise `UserError`.
    """
    start = time.perf_counter()
    if dtype not in formats.BIN_DTYPES:
        raise UserError(f"unknown dtype {dtype!r} (choose from {', '.join(formats.BIN_DTYPES)})")
    check_sizes(resize, crop)
    try:
        transform = EvalTransform(resize=resize, crop=crop, interpolation=interpolation)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    found = list_images(input_dir, output_dir)
    if found.hidden:
        log.warning(f"{input_dir}: skipped {len(found.hidden)} hidden file(s) (e.g. "
                    f"{', '.join(found.hidden[:3])}); rename them without the leading '.' to preprocess them")
    if found.skipped_dirs:
        log.info(f"note: {', '.join(found.skipped_dirs)} in {input_dir} holds the output dir; not an input")
    if not found.entries and not found.failed:
        raise UserError(f"{input_dir}: input image dir holds nothing to preprocess")
    tasks = plan_tasks(input_dir, output_dir, found.entries)
    prepare_output_dir(input_dir, output_dir)
    with sidecar.FolderLock(output_dir) as lock:
        atomic.remove_temporaries(output_dir, lock.previous_run_ids() + [lock.run_id])
        return _run(input_dir, output_dir, found, tasks, transform, workers, overwrite, progress, lock.run_id,
                    start, dtype)


def _run(input_dir: str, output_dir: str, found: Inputs, tasks: List[Task], transform: EvalTransform,
         workers: int, overwrite: bool, progress: bool, run_id: str, start: float, dtype: str) -> Summary:
    settings = settings_of(transform, dtype)
    expected_size = formats.bin_file_size(transform.crop, transform.crop, dtype=dtype)
    manifest = sidecar.read_manifest(output_dir)
    existing = existing_bins(output_dir)
    todo, reused, records = plan_reuse(tasks, manifest, settings, existing, expected_size, overwrite, output_dir,
                                       workers)
    _warn_orphans(output_dir, existing, tasks)
    atomic.check_writable_dir(output_dir, len(todo) * expected_size, what="output dir")

    failed_list = os.path.join(output_dir, formats.FAILED_LIST_NAME)
    failed_list_ours = sidecar.failed_list_is_ours(failed_list, manifest)
    doc = sidecar.new_manifest(TOOL, settings, input_dir, run_id)
    doc["files"] = dict(records)
    if manifest and failed_list_ours and manifest.get("failed_list"):
        doc["failed_list"] = manifest["failed_list"]
    sidecar.write_manifest(output_dir, doc, run_id)  # incomplete until this run finishes
    pending: List[str] = []  # .bin files written since the manifest was last saved

    def save() -> None:
        sidecar.prove_outputs(output_dir, doc["files"], pending)
        pending.clear()
        sidecar.write_manifest(output_dir, doc, run_id)

    failed: List[Tuple[int, str]] = []
    written = 0
    finished = False
    try:
        if todo:
            bar = progress_bar(len(todo), "preprocess", progress)
            saved = time.monotonic()
            with signals_as_interrupt(), bar:
                for index, status, reason, record in _results(todo, transform, overwrite,
                                                              min(workers, len(todo)), run_id, dtype):
                    if status == WRITTEN:
                        written += 1
                        doc["files"][os.path.basename(tasks[index].target)] = record
                        pending.append(os.path.basename(tasks[index].target))
                    elif status == FAILED:
                        failed.append((index, reason))
                    else:
                        raise UserError(reason)
                    bar.update(1)
                    if time.monotonic() - saved > MANIFEST_EVERY_S:
                        save()
                        saved = time.monotonic()
        finished = True
    finally:
        if not finished:
            # Interrupted or stopped: what was written is recorded (so proven on the rerun), and
            # the folder stays marked incomplete.
            with contextlib.suppress(UserError, OSError):
                save()
            atomic.remove_temporaries(output_dir, [run_id])
    failures = [(tasks[i].source, reason) for i, reason in failed]
    failures += [(os.path.join(input_dir, name), reason) for name, reason in found.failed]
    # Natural order of the name inside the input dir: the file's (flat), or class/file.
    failures.sort(key=lambda f: formats.natural_key(os.path.relpath(f[0], input_dir)))
    written_list = sidecar.replace_failed_list(failed_list, failures, failed_list_ours, doc, run_id)
    doc["status"] = sidecar.COMPLETE
    doc["failed"] = len(failures)
    save()
    return Summary(output_dir, written, len(reused), failures, time.perf_counter() - start,
                   min(workers, max(1, len(todo))),
                   f"{transform.interpolation}, resize {transform.resize}, crop {transform.crop}, {dtype}",
                   written_list)


def _warn_orphans(output_dir: str, existing: dict, tasks: Sequence[Task]) -> None:
    """Say so when the output dir holds .bin files no input made: get_info would list them too."""
    ours = {os.path.basename(t.target) for t in tasks}
    orphans = sorted((n for n in existing if n not in ours), key=formats.natural_key)
    if orphans:
        log.warning(f"{output_dir} holds {len(orphans)} .bin file(s) that no input here makes "
                    f"(e.g. {', '.join(orphans[:3])}); `get_info.py bin` will list them too")


def report(summary: Summary, skip_bad: bool = False) -> int:
    """Print the failures and the summary line; the exit status the stage should end with."""
    failures = summary.failed
    listed = f" (also listed in {summary.failed_list})" if summary.failed_list else ""
    if failures:
        word = "warning" if skip_bad else "error"
        print(f"{word}: {len(failures)} file(s) could not be preprocessed{listed}:", file=sys.stderr)
        for path, reason in failures:
            # A name that is not valid UTF-8 is shown with its bytes escaped, whatever stderr's encoding.
            print(f"  {imagetree.shown(path)}: {imagetree.shown(reason)}", file=sys.stderr)
    print(summary.line())
    if failures and not skip_bad:
        where = f"listed above and in {summary.failed_list}" if summary.failed_list else "listed above"
        raise UserError(f"{len(failures)} input file(s) failed, {where}; every other image was written; "
                        "fix or remove them and rerun, or pass --skip-bad to accept the loss")
    if summary.written + summary.up_to_date == 0:
        raise UserError(f"{summary.output_dir}: no image could be preprocessed")
    return 0

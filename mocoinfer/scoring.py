"""Per-image numbers from result files, chunk by chunk: what the metric and the comparison count.

- Ranking order: higher score first; among equal scores the lower class index first; NaN scores
  rank last. That is `np.argsort(-scores, kind="stable")`, the same on every run (the guide's
  default quicksort breaks ties arbitrarily). `label_ranks` and `topk_indices` both follow it,
  so the metric and the comparison never disagree about a tie.
- Top-k hit: the label's rank is below k. The rank is counted directly (scores above the
  label's, plus equal scores at lower indices), an O(classes) pass with no sort at all.
- Files are read in chunks of CHUNK images, optionally by a process pool (parsing txt is
  CPU-bound). `score_chunk` turns a chunk into a few numbers per image (the label's rank, the
  cosine with the reference, ...), so a worker never sends a score matrix back: 50,000 images
  of 1,000 floats would be 200 MB through a pipe, enough to make a second worker useless.
- A 1001-class output has the background at index 0: labels shift by one, as in the guide.
"""

from __future__ import annotations

import itertools
import os
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, TypeVar

import numpy as np

from .errors import UserError
from .formats import ResultFile, list_results, read_result
from .progress import usable_cpus

TOPK = 5
CHUNK = 256
# Below this many txt files a process pool costs more to start than it saves.
POOL_MIN_FILES = 2000
MAX_WORKERS = 4
TIE_RULE = "higher score first; among equal scores the lower class index first; NaN last"


# Ranking.

def label_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0-based rank of each row's label under the order of `np.argsort(-row, kind="stable")`."""
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.intp)
    rows = np.arange(scores.shape[0])
    s = scores[rows, labels][:, None]
    ranks = np.count_nonzero(scores > s, axis=1)
    # Equal scores at lower indices rank first too; most rows have none (the label equals only
    # itself), so only the others are searched.
    tied = np.flatnonzero(np.count_nonzero(scores == s, axis=1) > 1)
    if tied.size:
        lower = np.arange(scores.shape[1]) < labels[tied, None]
        ranks[tied] += np.count_nonzero((scores[tied] == s[tied]) & lower, axis=1)
    nan_label = np.flatnonzero(np.isnan(s[:, 0]))
    for r in nan_label:
        # A NaN label score ranks after every number, and after the NaNs at lower indices.
        row = np.isnan(scores[r])
        ranks[r] = np.count_nonzero(~row) + np.count_nonzero(row[: labels[r]])
    return ranks


def topk_indices(scores: np.ndarray, k: int = TOPK) -> np.ndarray:
    """Indices of each row's k best scores, best first, exactly as `argsort(-row, "stable")[:k]`.

    argpartition finds the k best without a full sort; a row where scores equal to the k-th
    also lie outside the chosen k (a tie at the boundary), or where a NaN is among them, is
    sorted in full so that the lower index wins as the rule says.
    """
    key = -np.asarray(scores, dtype=np.float64)
    n = key.shape[1]
    k = min(k, n)
    if k == n:
        return np.argsort(key, axis=1, kind="stable")
    part = np.argpartition(key, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(key, part, axis=1)
    order = np.lexsort((part, vals), axis=1)
    top = np.take_along_axis(part, order, axis=1)
    kth = vals.max(axis=1)
    exact = (key <= kth[:, None]).sum(axis=1) == k
    for r in np.flatnonzero(~exact | np.isnan(kth)):
        top[r] = np.argsort(key[r], kind="stable")[:k]
    return top


# Reading.

class ResultSet(NamedTuple):
    """A result dir's files, one per image key, and the names that were skipped."""
    folder: str
    files: List[ResultFile]
    skipped: List[str]

    def by_key(self) -> Dict[str, ResultFile]:
        return {f.key: f for f in self.files}


def scan_results(folder: str) -> ResultSet:
    """List a result dir strictly: no result files, or two for one image, is an error."""
    files, skipped = list_results(folder)
    if not files:
        raise UserError(f"{folder}: no result files (<image>_<k>.txt|bin|npy) in the result dir")
    seen: Dict[str, ResultFile] = {}
    for f in files:
        if f.key in seen:
            raise UserError(f"{folder}: two results for image {f.key!r}: "
                            f"{os.path.basename(seen[f.key].path)} and {os.path.basename(f.path)}")
        seen[f.key] = f
    return ResultSet(folder, files, skipped)


def read_chunk(paths: Sequence[str]) -> np.ndarray:
    vecs = [read_result(p) for p in paths]
    n = vecs[0].size
    for p, v in zip(paths, vecs):
        if v.size != n:
            raise UserError(f"{p}: {v.size} values, but {paths[0]} has {n} (result vectors differ in length)")
    return np.stack(vecs)


def default_workers(n_files: int) -> int:
    """Worker processes for parsing `n_files` txt files: 0 (this process) for small runs, else
    the usable CPUs, at most MAX_WORKERS."""
    if n_files < POOL_MIN_FILES:
        return 0
    cpus = usable_cpus()
    return min(cpus, MAX_WORKERS) if cpus > 1 else 0


_Job = TypeVar("_Job")
_Out = TypeVar("_Out")


def ordered_map(fn: Callable[[_Job], _Out], jobs: Sequence[_Job], workers: int) -> Iterator[_Out]:
    """`map(fn, jobs)` in order; with workers > 0 in a process pool, at most 2 * workers jobs
    in flight so that memory stays bounded. `fn` must be a module-level function."""
    if workers <= 0:
        yield from map(fn, jobs)
        return
    # Imported here: multiprocessing costs start-up time that small runs never need.
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        it = iter(jobs)
        pending = [pool.submit(fn, job) for job in itertools.islice(it, 2 * workers)]
        while pending:
            fut = pending.pop(0)
            out = fut.result()
            job = next(it, None)
            if job is not None:
                pending.append(pool.submit(fn, job))
            yield out


def iter_matrices(paths: Sequence[str], workers: Optional[int] = None,
                  chunk: int = CHUNK) -> Iterator[Tuple[int, np.ndarray]]:
    """Yield `(start, float32 matrix)` for consecutive chunks of `paths`, in order.

    Every vector must have the length of the first one.
    """
    starts = range(0, len(paths), chunk)
    if workers is None:
        workers = default_workers(len(paths))
    width = None
    mats = ordered_map(read_chunk, [paths[s:s + chunk] for s in starts], workers)
    for s, mat in zip(starts, mats):
        if width is None:
            width = mat.shape[1]
        elif mat.shape[1] != width:
            raise UserError(f"{paths[s]}: {mat.shape[1]} values, but {paths[0]} has {width} "
                            "(result vectors differ in length)")
        yield s, mat


# Scoring one chunk.

def label_offset(n_classes: int) -> int:
    """1 for a 1001-class output (background at index 0, as the guide shifts), else 0."""
    return 1 if n_classes == 1001 else 0


class ChunkJob(NamedTuple):
    """One chunk of images for `score_chunk`, small enough to send to a worker."""
    paths: List[str]               # the checked dir's files
    labels: np.ndarray             # their labels as in the label file (before the 1001 shift)
    ref_rows: np.ndarray           # rows (images) of the chunk that have a reference file
    ref_paths: List[str]           # those reference files


class ChunkScores(NamedTuple):
    """What a worker sends back for one chunk: a few numbers per image, no score matrix."""
    width: int                     # values per vector
    bad_label: int                 # first image whose label is out of range, or -1
    ranks: np.ndarray              # label rank of each image (see label_ranks)
    nan: np.ndarray                # image holds a NaN score
    ref_error: str                 # why the references could not be compared ('' if they could)
    ref_ranks: np.ndarray          # per image with a reference: the label rank in the reference
    agree: np.ndarray              # top-1 class the same
    overlap: np.ndarray            # top-5 classes shared
    finite: np.ndarray             # both vectors free of NaN and inf
    cosine: np.ndarray             # float64; NaN where not finite
    max_diff: np.ndarray           # max |checked - reference|, float64; NaN where not finite


def score_chunk(job: ChunkJob) -> ChunkScores:
    """Read one chunk, and its images' reference files, down to a few numbers per image."""
    a = read_chunk(job.paths)
    width = a.shape[1]
    offset = label_offset(width)
    lab = job.labels + offset
    bad = np.flatnonzero((lab >= width) | (lab < offset))
    # Out-of-range labels are reported by the caller, after its own width check; clip meanwhile.
    lab = np.clip(lab, 0, width - 1)
    head = (width, int(bad[0]) if bad.size else -1, label_ranks(a, lab), np.isnan(a).any(axis=1))
    none_i = np.zeros(0, dtype=np.int64)
    none_b, none_f = none_i.astype(bool), none_i.astype(np.float64)
    nothing = (none_i, none_b, none_i, none_b, none_f, none_f)
    if not job.ref_paths:
        return ChunkScores(*head, "", *nothing)
    # A fault on the reference's side is sent back, not raised: the caller reports it after every
    # fault of the checked dir, as when the accuracy and the comparison ran one after the other.
    try:
        b = read_chunk(job.ref_paths)
    except UserError as exc:
        return ChunkScores(*head, str(exc), *nothing)
    if b.shape[1] != width:
        return ChunkScores(*head, f"{job.ref_paths[0]}: {b.shape[1]} values, but "
                                  f"{job.paths[job.ref_rows[0]]} has {width}", *nothing)
    return ChunkScores(*head, "", *_compare_rows(a[job.ref_rows], b, lab[job.ref_rows]))


def _compare_rows(a: np.ndarray, b: np.ndarray, lab: np.ndarray) -> tuple:
    """Per row of a (checked) and b (reference): b's label rank, top-1 agreement, top-5 overlap,
    finiteness, cosine similarity and max |difference| (float64)."""
    ref_ranks = label_ranks(b, lab)
    ta, tb = topk_indices(a, TOPK), topk_indices(b, TOPK)
    agree = ta[:, 0] == tb[:, 0]
    overlap = (ta[:, :, None] == tb[:, None, :]).any(axis=2).sum(axis=1)
    fin = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    cosine = np.full(a.shape[0], np.nan)
    max_diff = np.full(a.shape[0], np.nan)
    if fin.any():
        a64, b64 = a[fin].astype(np.float64), b[fin].astype(np.float64)
        aa, bb = np.einsum("ij,ij->i", a64, a64), np.einsum("ij,ij->i", b64, b64)
        na, nb = np.sqrt(aa), np.sqrt(bb)
        dot = np.einsum("ij,ij->i", a64, b64)
        with np.errstate(invalid="ignore", divide="ignore"):
            # sqrt(aa * bb), not na * nb: identical vectors then give exactly 1.0.
            cos = np.clip(dot / np.sqrt(aa * bb), -1.0, 1.0)
        # Two zero vectors agree perfectly; one zero vector against another has no angle: 0.
        cosine[fin] = np.where((na == 0) & (nb == 0), 1.0, np.where((na == 0) | (nb == 0), 0.0, cos))
        max_diff[fin] = np.abs(a64 - b64).max(axis=1)
    return ref_ranks, agree, overlap, fin, cosine, max_diff

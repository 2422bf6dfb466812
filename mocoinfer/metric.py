"""Top-k accuracy of a result dir against the label file, and the comparison of two result dirs.

This is the guide's vision_metric_ImageNet.py made exact, strict and streaming:

- Ranking order: higher score first; among equal scores the lower class index first; NaN scores
  rank last. That is `np.argsort(-scores, kind="stable")`, the same on every run (the guide's
  default quicksort breaks ties arbitrarily). `label_ranks` and `topk_indices` both follow it,
  so the metric and the comparison never disagree about a tie.
- Top-k hit: the label's rank is below k. The rank is counted directly (scores above the
  label's, plus equal scores at lower indices), an O(classes) pass with no sort at all.
- One pass: the accuracy and the comparison with a reference dir read each file once. Files are
  scored in chunks of CHUNK images, optionally by a process pool (parsing txt is CPU-bound);
  a chunk comes back as a few numbers per image (the label's rank, the cosine, ...), never as
  its score matrix, so the pool scales and memory stays bounded whatever the number of files.
- A 1001-class output has the background at index 0: labels shift by one, as in the guide.
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from .errors import UserError
from .formats import ResultFile, format_accuracy, list_results, read_labels, read_result
from .progress import log, progress_bar, usable_cpus

TOPK = 5
CHUNK = 256
# Below this many files a process pool costs more to start than it saves.
POOL_MIN_FILES = 2000
MAX_WORKERS = 4
TIE_RULE = "higher score first; among equal scores the lower class index first; NaN last"


# --------------------------------------------------------------------------- ranking

def label_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0-based rank of each row's label under the order of `np.argsort(-row, kind="stable")`."""
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.intp)
    rows = np.arange(scores.shape[0])
    s = scores[rows, labels][:, None]
    cols = np.arange(scores.shape[1])
    ranks = (scores > s).sum(axis=1) + ((scores == s) & (cols < labels[:, None])).sum(axis=1)
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


# --------------------------------------------------------------------------- reading

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


def _read_chunk(paths: Sequence[str]) -> np.ndarray:
    vecs = [read_result(p) for p in paths]
    n = vecs[0].size
    for p, v in zip(paths, vecs):
        if v.size != n:
            raise UserError(f"{p}: {v.size} values, but {paths[0]} has {n} (result vectors differ in length)")
    return np.stack(vecs)


def default_workers(n_files: int) -> int:
    """0 (read in this process) for small runs, else the usable CPUs, at most MAX_WORKERS."""
    if n_files < POOL_MIN_FILES:
        return 0
    cpus = usable_cpus()
    return min(cpus, MAX_WORKERS) if cpus > 1 else 0


_Job = TypeVar("_Job")
_Out = TypeVar("_Out")


def _ordered_map(fn: Callable[[_Job], _Out], jobs: Sequence[_Job], workers: int) -> Iterator[_Out]:
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
    mats = _ordered_map(_read_chunk, [paths[s:s + chunk] for s in starts], workers)
    for s, mat in zip(starts, mats):
        if width is None:
            width = mat.shape[1]
        elif mat.shape[1] != width:
            raise UserError(f"{paths[s]}: {mat.shape[1]} values, but {paths[0]} has {width} "
                            "(result vectors differ in length)")
        yield s, mat


# --------------------------------------------------------------------------- scoring one chunk

def label_offset(n_classes: int) -> int:
    """1 for a 1001-class output (background at index 0, as the guide shifts), else 0."""
    return 1 if n_classes == 1001 else 0


class _ChunkJob(NamedTuple):
    paths: List[str]               # the checked dir's files
    labels: np.ndarray             # their labels as in the label file (before the 1001 shift)
    ref_rows: np.ndarray           # rows (images) of the chunk that have a reference file
    ref_paths: List[str]           # those reference files


class _ChunkScores(NamedTuple):
    """What a worker sends back for one chunk: a few numbers per image, no score matrix."""
    width: int                     # values per vector
    bad_label: int                 # first image whose label is out of range, or -1
    ranks: np.ndarray              # label rank of each image (see label_ranks)
    nan: np.ndarray                # image holds a NaN score
    ref_width: int                 # values per reference vector (0: no reference in the chunk)
    ref_ranks: np.ndarray          # per image with a reference: the label rank in the reference
    agree: np.ndarray              # top-1 class the same
    overlap: np.ndarray            # top-5 classes shared
    finite: np.ndarray             # both vectors free of NaN and inf
    cosine: np.ndarray             # float64; NaN where not finite
    max_diff: np.ndarray           # max |checked - reference|, float64; NaN where not finite


def _score_chunk(job: _ChunkJob) -> _ChunkScores:
    a = _read_chunk(job.paths)
    width = a.shape[1]
    offset = label_offset(width)
    lab = job.labels + offset
    bad = np.flatnonzero((lab >= width) | (lab < offset))
    # Out-of-range labels are reported by the caller, after its own width check; clip meanwhile.
    lab = np.clip(lab, 0, width - 1)
    head = (width, int(bad[0]) if bad.size else -1, label_ranks(a, lab), np.isnan(a).any(axis=1))
    b = _read_chunk(job.ref_paths) if job.ref_paths else None
    if b is None or b.shape[1] != width:
        none_i = np.zeros(0, dtype=np.int64)
        none_b, none_f = none_i.astype(bool), none_i.astype(np.float64)
        return _ChunkScores(*head, 0 if b is None else b.shape[1], none_i, none_b, none_i, none_b, none_f, none_f)
    return _ChunkScores(*head, width, *_compare_rows(a[job.ref_rows], b, lab[job.ref_rows]))


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


# --------------------------------------------------------------------------- one pass over a dir

class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, n: int) -> None:
        pass


def _bar(total: int, show: bool):
    # The bar shows only on a terminal (tqdm's own rule); importing tqdm to draw nothing would
    # cost a twentieth of a second, a fifth of a small run's start-up.
    if not show or not sys.stderr.isatty():
        return _NoBar()
    return progress_bar(total, "metric", None, unit="file")


LabelsArg = Union[str, Dict[str, int]]


def _labels(labels: LabelsArg) -> Tuple[Dict[str, int], str]:
    if isinstance(labels, str):
        return read_labels(labels), labels
    return dict(labels), "labels"


def _split_labelled(rs: ResultSet, labels: Dict[str, int], allow_missing: bool,
                    label_name: str) -> Tuple[List[ResultFile], List[str]]:
    labelled = [f for f in rs.files if f.key in labels]
    missing = [f.key for f in rs.files if f.key not in labels]
    if missing and not allow_missing:
        raise UserError(f"{label_name}: no label for {len(missing)} result(s), e.g. {missing[0]!r} "
                        "(use --allow-missing-labels to skip them)")
    if not labelled:
        raise UserError(f"{label_name}: no result in {rs.folder} has a label")
    return labelled, missing


class _Pass(NamedTuple):
    """Per-image numbers of one pass, in file order; the compared images' in their own order."""
    width: int
    ranks: np.ndarray
    nan: np.ndarray
    compared: List[str]            # keys of the images that have a reference
    ranks_c: np.ndarray            # the checked dir's label ranks of those images
    ref_ranks: np.ndarray
    agree: np.ndarray
    overlap: np.ndarray
    finite: np.ndarray
    cosine: np.ndarray
    max_diff: np.ndarray


def _run_pass(files: List[ResultFile], refs: Optional[Dict[str, ResultFile]], label_map: Dict[str, int],
              label_name: str, workers: Optional[int], progress: bool) -> _Pass:
    """Score `files` (each with a label) in chunks; with `refs`, also compare each file with the
    reference file of the same image where there is one."""
    paths = [f.path for f in files]
    labels = np.fromiter((label_map[f.key] for f in files), dtype=np.int64, count=len(files))
    starts = range(0, len(files), CHUNK)
    jobs = []
    for s in starts:
        part = files[s:s + CHUNK]
        rows = [i for i, f in enumerate(part) if refs is not None and f.key in refs]
        jobs.append(_ChunkJob(paths[s:s + CHUNK], labels[s:s + CHUNK], np.array(rows, dtype=np.intp),
                              [refs[part[i].key].path for i in rows]))  # type: ignore[index]
    if workers is None:
        workers = default_workers(len(files))
    width = None
    out: List[_ChunkScores] = []
    with _bar(len(files), progress) as bar:
        for s, job, got in zip(starts, jobs, _ordered_map(_score_chunk, jobs, workers)):
            if width is None:
                width = got.width
            elif got.width != width:
                raise UserError(f"{paths[s]}: {got.width} values, but {paths[0]} has {width} "
                                "(result vectors differ in length)")
            if got.bad_label >= 0:
                i = s + got.bad_label
                raise UserError(f"{label_name}: label {int(labels[i])} of image {files[i].key!r} is out "
                                f"of range for {width}-class results")
            if job.ref_paths and got.ref_width != width:
                raise UserError(f"{job.ref_paths[0]}: {got.ref_width} values, but "
                                f"{job.paths[job.ref_rows[0]]} has {width}")
            out.append(got)
            bar.update(len(job.paths))
    has_ref = np.array([refs is not None and f.key in refs for f in files], dtype=bool)

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(c, name) for c in out])

    ranks = cat("ranks")
    return _Pass(width or 0, ranks, cat("nan"), [f.key for f in files if refs is not None and f.key in refs],
                 ranks[has_ref], cat("ref_ranks"), cat("agree"), cat("overlap"), cat("finite"),
                 cat("cosine"), cat("max_diff"))


# --------------------------------------------------------------------------- metric

class TopkAccuracy(NamedTuple):
    """What vision_metric reports for one result dir."""
    n_images: int                  # images scored (results with a label)
    n_classes: int                 # length of every result vector
    hits: List[int]                # cumulative top-1..top-5 hit counts
    n_labels: int                  # images in the label file
    unlabelled: List[str]          # result keys without a label (only with allow_missing_labels)
    skipped: List[str]             # names in the result dir that are not result files
    nan_results: int               # results holding a NaN (ranked last, see TIE_RULE)

    @property
    def fractions(self) -> List[float]:
        return [h / self.n_images for h in self.hits]


def _hits(ranks: np.ndarray, topk: int) -> np.ndarray:
    """Cumulative top-1..top-k hit counts from label ranks."""
    return np.cumsum(np.bincount(np.minimum(ranks, topk), minlength=topk + 1)[:topk])


def _accuracy(p: _Pass, rs: ResultSet, missing: List[str], n_labels: int, topk: int) -> TopkAccuracy:
    return TopkAccuracy(p.ranks.size, p.width, _hits(p.ranks, topk).tolist(), n_labels, missing,
                        rs.skipped, int(np.count_nonzero(p.nan)))


def evaluate(result_dir: str, labels: LabelsArg, allow_missing_labels: bool = False,
             workers: Optional[int] = None, progress: bool = False, topk: int = TOPK) -> TopkAccuracy:
    """Top-1..top-k accuracy of every result in `result_dir` (the guide's algorithm, exact).

    `labels` is a label file path or {image key: class}. Strict: a result without a label
    (unless allow_missing_labels: then it is left out of the count), an empty dir, two results
    for one image, vectors of different lengths or a label out of range raise UserError.
    """
    label_map, label_name = _labels(labels)
    rs = scan_results(result_dir)
    files, missing = _split_labelled(rs, label_map, allow_missing_labels, label_name)
    p = _run_pass(files, None, label_map, label_name, workers, progress)
    return _accuracy(p, rs, missing, len(label_map), topk)


# --------------------------------------------------------------------------- comparison

class _Common(NamedTuple):
    refs: Dict[str, ResultFile]    # the reference's files of the images both dirs hold
    only_checked: int
    only_reference: int
    unlabelled: int                # images in both dirs without a label


def _common(cand: ResultSet, ref: ResultSet, label_map: Dict[str, int], allow_missing: bool,
            label_name: str) -> _Common:
    ref_by_key = ref.by_key()
    common = [f for f in cand.files if f.key in ref_by_key]
    if not common:
        raise UserError(f"{cand.folder} and {ref.folder} have no image in common")
    labelled, missing = _split_labelled(ResultSet(cand.folder, common, []), label_map, allow_missing, label_name)
    return _Common({f.key: ref_by_key[f.key] for f in labelled}, len(cand.files) - len(common),
                   len(ref.files) - len(common), len(missing))


def _comparison(p: _Pass, c: _Common, result_dir: str, reference_dir: str, tolerance: float) -> dict:
    n = len(p.compared)
    width = p.width
    hits = np.stack([_hits(p.ranks_c, TOPK), _hits(p.ref_ranks, TOPK)])
    acc = hits / n * 100
    drop = float(acc[1, 0] - acc[0, 0])
    fin = p.finite
    cos_n = int(np.count_nonzero(fin))
    # Summed per CHUNK images, as the comparison always has, so that the mean is bit-identical.
    cos_sum = 0.0
    for s in range(0, n, CHUNK):
        block = p.cosine[s:s + CHUNK][fin[s:s + CHUNK]]
        if block.size:
            cos_sum += float(block.sum())
    cos_min = cos_min_key = diff_max = diff_key = None
    if cos_n:
        keys = [k for k, ok in zip(p.compared, fin) if ok]
        cos, diff = p.cosine[fin], p.max_diff[fin]
        i, j = int(np.argmin(cos)), int(np.argmax(diff))
        cos_min, cos_min_key = float(cos[i]), keys[i]
        diff_max, diff_key = float(diff[j]), keys[j]
    return {
        "checked": result_dir,
        "reference": reference_dir,
        "images_compared": n,
        "only_in_checked": c.only_checked,
        "only_in_reference": c.only_reference,
        "unlabelled_skipped": c.unlabelled,
        "number_of_classes": width,
        "tie_rule": TIE_RULE,
        "top1_agreement": int(np.count_nonzero(p.agree)) / n,
        "mean_top5_overlap": int(p.overlap.sum()) / (n * min(TOPK, width)),
        "cosine_mean": cos_sum / cos_n if cos_n else None,
        "cosine_min": cos_min,
        "cosine_min_image": cos_min_key,
        "max_abs_diff": diff_max,
        "max_abs_diff_image": diff_key,
        "nonfinite_images": n - cos_n,
        "checked_accuracy": {"top1": round(float(acc[0, 0]), 4), "top5": round(float(acc[0, -1]), 4)},
        "reference_accuracy": {"top1": round(float(acc[1, 0]), 4), "top5": round(float(acc[1, -1]), 4)},
        "top1_drop": round(drop, 4),
        "tolerance": tolerance,
        "passed": bool(drop <= tolerance),
    }


def compare(result_dir: str, reference_dir: str, labels: LabelsArg, tolerance: float = 1.0,
            allow_missing_labels: bool = False, workers: Optional[int] = None,
            progress: bool = False) -> dict:
    """Compare `result_dir` (the one checked, e.g. the OM's) with `reference_dir` (e.g. ONNX Runtime).

    Over the images both dirs hold: top-1 agreement, mean top-5 overlap (shared top-5 classes / 5),
    cosine similarity (mean and worst, float64), max |difference|, each dir's top-1/top-5
    accuracy in percent, and `top1_drop` = reference top-1 - checked top-1 in points;
    `passed` is `top1_drop <= tolerance`. Vectors holding NaN or inf are left out of the
    cosine and difference figures and counted in `nonfinite_images`.
    """
    label_map, label_name = _labels(labels)
    cand, ref = scan_results(result_dir), scan_results(reference_dir)
    c = _common(cand, ref, label_map, allow_missing_labels, label_name)
    files = [f for f in cand.files if f.key in c.refs]
    p = _run_pass(files, c.refs, label_map, label_name, workers, progress)
    return _comparison(p, c, result_dir, reference_dir, tolerance)


def score(result_dir: str, labels: LabelsArg, reference_dir: Optional[str] = None, tolerance: float = 1.0,
          allow_missing_labels: bool = False, workers: Optional[int] = None,
          progress: bool = False) -> Tuple[TopkAccuracy, Optional[dict]]:
    """`evaluate(result_dir)` and, with a reference dir, `compare(result_dir, reference_dir)`,
    reading each file once: what the stage reports."""
    label_map, label_name = _labels(labels)
    rs = scan_results(result_dir)
    files, missing = _split_labelled(rs, label_map, allow_missing_labels, label_name)
    c = None
    if reference_dir is not None:
        c = _common(rs, scan_results(reference_dir), label_map, allow_missing_labels, label_name)
    p = _run_pass(files, None if c is None else c.refs, label_map, label_name, workers, progress)
    acc = _accuracy(p, rs, missing, len(label_map), TOPK)
    return acc, None if c is None else _comparison(p, c, result_dir, reference_dir, tolerance)


# --------------------------------------------------------------------------- what the user reads

def warn_about(acc: TopkAccuracy, folder: str) -> None:
    """Warnings for what the count left out or ranked last."""
    for name in acc.skipped:
        log.warning(f"{os.path.join(folder, name)}: not a result file, skipped")
    if acc.unlabelled:
        log.warning(f"{len(acc.unlabelled)} result(s) have no label and are not counted, "
                    f"e.g. {acc.unlabelled[0]!r}")
    if acc.nan_results:
        log.warning(f"{acc.nan_results} result(s) hold NaN scores (ranked last)")


def _fmt(value: Optional[float], spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def format_report(acc: TopkAccuracy, cmp: Optional[dict] = None) -> str:
    """The stage's stdout: the guide's table, the label coverage and the comparison's verdict."""
    lines = [f"{'Number of images':<18} {acc.n_images}", f"{'Number of classes':<18} {acc.n_classes}"]
    lines += [f"{f'Top{i + 1} accuracy':<18} {format_accuracy(frac)}" for i, frac in enumerate(acc.fractions)]
    lines.append(f"coverage: {acc.n_images:,} of {acc.n_labels:,} labelled images have results")
    if cmp is not None:
        lines.append(f"compare with {cmp['reference']} over {cmp['images_compared']:,} images: "
                     f"top-1 agreement {cmp['top1_agreement'] * 100:.2f}%, "
                     f"top-5 overlap {cmp['mean_top5_overlap'] * 100:.2f}%, "
                     f"cosine mean {_fmt(cmp['cosine_mean'], '.6f')} min {_fmt(cmp['cosine_min'], '.6f')}, "
                     f"max |diff| {_fmt(cmp['max_abs_diff'], '.3g')}")
        lines.append(f"top-1 {cmp['checked_accuracy']['top1']:.2f}% vs reference "
                     f"{cmp['reference_accuracy']['top1']:.2f}%: drop {cmp['top1_drop']:.2f} points, "
                     f"tolerance {cmp['tolerance']:g}: {'PASS' if cmp['passed'] else 'FAIL'}")
    return "\n".join(lines)

"""Top-k accuracy of a result dir against the label file, and the comparison of two result dirs.

This is the guide's vision_metric_ImageNet.py made exact, strict and streaming:

- Ranking order: higher score first; among equal scores the lower class index first; NaN scores
  rank last. That is `np.argsort(-scores, kind="stable")`, the same on every run (the guide's
  default quicksort breaks ties arbitrarily). `label_ranks` and `topk_indices` both follow it,
  so the metric and the comparison never disagree about a tie.
- Top-k hit: the label's rank is below k. The rank is counted directly (scores above the
  label's, plus equal scores at lower indices), an O(classes) pass with no sort at all.
- Result files are read in chunks of CHUNK images, optionally by a process pool (parsing txt is
  CPU-bound), so memory stays bounded whatever the number of files.
- A 1001-class output has the background at index 0: labels shift by one, as in the guide.
"""

from __future__ import annotations

import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import UserError
from .formats import ResultFile, list_results, read_labels, read_result

TOPK = 5
CHUNK = 256
# Below this many files a process pool costs more to start than it saves.
POOL_MIN_FILES = 2000
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
    """0 (read in this process) for small runs, else the CPUs this process may use, at most 4."""
    if n_files < POOL_MIN_FILES:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return min(cpus, 4) if cpus > 1 else 0


def iter_matrices(paths: Sequence[str], workers: Optional[int] = None,
                  chunk: int = CHUNK) -> Iterator[Tuple[int, np.ndarray]]:
    """Yield `(start, float32 matrix)` for consecutive chunks of `paths`, in order.

    Every vector must have the length of the first one. With workers > 0 at most 2 * workers
    chunks are in flight, so memory stays bounded.
    """
    starts = range(0, len(paths), chunk)
    if workers is None:
        workers = default_workers(len(paths))
    width = None

    def check(start: int, mat: np.ndarray) -> np.ndarray:
        nonlocal width
        if width is None:
            width = mat.shape[1]
        elif mat.shape[1] != width:
            raise UserError(f"{paths[start]}: {mat.shape[1]} values, but {paths[0]} has {width} "
                            "(result vectors differ in length)")
        return mat

    if workers <= 0:
        for s in starts:
            yield s, check(s, _read_chunk(paths[s:s + chunk]))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending = []
        it = iter(starts)
        for s in it:
            pending.append((s, pool.submit(_read_chunk, paths[s:s + chunk])))
            if len(pending) >= 2 * workers:
                break
        while pending:
            s, fut = pending.pop(0)
            mat = fut.result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_read_chunk, paths[nxt:nxt + chunk])))
            yield s, check(s, mat)


def _progress(total: int, show: bool, desc: str):
    from tqdm import tqdm

    # disable=None: tqdm stays quiet when stderr is not a terminal (logs, CI), as the runner's bar.
    return tqdm(total=total, desc=desc, unit="file", file=sys.stderr, disable=None if show else True, leave=False)


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

    @property
    def label_offset(self) -> int:
        return 1 if self.n_classes == 1001 else 0


LabelsArg = Union[str, Dict[str, int]]


def _labels(labels: LabelsArg) -> Tuple[Dict[str, int], str]:
    if isinstance(labels, str):
        return read_labels(labels), labels
    return dict(labels), "labels"


def _label_vector(keys: Sequence[str], labels: Dict[str, int], offset: int, n_classes: int,
                  label_name: str) -> np.ndarray:
    lab = np.fromiter((labels[k] for k in keys), dtype=np.intp, count=len(keys)) + offset
    bad = np.flatnonzero((lab >= n_classes) | (lab < offset))
    if bad.size:
        k = keys[bad[0]]
        raise UserError(f"{label_name}: label {labels[k]} of image {k!r} is out of range for "
                        f"{n_classes}-class results")
    return lab


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
    paths = [f.path for f in files]
    hits = np.zeros(topk, dtype=np.int64)
    n_classes = 0
    nan_results = 0
    with _progress(len(paths), progress, "metric") as bar:
        for start, mat in iter_matrices(paths, workers):
            n_classes = mat.shape[1]
            offset = 1 if n_classes == 1001 else 0
            keys = [f.key for f in files[start:start + mat.shape[0]]]
            ranks = label_ranks(mat, _label_vector(keys, label_map, offset, n_classes, label_name))
            hits += np.bincount(np.minimum(ranks, topk), minlength=topk + 1)[:topk]
            nan_results += int(np.isnan(mat).any(axis=1).sum())
            bar.update(mat.shape[0])
    return TopkAccuracy(len(paths), n_classes, np.cumsum(hits).tolist(), len(label_map),
                        missing, rs.skipped, nan_results)


# --------------------------------------------------------------------------- comparison

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
    ref_by_key = ref.by_key()
    common = [f for f in cand.files if f.key in ref_by_key]
    if not common:
        raise UserError(f"{result_dir} and {reference_dir} have no image in common")
    only_cand = len(cand.files) - len(common)
    only_ref = len(ref.files) - len(common)
    common_set = ResultSet(result_dir, common, [])
    common, missing = _split_labelled(common_set, label_map, allow_missing_labels, label_name)
    ref_paths = [ref_by_key[f.key].path for f in common]
    n = len(common)
    hits = np.zeros((2, TOPK), dtype=np.int64)
    agree = overlap = 0
    cos_sum, cos_min, cos_min_key, cos_n = 0.0, math.inf, None, 0
    diff_max, diff_key = 0.0, None
    nonfinite = 0
    width = None
    with _progress(n, progress, "compare") as bar:
        pairs = zip(iter_matrices([f.path for f in common], workers), iter_matrices(ref_paths, workers))
        for (start, a), (_, b) in pairs:
            keys = [f.key for f in common[start:start + a.shape[0]]]
            if width is None:
                width = a.shape[1]
            if b.shape[1] != a.shape[1]:
                raise UserError(f"{ref_paths[start]}: {b.shape[1]} values, but "
                                f"{common[start].path} has {a.shape[1]}")
            offset = 1 if width == 1001 else 0
            lab = _label_vector(keys, label_map, offset, width, label_name)
            for i, mat in enumerate((a, b)):
                ranks = label_ranks(mat, lab)
                hits[i] += np.bincount(np.minimum(ranks, TOPK), minlength=TOPK + 1)[:TOPK]
            ta, tb = topk_indices(a, TOPK), topk_indices(b, TOPK)
            agree += int((ta[:, 0] == tb[:, 0]).sum())
            overlap += int((ta[:, :, None] == tb[:, None, :]).any(axis=2).sum())
            fin = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
            nonfinite += int((~fin).sum())
            if fin.any():
                a64, b64 = a[fin].astype(np.float64), b[fin].astype(np.float64)
                fkeys = [k for k, ok in zip(keys, fin) if ok]
                aa, bb = np.einsum("ij,ij->i", a64, a64), np.einsum("ij,ij->i", b64, b64)
                na, nb = np.sqrt(aa), np.sqrt(bb)
                dot = np.einsum("ij,ij->i", a64, b64)
                with np.errstate(invalid="ignore", divide="ignore"):
                    # sqrt(aa * bb), not na * nb: identical vectors then give exactly 1.0.
                    cos = np.clip(dot / np.sqrt(aa * bb), -1.0, 1.0)
                # Two zero vectors agree perfectly; one zero vector against another has no angle: 0.
                cos = np.where((na == 0) & (nb == 0), 1.0, np.where((na == 0) | (nb == 0), 0.0, cos))
                cos_sum += float(cos.sum())
                cos_n += cos.size
                i = int(np.argmin(cos))
                if cos[i] < cos_min:
                    cos_min, cos_min_key = float(cos[i]), fkeys[i]
                d = np.abs(a64 - b64).max(axis=1)
                i = int(np.argmax(d))
                if diff_key is None or d[i] > diff_max:
                    diff_max, diff_key = float(d[i]), fkeys[i]
            bar.update(a.shape[0])
    acc = hits.cumsum(axis=1) / n * 100
    drop = float(acc[1, 0] - acc[0, 0])
    return {
        "checked": result_dir,
        "reference": reference_dir,
        "images_compared": n,
        "only_in_checked": only_cand,
        "only_in_reference": only_ref,
        "unlabelled_skipped": len(missing),
        "number_of_classes": width,
        "tie_rule": TIE_RULE,
        "top1_agreement": agree / n,
        "mean_top5_overlap": overlap / (n * min(TOPK, width)),
        "cosine_mean": cos_sum / cos_n if cos_n else None,
        "cosine_min": cos_min if cos_n else None,
        "cosine_min_image": cos_min_key,
        "max_abs_diff": diff_max if cos_n else None,
        "max_abs_diff_image": diff_key,
        "nonfinite_images": nonfinite,
        "checked_accuracy": {"top1": round(float(acc[0, 0]), 4), "top5": round(float(acc[0, -1]), 4)},
        "reference_accuracy": {"top1": round(float(acc[1, 0]), 4), "top5": round(float(acc[1, -1]), 4)},
        "top1_drop": round(drop, 4),
        "tolerance": tolerance,
        "passed": bool(drop <= tolerance),
    }

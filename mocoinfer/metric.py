"""Top-k accuracy of a result dir against the label file, and the comparison of two result dirs.

This is the guide's vision_metric_ImageNet.py made exact, strict and streaming (the ranking rule
and the chunked reading are in scoring.py). `score` is what the stage runs: the accuracy and,
with a reference dir, the comparison, reading each file once; `evaluate` and `compare` are the
same pass over their own images. `format_report` and `warn_about` give the stage's text.
"""

from __future__ import annotations

import os
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from .errors import UserError
from .formats import ResultFile, format_accuracy, read_labels
from .progress import log, progress_bar
from .scoring import (
    CHUNK,
    TIE_RULE,
    TOPK,
    ChunkJob,
    ChunkScores,
    ResultSet,
    default_workers,
    iter_matrices,
    label_ranks,
    ordered_map,
    scan_results,
    score_chunk,
    topk_indices,
)
from .sidecar import LEGACY_FILES

# The ranking rule and the reader are part of what the metric offers (tests, notebooks).
__all__ = ["TIE_RULE", "TOPK", "TopkAccuracy", "compare", "evaluate", "format_report", "iter_matrices",
           "label_ranks", "scan_results", "score", "topk_indices", "warn_about"]

# One pass over a dir.

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
    refs = refs or {}
    paths = [f.path for f in files]
    labels = np.fromiter((label_map[f.key] for f in files), dtype=np.int64, count=len(files))
    starts = range(0, len(files), CHUNK)
    jobs = []
    for s in starts:
        part = files[s:s + CHUNK]
        rows = [i for i, f in enumerate(part) if f.key in refs]
        jobs.append(ChunkJob(paths[s:s + CHUNK], labels[s:s + CHUNK], np.array(rows, dtype=np.intp),
                             [refs[part[i].key].path for i in rows]))
    if workers is None:
        # Only txt parsing is worth a pool: bin and npy files are read faster in this process.
        n_txt = sum(f.fmt == "txt" for f in files) + sum(refs[f.key].fmt == "txt" for f in files if f.key in refs)
        workers = default_workers(n_txt)
    width = None
    ref_error = ""
    out: List[ChunkScores] = []
    with progress_bar(len(files), "metric", progress, unit="file") as bar:
        for s, job, got in zip(starts, jobs, ordered_map(score_chunk, jobs, workers)):
            if width is None:
                width = got.width
            elif got.width != width:
                raise UserError(f"{paths[s]}: {got.width} values, but {paths[0]} has {width} "
                                "(result vectors differ in length)")
            if got.bad_label >= 0:
                i = s + got.bad_label
                raise UserError(f"{label_name}: label {int(labels[i])} of image {files[i].key!r} is out "
                                f"of range for {width}-class results")
            ref_error = ref_error or got.ref_error
            out.append(got)
            bar.update(len(job.paths))
    if ref_error:
        raise UserError(ref_error)
    has_ref = np.array([f.key in refs for f in files], dtype=bool)

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(c, name) for c in out])

    ranks = cat("ranks")
    return _Pass(width or 0, ranks, cat("nan"), [f.key for f in files if f.key in refs],
                 ranks[has_ref], cat("ref_ranks"), cat("agree"), cat("overlap"), cat("finite"),
                 cat("cosine"), cat("max_diff"))


# Metric.

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


# Comparison.

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
    ref_error = None
    if reference_dir is not None:
        try:
            c = _common(rs, scan_results(reference_dir), label_map, allow_missing_labels, label_name)
        except UserError as exc:
            ref_error = exc  # reported after the checked dir's faults, as before the pass was one
    p = _run_pass(files, None if c is None else c.refs, label_map, label_name, workers, progress)
    if ref_error is not None:
        raise ref_error
    acc = _accuracy(p, rs, missing, len(label_map), TOPK)
    return acc, None if c is None else _comparison(p, c, result_dir, reference_dir, tolerance)


# What the user reads.

#: older ais_infer wrote its summary (sic) inside the result folder; the guide's metric choked on it.
OLD_AIS_SUMMARY = "sumary.json"


def warn_about(acc: TopkAccuracy, folder: str) -> None:
    """Warnings for what the count left out or ranked last."""
    for name in acc.skipped:
        if name in LEGACY_FILES:
            continue  # an older version kept the lock and manifest inside the folder
        if name == OLD_AIS_SUMMARY:
            log.info(f"note: {os.path.join(folder, name)}: the summary older ais_infer versions wrote inside the "
                     "result folder, skipped")
            continue
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

"""The guide's throughput table: pure-inference summaries by variant and batch size → Markdown + PNG.

scripts/7_perf.sh runs `run_om_infer.py --pure-data` once per variant (a backend, or a backend at a
precision: `onnxruntime-int8`, `torch-bf16`, ...) and batch size, each writing
`<perf dir>/<variant>/bs<N>/pure_summary.json` (summary.json before pure runs had their own
name); this module gathers them into one table (images/s, one
column per variant measured on this host, one row per batch size) and a plot of images/s against
batch size. The figure is ais_bench's: 1000 x batch / mean compute milliseconds per batch.

Where 7_perf.sh also ran real inputs through each variant (`<variant>/accuracy/`), a second table
gives each variant's accuracy cost against the float32 reference (onnxruntime, else torch) on the
same images: top-1 agreement, logit cosine (mean and min) and the largest logit difference.

With `DYNAMIC_BATCH` set, every batch size of a variant runs on one dynamic-batch model, and the
table says so.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import sys
from typing import Dict, List, Optional, Tuple

from .atomic import atomic_path, atomic_write_text
from .backends import BACKENDS, REFERENCE_BACKENDS
from .errors import UserError
from .formats import iter_results
from .perf import PURE_SUMMARY_NAME, SUMMARY_NAME

ACCURACY_SUBDIR = "accuracy"


def collect(perf_dir: str) -> Tuple[List[str], List[int], Dict[Tuple[str, int], dict]]:
    """(backends, batch sizes, {(backend, bs): summary}) from `<perf_dir>/<backend>/bs<N>/pure_summary.json`
    (or the summary.json older versions wrote there)."""
    found: Dict[Tuple[str, int], dict] = {}
    for folder in glob.glob(os.path.join(perf_dir, "*", "bs*")):
        path = os.path.join(folder, PURE_SUMMARY_NAME)
        if not os.path.isfile(path):
            path = os.path.join(folder, SUMMARY_NAME)
            if not os.path.isfile(path):
                continue
        with open(path, encoding="utf-8") as f:
            try:
                s = json.load(f)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}: not a valid summary.json ({exc})") from None
        if "throughput_images_per_s" not in s or "batch_size" not in s:
            raise UserError(f"{path}: not a pure-inference summary (run_om_infer.py --pure-data writes them)")
        found[(os.path.basename(os.path.dirname(os.path.dirname(path))), int(s["batch_size"]))] = s
    if not found:
        raise UserError(f"{perf_dir}: no <backend>/bs<N>/{PURE_SUMMARY_NAME} files (run scripts/7_perf.sh)")
    backends = sorted({b for b, _ in found}, key=_variant_order)
    sizes = sorted({bs for _, bs in found})
    return backends, sizes, found


def _variant_order(variant: str):
    """Variants (`<backend>[-<precision>]`) in the order of `backends.BACKENDS`, unknown ones last."""
    name = variant.split("-")[0]
    return (BACKENDS.index(name) if name in BACKENDS else len(BACKENDS), variant)


def _accuracy_outputs(perf_dir: str, variant: str) -> Optional[Dict[str, object]]:
    folders = sorted(glob.glob(os.path.join(perf_dir, variant, ACCURACY_SUBDIR, "dumpOutput_device*")))
    if not folders:
        return None
    return dict(iter_results(folders[0]))


def accuracy(perf_dir: str) -> Tuple[Optional[str], Dict[str, dict]]:
    """(reference variant, {variant: comparison}) over the images every variant ran in
    `<variant>/accuracy/`; (None, {}) when no float32 reference ran real inputs."""
    import numpy as np

    from .quantize import compare_outputs

    variants = sorted((os.path.basename(os.path.dirname(d)) for d in
                       glob.glob(os.path.join(perf_dir, "*", ACCURACY_SUBDIR))), key=_variant_order)
    ref_name = next((r for r in REFERENCE_BACKENDS if r in variants), None)
    if ref_name is None:
        return None, {}
    ref = _accuracy_outputs(perf_dir, ref_name) or {}
    table = {}
    for v in variants:
        got = _accuracy_outputs(perf_dir, v)
        keys = sorted(set(ref) & set(got or {}))
        if not keys:
            continue
        table[v] = compare_outputs(np.stack([ref[k] for k in keys]), np.stack([got[k] for k in keys]))
        table[v]["missing"] = len(set(ref) ^ set(got or {}))
    return ref_name, table


def _precision(found: Dict[Tuple[str, int], dict], variant: str) -> str:
    return next((s.get("precision") for (v, _), s in found.items() if v == variant and s.get("precision")), "fp32")


def _column(backend: str, summaries: List[dict]) -> str:
    device = next((s.get("device") for s in summaries if s.get("device")), "")
    return f"{backend} ({device})" if device else backend


def markdown(perf_dir: str) -> str:
    backends, sizes, found = collect(perf_dir)
    heads = [_column(b, [s for (bb, _), s in found.items() if bb == b]) for b in backends]
    lines = ["| batch size | " + " | ".join(f"{h} images/s" for h in heads) + " |",
             "|---:|" + "---:|" * len(backends)]
    for bs in sizes:
        cells = [_cell(found[(b, bs)]) if (b, bs) in found else "-" for b in backends]
        lines.append(f"| {bs} | " + " | ".join(cells) + " |")
    best = []
    for b in backends:
        rates = [(found[(b, bs)]["throughput_images_per_s"], bs) for bs in sizes if (b, bs) in found]
        rate, bs = max(rates)
        best.append(f"{b} {rate:.1f} images/s at batch {bs}")
    any_summary = next(iter(found.values()))
    lines += ["", f"Best: {'; '.join(best)}.", f"Models: {'; '.join(_models(b, found) for b in backends)}.",
              f"Pure inference on {any_summary.get('pure_data', 'generated')} data, "
              f"{any_summary.get('loop', '?')} timed batches after {any_summary.get('warmup', '?')} warm-up; "
              "images/s = 1000 x batch / mean compute ms per batch (ais_bench's figure); in brackets, the "
              "slowest and fastest timed batch. "
              f"Host: {platform.machine()}, {os.cpu_count()} cores{_load_text(found)}."]
    ref_name, acc = accuracy(perf_dir)
    if acc:
        lines += ["", f"| variant | precision | top-1 agreement vs {ref_name} | cosine mean / min | max abs diff "
                      "| images |", "|---|---|---:|---:|---:|---:|"]
        for v in sorted(acc, key=_variant_order):
            a = acc[v]
            lines.append(f"| {v} | {_precision(found, v)} | {a['top1_agreement']:.2%} | {a['mean_cosine']:.5f} / "
                         f"{a['min_cosine']:.5f} | {a['max_abs_diff']:.3g} | {a['images']} |")
        unmatched = [v for v in sorted(acc, key=_variant_order) if acc[v]["missing"]]
        lines += ["", f"Accuracy: logits of each variant against float32 {ref_name} on the same real inputs "
                      "(per-image cosine; max |difference| over all logits)."
                  + (f" Images missing on one side (not compared): {', '.join(unmatched)}." if unmatched else "")]
    return "\n".join(lines) + "\n"


def spread(summary: dict) -> Optional[Tuple[float, float]]:
    """(slowest, fastest) images/s over a run's timed batches, from the compute phase's latency
    (else the whole run's), as the table's figure is; None where the summary has no latencies."""
    phases = summary.get("phases") or {}
    st = (phases.get("compute") or phases.get("run") or {}).get("latency_ms") or {}
    bs = summary.get("batch_size")
    if not bs or not st.get("min") or not st.get("max"):
        return None
    return 1000.0 * bs / st["max"], 1000.0 * bs / st["min"]


def _cell(summary: dict) -> str:
    rate = f"{summary['throughput_images_per_s']:.1f}"
    lo_hi = spread(summary)
    return f"{rate} ({lo_hi[0]:.1f}–{lo_hi[1]:.1f})" if lo_hi else rate


def _load_text(found: Dict[Tuple[str, int], dict]) -> str:
    """`; load average 1.9–3.4 during the runs` from the summaries, with what it means; "" without."""
    loads = [x for s in found.values() for x in (s.get("load_average") or [])]
    if not loads:
        return ""
    shown = f"{min(loads):.2f}" if min(loads) == max(loads) else f"{min(loads):.2f}–{max(loads):.2f}"
    busy = max(loads) > (os.cpu_count() or 1)  # more runnable threads than cores: they waited
    return (f"; 1-minute load average {shown} during the runs"
            + (" (a busy host: the figures are lower than on an idle one, and runtimes can swap places)"
               if busy else ""))


def _models(backend: str, found: Dict[Tuple[str, int], dict]) -> str:
    """Which model files gave a backend's column: one for every batch size (a dynamic-batch model,
    or a checkpoint), or one per batch size."""
    models = {os.path.basename(str(s.get("model", "?"))) for (b, _), s in found.items() if b == backend}
    sizes = sum(1 for b, _ in found if b == backend)
    if len(models) == 1 and sizes > 1:
        return f"{backend} {models.pop()} for every batch size"
    return f"{backend} " + (models.pop() if len(models) == 1 else "one model per batch size")


def plot(perf_dir: str, png_path: str) -> bool:
    """Images/s against batch size, one line per backend; False when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends, sizes, found = collect(perf_dir)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for b in backends:
        xs = [bs for bs in sizes if (b, bs) in found]
        ax.plot(xs, [found[(b, bs)]["throughput_images_per_s"] for bs in xs], marker="o", label=b)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("images/s")
    ax.set_ylim(bottom=0)
    ax.set_title("MoCo-v2 ResNet-50 pure-inference throughput")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True


def main(argv: Optional[list] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m mocoinfer.sweep",
                                description="Gather 7_perf.sh's pure-inference summaries into the throughput table.")
    p.add_argument("perf_dir", help="folder holding <backend>/bs<N>/summary.json")
    p.add_argument("--markdown", help="write the table here (default: <perf_dir>/throughput.md)")
    p.add_argument("--plot", help="write the PNG plot here (default: <perf_dir>/throughput.png)")
    args = p.parse_args(argv)
    md_path = args.markdown or os.path.join(args.perf_dir, "throughput.md")
    png_path = args.plot or os.path.join(args.perf_dir, "throughput.png")
    table = markdown(args.perf_dir)
    atomic_write_text(md_path, table)
    drew = plot(args.perf_dir, png_path)
    print(table, end="")
    print(f"wrote {md_path}" + (f" and {png_path}" if drew else " (no plot: matplotlib is not installed)"))
    return 0


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main))

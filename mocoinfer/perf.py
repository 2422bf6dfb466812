"""The runner's reported figures: what each one counts, defined once, and the text that reports them.

`FIGURES` is the one definition: summary.json's "definitions", the `--help` of run_om_infer.py
and the table in docs/performance.md all come from it (a test holds that file to it). The perf file (the
benchmark's five lines, formatted by `formats.format_perf`), the one-line summary of a file run
and ais_bench's pure-inference summary are built here from the summary dict summary.json holds.
"""

from __future__ import annotations

import textwrap
from typing import Dict, List, NamedTuple

from .formats import format_perf

SUMMARY_NAME = "summary.json"
#: pure inference's own summary, so a pure run never replaces a file run's summary.json
PURE_SUMMARY_NAME = "pure_summary.json"


class Figure(NamedTuple):
    """One reported figure."""

    key: str  # its name in summary.json (a phase, or a field of the summary)
    perf_field: str  # where the perf file reports it; "" when only summary.json has it
    counts: str  # what it counts: summary.json's "definitions" entry
    note: str = ""  # more for people (--help and docs/performance.md), not written to summary.json
    in_summary: bool = True  # False: not in a file run's summary.json "definitions"


FIGURES = (
    Figure("e2e", "[e2e] throughputRate",
           "images / wall time from the first input read to the last result written "
           "(model load and warm-up excluded)",
           "the perf file's [e2e] latency is that wall time in ms"),
    Figure("read", "[data read] throughputRate", "images / reader time inside file reads"),
    Figure("preprocess", "[preprocess] throughputRate",
           "images / reader time preparing batches (reads, host normalisation of uint8 files, padding; "
           "waits excluded)",
           "the .bin files are already preprocessed"),
    Figure("run", "[infer] throughputRate",
           "images / backend.run wall time (host-to-device + compute + device-to-host + runtime overhead)",
           "images count each of the --loop runs of a batch"),
    Figure("h2d", "", "images / host-to-device copy time",
           "where the runtime separates the copies (pyACL, PyTorch on CUDA)"),
    Figure("compute", "[infer] Interface throughputRate",
           "images / compute time (acl: acl.mdl.execute; onnxruntime and CPU torch: the whole run call)",
           "what ModelZoo's parse.py reads; equal to run where the runtime does everything in one call"),
    Figure("d2h", "", "images / device-to-host copy time, fp16 to float32 conversion included",
           "where the runtime separates the copies"),
    Figure("write", "[post] throughputRate",
           "images / writer time encoding and writing result files (summed over the writer threads)"),
    Figure("latency_ms", "moduleLatency, the mean", "per batch, milliseconds",
           "summary.json gives min/max/mean/median/p90/p99 per phase"),
    Figure("images", "", "real inputs; padding of a short last batch is not counted in any rate"),
    Figure("throughput_images_per_s", "ave_throughputRate, --pure-data",
           "1000 * batch size / mean compute ms over the --loop timed batches of generated data",
           "as ais_bench prints it; pure inference only", in_summary=False),
)

#: summary.json's "definitions": what each figure counts.
DEFINITIONS = {f.key: f.counts for f in FIGURES if f.in_summary}


def _counts(f: Figure) -> str:
    return f"{f.counts}; {f.note}" if f.note else f.counts


def figures_help(width: int = 100) -> str:
    """The figures for `--help`: name, where the perf file has it, what it counts."""
    lines = ["figures, as summary.json names them, and where the perf file reports them:"]
    for f in FIGURES:
        lines.append(f"  {f.key}" + (f" (perf file: {f.perf_field})" if f.perf_field else " (summary.json only)"))
        lines += textwrap.wrap(_counts(f), width=width, initial_indent=" " * 6, subsequent_indent=" " * 6,
                               break_on_hyphens=False)
    return "\n".join(lines) + "\n"


def figures_table() -> List[str]:
    """The table of figures in docs/performance.md, one Markdown line each."""
    rows = ["| summary.json | perf file | what it counts |", "|---|---|---|"]
    for f in FIGURES:
        perf = f"`{f.perf_field}`" if f.perf_field else "-"
        rows.append(f"| `{f.key}` | {perf} | {_counts(f)} |")
    return rows


def perf_text(s: Dict) -> str:
    """The benchmark's perf file for a file run's summary."""
    p, n = s["phases"], s["images"]
    empty = {"throughput_images_per_s": 0.0, "latency_ms": {}}
    compute = p.get("compute", p["run"])

    def rate(phase):
        return p.get(phase, empty)["throughput_images_per_s"]

    def mean(phase):
        return p.get(phase, empty)["latency_ms"].get("mean", 0.0)

    return format_perf(e2e_rate=s["e2e"]["throughput_images_per_s"], e2e_latency_ms=s["e2e"]["latency_ms"],
                       read_rate=rate("read"), read_latency_ms=mean("read"),
                       pre_rate=rate("preprocess"), pre_latency_ms=mean("preprocess"),
                       infer_rate=rate("run"), interface_rate=compute["throughput_images_per_s"],
                       infer_latency_ms=mean("run"),
                       post_rate=rate("write") if n else 0.0, post_latency_ms=mean("write"))


def summary_line(s: Dict) -> str:
    """The one line a file run prints on stdout; a resumed run says how many inputs it skipped."""
    if s.get("nothing_to_do"):
        return (f"{s['inputs']} inputs, all with proven results in {s['result_dir']}: nothing to run "
                "(without --resume a rerun runs them again)")
    skipped = (f"; skipped {s['skipped']} of {s['inputs']} inputs with proven results, rates count the "
               f"{s['images']} run" if s.get("skipped") else "")
    p = s["phases"]
    compute = p.get("compute", p["run"])
    pad = f", {s['padded_images']} padded" if s["padded_images"] else ""
    return (f"{s['images']} inputs → {s['result_files']} result files in {s['result_dir']} "
            f"(batch {s['batch_size']}{pad}, {s.get('precision', 'fp32')}); "
            f"e2e {s['e2e']['throughput_images_per_s']:.1f} img/s, "
            f"infer {p['run']['throughput_images_per_s']:.1f} img/s, compute "
            f"{compute['throughput_images_per_s']:.1f} img/s{skipped}; "
            + ", ".join(f for f in (s.get("perf_file"), s.get("summary_file")) if f))


def pure_summary_text(s: Dict) -> str:
    """ais_bench's performance summary, for the phases this runtime measured."""
    labels = {"h2d": "H2D_latency", "compute": s.get("compute_label", "compute_time"),
              "d2h": "D2H_latency", "run": "run_latency"}
    lines = ["[INFO] -----------------Performance Summary------------------"]
    for phase in ("h2d", "compute", "d2h", "run"):
        st = s["phases"].get(phase, {}).get("latency_ms")
        if st:
            lines.append(f"[INFO] {labels[phase]} (ms): min = {st['min']:.4f}, max = {st['max']:.4f}, "
                         f"mean = {st['mean']:.4f}, median = {st['median']:.4f}, "
                         f"percentile(90%) = {st['p90']:.4f}, percentile(99%) = {st['p99']:.4f}")
    compute = s["phases"].get("compute", s["phases"]["run"])["latency_ms"]
    lines.append(f"[INFO] throughput 1000*batchsize.mean({s['batch_size']})/{labels['compute']}.mean"
                 f"({compute['mean']:.4f}): {s['throughput_images_per_s']:.4f}")
    lines.append(f"[INFO] precision: {s.get('precision', 'fp32')}")
    lines.append("[INFO] ------------------------------------------------------")
    return "\n".join(lines)

"""The runner's reported figures: what each one counts, and the text that reports them.

`DEFINITIONS` go into summary.json; the perf file (the benchmark's five lines, formatted by
`formats.format_perf`), the one-line summary of a file run and ais_bench's pure-inference
summary are all built here from the summary dict that summary.json holds.
"""

from __future__ import annotations

from typing import Dict

from .formats import format_perf

SUMMARY_NAME = "summary.json"

DEFINITIONS = {
    "e2e": "images / wall time from the first input read to the last result written "
           "(model load and warm-up excluded)",
    "read": "images / reader time inside file reads",
    "preprocess": "images / reader time preparing batches (reads and padding, waits excluded)",
    "run": "images / backend.run wall time (host-to-device + compute + device-to-host + runtime overhead)",
    "h2d": "images / host-to-device copy time",
    "compute": "images / compute time (acl: acl.mdl.execute; onnxruntime and CPU torch: the whole run call)",
    "d2h": "images / device-to-host copy time, fp16 to float32 conversion included",
    "write": "images / writer time encoding and writing result files (summed over the writer threads)",
    "latency_ms": "per batch, milliseconds",
    "images": "real inputs; padding of a short last batch is not counted in any rate",
}


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
    """The one line a file run prints on stdout."""
    p = s["phases"]
    compute = p.get("compute", p["run"])
    pad = f", {s['padded_images']} padded" if s["padded_images"] else ""
    return (f"{s['images']} inputs → {s['result_files']} result files in {s['result_dir']} "
            f"(batch {s['batch_size']}{pad}); e2e {s['e2e']['throughput_images_per_s']:.1f} img/s, "
            f"infer {p['run']['throughput_images_per_s']:.1f} img/s, compute "
            f"{compute['throughput_images_per_s']:.1f} img/s; {s['perf_file']}, {s['summary_file']}")


def pure_summary_text(s: Dict) -> str:
    """ais_bench's performance summary, for the phases this runtime measured."""
    labels = {"h2d": "H2D_latency", "compute": "NPU_compute_time" if s["backend"] == "acl" else "compute_time",
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
    lines.append("[INFO] ------------------------------------------------------")
    return "\n".join(lines)

"""ais_bench's summary file, `{result folder}_summary.json`, as its `summary.Summary` writes it.

One line of JSON (`json.dump(infodict, f)`), its keys in its order: `filesinfo` (sample id →
`infiles` / `outfiles`, `Summary.add_sample_id_infiles`), `args` (`sys.argv` whole),
`NPU_compute_time`, `H2D_latency`, `D2H_latency` (min/max/mean/median/percentile(99%)/count, ms
per execution, zeros for a phase not measured, `Summary.get_list_info`), `npu_compute_time_list`,
`throughput` (1000 * batchsize / mean compute ms, `Summary.report`) and `pid`. Written only by
run_om_infer.py's ais_bench form, from the run's one summary.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Optional, Sequence

from ..atomic import atomic_write_text, check_target
from ..errors import UserError


def ais_summary_path(folder: str) -> str:
    """`{folder}_summary.json` (`summary.Summary.report`: output_prefix + "_summary.json")."""
    return folder + "_summary.json"


def ais_stats(phase: Optional[dict]) -> Dict[str, float]:
    """One of `summary.Summary.record`'s entries (ms per execution; zeros for an unmeasured phase,
    as `Summary.get_list_info` of an empty list)."""
    lat = (phase or {}).get("latency_ms") or {}
    return {"min": lat.get("min", 0.0), "max": lat.get("max", 0.0), "mean": lat.get("mean", 0.0),
            "median": lat.get("median", 0.0), "percentile(99%)": lat.get("p99", 0.0),
            "count": int(lat.get("count", 0))}


def ais_compute(s: dict) -> Optional[dict]:
    p = s["phases"]
    return p.get("compute", p.get("run"))


def ais_throughput(s: dict, figure_batch: Optional[int]) -> float:
    """`summary.Summary.report`: 1000 * batchsize / NPU_compute_time.mean, batchsize being
    --batchsize when given, else the model's (`benchmark_process.set_session_options`)."""
    mean = ais_stats(ais_compute(s))["mean"]
    return 1000.0 * (figure_batch or s["batch_size"]) / mean if mean else 0.0


def ais_files_info(inputs: Sequence[str], outputs: Sequence[Sequence[str]]) -> Dict[str, dict]:
    """`filesinfo`: sample id (its place in the input order, from 0) → its input files (one per
    model input) and output files (one per model output) (`Summary.add_sample_id_infiles`)."""
    return {str(i): {"infiles": [p], "outfiles": list(outs)} for i, (p, outs) in enumerate(zip(inputs, outputs))}


def ais_summary_doc(s: dict, argv: Sequence[str], figure_batch: Optional[int], filesinfo: Dict[str, dict]) -> dict:
    """The summary file as `summary.Summary` writes it: its keys in its order, times in ms."""
    p = s["phases"]
    return {"filesinfo": filesinfo, "args": list(argv), "NPU_compute_time": ais_stats(ais_compute(s)),
            "H2D_latency": ais_stats(p.get("h2d")), "D2H_latency": ais_stats(p.get("d2h")),
            "npu_compute_time_list": list(s.get("compute_ms", [])), "throughput": ais_throughput(s, figure_batch),
            "pid": os.getpid()}


def write_ais_summary(path: str, doc: dict) -> None:
    """`json.dump(infodict, f)` as ais_bench writes it (one line), written whole by rename."""
    atomic_write_text(path, json.dumps(doc))


def check_ais_summary_file(path: str) -> None:
    """A summary file may replace only an earlier summary (ais_bench's keys), never a user's file."""
    check_target(path, "summary file")
    if not os.path.lexists(path):
        return
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        doc = None
    if not (isinstance(doc, dict) and "NPU_compute_time" in doc and "throughput" in doc):
        raise UserError(f"{path}: exists and is not an ais_bench summary; move it away or give another "
                        "--output_dirname")

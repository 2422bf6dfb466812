"""scripts/run_all.sh's bookkeeping: the settings a work folder's outputs were made with, and the
guide's two tables (accuracy beside the published figures, throughput) filled in at the end.

`settings` records BS, INTERPOLATION, the checkpoint (path, size, sha256), VAL_DIR, LABELS and the
model kind in `<work dir>/run_settings.json` and refuses a run whose settings differ from the
recorded ones while outputs made with them are still there: results preprocessed with one
interpolation and scored against another's model or labels would give a number that means
nothing. `tables` reads result.json, result_compare.json, the perf files and the step 7 sweep
(all through `formats` and `sweep`) and prints the tables; run_all.sh also keeps them in
`<work dir>/tables.md`.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence

from .atomic import atomic_write_text
from .errors import UserError
from .formats import (
    RUN_SETTING_KEYS,
    RUN_SETTINGS_NAME,
    format_accuracy,
    parse_perf,
    read_json,
    read_result_json,
    read_run_settings,
    write_run_settings,
)
from .perf import SUMMARY_NAME


class Published(NamedTuple):
    """A published accuracy of the real MoCo-v2 linear classifier on the 50,000 ImageNet val images."""

    what: str
    top1: str
    top5: str  # "" where the source gives none


#: The guide's published figures, by the interpolation they were measured with
#: (facts: /work/shared/docs/ascend-reference.md). Kept as printed, digits and all.
PUBLISHED: Dict[str, List[Published]] = {
    "bicubic": [
        Published("ModelZoo guide: PyTorch checkpoint", "67.589", "87.990"),
        Published("ModelZoo guide: OM on Ascend 310, batch 32", "67.31", "87.82"),
        Published("ModelZoo guide: OM on Ascend 310P3", "67.41", "88.02"),
    ],
    "bilinear": [
        Published("MoCo README: released 200-epoch model (main_lincls.py)", "67.7", ""),
    ],
}
IMAGENET_VAL_IMAGES = 50000


# Settings.

def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def current_settings(bs: str, interpolation: str, ckpt: str, val_dir: str, labels: str,
                     model_kind: str) -> Dict[str, str]:
    """The settings of this run; paths made absolute so that `work/x` and `./work/x` agree."""
    if not os.path.isfile(ckpt):
        raise UserError(f"{ckpt}: checkpoint not found (set CKPT=...)")
    return {"BS": str(bs), "INTERPOLATION": interpolation, "CKPT": os.path.abspath(ckpt),
            "CKPT_SIZE": str(os.path.getsize(ckpt)), "CKPT_SHA256": file_sha256(ckpt),
            "VAL_DIR": os.path.abspath(val_dir), "LABELS": os.path.abspath(labels), "MODEL_KIND": model_kind}


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path != folder and os.path.commonpath([path, folder]) == folder


def existing_outputs(work_dir: str, outputs: Sequence[str]) -> List[str]:
    """The run's outputs that exist inside `work_dir`, each once. Every output is an exact path
    (never a pattern: `moco-v2-bs*.onnx` would also name a user's `moco-v2-bs1-finetuned.onnx`),
    and two settings naming one file give it once (deleting it twice would crash half-way);
    nothing outside `work_dir` counts, or is ever deleted, whatever the settings say."""
    found, seen = [], set()
    for path in outputs:
        real = os.path.realpath(path) if not os.path.islink(path) else os.path.abspath(path)
        if real in seen:
            continue
        seen.add(real)
        if not os.path.lexists(path):
            continue
        if os.path.islink(path):  # a symlink is where it lies, not where it points
            parent = os.path.dirname(os.path.abspath(path))
            inside = _holds(work_dir, parent)
        else:
            inside = _inside(path, work_dir)
        if inside:
            found.append(path)
    return found


def _remove(path: str) -> None:
    """Delete one output: a symlink itself (never what it points to), a folder's tree, a file.
    One that vanished meanwhile is already what we want."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise UserError(f"{path}: cannot delete this earlier output ({exc.strerror or exc}); nothing after it "
                        "was deleted: fix that and rerun with OVERWRITE=1") from None


def _holds(folder: str, path: str) -> bool:
    """`path` is `folder` itself or lies inside it (real paths)."""
    folder, path = os.path.realpath(folder), os.path.realpath(path)
    return path == folder or os.path.commonpath([path, folder]) == folder


def check_deletable(present: Sequence[str], inputs: Sequence[str]) -> None:
    """Refuse, before anything is deleted, an output that is or holds one of the run's inputs
    (RESULT_DIR set to the folder that holds the checkpoint, ONNX_MODEL set to the checkpoint)."""
    for out in present:
        for source in inputs:
            if source and os.path.lexists(source) and _holds(out, source):
                raise UserError(f"{out}: OVERWRITE=1 would delete this output, but it is or holds the input "
                                f"{source}; nothing was deleted: point that setting elsewhere")


def check_settings(work_dir: str, new: Dict[str, str], outputs: Sequence[str], overwrite: bool = False,
                   inputs: Sequence[str] = ()) -> str:
    """Compare `new` with `<work_dir>/run_settings.json` and record it; return what was done.

    Refused (UserError, one line naming the first differing setting, both values and the fixes)
    when the recorded settings differ, or none are recorded, while any of `outputs` exists.
    With `overwrite` those outputs (exact paths) are deleted first, after checking that none of
    them is or holds one of `inputs`. Differences with no output left are simply re-recorded (a
    run that failed before writing anything)."""
    path = os.path.join(work_dir, RUN_SETTINGS_NAME)
    old = read_run_settings(path) if os.path.exists(path) else None
    present = existing_outputs(work_dir, outputs)
    fix = "use another WORK_DIR, or OVERWRITE=1 to delete this run's outputs there and start again"
    if old == new:
        action = "same settings as recorded: completed work is kept"
    elif present and not overwrite:
        if old is None:
            raise UserError(f"{path}: missing, but {work_dir} already holds outputs made with unknown settings "
                            f"(e.g. {present[0]}); {fix}")
        changed = [k for k in RUN_SETTING_KEYS if old[k] != new[k]]
        # The size and digest follow from the checkpoint; name the path when it changed too.
        first = changed[0]
        more = f" (also {', '.join(changed[1:])})" if len(changed) > 1 else ""
        raise UserError(f"{path}: {first} was {old[first]} for the outputs in {work_dir}, now {new[first]}{more}; "
                        f"{fix}")
    else:
        check_deletable(present, inputs)
        for p in present:
            _remove(p)
        action = (f"deleted {len(present)} earlier output(s) (OVERWRITE=1); " if present else "") + \
            ("recorded the settings" if old is None else "recorded the new settings")
    os.makedirs(work_dir, exist_ok=True)
    write_run_settings(path, new)
    return action


# Tables.

def _pct(value: str) -> str:
    return f"{value}%" if value else "-"


def accuracy_table(work_dir: str, settings: Dict[str, str], with_compare: bool = True) -> List[str]:
    """This run's Top-1/Top-5 (and, `with_compare`, the PyTorch reference's from
    result_compare.json) beside the published figures for the interpolation it was preprocessed with."""
    res = read_result_json(os.path.join(work_dir, "result.json"))
    n = int(res.get("Number of images", "0"))
    kind = settings["MODEL_KIND"]
    rows = [f"| this run: {'OM (pyACL)' if kind == 'om' else 'ONNX model (ONNX Runtime)'}, batch {settings['BS']} "
            f"| {res.get('Top1 accuracy', '-')} | {res.get('Top5 accuracy', '-')} | {n:,} |"]
    cmp_path = os.path.join(work_dir, "result_compare.json")
    cmp = None
    if with_compare:
        cmp = read_json(cmp_path, "comparison file")
        ref = cmp.get("reference_accuracy", {})
        # result_compare.json holds percentages; render them as result.json does.
        rows.append(f"| this run: checkpoint on PyTorch (REFERENCE=1) | {format_accuracy(ref.get('top1', 0) / 100)} "
                    f"| {format_accuracy(ref.get('top5', 0) / 100)} | {cmp.get('images_compared', 0):,} |")
    interp = settings["INTERPOLATION"]
    rows += [f"| {p.what} | {_pct(p.top1)} | {_pct(p.top5)} | {IMAGENET_VAL_IMAGES:,} |"
             for p in PUBLISHED.get(interp, [])]
    lines = [f"Accuracy (INTERPOLATION={interp}; published figures for the {interp} transform)", "",
             "| model | Top-1 | Top-5 | images |", "|---|---:|---:|---:|"] + rows + [""]
    if cmp is not None:
        lines.append(f"Against the PyTorch reference: top-1 agreement {cmp.get('top1_agreement', 0) * 100:.2f}%, "
                     f"top-1 drop {cmp.get('top1_drop', 0):.2f} points (tolerance {cmp.get('tolerance', 1.0)}): "
                     f"{'PASS' if cmp.get('passed') else 'FAIL'}.")
    other = [k for k in PUBLISHED if k != interp]
    lines.append(f"The published figures hold for the real model_lincls_best.pth.tar on all {IMAGENET_VAL_IMAGES:,} "
                 f"ImageNet val images; this run scored {n:,} images with {settings['CKPT']} "
                 f"(sha256 {settings['CKPT_SHA256'][:12]}...), so the comparison means something only for that "
                 f"checkpoint and the full val set." +
                 (f" Figures for {', '.join(other)}: rerun with INTERPOLATION={other[0]} in another WORK_DIR."
                  if other else ""))
    return lines


class PerfRow(NamedTuple):
    run: str
    model: str
    runtime: str
    batch: int
    e2e: float
    infer: float
    interface: float


def _perf_rows(result_dir: str, run: str) -> List[PerfRow]:
    rows = []
    summary_path = os.path.join(result_dir, SUMMARY_NAME)
    summary = read_json(summary_path, "summary") if os.path.exists(summary_path) else {}
    for path in sorted(glob.glob(os.path.join(result_dir, "perf_vision_batchsize_*_device_*.txt"))):
        with open(path, encoding="utf-8") as f:
            perf = parse_perf(f.read())
        try:
            e2e, infer = perf["e2e"]["throughputRate"], perf["infer"]
            rate, interface = infer["throughputRate"], infer["Interface throughputRate"]
        except KeyError:
            raise UserError(f"{path}: not a perf file (expected the [e2e] and [infer] lines)") from None
        batch = int(os.path.basename(path).split("_")[3])
        runtime = summary.get("backend", "?")
        if summary.get("device"):
            runtime += f" ({summary['device']})"
        rows.append(PerfRow(run, os.path.basename(str(summary.get("model", "?"))), runtime, batch, e2e, rate,
                            interface))
    return rows


def throughput_table(work_dir: str, result_dirs: Sequence[str], perf_dir: Optional[str]) -> List[str]:
    """The perf file of each inference run, then step 7's batch-size sweep when it was run."""
    from . import sweep

    rows: List[PerfRow] = []
    for d in result_dirs:
        rows += _perf_rows(d, os.path.relpath(d, work_dir))
    if not rows:
        raise UserError(f"{work_dir}: no perf_vision_batchsize_*_device_*.txt in {', '.join(result_dirs)} "
                        "(step 5 writes them)")
    lines = ["Throughput (images/s, from the perf files of step 5)", "",
             "| run | model | runtime | batch | e2e | infer | Interface (compute) |",
             "|---|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r.run} | {r.model} | {r.runtime} | {r.batch} | {r.e2e:.1f} | {r.infer:.1f} | {r.interface:.1f} |"
              for r in rows]
    lines += ["", "Interface throughputRate is the figure ModelZoo's guide reports (its 310 card figure is 4x the "
              "chip's: four chips per card; 310P figures are used as they are)."]
    if perf_dir and glob.glob(os.path.join(perf_dir, "*", "bs*", SUMMARY_NAME)):
        lines += ["", f"Batch-size sweep (step 7, pure inference; {os.path.join(perf_dir, 'throughput.md')})", ""]
        lines += sweep.markdown(perf_dir).rstrip("\n").splitlines()
    return lines


def tables(work_dir: str, result_dirs: Sequence[str], perf_dir: Optional[str], with_compare: bool = False) -> str:
    settings = read_run_settings(os.path.join(work_dir, RUN_SETTINGS_NAME))
    lines = accuracy_table(work_dir, settings, with_compare) + [""] + throughput_table(work_dir, result_dirs, perf_dir)
    return "\n".join(lines) + "\n"


# Command line.

def main(argv: Optional[list] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m mocoinfer.report",
                                description="scripts/run_all.sh's settings record and final tables.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("settings", help="check this run's settings against the work folder's record, then record them")
    s.add_argument("work_dir")
    for name in ("bs", "interpolation", "ckpt", "val_dir", "labels", "model_kind"):
        s.add_argument(f"--{name.replace('_', '-')}", required=True)
    s.add_argument("--output", action="append", default=[],
                   help="an output of the run inside WORK_DIR, its exact path (never a pattern); repeatable")
    s.add_argument("--overwrite", action="store_true", help="delete those outputs when the settings differ")
    t = sub.add_parser("tables", help="print the accuracy and throughput tables and write them to --markdown")
    t.add_argument("work_dir")
    t.add_argument("--result-dir", action="append", default=[], help="a result folder with a perf file; repeatable")
    t.add_argument("--perf-dir", help="step 7's folder, when it was run")
    t.add_argument("--compare", action="store_true",
                   help="this run compared with the PyTorch reference: add result_compare.json's figures")
    t.add_argument("--markdown", help="also write the tables here")
    args = p.parse_args(argv)
    if args.command == "settings":
        new = current_settings(args.bs, args.interpolation, args.ckpt, args.val_dir, args.labels, args.model_kind)
        action = check_settings(args.work_dir, new, args.output, args.overwrite, [args.ckpt, args.val_dir, args.labels])
        print(f"run settings ({os.path.join(args.work_dir, RUN_SETTINGS_NAME)}): "
              + ", ".join(f"{k}={new[k]}" for k in RUN_SETTING_KEYS if k not in ("CKPT_SIZE", "CKPT_SHA256"))
              + f"; {action}")
        return 0
    text = tables(args.work_dir, [d for d in args.result_dir if os.path.isdir(d)], args.perf_dir, args.compare)
    if args.markdown:
        atomic_write_text(args.markdown, text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    from .cli import run_main

    # Its caller is scripts/run_all.sh: a refusal reads as that step's one line.
    sys.argv[0] = "run_all"
    sys.exit(run_main(main))

"""Stage 5: THE inference run — check, lock, plan, one pass (or a fan-out to several devices), verify, summary.

`run_inference` is the one run every front end calls (the benchmark's `-key=value` line, this
runner's own form, ais_bench's form: run_om_infer.py translates each into keyword settings). It

1. checks every argument and output path before any model loads: the inputs are listed and each
   file's size is checked against the model's per-sample input (read from an ONNX file or a
   checkpoint before the runtime starts; from an `.om`'s description right after the load,
   before anything is copied or executed);
2. locks the result folder and plans the run from its manifest (`resume.ResultFolder`): inputs
   whose results are proven are skipped;
3. runs one pass (`onepass.run_pass`) over a source (`sources.py`: `.bin` files or streamed
   images), or fans the `.bin` files out to several devices (`devices.py`), whose workers run the
   same pass;
4. verifies the results, records them, and writes the perf file and summary.json.

A run stopped by Ctrl-C or SIGTERM keeps its finished results, records them in the manifest and
writes a summary marked `"partial": true` before the stop reaches the caller; the exception
carries that summary as `.summary`, so a front end with its own summary file writes it too.
Pure inference is `pure.run_pure_inference` (re-exported here).
"""

from __future__ import annotations

import contextlib
import os
from typing import Optional, Sequence, Union

from .atomic import atomic_write_text, check_output, write_json
from .cli import parse_device_ids
from .errors import UserError
from .formats import RESULT_FORMATS, perf_filename
from .inputs import check_names, check_preprocessing_record, input_kind, list_bin_inputs, list_many, stat_inputs
from .onepass import RESULT_SUBDIR, RunSettings, check_against_model, probe, run_pass, warn_stale_results
from .perf import DEFINITIONS, SUMMARY_NAME, perf_text
from .progress import log, progress_bar
from .pure import PURE_DATA, run_pure_inference
from .resume import ResultFolder, model_identity
from .sources import FileSource, ImageSource
from .stream import StreamOptions, open_feed

__all__ = ["PURE_DATA", "RESULT_SUBDIR", "RunSettings", "run_inference", "run_pure_inference"]


def run_inference(model: str, input_path: Union[str, Sequence[str]], output: str = "result",
                  stream: Optional[StreamOptions] = None, write_summary: bool = True, **options) -> dict:
    """Run every input through the model; write result files, the perf file and summary.json.

    `options` are `RunSettings` fields. Its `backend` is a name (`auto`, `acl`, `onnxruntime`,
    `torch`) or an open `Backend`, which the caller keeps ownership of. Inputs whose results the
    result folder's manifest proves are skipped (`overwrite` redoes them). `input_path` may be a
    list (ais_bench's comma list), or hold images (decoded as they run, with `stream`'s
    settings). `device_id` may list several devices ("0,1,2,3" or a list): one worker process per
    device (`devices.py`), every result in the first device's result folder. `write_summary`
    False leaves the summary file to the caller (ais_bench's form writes its own). Returns the
    summary dict.
    """
    device_ids = parse_device_ids(options.get("device_id", 0))
    options["device_id"] = device_ids[0]
    settings = RunSettings(**options)
    outfmt = settings.outfmt
    if outfmt not in RESULT_FORMATS:
        raise UserError(f"unknown --outfmt {outfmt!r} (choose from {', '.join(RESULT_FORMATS)})")
    settings.check()
    cls = settings.backend_class(model)
    if cls is not None:
        cls.check_precision(model, settings.precision)
    backend_name = cls.name if cls is not None else settings.backend.name  # type: ignore[union-attr]
    feed = open_feed(input_path, stream, output) if isinstance(input_path, str) else None
    if feed is not None:  # images: decoded as they are run (stream.py)
        if len(device_ids) > 1:
            raise UserError(f"{input_path}: streamed images run on one device; give one --device-id, or "
                            f"preprocess them to .bin files for --device-id {','.join(map(str, device_ids))}")
        paths = [c.path for c in feed.candidates]
        names, sizes, kind = [c.key for c in feed.candidates], [], None
        sources, extra = [model, str(input_path)], feed.options.settings()
    else:
        if isinstance(input_path, str):
            paths, where = list_bin_inputs(input_path)
        else:
            paths, where = list_many(input_path)
            input_path = ",".join(input_path)
        check_names(paths, outfmt)
        sizes = stat_inputs(paths, where)
        probed = probe(cls, model)
        # Checked before any runtime starts or any output is made: a wrong input never reaches the device.
        kind = None if probed is None else input_kind(paths, sizes, probed.shape, probed.dtype,
                                                      probed.describe(model))
        if probed is not None:
            check_preprocessing_record(paths, kind, probed.shape, probed.dtype, probed.describe(model))
        names, sources, extra = paths, [model] + str(input_path).split(","), {}
    result_dir = settings.result_dir or os.path.join(output, RESULT_SUBDIR.format(device_id=settings.device_id))
    summary_file = settings.summary_file or os.path.join(output, SUMMARY_NAME)
    folder = ResultFolder(output, result_dir, outfmt, settings.first_index, settings.overwrite, settings.resume)
    try:
        folder.check_paths(paths, sources, [summary_file])  # checked even when the caller writes it
        with folder.locked():
            summary = _run_planned(model, input_path, settings, cls, backend_name, feed, paths, names, sizes, kind,
                                   sources, extra, device_ids, folder, summary_file, write_summary)
    except BaseException:
        folder.remove_created()  # a run refused before any result leaves no empty folder behind
        raise
    return summary


def _run_planned(model: str, input_path, settings: RunSettings, cls, backend_name: str, feed, paths, names, sizes,
                 kind, sources, extra: dict, device_ids, folder: ResultFolder, summary_file: str,
                 write_summary: bool) -> dict:
    """With the folder locked: plan from its manifest, run what is to run, verify and record."""
    outfmt, output, result_dir = settings.outfmt, folder.output, folder.result_dir
    recorded = dict(model_identity(model), backend=backend_name, outfmt=outfmt, first_index=settings.first_index,
                    input=",".join(os.path.abspath(p) for p in str(input_path).split(",")),
                    batch_size=settings.batch_size, **extra)
    todo = folder.plan(paths, recorded, names)
    skipped = len(paths) - len(todo)
    base = {"model": model, "backend": backend_name, "device_id": settings.device_id, "input": input_path,
            "outfmt": outfmt, "inputs": feed.total if feed is not None else len(paths), "skipped": skipped,
            "result_dir": result_dir}
    if feed is not None:
        feed.select(todo, folder.proofs)
    if not todo:
        # Every result is proven: the arguments are still checked against the model, as a run
        # would check them (a wrong -batch_size or -input_width is an error either way).
        source = ImageSource(feed) if feed is not None else FileSource(paths, sizes, kind)
        with settings.opened(model, cls) as be:
            check_against_model(be, source, settings)
        summary = dict(base, images=0, nothing_to_do=True)
        if feed is not None:
            feed.report(summary, output, folder.doc)
        folder.finish()
        return summary
    if skipped:
        what = "images" if feed is not None else "inputs"
        log.info(f"note: skipping {skipped} of {base['inputs']} {what} whose results in {result_dir} are proven "
                 "by its manifest (--overwrite redoes them)")
    try:
        if len(device_ids) > 1:
            from .devices import run_on_devices

            summary = run_on_devices(model, [paths[i] for i in todo], [sizes[i] for i in todo], settings,
                                     device_ids, kind, folder, todo)
        else:
            source = (ImageSource(feed) if feed is not None else
                      FileSource([paths[i] for i in todo], [sizes[i] for i in todo], kind, folder.proofs, todo))
            summary = _one_device(model, settings, cls, source, folder, sources)
    except KeyboardInterrupt as exc:
        exc.summary = _record_partial(folder, base, summary_file if write_summary else None, exc)  # type: ignore
        raise
    except BaseException:
        with contextlib.suppress(UserError, OSError):
            folder.stopped()
        raise
    summary = dict(base, **summary)
    if feed is not None:
        feed.report(summary, output, folder.doc)  # before `finish`: the manifest records its failed.txt
    folder.finish(summary["n_outputs"])  # before the stale check: it removes the replaced run's leftovers
    warn_stale_results(result_dir, names, outfmt, summary["n_outputs"], settings.first_index, summary)
    summary.setdefault("definitions", DEFINITIONS)
    if write_summary:
        summary["summary_file"] = summary_file
        write_json(summary_file, summary)
    return summary


def _one_device(model: str, settings: RunSettings, cls, source, folder: ResultFolder, inputs: Sequence[str]) -> dict:
    """One pass on one device, with the benchmark's perf file in the output folder."""
    perf = {}

    def check_perf_file(batch_size: int) -> None:  # its name needs the batch size: checked before the pass
        if settings.write_perf:
            perf["path"] = os.path.join(folder.output, perf_filename(batch_size, settings.device_id))
            check_output(perf["path"], inputs, what="perf file")

    with source, settings.opened(model, cls) as be:
        bar = progress_bar(source.total, "infer", settings.progress)
        summary = run_pass(be, source, settings, folder.result_dir, bar, on_written=folder.record,
                           on_batch=folder.maybe_flush, check_batch=check_perf_file)
    if perf:
        summary["perf_file"] = perf["path"]
        atomic_write_text(perf["path"], perf_text(summary))
    return summary


def _record_partial(folder: ResultFolder, base: dict, summary_file: Optional[str], exc: BaseException) -> dict:
    """After Ctrl-C or SIGTERM: the finished results go into the manifest (still incomplete) and a
    summary marked partial says how far the run got. A fault here must not hide the stop."""
    signal_name = "SIGTERM" if getattr(exc, "signum", None) == 15 else "SIGINT"
    with contextlib.suppress(UserError, OSError):
        folder.stopped()
    summary = dict(base, partial=True, stopped_by=signal_name, images=folder.done_inputs(),
                   result_files=len(folder.done))
    if summary_file:
        summary["summary_file"] = summary_file
        with contextlib.suppress(UserError, OSError):
            write_json(summary_file, summary)
    return summary

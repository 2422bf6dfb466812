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
Pure inference is `pure.run_pure_inference` (re-exported here). ais_bench's several devices, a
result folder per device, are `run_inference_per_device`.
"""

from __future__ import annotations

import contextlib
import os
from typing import Optional, Sequence, Union

from .atomic import atomic_write_text, check_output, write_json
from .cli import parse_device_ids
from .errors import UserError
from .formats import AIS_INPUT_SUFFIXES, AIS_STYLE, RESULT_FORMATS, perf_filename, result_stem
from .inputs import check_names, check_preprocessing_record, input_kind, list_bin_inputs, list_many, stat_inputs
from .onepass import RESULT_SUBDIR, RunSettings, check_against_model, probe, run_pass, warn_stale_results
from .perf import DEFINITIONS, SUMMARY_NAME, perf_text
from .progress import log, progress_bar
from .pure import PURE_DATA, run_pure_inference
from .resume import ResultFolder, model_identity
from .sources import FileSource, ImageSource
from .stream import StreamOptions, open_feed

__all__ = ["PURE_DATA", "RESULT_SUBDIR", "RunSettings", "run_inference", "run_inference_per_device",
           "run_pure_inference"]


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
    # ais_bench's form reads files only (a folder of .npy files is not one of images)
    streams = isinstance(input_path, str) and settings.style != AIS_STYLE
    feed = open_feed(input_path, stream, output) if streams else None
    if feed is not None:  # images: decoded as they are run (stream.py)
        if len(device_ids) > 1:
            raise UserError(f"{input_path}: streamed images run on one device; give one --device-id, or "
                            f"preprocess them to .bin files for --device-id {','.join(map(str, device_ids))}")
        paths = [c.path for c in feed.candidates]
        names, sizes, kind = [c.key for c in feed.candidates], [], None
        sources, extra = [model, str(input_path)], feed.options.settings()
    else:
        paths, sizes, kind, input_path = _file_inputs(model, cls, input_path, settings)
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
    todo = folder.plan(paths, recorded, _plan_names(names, settings.style))
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
    warn_stale_results(result_dir, names, outfmt, summary["n_outputs"], settings.first_index, summary,
                       settings.style)
    summary.setdefault("definitions", DEFINITIONS)
    if write_summary:
        summary["summary_file"] = summary_file
        write_json(summary_file, summary)
    return summary


def _file_inputs(model: str, cls, input_path: Union[str, Sequence[str]], settings: RunSettings):
    """The input files in order, their sizes and what they hold (when the model file tells it
    before any runtime starts), and the inputs as one string; a wrong input never reaches a device."""
    suffixes = AIS_INPUT_SUFFIXES if settings.style == AIS_STYLE else (".bin",)
    if isinstance(input_path, str):
        paths, where = list_bin_inputs(input_path, suffixes)
    else:
        paths, where = list_many(input_path, suffixes)
        input_path = ",".join(input_path)
    check_names(paths, settings.outfmt, settings.style)
    sizes = stat_inputs(paths, where)
    probed = probe(cls, model)
    kind = None if probed is None else input_kind(paths, sizes, probed.shape, probed.dtype, probed.describe(model))
    if probed is not None:
        check_preprocessing_record(paths, kind, probed.shape, probed.dtype, probed.describe(model))
    return paths, sizes, kind, input_path


def _plan_names(names: Sequence[str], style: str) -> Sequence[str]:
    """The names the manifest derives result names from (it cuts the last extension): ais_bench's
    stem (`a.b.bin` → `a`) with a stand-in extension."""
    return names if style != AIS_STYLE else [result_stem(n, style) + ".bin" for n in names]


def run_inference_per_device(model: str, input_path: Union[str, Sequence[str]], output: str,
                             result_dirs: Sequence[str], divide: bool, **options) -> dict:
    """ais_bench's several devices: device `ids[j]` (`device_id` lists them) runs into
    `result_dirs[j]` every input (`divide` False, ais_bench's default) or its contiguous share
    (`divide`: `--divide_input`, shares as ais_bench's `utils.list_share` cuts them: the first
    devices take one more). Each folder is locked and planned as `run_inference`'s one folder;
    the devices run at once, one worker process each (`devices.run_each_device`). Returns the
    figures with a "devices" list (each with its `result_dir`) and their total."""
    from .devices import shards

    device_ids = parse_device_ids(options.get("device_id", 0))
    if len(result_dirs) != len(device_ids):
        raise UserError(f"{len(device_ids)} devices and {len(result_dirs)} result folders")
    options["device_id"] = device_ids[0]
    settings = RunSettings(**options)
    if settings.outfmt not in RESULT_FORMATS:
        raise UserError(f"unknown --outfmt {settings.outfmt!r} (choose from {', '.join(RESULT_FORMATS)})")
    settings.check()
    cls = settings.backend_class(model)
    if cls is None:
        raise UserError(f"{model}: an open backend runs on its one device; pass a backend name for several devices")
    cls.check_precision(model, settings.precision)
    paths, sizes, kind, joined = _file_inputs(model, cls, input_path, settings)
    n, k = len(paths), len(device_ids)
    shares = shards(n, k) if divide else [(0, n)] * k
    sources = [model] + str(joined).split(",")
    folders = [ResultFolder(output, d, settings.outfmt, settings.first_index, settings.overwrite, settings.resume)
               for d in result_dirs]
    try:
        for folder, (a, b) in zip(folders, shares):
            folder.check_paths(paths[a:b], sources, [])
        return _run_each_planned(model, settings, cls, paths, sizes, kind, joined, device_ids, shares, folders,
                                 result_dirs)
    except BaseException:
        for folder in folders:  # a run refused before any result leaves no empty folder behind
            folder.remove_created()
        raise


def _run_each_planned(model: str, settings: RunSettings, cls, paths, sizes, kind, joined, device_ids, shares,
                      folders, result_dirs) -> dict:
    """`run_inference_per_device` once its folders are checked: lock, plan and run each."""
    from .devices import run_each_device

    n = len(paths)
    recorded = dict(model_identity(model), backend=cls.name, outfmt=settings.outfmt,
                    first_index=settings.first_index, batch_size=settings.batch_size,
                    input=",".join(os.path.abspath(p) for p in str(joined).split(",")))
    with contextlib.ExitStack() as stack:
        jobs = []
        for dev, folder, (a, b) in zip(device_ids, folders, shares):
            if a == b:
                log.warning(f"device {dev}: no input of the {n} left for it (--divide_input); it is not opened")
                continue
            stack.enter_context(folder.locked())
            share = paths[a:b]
            todo = folder.plan(share, dict(recorded, share=[a, b]), _plan_names(share, settings.style))
            if not todo:
                folder.finish()
                log.info(f"note: device {dev}: every result in {folder.result_dir} is proven; nothing to run there")
                continue
            jobs.append((dev, [share[i] for i in todo], [sizes[a + i] for i in todo], folder, todo))
        if not jobs:
            # Every result is proven (--resume): the arguments are still checked against the model.
            with settings.opened(model, cls) as be:
                check_against_model(be, FileSource(paths, sizes, kind), settings)
            return {"model": model, "nothing_to_do": True, "inputs": n, "devices": [],
                    "result_dirs": list(result_dirs)}
        try:
            summary = run_each_device(model, settings, kind, jobs)
        except BaseException:
            for job in jobs:
                with contextlib.suppress(UserError, OSError):
                    job[3].stopped()
            raise
        for (_, _, _, folder, _), one in zip(jobs, summary["devices"]):
            folder.finish(one["n_outputs"])
    summary.update(model=model, input=joined, outfmt=settings.outfmt, inputs=n, result_dirs=list(result_dirs))
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

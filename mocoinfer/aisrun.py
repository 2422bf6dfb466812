"""ais_bench's form of run_om_infer.py, run: its folders, summary files and printed lines.

`aisform.py` reads the command line (which form, the flags, the folder names); this module runs
what it asks on the runner (`runner.run_inference`, `run_inference_per_device`,
`pure.run_pure_inference`, `devices.run_pure_each_device`) and writes what ais_bench's source
writes: a summary file per result folder (`formats.write_ais_summary`) and its printed lines.
A line that keeps nothing (`--input` without `--output`) runs into a temporary folder deleted at
the end; a time-stamped folder this run made and could not use is removed again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Callable, List, Optional

from . import aisform, devices, perf, runner
from . import formats as F
from .errors import UserError
from .formats import AIS_STYLE
from .inputs import list_bin_inputs, list_many
from .progress import log, setup_logging
from .pure import PURE_INFER_NAME
from .temporaries import bookkeeping_dir


def main(argv: List[str], argv_given: bool, shared_args: Callable) -> int:
    """Run one ais_bench command line (`argv`, without the program; `argv_given`: not sys.argv's);
    `shared_args(parser)` adds the options every form of run_om_infer.py shares."""
    args = aisform.parser(shared_args).parse_args(argv)
    aisform.check_flags(args)
    if args.debug:
        setup_logging(verbose=True)
    if args.output is None and args.output_dirname is not None:  # benchmark_process.args_rules
        raise UserError("--output_dirname needs --output (the folder it is created in)")
    ids = aisform.device_ids(args.device)
    aisform.batch_size(args)  # the ranges, before any folder is made
    run = _AisRun(args, [aisform.program(argv_given)] + list(argv), ids)
    run.common = dict(batch_size=aisform.batch_size(args) if args.dymBatch else None,
                      batch_hint=None if args.dymBatch else args.batchsize, backend=args.backend,
                      providers=[x for x in args.providers.split(",") if x] if args.providers else None,
                      warmup=args.warmup_count, threads=args.threads, precision=args.precision, loop=args.loop,
                      write_perf=False, outfmt=args.outfmt.lower(), first_index=0, style=AIS_STYLE,
                      progress=False if args.no_progress else None)
    if args.input is not None:
        run.inputs = aisform.input_list(args.input)
    created = None
    if args.output is not None:
        if args.output_dirname is not None:
            run.folder = aisform.folder_name(args.output, args.output_dirname)
        else:
            run.folder = created = aisform.new_time_stamped_folder(args.output)
    try:
        with _scratch(args.output is None and args.input is not None) as scratch:
            if scratch:  # ais_bench runs and keeps nothing: the results go to a folder deleted after
                run.output, run.folder = scratch, os.path.join(scratch, "results")
            if len(ids) > 1:
                return run.several_devices()
            return run.pure() if args.input is None else run.files()
    except BaseException:
        if created and os.path.isdir(created) and not os.listdir(created):
            _remove_fresh_folder(created)
        raise


def _remove_fresh_folder(folder: str) -> None:
    """A time-stamped folder this run made (no other run has its name) and left empty: it goes,
    with the bookkeeping its lock left beside it, which only this run can have written."""
    side = bookkeeping_dir(folder)
    os.rmdir(folder)
    if os.path.isdir(side) and not os.path.islink(side):
        shutil.rmtree(side, ignore_errors=True)


@contextlib.contextmanager
def _scratch(wanted: bool):
    """A temporary output folder for a run that keeps nothing (None when not `wanted`)."""
    if not wanted:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="mocoinfer-ais-") as tmp:
        yield tmp


class _AisRun:
    """One ais_bench command line's run: its folders, summary files and printed lines."""

    def __init__(self, args, argv: List[str], ids: List[int]) -> None:
        self.args, self.argv, self.ids = args, argv, ids
        self.common: dict = {}
        self.inputs: Optional[List[str]] = None
        self.folder: Optional[str] = None
        self.output = args.output
        self.keep = args.output is not None

    def _summary_file(self, folder: Optional[str]) -> Optional[str]:
        if folder is None or not self.keep:
            return None
        path = F.ais_summary_path(folder)
        F.check_ais_summary_file(path)
        return path

    def _report(self, s: dict, folder: Optional[str], filesinfo: dict) -> None:
        print(aisform.summary_text(s, self.args.display_all_summary, self.args.batchsize))
        path = self._summary_file(folder)
        if path:
            F.write_ais_summary(path, F.ais_summary_doc(s, self.argv, self.args.batchsize, filesinfo))
            s["summary_file"] = path

    def _input_arg(self):
        assert self.inputs is not None
        return self.inputs[0] if len(self.inputs) == 1 else self.inputs

    def _paths(self) -> List[str]:
        arg = self._input_arg()
        return list_bin_inputs(arg, F.AIS_INPUT_SUFFIXES)[0] if isinstance(arg, str) else \
            list_many(arg, F.AIS_INPUT_SUFFIXES)[0]

    def _filesinfo(self, paths: List[str], folder: str, n_outputs: int) -> dict:
        fmt = self.common["outfmt"]
        outs = [[os.path.join(folder, F.result_filename(p, fmt, k, AIS_STYLE)) for k in range(n_outputs)]
                for p in paths]
        return F.ais_files_info(paths, outs)

    def pure(self) -> int:
        self._summary_file(self.folder)  # checked before the model loads
        s = runner.run_pure_inference(self.args.model, output=None, result_dir=self.folder,
                                      pure_data=aisform.PURE_TYPES[self.args.pure_data_type], **self.common)
        info = F.ais_files_info([PURE_INFER_NAME], [s.get("result_paths", [])]) if self.folder else {}
        self._report(s, self.folder, info)
        if s.get("summary_file"):
            print(f"wrote {s['summary_file']}")
        return 0

    def files(self) -> int:
        assert self.folder is not None
        self._summary_file(self.folder)
        a = self.args
        summary = runner.run_inference(a.model, self._input_arg(), self.output, result_dir=self.folder,
                                       summary_file=F.ais_summary_path(self.folder), write_summary=False,
                                       overwrite=a.overwrite, resume=a.resume, **self.common)
        if summary.get("nothing_to_do"):
            print(perf.summary_line(summary))
            return 0
        self._report(summary, self.folder, self._filesinfo(self._paths(), self.folder, summary["n_outputs"]))
        if self.keep:
            print(perf.summary_line(summary))
        return 0

    def several_devices(self) -> int:
        """`benchmark_process.multidevice_run`: each device in `{folder}/device{id}_{i}/`."""
        a = self.args
        base = self.folder
        dirs = [aisform.device_folder(base, dev, i) if base else None for i, dev in enumerate(self.ids)]
        for d in dirs:
            self._summary_file(d)
        log.info(f"multidevice:{self.ids} run begin")
        if self.inputs is None:
            summaries = devices.run_pure_each_device(a.model, self.ids, dirs if self.keep else [None] * len(dirs),
                                                     pure_data=aisform.PURE_TYPES[a.pure_data_type], **self.common)
            for dev, d, s in zip(self.ids, dirs, summaries):
                print(f"[INFO] device {dev}:")
                info = F.ais_files_info([PURE_INFER_NAME], [s.get("result_paths", [])]) if self.keep else {}
                self._report(s, d, info)
            print(aisform.devices_text(self.ids, summaries, a.batchsize))
            return 0
        total = runner.run_inference_per_device(a.model, self._input_arg(), self.output, dirs, a.divide_input,
                                                device_id=self.ids, overwrite=a.overwrite, resume=a.resume,
                                                **self.common)
        by_dev = {s["device_id"]: s for s in total["devices"]}
        paths = self._paths()
        shares = devices.shards(len(paths), len(self.ids)) if a.divide_input else [(0, len(paths))] * len(self.ids)
        ran, summaries = [], []
        for dev, d, (lo, hi) in zip(self.ids, dirs, shares):
            s = by_dev.get(dev)
            if s is not None:
                ran.append(dev)
                summaries.append(s)
                print(f"[INFO] device {dev}:")
                self._report(s, d, self._filesinfo(paths[lo:hi], d, s["n_outputs"]))
        if not summaries:
            print(f"every result in {', '.join(dirs)} is proven: nothing to run (--overwrite redoes them)")
            return 0
        print(aisform.devices_text(ran, summaries, a.batchsize))
        return 0

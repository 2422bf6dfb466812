"""Several devices in one run (`--device-id 0,1,2,3`): one worker process per device.

The parent lists and checks the inputs once, splits them into contiguous shards in natural order
(sizes differing by at most one, the first devices taking the extra images), and starts one
worker per device from the `spawn` context, so no runtime state (an initialised pyACL, CUDA, ONNX
Runtime's thread pools) is ever inherited. Each worker opens its own backend on its device (acl:
that NPU; torch: `cuda:{id}`; ONNX Runtime: the CUDA provider's `device_id`, or on a CPU a worker
with its own contiguous share of the usable cores, pinned to them, as many threads as cores),
runs its shard through the usual pipeline into the ONE result folder the metric reads
(`dumpOutput_device{first id}`), and writes its own perf file. The parent then writes
summary.json: each device's figures and the total, images over the wall time from the first
read on any device to the last result written on any device.

When one device fails, the others stop at their next batch (closing their backends, so nothing
stays allocated on any device), every result already written is kept (results are written
atomically), and the run ends with that device's id and error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import queue
import time
import traceback
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Type, Union

from .errors import UserError
from .progress import log, progress_bar, usable_cpus

if TYPE_CHECKING:  # annotations only: runner imports this module's functions at call time
    from .backends import Backend
    from .inputs import InputKind
    from .resume import ResultFolder
    from .runner import RunSettings

# How often a worker reports progress to the parent's bar, and how long the parent waits for the
# last word of a worker that has exited before calling it lost.
_PROGRESS_EVERY = 0.25
_POLL = 0.2
_LAST_WORD = 2.0


def parse_device_ids(value: Union[int, str, Sequence[int]]) -> List[int]:
    """Device ids from `--device-id` / `-device_id=` / `DEVICE_ID`: `0`, `"0,1,2,3"` or a list."""
    if isinstance(value, int):
        items: List = [value]
    elif isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    else:
        items = list(value)
    ids = []
    for item in items:
        try:
            dev = int(item)
        except (TypeError, ValueError):
            raise UserError(f"--device-id {value}: {item!r} is not a device id (e.g. 0 or 0,1,2,3)") from None
        if dev < 0:
            raise UserError(f"--device-id {value}: device ids are >= 0")
        ids.append(dev)
    if not ids:
        raise UserError("--device-id: no device id given")
    if len(set(ids)) != len(ids):
        raise UserError(f"--device-id {value}: a device id is listed twice")
    return ids


def shards(n: int, k: int) -> List[Tuple[int, int]]:
    """`k` contiguous (start, stop) ranges covering 0..n-1 in order, sizes differing by at most one."""
    base, extra = divmod(n, k)
    out, start = [], 0
    for i in range(k):
        stop = start + base + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def cpu_shares(k: int, cpus: Optional[Sequence[int]] = None) -> List[List[int]]:
    """The usable cores split into `k` contiguous shares (one core each, shared, when there are
    fewer cores than workers)."""
    if cpus is None:
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = list(range(usable_cpus()))
    cpus = list(cpus)
    if len(cpus) < k:
        return [[cpus[i % len(cpus)]] for i in range(k)]
    return [list(cpus[a:b]) for a, b in shards(len(cpus), k)]


def _uses_host_cpu(backend_name: str, providers: Optional[Sequence[str]]) -> bool:
    """Whether this backend computes on the host's CPU cores (so a worker takes a share of them)."""
    if backend_name == "onnxruntime":
        import onnxruntime as ort

        from .backends.onnxruntime import choose_providers

        return choose_providers(providers, ort.get_available_providers()) == ["CPUExecutionProvider"]
    if backend_name == "torch":
        import torch

        return not torch.cuda.is_available()
    return False


class _QueueBar:
    """The progress bar interface the pipeline drives, reporting to the parent's bar."""

    def __init__(self, events, device_id: int) -> None:
        self.events, self.device_id = events, device_id
        self.pending, self.last = 0, time.monotonic()

    def update(self, n: int) -> None:
        self.pending += n
        if time.monotonic() - self.last >= _PROGRESS_EVERY:
            self._send()

    def _send(self) -> None:
        if self.pending:
            self.events.put(("progress", self.device_id, self.pending))
        self.pending, self.last = 0, time.monotonic()

    def close(self) -> None:
        self._send()


def _worker(model: str, paths: List[str], sizes: List[int], output: str, result_dir: str, settings,
            backend_name: str, kind, cores: List[int], events, cancel) -> None:
    """One device's shard, in its own process; reports ("done" | "error" | "stopped", id, payload)."""
    from .backends import choose_backend
    device_id = settings.device_id
    try:
        if cores and _uses_host_cpu(backend_name, settings.providers):
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, cores)
            if not settings.threads:
                settings = dataclasses.replace(settings, threads=len(cores))
        cls = choose_backend(model, backend_name)
        summary = run_files(model, paths, sizes, output, settings, cls, kind, result_dir=result_dir,
                            bar=_QueueBar(events, device_id), cancel=cancel)
        summary["threads"] = settings.threads
        events.put(("done", device_id, summary))
    except BaseException as exc:  # everything goes back to the parent, which decides
        status = "stopped" if cancel.is_set() else "error"
        if isinstance(exc, UserError):
            message = str(exc)
        elif isinstance(exc, KeyboardInterrupt):
            message = "interrupted"
        else:  # a bug: the parent shows where
            message = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        events.put((status, device_id, message))


def run_on_devices(model: str, input_path: str, output: str, paths: Sequence[str], sizes: Sequence[int],
                   settings, device_ids: Sequence[int], kind=None,
                   all_paths: Optional[Sequence[str]] = None) -> dict:
    """Run checked inputs on several devices, one worker process each; returns the run's summary
    with a "devices" list and the total (`run_resumable` writes it)."""
    from .backends import Backend, choose_backend
    from .perf import DEFINITIONS
    from .runner import RESULT_SUBDIR, result_names, warn_stale_results
    from .stats import rate

    if isinstance(settings.backend, Backend):
        raise UserError(f"{model}: an open backend runs on its one device; pass a backend name for --device-id "
                        f"{','.join(map(str, device_ids))}")
    backend_name = choose_backend(model, settings.backend).name
    if kind is None and len(set(sizes)) > 1:
        # Only a loaded .om tells what its input is, and each worker sees only its shard: the
        # one-kind-of-file rule is checked across all the shards here.
        other = next(i for i, size in enumerate(sizes) if size != sizes[0])
        raise UserError(f"{paths[other]}: {sizes[other]} bytes, but {paths[0]} holds {sizes[0]}; one run takes one "
                        "kind of file (preprocess them all with the same --dtype)")
    n = len(paths)
    used = list(device_ids[:n])
    if len(used) < len(device_ids):
        log.warning(f"{n} input(s) for {len(device_ids)} devices: devices "
                    f"{', '.join(map(str, device_ids[n:]))} get none and are not opened")
    result_dir = settings.result_dir or os.path.join(output, RESULT_SUBDIR.format(device_id=device_ids[0]))
    os.makedirs(result_dir, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")
    events = ctx.Queue()
    cancel = ctx.Event()
    cores = cpu_shares(len(used))
    procs: Dict[int, multiprocessing.process.BaseProcess] = {}
    done: Dict[int, dict] = {}
    failed: Dict[int, str] = {}  # in the order the errors arrived
    stopped: Dict[int, str] = {}
    bar = progress_bar(n, f"infer on {len(used)} devices", settings.progress)
    t0 = time.perf_counter()
    try:
        for dev, (a, b), share in zip(used, shards(n, len(used)), cores):
            # The parent writes the summary: its document maker (a closure) stays here.
            worker_settings = dataclasses.replace(settings, device_id=dev, progress=False, summary_doc=None,
                                                  summary_file=None)
            proc = ctx.Process(target=_worker, name=f"mocoinfer-device{dev}",
                               args=(model, list(paths[a:b]), list(sizes[a:b]), output, result_dir,
                                     worker_settings, backend_name, kind, share, events, cancel))
            proc.start()
            procs[dev] = proc
        _collect(procs, events, cancel, bar, done, failed, stopped)
    finally:
        cancel.set()  # a no-op after a clean run; stops the workers on Ctrl-C or an error here
        bar.close()
        for proc in procs.values():
            proc.join(30)
        for proc in procs.values():
            if proc.is_alive():  # wedged in a runtime call: nothing more to wait for
                proc.terminate()
                proc.join(5)
    wall_with_startup = time.perf_counter() - t0
    if failed:
        dev, message = next(iter(failed.items()))
        others = "".join(f"; device {d} failed too: {m.splitlines()[0]}" for d, m in list(failed.items())[1:])
        kept = len(os.listdir(result_dir))
        raise UserError(f"device {dev}: {message.rstrip()}{others} (run stopped; {kept} result files kept in "
                        f"{result_dir})")
    devices = [done[d] for d in used]
    first_read = min(s["first_read"] for s in devices)
    last_write = max(s["last_write"] for s in devices)
    wall = last_write - first_read
    first = devices[0]
    summary = {"images": n, "batch_size": first["batch_size"], "device_ids": used,
               "batches": sum(s["batches"] for s in devices),
               "padded_images": sum(s["padded_images"] for s in devices),
               "result_files": sum(s["result_files"] for s in devices), "wall_seconds": wall,
               "wall_seconds_with_startup": wall_with_startup,
               "e2e": {"throughput_images_per_s": rate(n, wall), "latency_ms": wall * 1000.0},
               "n_outputs": first["n_outputs"], "model": model, "backend": first["backend"], "input": input_path,
               "input_files": first["input_files"], "outfmt": settings.outfmt, "warmup": settings.warmup,
               "loop": settings.loop, "model_batch_size": first["model_batch_size"], "result_dir": result_dir,
               "perf_files": [s.get("perf_file") for s in devices], "devices": devices,
               "definitions": dict(DEFINITIONS, total_e2e=(
                   "e2e above: images of every device / wall time from the first input read on any device "
                   "to the last result written on any device; wall_seconds_with_startup adds process "
                   "start, model loads and warm-up; each entry of devices has that device's own figures"))}
    ks = range(settings.first_index, settings.first_index + summary["n_outputs"])
    warn_stale_results(result_dir, result_names(all_paths if all_paths is not None else paths, settings.outfmt, ks),
                       summary)
    return summary


def _collect(procs, events, cancel, bar, done: Dict, failed: Dict, stopped: Dict) -> None:
    """Read the workers' messages until every worker has answered (or died without a word)."""
    silent_since: Dict[int, float] = {}
    while len(done) + len(failed) + len(stopped) < len(procs):
        try:
            status, dev, payload = events.get(timeout=_POLL)
        except queue.Empty:
            now = time.monotonic()
            for dev, proc in procs.items():
                if dev in done or dev in failed or dev in stopped or proc.is_alive():
                    continue
                if now - silent_since.setdefault(dev, now) > _LAST_WORD:
                    failed[dev] = f"its worker process exited with code {proc.exitcode} and no result"
                    cancel.set()
            continue
        if status == "progress":
            bar.update(payload)
        elif status == "done":
            done[dev] = payload
        elif status == "stopped" and failed:
            stopped[dev] = payload
        else:
            failed[dev] = payload
            cancel.set()


def summary_line(s: dict) -> str:
    """The one line a several-device run prints on stdout."""
    per = "; ".join(f"device {d['device_id']}: {d['images']} images, e2e {d['e2e']['throughput_images_per_s']:.1f} "
                    f"img/s, compute {d['phases'].get('compute', d['phases']['run'])['throughput_images_per_s']:.1f} "
                    f"img/s" for d in s["devices"])
    pad = f", {s['padded_images']} padded" if s["padded_images"] else ""
    files = ""
    if s.get("summary_file"):
        files = f"; {'perf files beside it, ' if any(s.get('perf_files') or ()) else 'summary '}{s['summary_file']}"
    return (f"{s['images']} inputs → {s['result_files']} result files in {s['result_dir']} on "
            f"{len(s['devices'])} devices (batch {s['batch_size']}{pad}); total e2e "
            f"{s['e2e']['throughput_images_per_s']:.1f} img/s; {per}{files}")


def run_resumable(model: str, input_path: str, output: str, settings: RunSettings, device_ids: Sequence[int],
                 kind: Optional[InputKind], folder: ResultFolder, paths: Sequence[str], sizes: Sequence[int],
                 todo: List[int], base: dict) -> dict:
    """The inputs not yet done, on several devices (`devices.run_on_devices`). The workers write
    the results; here, under the folder's lock, the manifest records each one that is in place
    with its input's hash, also when a device failed, so a rerun computes only what is missing."""
    from .runner import _record_partial, write_summary

    try:
        try:
            summary = run_on_devices(model, input_path, output, [paths[i] for i in todo],
                                     [sizes[i] for i in todo], settings, device_ids, kind, all_paths=paths)
        finally:
            _record_written(folder, paths, todo, settings)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: a summary marked partial, as one device writes
        _record_partial(folder, base, settings.summary_path(output), exc, settings.summary_doc)
        raise
    folder.finish(summary["n_outputs"])
    summary.update({"inputs": len(paths), "skipped": base["skipped"]})
    write_summary(summary, settings.summary_path(output), settings.summary_doc)
    return summary


def _record_written(folder: ResultFolder, paths: Sequence[str], todo: List[int], settings: RunSettings) -> None:
    """Record in the manifest every result file the device workers put in place (after they stop)."""
    from .atomic import file_digest
    from .formats import result_filename

    for i in todo:
        k = settings.first_index
        name = result_filename(paths[i], settings.outfmt, k)
        while os.path.isfile(os.path.join(folder.result_dir, name)):
            if folder.digests[i] is None:
                with contextlib.suppress(OSError):
                    folder.digests[i] = file_digest(paths[i])
            folder.record(i, k, name)
            k += 1
            name = result_filename(paths[i], settings.outfmt, k)
    with contextlib.suppress(UserError, OSError):
        folder.flush()


def run_files(model: str, paths: Sequence[str], sizes: Sequence[int], output: str, settings: RunSettings,
              cls: Optional[Type[Backend]], kind: Optional[InputKind] = None,
              result_dir: Optional[str] = None, bar=None, cancel=None) -> dict:
    """One device's share of a several-device run (a worker process of `devices`): `paths` on
    `settings.device_id` into `result_dir`; writes that device's perf file in `output` and returns
    its summary (the parent holds the lock, keeps the manifest and writes summary.json)."""
    from .atomic import atomic_write_text
    from .formats import perf_filename
    from .inputs import input_kind
    from .perf import perf_text
    from .pipeline import plan_batches, run_pipeline
    from .runner import (
        RESULT_SUBDIR,
        _check_hw,
        _finish,
        _input_files,
        _opened,
        _run_phases,
        _verify_results,
        _warm_up,
        resolve_batch_size,
    )
    from .stats import phase, rate

    outfmt = settings.outfmt
    with _opened(model, settings, cls) as be:
        if kind is None:  # only the loaded runtime can tell (an .om)
            kind = input_kind(paths, sizes, be.input_shape, be.input_dtype, be.describe())
        _check_hw(be, settings.expect_hw)
        bs = resolve_batch_size(be, settings.batch_size, len(paths))
        plan = plan_batches(len(paths), bs, be)
        _warm_up(be, bs, settings.warmup)
        result_dir = result_dir or os.path.join(output, RESULT_SUBDIR.format(device_id=settings.device_id))
        if bar is None:
            bar = progress_bar(len(paths), "infer", settings.progress)
        times = run_pipeline(be, paths, plan, bs, result_dir, outfmt, settings.loop, bar,
                             first_index=settings.first_index, host_normalize=kind.host_normalize, cancel=cancel)
        n = len(paths)
        phases = {"read": phase(n, times.read), "preprocess": phase(n, times.prepare)}
        phases.update(_run_phases(be, n * settings.loop, times.run))
        phases["write"] = phase(n, times.write)
    summary = {"images": n, "batch_size": bs, "batches": times.batches, "padded_images": times.padded_images,
               "result_files": times.result_files, "wall_seconds": times.wall,
               "e2e": {"throughput_images_per_s": rate(n, times.wall), "latency_ms": times.wall * 1000.0},
               "phases": phases, "model": model, "backend": be.name, "device": be.device,
               "device_id": settings.device_id, "input_files": _input_files(kind, be), "outfmt": outfmt,
               "warmup": settings.warmup, "loop": settings.loop, "model_batch_size": be.batch_size,
               "result_dir": result_dir, "precision": getattr(be, "precision", "fp32"),
               "n_outputs": times.n_outputs, "first_read": times.started, "last_write": times.ended}
    _verify_results(result_dir, paths, outfmt, times.n_outputs, summary, settings.first_index, paths,
                    warn_stale=False)
    _finish(summary, be, None, None, "")
    if settings.write_perf:  # ais_bench's form writes no perf file
        summary["perf_file"] = os.path.join(output, perf_filename(bs, settings.device_id))
        atomic_write_text(summary["perf_file"], perf_text(summary))
    return summary

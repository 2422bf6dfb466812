"""Several devices in one run (`--device-id 0,1,2,3`): one worker process per device.

The parent lists and checks the inputs once, splits them into contiguous shards in natural order
(sizes differing by at most one, the first devices taking the extra images), and starts one
worker per device from the `spawn` context, so no runtime state (an initialised pyACL, CUDA, ONNX
Runtime's thread pools) is ever inherited. Each worker opens its own backend on its device (acl:
that NPU; torch: `cuda:{id}`; ONNX Runtime: the CUDA provider's `device_id`, or on a CPU a worker
with its own contiguous share of the usable cores, pinned to them, as many threads as cores),
runs its shard through the one pass every run uses (`onepass.run_pass`) into the ONE result
folder the metric reads (`dumpOutput_device{first id}`), and writes its own perf file. ais_bench's
form gives each device its own folder instead (`run_each_device`: every input on every device,
or a share each), and its pure inference runs on each device at once (`run_pure_each_device`). This
module is the fan-out only: it imports the pass, never the runner that calls it. The parent
merges the figures (`merge`): each device's and the total, images over the wall time from the
first read on any device to the last result written on any device.

Each worker reports every result it put in place with the proof of its input, whatever happens
to the run, and the parent records exactly those in the manifest: a result file present for an
input no worker ran (an earlier run's leftover) is never taken as proven. When one device fails,
the others stop at their next batch (closing their backends, so nothing stays allocated on any
device), every result already written is kept and recorded, and the run ends with that
device's id and error. A worker whose parent is killed ends itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import queue
import threading
import time
import traceback
from typing import Dict, List, Optional, Sequence, Tuple

from .atomic import atomic_write_text
from .errors import UserError
from .formats import perf_filename
from .onepass import RunSettings, run_pass
from .perf import DEFINITIONS, perf_text
from .progress import log, progress_bar, usable_cpus
from .sources import FileSource
from .stats import rate

# How often a worker reports progress to the parent's bar, and how long the parent waits for the
# last word of a worker that has exited before calling it lost.
_PROGRESS_EVERY = 0.25
_POLL = 0.2
_LAST_WORD = 2.0


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


class _QueueBar:
    """The progress interface the pipeline drives (`update`, `close`), reporting to the parent's bar."""

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


def _exit_with_parent(parent: int) -> None:
    """End this worker when the run's parent is gone (`kill -9`): without it, the worker would
    go on writing into a folder whose lock died with the parent."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_POLL)
        os._exit(1)

    threading.Thread(target=watch, name="mocoinfer-parent-watch", daemon=True).start()


def _worker(model: str, paths: List[str], sizes: List[int], output: str, result_dir: str, settings: RunSettings,
            kind, cores: List[int], parent: int, events, cancel) -> None:
    """One device's shard, in its own process. Reports ("written", id, [(i, k, name, proof)]) for
    every result it put in place, whatever happens, then ("done" | "error" | "stopped", id, payload)."""
    from .backends import choose_backend
    from .temporaries import register_data_folder

    _exit_with_parent(parent)
    device_id = settings.device_id
    proofs: List[Optional[dict]] = [None] * len(paths)
    written: List[Tuple[int, int, str]] = []
    try:
        register_data_folder(result_dir)  # temporaries beside the folder, as the parent's own
        cls = choose_backend(model, settings.backend)  # type: ignore[arg-type]
        if cores and cls.computes_on_host(settings.providers):
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, cores)
            if not settings.threads:
                settings = dataclasses.replace(settings, threads=len(cores))
        source = FileSource(paths, sizes, kind, proofs)
        with settings.opened(model, cls) as be:
            summary = run_pass(be, source, settings, result_dir, _QueueBar(events, device_id), cancel=cancel,
                               on_written=lambda i, k, name: written.append((i, k, name)))
        summary["threads"] = settings.threads
        status, payload = "done", summary
    except BaseException as exc:  # everything goes back to the parent, which decides
        status = "stopped" if cancel.is_set() else "error"
        if isinstance(exc, UserError):
            payload = str(exc)
        elif isinstance(exc, KeyboardInterrupt):
            payload = "interrupted"
        else:  # a bug: the parent shows where
            payload = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    events.put(("written", device_id, [(i, k, name, proofs[i]) for i, k, name in written]))
    if status == "done" and settings.write_perf:  # ais_bench's form writes no perf file
        payload["perf_file"] = os.path.join(output, perf_filename(payload["batch_size"], device_id))
        atomic_write_text(payload["perf_file"], perf_text(payload))
    events.put((status, device_id, payload))


def run_on_devices(model: str, paths: Sequence[str], sizes: Sequence[int], settings: RunSettings,
                   device_ids: Sequence[int], kind, folder, todo: Sequence[int]) -> dict:
    """Run checked inputs on several devices, one worker process each; each result a worker puts
    in place is recorded in `folder` (the run's `resume.ResultFolder`) against input `todo[i]`,
    also when a device fails. Returns the run's figures with a "devices" list and the total."""
    _check_kind(paths, sizes, kind)
    n = len(paths)
    used = list(device_ids[:n])
    if len(used) < len(device_ids):
        log.warning(f"{n} input(s) for {len(device_ids)} devices: devices "
                    f"{', '.join(map(str, device_ids[n:]))} get none and are not opened")
    jobs = []
    for dev, (a, b) in zip(used, shards(n, len(used))):
        jobs.append((dev, list(paths[a:b]), list(sizes[a:b]), folder, list(todo[a:b])))
    return _fan_out(model, settings, kind, jobs, n)


def run_each_device(model: str, settings: RunSettings, kind, jobs: Sequence[Tuple]) -> dict:
    """ais_bench's several devices: each job `(device id, paths, sizes, folder, todo)` runs its
    inputs into its own folder (a `resume.ResultFolder`), input i's results recorded there against
    `todo[i]`. Returns the figures with a "devices" list (in the jobs' order) and the total."""
    for _, paths, sizes, _, _ in jobs:
        _check_kind(paths, sizes, kind)
    return _fan_out(model, settings, kind, jobs, sum(len(j[1]) for j in jobs))


def _check_kind(paths: Sequence[str], sizes: Sequence[int], kind) -> None:
    if kind is None and len(set(sizes)) > 1:
        # Only a loaded .om tells what its input is, and each worker sees only its shard: the
        # one-kind-of-file rule is checked across all the shards here.
        other = next(i for i, size in enumerate(sizes) if size != sizes[0])
        raise UserError(f"{paths[other]}: {sizes[other]} bytes, but {paths[0]} holds {sizes[0]}; one run takes one "
                        "kind of file (preprocess them all with the same --dtype)")


def _fan_out(model: str, settings: RunSettings, kind, jobs: Sequence[Tuple], n: int) -> dict:
    """One worker process per job `(device id, paths, sizes, folder, todo)`, all at once."""
    from .backends import Backend

    used = [j[0] for j in jobs]
    if isinstance(settings.backend, Backend):
        raise UserError(f"{model}: an open backend runs on its one device; pass a backend name for --device-id "
                        f"{','.join(map(str, used))}")
    by_dev = {j[0]: j for j in jobs}
    ctx = multiprocessing.get_context("spawn")
    events = ctx.Queue()
    cancel = ctx.Event()
    cores = cpu_shares(len(used))
    procs: Dict[int, multiprocessing.process.BaseProcess] = {}
    done: Dict[int, dict] = {}
    failed: Dict[int, str] = {}  # in the order the errors arrived
    stopped: Dict[int, str] = {}

    def record(dev: int, entries) -> None:
        _, _, _, folder, todo = by_dev[dev]
        for i, k, name, proof in entries:
            index = todo[i]
            folder.proofs[index] = proof
            folder.record(index, k, name)

    bar = progress_bar(n, f"infer on {len(used)} devices", settings.progress)
    t0 = time.perf_counter()
    try:
        for (dev, paths, sizes, folder, _), share in zip(jobs, cores):
            worker_settings = dataclasses.replace(settings, device_id=dev, progress=False)
            proc = ctx.Process(target=_worker, name=f"mocoinfer-device{dev}",
                               args=(model, list(paths), list(sizes), folder.output, folder.result_dir,
                                     worker_settings, kind, share, os.getpid(), events, cancel))
            proc.start()
            procs[dev] = proc
        _collect(procs, events, cancel, bar, done, failed, stopped, record)
    finally:
        cancel.set()  # a no-op after a clean run; stops the workers on Ctrl-C or an error here
        bar.close()
        for proc in procs.values():
            proc.join(30)
        for proc in procs.values():
            if proc.is_alive():  # wedged in a runtime call: nothing more to wait for
                proc.terminate()
                proc.join(5)
        _drain(events, record)
        for folder in {id(j[3]): j[3] for j in jobs}.values():
            with contextlib.suppress(UserError, OSError):
                folder.flush()
    wall_with_startup = time.perf_counter() - t0
    if failed:
        dev, message = next(iter(failed.items()))
        others = "".join(f"; device {d} failed too: {m.splitlines()[0]}" for d, m in list(failed.items())[1:])
        folders = list({j[3].result_dir: j[3] for j in jobs}.values())
        kept = sum(len(f.done) for f in folders)
        raise UserError(f"device {dev}: {message.rstrip()}{others} (run stopped; {kept} result files "
                        f"kept in {', '.join(f.result_dir for f in folders)})")
    return merge(done, used, n, wall_with_startup)


def merge(done: Dict[int, dict], used: Sequence[int], n: int, wall_with_startup: float) -> dict:
    """The run's figures from each device's: the total is images over the wall time from the
    first read on any device to the last result written on any device."""
    devices = [done[d] for d in used]
    wall = max(s["last_write"] for s in devices) - min(s["first_read"] for s in devices)
    first = devices[0]
    return {"images": n, "batch_size": first["batch_size"], "device_ids": list(used),
            "batches": sum(s["batches"] for s in devices),
            "padded_images": sum(s["padded_images"] for s in devices),
            "result_files": sum(s["result_files"] for s in devices), "wall_seconds": wall,
            "wall_seconds_with_startup": wall_with_startup,
            "e2e": {"throughput_images_per_s": rate(n, wall), "latency_ms": wall * 1000.0},
            "n_outputs": first["n_outputs"], "input_files": first["input_files"], "warmup": first["warmup"],
            "loop": first["loop"], "model_batch_size": first["model_batch_size"],
            "compute_label": first["compute_label"], "perf_files": [s.get("perf_file") for s in devices],
            "devices": devices, "definitions": dict(DEFINITIONS, total_e2e=TOTAL_E2E)}


#: what a several-device run's total e2e counts (summary.json's definitions)
TOTAL_E2E = ("e2e above: images of every device / wall time from the first input read on any device "
             "to the last result written on any device; wall_seconds_with_startup adds process "
             "start, model loads and warm-up; each entry of devices has that device's own figures")


def _drain(events, record) -> None:
    """The "written" reports still queued after the workers stopped (a stop or a failure)."""
    while True:
        try:
            status, dev, payload = events.get(timeout=_POLL)
        except (queue.Empty, OSError, ValueError):
            return
        if status == "written":
            record(dev, payload)


def _collect(procs, events, cancel, bar, done: Dict, failed: Dict, stopped: Dict, record) -> None:
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
        elif status == "written":
            record(dev, payload)
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


def _pure_worker(model: str, device_id: int, cores: List[int], options: dict) -> dict:
    """One device's pure inference, in its own process (host cores pinned as `_worker` does)."""
    from .backends import choose_backend
    from .pure import run_pure_inference

    cls = choose_backend(model, options.get("backend", "auto"))
    if cores and cls.computes_on_host(options.get("providers")):
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cores)
        if not options.get("threads"):
            options = dict(options, threads=len(cores))
    return run_pure_inference(model, device_id=device_id, **options)


def run_pure_each_device(model: str, device_ids: Sequence[int], result_dirs: Sequence[Optional[str]],
                         **options) -> List[dict]:
    """Pure inference on each device at once (ais_bench's `--device 0,1` without `--input`: its
    `multidevice_run` starts `main` on every device), one worker process each; device
    `device_ids[j]` keeps its outputs in `result_dirs[j]` (None: nowhere). `options` are
    `pure.run_pure_inference`'s. Returns each device's summary, in order; the first error stops all."""
    ctx = multiprocessing.get_context("spawn")
    cores = cpu_shares(len(device_ids))
    with ctx.Pool(len(device_ids)) as pool:
        pending = [pool.apply_async(_pure_worker, (model, dev, share, dict(options, result_dir=d)))
                   for dev, share, d in zip(device_ids, cores, result_dirs)]
        return [p.get() for p in pending]

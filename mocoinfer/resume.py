"""The runner's result folder under the output policy: checks before the load, the lock, the manifest, resume.

`ResultFolder` is everything a run needs to write safely and to pick up where an interrupted run
stopped. The folder itself holds result files only; the lock and the manifest live beside it
(`sidecar.py`), so the guide's scripts and ais_bench read it as they read their own.

- `check_paths` (before the model loads): the output folders can be made and written, have room
  for the results, are not an input's folder, and the summary / perf file paths are neither an
  input nor a special file (`atomic.check_output`).
- `locked()`: the result folder's `sidecar.FolderLock`, so a second run into it stops with one
  line naming the first.
- `plan`: reads the manifest and decides what to run under the rerun policy (`reruns.py`,
  docs/reruns.md): a finished run runs again, other settings replace, an interrupted run
  resumes, `--resume` reuses on purpose, `--overwrite` starts over; an input is skipped only
  when the manifest proves its result and its input (`sidecar.still_proven`).
- `record` / `flush` / `finish`: the writer threads report each result file; the manifest is
  rewritten every few seconds, on every way out (errors, Ctrl-C, SIGTERM), and marked complete
  when the run ends, so a killed run leaves a manifest marked incomplete whose finished files are
  still proven for the next run.

The model is identified by its size and the SHA-256 of the whole file, not of its first and last
MB: two exports of the same architecture have the same size and the same graph around different
weights. A full hash costs about 0.2 s for ResNet-50's 100 MB, against seconds to load the model.

Each input's proof comes from the reader's own `fstat` of the file it read (`pipeline.py`,
`decoding.py`): no input is read twice to prove it. Manifests of an older version proved inputs
by their SHA-256; their entries are still honoured, by hashing those inputs once.

The batch size is recorded but is not a resume key: each image's result is the model's output
for that image whatever batch it ran in (padding never reaches a result file).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from . import atomic, reruns, sidecar
from .errors import UserError
from .foldercheck import check_metric_output, check_result_folder
from .formats import RESULT_FORMATS, is_result_name, list_results, natural_key, result_filename
from .progress import log
from .reruns import TOOL
from .temporaries import remove_temporaries

#: seconds between manifest rewrites while a run is on (a killed run loses at most this much)
FLUSH_SECONDS = 10.0
# A txt result of 1,000 float32 values is about 13 kB ('%.9g ' per value); bin and npy 4 kB.
_RESULT_BYTES_ESTIMATE = {"txt": 13_000, "bin": 4_000, "npy": 4_200}

#: what a reader hands the result folder per input: the proof of the file it read (`sidecar.read_proof`)
InputProof = dict


def model_identity(path: str) -> Dict[str, object]:
    """Path, size and SHA-256 of the model file (None for a caller's backend with no file)."""
    if not os.path.isfile(path):
        return {"model": path, "model_size": None, "model_sha256": None}
    try:
        size, digest = atomic.file_digest(path)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the model ({atomic.describe_os_error(exc)})") from None
    return {"model": os.path.abspath(path), "model_size": size, "model_sha256": digest}


def _input_still_proven(path: str, entry: dict) -> bool:
    """The input is still the file the result was made from: by its stat proof, or, for an
    older version's entry, by its size and SHA-256."""
    if "source_proof" in entry:
        return sidecar.still_proven(path, entry["source_proof"])
    try:
        return atomic.file_digest(path) == (entry.get("source_size"), entry.get("source_sha256"))
    except OSError:
        return False


def _settled(path: str, proof, follow: bool):
    """A proof just verified, without its hash once the file is no longer racy (as git refreshes
    a racily clean entry), so the next rerun proves it by stat alone."""
    if isinstance(proof, dict) and "sha256" in proof:
        return sidecar.proof_of(path, follow=follow) or proof
    return proof


class ResultFolder:
    """One run's result folder (inside the output folder) and its manifest beside it."""

    def __init__(self, output: str, result_dir: str, outfmt: str, first_index: int = 1,
                 overwrite: bool = False, resume: bool = False) -> None:
        self.output, self.result_dir, self.outfmt = output, result_dir, outfmt
        self.first_index, self.overwrite, self.resume = first_index, overwrite, resume
        self._old: Optional[dict] = None
        #: folders `check_paths` made (they did not exist): a run refused before any result removes them
        self.created: List[str] = []
        self.lock: Optional[sidecar.FolderLock] = None
        self.doc: Optional[dict] = None
        #: (input index, output index k, result name) appended by the writer threads
        self.done: List[Tuple[int, int, str]] = []
        #: the proof of each input as its reader read it (`sidecar.read_proof`), filled by the reader
        self.proofs: List[Optional[InputProof]] = []
        self._paths: Sequence[str] = ()
        self._names: Sequence[str] = ()
        self._recorded = 0
        self._last_flush = 0.0

    def check_paths(self, paths: Sequence[str], sources: Sequence[str], files: Sequence[str]) -> None:
        """Every output check that needs no model: folders made and writable with room, no input's
        folder, `files` (summary, perf file) not one of `sources` (model, info file) nor a special file."""
        for folder in (self.output, self.result_dir):
            self.created += atomic.make_folder(folder)
        # realpath once per folder, not per input: 50,000 inputs usually live in one folder.
        input_dirs = {os.path.realpath(d) for d in {os.path.dirname(os.path.abspath(p)) for p in paths}}
        if os.path.realpath(self.result_dir) in input_dirs:
            raise UserError(f"{self.result_dir}: result folder is the folder of the inputs; results "
                            "written there would be read as inputs next time: give another --output")
        for f in files:
            atomic.check_output(f, sources, what="output")
        need = len(paths) * _RESULT_BYTES_ESTIMATE.get(self.outfmt, 13_000)
        atomic.check_writable_dir(self.result_dir, need, what="result folder")

    @contextlib.contextmanager
    def locked(self) -> Iterator[sidecar.FolderLock]:
        """The result folder's lock for the run; the previous holder's temporaries are removed."""
        with sidecar.FolderLock(self.result_dir) as lock:
            self.lock = lock
            remove_temporaries(self.result_dir, lock.previous_run_ids())
            try:
                yield lock
            finally:
                self.lock = None

    def remove_created(self) -> None:
        """After a refused or failed run: the folders `check_paths` made, when they are still
        empty (deepest first), and the result folder's bookkeeping when nothing but its lock's
        leftovers is in it. Nothing that holds a file goes."""
        if not self.created:
            return
        if os.path.realpath(self.result_dir) in {os.path.realpath(f) for f in self.created}:
            with contextlib.suppress(OSError, ValueError):
                sidecar.remove_bookkeeping_if_idle(self.result_dir)
        atomic.remove_empty_folders(self.created)

    # Deciding what to run.

    def plan(self, paths: Sequence[str], settings: Dict[str, object],
             names: Optional[Sequence[str]] = None) -> List[int]:
        """Indices of the inputs to run, under the rerun policy (module docstring). Refuses a
        folder holding a result file this tool did not write of a name this run writes, or result
        files of another format no manifest lists. Writes the manifest, marked incomplete, when
        there is something to run. `names[i]` names input i's results (`result_filename`),
        `paths[i]` when not given (streamed images give their key: `a.b.JPEG` writes `a_1.txt`)."""
        self._paths, self._names = paths, paths if names is None else names
        self.proofs = [None] * len(paths)
        old = sidecar.read_manifest(self.result_dir)
        if old is not None and old.get("tool") != TOOL:
            old = None
        failed_list = old.get("failed_list") if old else None  # streaming's failed.txt, whatever else goes
        # A manifest is rewritten every few seconds: an interrupted run's last results may be
        # missing from it, so its unlisted result files count as that run's.
        interrupted = old is not None and old.get("status") != sidecar.COMPLETE
        if old is None and sidecar.has_manifest(self.result_dir):
            # Ours, but unreadable (edited by hand, cut short): it proves nothing, and the
            # results beside it are this tool's as an interrupted run's are.
            interrupted = True
        results, _ = list_results(self.result_dir)
        listed: Dict[str, dict] = dict(old["files"]) if old else {}
        replaced: Dict[str, dict] = dict(old.get("replaced") or {}) if old else {}
        # Before --overwrite deletes anything: a refused run changes nothing.
        reruns.refuse_foreign(results, self._names, self.outfmt, set(listed) | set(replaced), interrupted)
        if self.overwrite:
            removed = self._delete_listed(set(listed) | set(replaced))
            if removed:
                log.info(f"--overwrite: deleted {removed} result files of the earlier run in {self.result_dir}")
            old, listed, replaced = None, {}, {}
            results, _ = list_results(self.result_dir)
        diff = reruns.differences(old.get("settings", {}), settings) if old is not None else []
        finished = old is not None and not interrupted
        files: Dict[str, dict] = {}
        n_outputs = old.get("n_outputs") if old else None
        if old is not None and diff:
            replaced.update(listed)
            if replaced:
                log.info(f"{self.result_dir}: replacing {reruns.describe(replaced, old)} written by an "
                         f"earlier run ({'; '.join(diff)})")
            todo = list(range(len(paths)))
            n_outputs = None
        elif finished and not self.resume:
            # A rerun measures again: every input runs; the earlier results stay listed (and
            # proven) until each is replaced, so a rerun stopped halfway resumes from them.
            files = listed
            replaced.update(listed)
            if listed:
                log.info(f"{self.result_dir}: replacing {reruns.describe(listed, old)} written by an earlier run with "
                         "the same settings (--resume reuses them instead)")
            todo = list(range(len(paths)))
        else:
            files = listed
            todo = self._unproven(paths, files, old)
            if interrupted:
                log.info(f"{self.result_dir}: resuming an interrupted run: {len(paths) - len(todo)} of {len(paths)} "
                         "inputs have proven results, reused (--overwrite starts over)")
        unlisted = [r for r in results if os.path.basename(r.path) not in files]
        if unlisted and interrupted and not diff:
            log.info(f"{self.result_dir}: {len(unlisted)} result files are not listed in a manifest "
                     "(not proven): inputs that write them run again")
        doc = sidecar.new_manifest(TOOL, dict(settings), self.result_dir, self.lock.run_id if self.lock else None)
        doc["files"] = files
        doc["n_outputs"] = n_outputs
        if replaced:
            doc["replaced"] = replaced  # removed by `finish` unless this run writes them again
        if failed_list:
            doc["failed_list"] = failed_list
        self.doc = doc
        self._old = old
        if todo:  # marked incomplete before any result is written; with nothing to run, `finish` writes it once
            self._write()
        return todo

    def _delete_listed(self, listed) -> int:
        removed = 0
        for name in listed:
            path = os.path.join(self.result_dir, name)
            if not is_result_name(name) or os.path.basename(name) != name:
                continue  # a manifest names result files only, in this folder; anything else is not ours
            with contextlib.suppress(FileNotFoundError):
                if os.path.isfile(path) and not os.path.islink(path):
                    os.unlink(path)
                    removed += 1
        return removed

    def _unproven(self, paths: Sequence[str], files: Dict[str, dict], old: Optional[dict]) -> List[int]:
        n_out = old.get("n_outputs") if old else None
        if not files or not isinstance(n_out, int) or n_out < 1:
            return list(range(len(paths)))
        todo = []
        result_filename(self._names[0] if self._names else "x", self.outfmt)  # refuses an unknown format
        suffixes = [f"_{self.first_index + k}.{self.outfmt}" for k in range(n_out)]
        for i, p in enumerate(self._names):
            stem = os.path.splitext(os.path.basename(p))[0]  # result_filename's stem, for 50,000 names at once
            names = [stem + suffix for suffix in suffixes]
            entries = [files.get(n) for n in names]
            if not all(isinstance(e, dict) and reruns.result_still_proven(self.result_dir, n, e)
                       for n, e in zip(names, entries)):
                todo.append(i)
                continue
            # Each result names the input it was made from; all of them must prove the same file.
            first = entries[0]
            if (not all(e.get("source_proof", e.get("source_sha256")) ==
                        first.get("source_proof", first.get("source_sha256")) for e in entries)
                    or not _input_still_proven(paths[i], first)):  # type: ignore[arg-type]
                todo.append(i)
                continue
            self.proofs[i] = _settled(paths[i], first.get("source_proof"), True)  # type: ignore[union-attr]
            for n, e in zip(names, entries):
                if "source_proof" in e:  # type: ignore[operator]
                    e["source_proof"] = self.proofs[i]  # type: ignore[index]
                if "proof" in e:  # type: ignore[operator]
                    e["proof"] = _settled(os.path.join(self.result_dir, n), e["proof"], False)  # type: ignore[index]
        return todo

    # While the run is on.

    def record(self, index: int, k: int, name: str) -> None:
        """Called by a writer thread after result `name` (output k of input `index`) is in place."""
        self.done.append((index, k, name))

    def maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self, n_outputs: Optional[int] = None, complete: bool = False, write: bool = True) -> None:
        """Add the results written since the last flush to the manifest and rewrite it."""
        if self.doc is None:
            return
        if n_outputs:
            self.doc["n_outputs"] = n_outputs
        elif self.done and not self.doc.get("n_outputs"):
            self.doc["n_outputs"] = max(k for _, k, _ in self.done) - self.first_index + 1
        files = self.doc["files"]
        end = len(self.done)
        new = self.done[self._recorded:end]
        self._recorded = end
        now = time.time_ns()
        for index, _k, name in new:
            source = self.proofs[index]
            proof = sidecar.proof_of(os.path.join(self.result_dir, name), now_ns=now, follow=False)
            if source is None or proof is None:
                continue
            files[name] = {"source": os.path.abspath(self._paths[index]), "source_proof": source,
                           "proof": proof, "size": proof["stat"][0]}
        if complete:
            self.doc["status"] = sidecar.COMPLETE
        if write:
            self._write()

    def finish(self, n_outputs: Optional[int] = None) -> None:
        """Record the last results, remove the earlier run's results this run did not write
        again, and mark the folder complete, in one write."""
        if self.doc is not None:
            self.flush(n_outputs, write=False)
            self._remove_replaced()
        self.flush(n_outputs, complete=True)

    def _remove_replaced(self) -> None:
        """Delete the results of the run this one replaces that it did not write again: only
        files the manifest listed and that are still the files written then."""
        doc = self.doc or {}
        replaced = doc.pop("replaced", None) or {}
        files = doc.get("files", {})
        removed, changed = 0, []
        for name, entry in replaced.items():
            if name in files and files[name].get("proof") != entry.get("proof"):
                continue  # written again by this run
            files.pop(name, None)
            path = os.path.join(self.result_dir, name)
            if not is_result_name(name) or os.path.basename(name) != name or not os.path.lexists(path):
                continue
            if reruns.result_still_proven(self.result_dir, name, entry):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed += 1
            else:
                changed.append(name)
        if removed:
            log.info(f"{self.result_dir}: removed {removed} result files of the earlier run that this run does "
                     "not write")
        if changed:
            log.warning(f"{self.result_dir}: left {len(changed)} result files of the earlier run that changed "
                        f"since it wrote them (e.g. {sorted(changed, key=natural_key)[0]}); a metric over the "
                        "folder would count them")

    def stopped(self) -> None:
        """The run stopped (an error, Ctrl-C): record what it wrote, or, when it wrote nothing,
        put the earlier run's manifest back as it was (its results were not touched) or, when
        there was none, remove the manifest."""
        if self.done:
            self.flush()
            return
        if self._old is not None:
            sidecar.write_manifest(self.result_dir, self._old, self.lock.run_id if self.lock else None)
        elif self.doc is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(sidecar.manifest_path(self.result_dir))
        self.doc = None

    def done_inputs(self) -> int:
        """Inputs with at least one result written by this run."""
        return len({i for i, _, _ in self.done})

    def _write(self) -> None:
        self._last_flush = time.monotonic()
        sidecar.write_manifest(self.result_dir, self.doc, self.lock.run_id if self.lock else None)


__all__ = ["RESULT_FORMATS", "ResultFolder", "check_metric_output", "check_result_folder", "model_identity"]

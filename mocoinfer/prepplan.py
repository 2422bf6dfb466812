"""What preprocessing has to do: the inputs of an image folder, one task per image, and which
existing `.bin` files a rerun can prove and keep.

Listing follows the output policy (`atomic.py`): hidden names are skipped with a note, special
files (FIFOs, sockets, devices, broken or looping symlinks) are failures by name and never
opened, and a folder that is or holds the output dir is not an input. Reuse is proven by the
output folder's manifest: the same settings, and per `.bin` the size and SHA-256 of the image it
was made from (never mtimes).
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from . import atomic, formats, imagetree, sidecar
from .errors import UserError
from .transforms import EvalTransform


class Task(NamedTuple):
    index: int
    source: str
    target: str
    # The .bin was this tool's and is being redone: a failure drops it rather than leave a stale one.
    drop_on_failure: bool = False



class Inputs(NamedTuple):
    entries: List[Tuple[str, bool]]  # (name, is_dir) of what the workers get
    failed: List[Tuple[str, str]]  # (name, reason) of special files, never opened
    hidden: List[str]
    skipped_dirs: List[str]  # folders that are or hold the output dir


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def list_images(input_dir: str, output_dir: Optional[str] = None) -> Inputs:
    """Every input of the image dir in natural order, sorted into inputs, failures and skips.

    Flat, or class folders one level deep (`class/file`, natural order of class then file) when
    every visible entry is a folder: the layout rule of `imagetree`. A dir holding both images
    and `.bin` files is refused (`imagetree.check_one_kind`)."""
    if not os.path.exists(input_dir):
        raise UserError(f"{input_dir}: input image dir not found")
    if not os.path.isdir(input_dir):
        raise UserError(f"{input_dir}: not a directory (give the folder that holds the images)")
    names = imagetree.scan(input_dir, "input dir")
    if not names:
        raise UserError(f"{input_dir}: input image dir is empty")
    found = Inputs([], [], [], [])
    # The output dir inside the image dir is no class folder (nor an input).
    outputs = [n for n in names if output_dir is not None and _inside(output_dir, os.path.join(input_dir, n))]
    classes = imagetree.class_folders(input_dir, names, skip=outputs)
    if classes is None:
        for name in names:
            _classify(input_dir, name, output_dir, found)
    else:
        found.skipped_dirs.extend(outputs)
        found.hidden.extend(n for n in names if n.startswith("."))
        for cls in classes:
            why = imagetree.bad_name(cls)
            if why:
                found.failed.append((cls, f"class folder: {why}"))
                continue
            for name in imagetree.scan(os.path.join(input_dir, cls), "class folder"):
                _classify(input_dir, f"{cls}/{name}", output_dir, found)
    imagetree.check_one_kind(input_dir, (name for name, is_dir in found.entries if not is_dir))
    return found


def _classify(input_dir: str, name: str, output_dir: Optional[str], found: Inputs) -> None:
    """Sort one entry (`name` relative to the input dir) into `found`."""
    if os.path.basename(name).startswith("."):
        found.hidden.append(name)
        return
    why = imagetree.bad_name(name)
    if why:
        found.failed.append((name, why))
        return
    path = os.path.join(input_dir, name)
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            reason = "symbolic link loop"
        elif exc.errno == errno.ENOENT:
            reason = f"broken symbolic link (to {os.readlink(path)})" if os.path.islink(path) else "vanished"
        else:
            reason = f"cannot read ({atomic.describe_os_error(exc)})"
        found.failed.append((name, reason))
        return
    kind = atomic.special_kind(st.st_mode)
    if kind == "a folder":
        if output_dir is not None and _inside(output_dir, path):
            found.skipped_dirs.append(name)
        else:
            found.entries.append((name, True))  # its worker reports it as a bad input
    elif kind is not None:
        found.failed.append((name, f"is {kind}, not an image (not opened)"))
    else:
        found.entries.append((name, False))


def plan_tasks(input_dir: str, output_dir: str, entries: Sequence[Tuple[str, bool]]) -> List[Task]:
    """One task per input; an error naming them when two inputs would write the same `.bin`."""
    tasks, owner, clashes = [], {}, []
    for index, (name, is_dir) in enumerate(entries):
        target = formats.bin_name(name)
        # A folder is reported as a bad input by its worker; it never writes, so cannot clash.
        if not is_dir:
            if target in owner:
                clashes.append(f"{owner[target]} and {name} → {target}")
            else:
                owner[target] = name
        tasks.append(Task(index, os.path.join(input_dir, name), os.path.join(output_dir, target)))
    if clashes:
        more = f" (and {len(clashes) - 3} more)" if len(clashes) > 3 else ""
        raise UserError(f"{input_dir}: {len(clashes)} output name clash{'es' if len(clashes) > 1 else ''}, "
                        f"inputs named the same before their first '.': {'; '.join(clashes[:3])}{more}; "
                        "rename or move them, nothing was written")
    return tasks


def prepare_output_dir(input_dir: str, output_dir: str) -> None:
    """Create the output dir if needed; refuse the input dir itself, a file, a read-only place."""
    if os.path.lexists(output_dir) and not os.path.isdir(output_dir):
        raise UserError(f"{output_dir}: output dir exists and is not a directory")
    if os.path.isdir(output_dir) and os.path.isdir(input_dir) and atomic.same_file(input_dir, output_dir):
        raise UserError(f"{output_dir}: output dir is the input dir; give another folder")
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{output_dir}: cannot create output dir ({atomic.describe_os_error(exc)})") from None
    atomic.check_writable_dir(output_dir, what="output dir")


def existing_bins(output_dir: str) -> Dict[str, int]:
    """{name: size} of the regular `.bin` files already in the output dir."""
    found = {}
    with os.scandir(output_dir) as it:
        for entry in it:
            if entry.name.endswith(formats.BIN_SUFFIX) and not entry.name.startswith("."):
                with contextlib.suppress(OSError):
                    if entry.is_file(follow_symlinks=False):
                        found[entry.name] = entry.stat(follow_symlinks=False).st_size
    return found


def settings_of(transform: EvalTransform, dtype: str = formats.DEFAULT_BIN_DTYPE) -> Dict[str, object]:
    """What the manifest records as the settings that make a `.bin` (compared as a whole)."""
    return {"interpolation": transform.interpolation, "resize": transform.resize, "crop": transform.crop,
            "dtype": dtype}


def _describe_settings(settings: Dict[str, object]) -> str:
    return ", ".join(f"{k} {v}" for k, v in settings.items())


def plan_reuse(tasks: Sequence[Task], manifest: Optional[dict], settings: Dict[str, object],
               existing: Dict[str, int], expected_size: int, overwrite: bool,
               output_dir: str, workers: int = 1) -> Tuple[List[Task], List[Task], Dict[str, dict]]:
    """(todo, reused, manifest records of the reused) — every reused `.bin` proven.

    Proof: the manifest has the same settings, a record for the `.bin` of the expected size, and
    the `.bin` and its image are still the files recorded (`sidecar.still_proven`: their stat
    data, as git). A record of an older version holds the image's SHA-256: those images are hashed.
    """
    recorded = manifest.get("files", {}) if manifest else {}
    ours = manifest is not None and manifest.get("settings") == settings
    present = [t for t in tasks if os.path.basename(t.target) in existing]
    if not overwrite and present and not ours:
        names = ", ".join(os.path.basename(t.target) for t in present[:3])
        if manifest is None:
            why = ("no manifest records how they were made (made by another tool, an older version, "
                   "or by hand)")
        else:
            why = (f"they were made with other settings ({_describe_settings(manifest.get('settings', {}))}; "
                   f"now {_describe_settings(settings)})")
        raise UserError(f"{output_dir}: {len(present)} .bin file(s) already exist for these images (e.g. {names}) "
                        f"and cannot be reused: {why}; pass --overwrite to redo them, or give a new output dir")
    candidates = {}
    for task in tasks:
        name = os.path.basename(task.target)
        rec = recorded.get(name) if (ours and not overwrite) else None
        if (isinstance(rec, dict) and existing.get(name) == expected_size and rec.get("size") == expected_size
                and rec.get("source") == os.path.basename(task.source)):
            candidates[task.index] = rec
    legacy = [t.source for t in tasks if t.index in candidates and "source_proof" not in candidates[t.index]]
    digests = _digests(legacy, workers)
    todo, reused, records = [], [], {}
    for task in tasks:
        name = os.path.basename(task.target)
        rec = candidates.get(task.index)
        if rec is not None and _still_proven(task, rec, digests):
            reused.append(task)
            records[name] = rec
            continue
        # A .bin this tool wrote before, or one --overwrite replaces, must not outlive a failure.
        todo.append(task._replace(drop_on_failure=name in existing and (overwrite or ours)))
    return todo, reused, records


def _still_proven(task: Task, rec: dict, digests: Dict[str, Tuple[int, str]]) -> bool:
    if "source_proof" in rec:
        return (sidecar.still_proven(task.target, rec.get("proof"), follow=False)
                and sidecar.still_proven(task.source, rec["source_proof"]))
    return digests.get(task.source) == (rec.get("source_size"), rec.get("source_sha256"))


def _digests(paths: List[str], workers: int) -> Dict[str, Tuple[int, str]]:
    """{path: (size, sha256)} of the images a rerun would reuse; unreadable ones are left out.

    hashlib releases the GIL on large buffers, so threads hash on every core (a 50,000-image
    folder is ~6 GB to hash).
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(path: str):
        try:
            return path, atomic.file_digest(path)
        except OSError:
            return path, None

    if not paths:
        return {}
    with ThreadPoolExecutor(max(1, min(workers, len(paths)))) as pool:
        return {path: d for path, d in pool.map(one, paths, chunksize=64) if d is not None}

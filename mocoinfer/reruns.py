"""The rerun policy of an inference run: what a result folder's earlier results mean for the next run.

The guide's tools (the benchmark binary, ais_bench) simply run again when a command is repeated,
and so does this runner (`resume.ResultFolder.plan` applies the policy; docs/reruns.md is the
user's view):

- a FINISHED run with the same model and settings (`RESUME_KEYS`) runs again and measures
  again; each result is written to a temporary and renamed over the earlier one;
- results of another model or settings (`differences`; another format: their names differ) are
  replaced: this run writes its own, and the earlier run's files this run does not write again
  are removed at the end, only those the manifest lists and that are unchanged since; one line
  says what is replaced (`describe`);
- an INTERRUPTED run (manifest incomplete) with the same settings resumes by itself, and
  `--resume` reuses a finished run's results on purpose: an input is skipped only when the
  manifest proves its result: every one of its result files is listed and is still the file
  recorded, and the input is still the file it was made from (`sidecar.still_proven`: stat
  data, as git, and a hash only for the few files recorded while racy);
- `--overwrite` deletes every file the manifest lists first and runs everything;
- a result file no manifest of this tool lists is never replaced (`refuse_foreign`): a run that
  would write its name, or that writes another format beside it, stops with one line naming it.
  The one exception is an interrupted run's folder: its manifest is rewritten every few seconds,
  so the results written after the last rewrite are unlisted, and they are that run's.
"""

from __future__ import annotations

import os
from typing import Collection, Dict, List, Optional, Sequence

from . import atomic, sidecar
from .errors import UserError

#: the tool a result folder's manifest names when this runner wrote it
TOOL = "run_om_infer.py"
#: the settings a result depends on: another value for any of them means other results.
RESUME_KEYS = ("model_sha256", "model_size", "backend", "outfmt", "first_index")
#: and for streamed images (stream.py), the transform that makes each crop from its image
STREAM_KEYS = ("interpolation", "resize", "crop")


def _inputs(settings: dict) -> str:
    return "images" if "interpolation" in settings else ".bin files"


def differences(old: dict, new: dict) -> List[str]:
    """What differs between the settings an earlier run recorded and this run's, in words."""
    if _inputs(old) != _inputs(new):  # results of another kind of input: its settings compare to nothing
        return [f"inputs {_inputs(old)} → {_inputs(new)}"]
    out = []
    for key in RESUME_KEYS + STREAM_KEYS:
        if old.get(key) != new.get(key):
            a, b = old.get(key), new.get(key)
            if key == "model_sha256":
                a, b = str(a)[:12], str(b)[:12]
            if key == "first_index":  # _1 names (benchmark, own form) or _0 (ais_bench's form)
                out.append(f"result names _{a} → _{b} (the benchmark's and ais_bench's forms)")
                continue
            out.append(f"{key} {a} → {b}")
    return out


def describe(files: Dict[str, dict], old: dict) -> str:
    """"50 result files of moco-v2-bs1.onnx (bs 1, txt)": what an earlier run left, for one line."""
    st = old.get("settings", {})
    model = os.path.basename(str(st.get("model") or "?"))
    bits = [f"bs {st['batch_size']}" if st.get("batch_size") else "", str(st.get("outfmt") or ""),
            "streamed images" if "interpolation" in st else ""]
    what = f" ({', '.join(b for b in bits if b)})" if any(bits) else ""
    return f"{len(files)} result files of {model}{what}"


def refuse_foreign(results, names: Sequence[str], outfmt: str, ours: Collection[str], interrupted: bool) -> None:
    """One line naming a result file (`formats.list_results`' entries) this tool did not write
    (no manifest of ours lists it) that this run, writing the results of `names` as `outfmt`,
    would replace, or that is of another format (a metric over the folder would mix them)."""
    stems = {os.path.splitext(os.path.basename(n))[0] for n in names}
    for r in results:
        name = os.path.basename(r.path)
        if name in ours:
            continue
        if r.fmt != outfmt:
            raise UserError(f"{r.path}: a result file of another format that this tool did not write (no "
                            f"manifest lists it) and this run writes .{outfmt}: move it away or give "
                            "another --output")
        if not interrupted and name[:name.rfind("_")] in stems:
            raise UserError(f"{r.path}: already there and not written by this tool (no manifest lists it); "
                            "this run would replace it: move it away or give another --output")


def result_still_proven(folder: str, name: str, entry: dict) -> bool:
    """The result file is still the one this tool wrote: by its stat proof (an older version's
    entry: a regular file of the recorded size)."""
    path = os.path.join(folder, name)
    if "proof" in entry:
        return sidecar.still_proven(path, entry["proof"], follow=False)
    return _result_size(folder, name) == entry.get("size")


def _result_size(folder: str, name: str) -> Optional[int]:
    try:
        st = os.lstat(os.path.join(folder, name))
    except OSError:
        return None
    return st.st_size if atomic.special_kind(st.st_mode) is None else None

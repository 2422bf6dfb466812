"""What an Ascend host says about itself: `npu-smi info` parsed into devices, pyACL and ais_bench
probed in child processes, and CANN's version from its install files.

The environment check (`envcheck.py`) turns these facts into rows. Nothing here raises for a
broken host: a hanging or crashing `npu-smi`, garbage output, or an `import acl` that fails,
crashes or hangs all come back as values the check can report.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

NPU_SMI_TIMEOUT = 15.0
ACL_TIMEOUT = 60.0
# After the time limit a child gets SIGTERM, then SIGKILL this much later (as `timeout -k` in
# scripts/env.sh): a driver tool that ignores TERM must not hang the check.
KILL_GRACE = 2.0


def run_bounded(cmd: Sequence[str], timeout: float, grace: float = KILL_GRACE, **kwargs):
    """subprocess.run(cmd, capture_output=True, text=True) that cannot outlive `timeout` by more
    than `grace`: the child runs in its own process group (session), which gets SIGTERM at the
    limit and SIGKILL `grace` seconds later, so neither the child nor anything it started (a
    wrapper script's `sleep`) is left behind. Raises subprocess.TimeoutExpired after the kill."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                          start_new_session=True, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:  # the whole group is gone already
                    break
                try:
                    proc.wait(timeout=wait)
                    if sig == signal.SIGTERM:
                        # The leader obeyed; anything it left in its group is stopped too.
                        os.killpg(proc.pid, signal.SIGKILL)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except ProcessLookupError:
                    break
            raise
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# npu-smi

_PAIR = re.compile(r"(\d+)\s*/\s*(\d+)")


def _cells(line: str) -> Optional[List[str]]:
    """The cells of a table row `| a | b | c |`, or None for a border or any other line."""
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|")) or len(line) < 2:
        return None
    return [c.strip() for c in line[1:-1].split("|")]


def parse_npu_smi(text: str) -> List[Dict]:
    """The NPU devices in `npu-smi info`'s output, in table order.

    Each device block is two rows: `NPU Name | Health | ...` (the NPU column is the *card* id,
    not a device id) and `Chip Device | Bus-Id | AICore Memory-Usage ...`. The second row's
    Device column is the logical id that `acl.rt.set_device` takes; a 4-chip card repeats its
    card id on four blocks with devices 0-3. 910B hosts print no Device column: there the device
    id is the chip's position in the table (0, 1, ...), which is how the runtime numbers them
    when every card holds one chip; `device_id_from` says which rule gave the id. Rows of the
    process table that may follow (`NPU Chip | Process id | ...`) are not devices. Output in
    any other shape gives an empty list.
    """
    devices: List[Dict] = []
    in_table = False
    pending: Optional[Dict] = None
    for line in text.splitlines():
        cells = _cells(line)
        if not cells or len(cells) < 2:
            continue
        head = cells[0].split()
        if head[:2] == ["NPU", "Name"]:
            in_table = True
            continue
        if head[:2] == ["NPU", "Chip"]:  # the process table: no devices below it
            in_table = False
            pending = None
            continue
        if not in_table or not head or not head[0].isdigit():
            continue
        if pending is None or not head[-1].isdigit():
            # First row of a block: card id and chip name (which may be all digits: `310`).
            if len(head) == 2:
                pending = {"card": int(head[0]), "chip": head[1], "health": cells[1]}
            continue
        if len(head) > 2 or not all(t.isdigit() for t in head):
            pending = None
            continue
        dev = dict(pending)
        pending = None
        dev["chip_index"] = int(head[0])
        if len(head) == 2:
            dev["device_id"], dev["device_id_from"] = int(head[1]), "Device column"
        else:
            dev["device_id"], dev["device_id_from"] = len(devices), "position (no Device column)"
        dev["bus_id"] = cells[1]
        pairs = _PAIR.findall(cells[2]) if len(cells) > 2 else []
        dev["memory_used_mb"], dev["memory_total_mb"] = (int(pairs[0][0]), int(pairs[0][1])) if pairs else (None, None)
        if len(pairs) > 1:  # 910B: HBM-Usage after Memory-Usage; HBM is where models run
            dev["hbm_used_mb"], dev["hbm_total_mb"] = int(pairs[1][0]), int(pairs[1][1])
        devices.append(dev)
    return devices


def npu_smi_version(text: str) -> Optional[str]:
    """The driver version in the header line `| npu-smi 23.0.0   Version: 23.0.0 |`, if printed."""
    m = re.search(r"npu-smi\s+(\S+)\s+Version:\s*(\S+)", text)
    return m.group(2) if m else None


def run_npu_smi(timeout: float = NPU_SMI_TIMEOUT):
    """(stdout or None, why not) of `npu-smi info`; never raises."""
    exe = shutil.which("npu-smi")
    if not exe:
        return None, "npu-smi not on PATH (no Ascend driver here, or its bin folder is not on PATH)"
    try:
        proc = run_bounded([exe, "info"], timeout)
    except subprocess.TimeoutExpired:
        return None, f"{exe} info did not answer within {timeout:g} s (driver busy or wedged)"
    except OSError as exc:
        return None, f"{exe} info could not start: {exc}"
    if proc.returncode != 0:
        why = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        return None, f"{exe} info exited with status {proc.returncode}" + (f": {why[-1]}" if why else "")
    return proc.stdout, ""


# pyACL, in a child process

def acl_probe(device_ids: Sequence[int]) -> Dict:
    """In the child: import acl, init, then set_device / reset_device each id; print nothing.
    Returns what happened as plain data (codes, not exceptions)."""
    out: Dict = {"import_error": None, "init": None, "version": None, "devices": {}}
    try:
        import acl
    except Exception as exc:  # ImportError, or a broken CANN library raising OSError and the like
        out["import_error"] = f"{type(exc).__name__}: {exc}"
        return out
    out["file"] = getattr(acl, "__file__", None)
    # acl.get_version is not in every pyACL (unconfirmed where it appears); try it, never rely on it.
    get_version = getattr(acl, "get_version", None)
    if callable(get_version):
        try:
            v = get_version()
            if isinstance(v, tuple) and len(v) == 4 and v[3] == 0:
                out["version"] = ".".join(str(x) for x in v[:3])
        except Exception:
            pass
    try:
        ret = acl.init()
    except Exception as exc:
        ret = f"{type(exc).__name__}: {exc}"
    out["init"] = ret
    if ret not in (0, 100002):  # 100002: already initialised, harmless
        return out
    for dev in device_ids:
        try:
            code = acl.rt.set_device(dev)
        except Exception as exc:
            out["devices"][str(dev)] = f"{type(exc).__name__}: {exc}"
            continue
        out["devices"][str(dev)] = code
        if code == 0:
            acl.rt.reset_device(dev)
    acl.finalize()
    return out


def _acl_child_main() -> None:
    ids = [int(x) for x in sys.argv[1:]]
    print("ACL_PROBE " + json.dumps(acl_probe(ids)))


def run_acl_probe(device_ids: Sequence[int], python: str = sys.executable, timeout: float = ACL_TIMEOUT) -> Dict:
    """acl_probe in a child Python (the one that will run step 5), so a crash or a hang in the
    driver becomes an answer here; never raises."""
    return _run_child_probe("_acl_child_main", [str(d) for d in device_ids], "ACL_PROBE",
                            "import acl / set_device", "the pyACL check", python, timeout)


def _run_child_probe(entry: str, args: Sequence[str], marker: str, doing: str, what: str, python: str,
                     timeout: float) -> Dict:
    """Run `mocoinfer.ascendhost.<entry>` in a child `python` with this package on its path and
    read back the JSON it prints after `marker`; a timeout, a failed start or a crash becomes
    {"error": ...} naming `doing` / `what`."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [python, "-c", f"from mocoinfer.ascendhost import {entry}; {entry}()", *args]
    try:
        proc = run_bounded(cmd, timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"{doing} did not finish within {timeout:g} s"}
    except OSError as exc:
        return {"error": f"could not start {python}: {exc}"}
    for line in proc.stdout.splitlines():
        if line.startswith(marker + " "):
            try:
                return json.loads(line[len(marker) + 1:])
            except ValueError:
                break
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"{what} exited with status {proc.returncode}: {tail}"}


# ais_bench, in a child process

def ais_bench_probe() -> Dict:
    """In the child: import ais_bench's InferSession (which loads aclruntime and CANN's libraries)
    and read the versions of both wheels from their package metadata (neither package has a
    `__version__`; ait's setup.py files set them). Returns plain data; prints nothing."""
    out: Dict = {"import_error": None, "file": None, "version": None, "aclruntime": None}
    try:
        from ais_bench.infer import interface
    except Exception as exc:  # ImportError, or a CANN library that will not load
        out["import_error"] = f"{type(exc).__name__}: {exc}"
        return out
    out["file"] = getattr(interface, "__file__", None)
    try:
        from importlib import metadata
    except ImportError:
        return out
    for key, dist in (("version", "ais_bench"), ("aclruntime", "aclruntime")):
        with contextlib.suppress(Exception):  # no metadata: the version stays unknown
            out[key] = metadata.version(dist)
    return out


def _ais_bench_child_main() -> None:
    print("AIS_BENCH_PROBE " + json.dumps(ais_bench_probe()))


def run_ais_bench_probe(python: str = sys.executable, timeout: float = ACL_TIMEOUT) -> Dict:
    """ais_bench_probe in a child Python (the one that will run step 5), so a library that
    crashes or hangs on import becomes an answer here; never raises."""
    return _run_child_probe("_ais_bench_child_main", [], "AIS_BENCH_PROBE", "import ais_bench",
                            "the ais_bench check", python, timeout)


# CANN files

def _install_info_version(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key.strip().lower() == "version" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return None


def cann_version(roots: Sequence[str]):
    """(version, file) of the CANN toolkit under any of `roots`, or (None, None).

    CANN records its version as `version=...` in `<toolkit>/latest/<arch>-linux/
    ascend_toolkit_install.info` (CANN up to 8.x under ascend-toolkit/; 8.5 moves it to
    `Ascend/cann/<arch>-linux/`), per Huawei's installation guide. `version.info` files with a
    `Version=` line are read as a fallback; their location is unconfirmed.
    """
    patterns = ("*-linux/ascend_toolkit_install.info", "latest/*-linux/ascend_toolkit_install.info",
                "version.info", "latest/version.info", "*/version.info")
    for root in roots:
        for pattern in patterns:
            for path in sorted(glob.glob(os.path.join(root, pattern))):
                version = _install_info_version(path)
                if version:
                    return version, path
    return None, None


def cann_roots(set_env: str, atc: Optional[str]) -> List[str]:
    roots = [os.environ.get(v, "") for v in ("ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME")]
    if set_env:
        roots.append(os.path.dirname(set_env))
    if atc:  # <toolkit>/<version>/compiler/bin/atc or <toolkit>/<version>/atc/bin/atc
        d = os.path.dirname(os.path.realpath(atc))
        for _ in range(4):
            d = os.path.dirname(d)
            roots.append(d)
    seen: List[str] = []
    for r in roots:
        if r and os.path.isdir(r) and r not in seen:
            seen.append(r)
    return seen

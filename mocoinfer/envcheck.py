"""Is this host ready? One row per thing the pipeline needs, before any step fails deep inside.

`scripts/0_check_env.sh` (and `python -m mocoinfer.envcheck`) lists, each as ok / warning /
missing with the steps it affects: the Python version, each package and its version, CANN
(set_env.sh, its version, `atc`, `import acl`), ais_bench's InferSession and its version (optional:
the second NPU runtime), the NPUs `npu-smi info` shows and whether
`acl.rt.set_device` opens each, `CHIP_NAME` against the chips found, free disk in `WORK_DIR` for
50,000 preprocessed images, and the usable CPU cores.

Two paths can run the pipeline: the CPU path (step 1 and steps 3-6 on ONNX Runtime or PyTorch)
and the NPU path (steps 2-6 with atc and pyACL). The exit status is 0 when either can run;
`--npu` makes every missing NPU piece an error. `--json` prints the same rows as JSON with a
`devices` list. Nothing here raises for a broken host: a hanging or crashing `npu-smi`, garbage
output, or an `import acl` that fails or crashes all become rows. `import acl` and
`set_device` run in a child process with a time limit, so a wedged driver cannot hang the check.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence

from .ascendhost import (  # noqa: F401 (tests and callers reach them through this module too)
    ACL_TIMEOUT,
    NPU_SMI_TIMEOUT,
    acl_probe,
    cann_roots,
    cann_version,
    npu_smi_version,
    parse_npu_smi,
    run_acl_probe,
    run_ais_bench_probe,
    run_npu_smi,
)
from .sizes import human_size

OK, WARNING, MISSING = "ok", "warning", "missing"

MIN_PYTHON = (3, 8)
DATASET_IMAGES = 50000
FLOAT32_IMAGE_BYTES = 3 * 224 * 224 * 4  # what step 3 writes today: 602,112 bytes per image
UINT8_IMAGE_BYTES = 3 * 224 * 224  # 150,528 bytes per image, if images are kept as uint8
# One result per image: 1000 values, '%.9g ' in txt is at most 16 bytes each (sign, 9 digits,
# point, exponent, space); bin is 4 bytes each. Sized for txt, the largest.
RESULT_BYTES = 1000 * 16
MODEL_BYTES = 300 * 1024 * 1024  # the .onnx (~100 MB) and .om files of a few batch sizes

# Package (import name, distribution name, lower bound from requirements.txt, steps, path).
# path: "both" = needed by steps 3-6 whichever runtime runs them; "cpu" = only the CPU path;
# "optional" = a convenience (its absence never stops a step).
PACKAGES = (
    ("numpy", "numpy", "1.20", "steps 1, 3-6", "both"),
    ("PIL", "pillow", "9.1", "steps 3-4 (image decoding)", "both"),
    ("tqdm", "tqdm", "4.60", "steps 3-6 (progress bars)", "both"),
    ("torch", "torch", "1.13", "step 1 (export); step 5 on a checkpoint (reference run)", "cpu"),
    ("torchvision", "torchvision", "0.14", "step 1 (the ResNet-50 definition)", "cpu"),
    ("onnx", "onnx", "1.12", "step 1 (export check); step 5 on an .onnx model", "cpu"),
    ("onnxruntime", "onnxruntime", "1.14", "step 1 (export check); step 5 on an .onnx model", "cpu"),
    ("matplotlib", "matplotlib", "3.5", "step 7's plot only (the table is written without it)", "optional"),
)


class Row(NamedTuple):
    item: str
    status: str  # ok / warning / missing
    detail: str
    affects: str  # the steps that need it, in the README's numbering
    path: str  # "cpu", "npu", "both" or "info": which path a missing row blocks


def _version_tuple(v: str):
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def check_packages() -> List[Row]:
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8: the Python row already says so
        metadata = None
    rows = []
    for module, dist, minimum, steps, path in PACKAGES:
        try:
            imported = __import__(module)
        except Exception as exc:  # a broken install raises more than ImportError
            status = WARNING if path == "optional" else MISSING
            why = "not installed" if isinstance(exc, ModuleNotFoundError) else f"import failed: {exc}"
            rows.append(Row(dist, status, f"{why} (pip install '{dist}>={minimum}')", steps, path))
            continue
        version = getattr(imported, "__version__", None)
        if not version and metadata is not None:
            try:
                version = metadata.version(dist)
            except Exception:
                version = None
        if version and _version_tuple(version) < _version_tuple(minimum):
            rows.append(Row(dist, WARNING, f"{version}, older than the {minimum} the code needs", steps, path))
        else:
            rows.append(Row(dist, OK, version or "installed (version unknown)", steps, path))
    return rows


def check_ais_bench(python: str = sys.executable, timeout: float = ACL_TIMEOUT) -> Row:
    """ais_bench's InferSession, the second NPU runtime (`--backend aisbench`): importable, and
    its version. Optional: its absence is a warning that stops no step."""
    affects = "step 5 with --backend aisbench (the cross-check, docs/cross-check.md)"
    probe = run_ais_bench_probe(python, timeout)
    why = probe.get("error") or probe.get("import_error")
    if why:
        return Row("ais_bench", WARNING, f"{why} (install the ait benchmark component's aclruntime and ais_bench "
                   "wheels; see docs/cross-check.md)", affects, "info")
    version = probe.get("version") or "version unknown"
    if probe.get("aclruntime"):
        version += f", aclruntime {probe['aclruntime']}"
    return Row("ais_bench", OK, f"{version} ({probe.get('file') or 'ais_bench.infer.interface'})", affects, "info")


def check_disk(work_dir: str, image_dtype: str = "float32") -> Row:
    """Free space where WORK_DIR is (or would be created) against a full ImageNet val run with
    preprocessed images stored as `image_dtype` (step 3 writes float32)."""
    probe = os.path.abspath(work_dir)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    need32 = DATASET_IMAGES * (FLOAT32_IMAGE_BYTES + RESULT_BYTES) + MODEL_BYTES
    need8 = DATASET_IMAGES * (UINT8_IMAGE_BYTES + RESULT_BYTES) + MODEL_BYTES
    affects = "steps 3 and 5 (preprocessed images and results)"
    try:
        free = shutil.disk_usage(probe).free
    except OSError as exc:
        return Row("disk", WARNING, f"{work_dir}: cannot read free space ({exc})", affects, "info")
    # human_size: a nearly full disk reads "412.0 kB free", never "0.0 GB free".
    detail = (f"{human_size(free)} free at {probe}; {DATASET_IMAGES:,} images need {human_size(need32)} as "
              f"float32 ({FLOAT32_IMAGE_BYTES:,} B each) or {human_size(need8)} as uint8 "
              f"({UINT8_IMAGE_BYTES:,} B each), results and models included")
    need = need8 if image_dtype == "uint8" else need32
    return Row("disk", OK if free >= need else WARNING, detail, affects, "info")


def check_cpus() -> Row:
    from .progress import usable_cpus

    usable, total = usable_cpus(), os.cpu_count() or 0
    detail = f"{usable} usable" + (f" of {total}" if total and total != usable else "")
    return Row("CPU cores", OK, detail, "steps 3 and 6 (worker processes), step 5 on CPU", "info")


def check_chip_name(chip_name: str, chips: Sequence[str]) -> Row:
    affects = "step 2 (atc --soc_version=Ascend<chip>)"
    found = sorted(set(chips))
    if not chip_name:
        if found:
            return Row("CHIP_NAME", MISSING, f"not set; npu-smi shows {', '.join(found)}: set CHIP_NAME={found[0]}",
                       affects, "npu")
        return Row("CHIP_NAME", MISSING, "not set and no NPU found to read it from (set CHIP_NAME=310P3 or the like)",
                   affects, "npu")
    if not found:
        return Row("CHIP_NAME", WARNING, f"{chip_name} (--soc_version=Ascend{chip_name}); no NPU here to check it "
                   "against: the .om will only load on that chip", affects, "npu")
    if chip_name in found:
        return Row("CHIP_NAME", OK, f"{chip_name} (--soc_version=Ascend{chip_name}), matches npu-smi", affects, "npu")
    return Row("CHIP_NAME", WARNING, f"{chip_name}, but npu-smi shows {', '.join(found)}: an .om built for "
               f"Ascend{chip_name} will not load on this host's NPUs", affects, "npu")


def _device_row(dev: Dict, probe: Dict, wanted: int) -> Row:
    dev_id = dev["device_id"]
    name = f"device {dev_id}"
    parts = [f"card {dev['card']}, chip {dev['chip']}", f"health {dev['health']}"]
    if dev["device_id_from"] != "Device column":
        parts.append("device id from its position (npu-smi prints no Device column)")
    if dev.get("hbm_total_mb"):
        parts.append(f"HBM {dev['hbm_used_mb']} / {dev['hbm_total_mb']} MB in use")
    elif dev.get("memory_total_mb"):
        parts.append(f"memory {dev['memory_used_mb']} / {dev['memory_total_mb']} MB in use")
    status = OK if dev["health"].upper() == "OK" else WARNING
    opened = probe.get("devices", {}).get(str(dev_id)) if "error" not in probe else None
    if probe.get("error") or probe.get("import_error") or (probe.get("init") not in (0, 100002)):
        parts.append("set_device not tried (pyACL unavailable)")
        status = WARNING
    elif opened == 0:
        parts.append("acl.rt.set_device ok")
    else:
        parts.append(f"acl.rt.set_device failed ({opened})")
        status = MISSING if dev_id == wanted else WARNING
    affects = f"step 5 on the NPU with DEVICE_ID={dev_id}"
    return Row(name, status, "; ".join(parts), affects, "npu" if dev_id == wanted else "info")


def collect(chip_name: str = "", work_dir: str = "work", set_env: str = "", device_id: int = 0,
            image_dtype: str = "float32", python: str = sys.executable, npu_smi_timeout: float = NPU_SMI_TIMEOUT,
            acl_timeout: float = ACL_TIMEOUT) -> Dict:
    """Every check, as {"rows": [...], "devices": [...], "cpu_path": ..., "npu_path": ...}."""
    rows: List[Row] = []
    py = sys.version_info
    py_ok = py[:2] >= MIN_PYTHON
    rows.append(Row("Python", OK if py_ok else MISSING,
                    f"{py[0]}.{py[1]}.{py[2]} at {sys.executable}" + ("" if py_ok else "; 3.8 or newer is needed"),
                    "every step", "both"))
    rows.extend(check_packages())

    sourced = bool(os.environ.get("ASCEND_HOME_PATH") or os.environ.get("ASCEND_TOOLKIT_HOME"))
    if set_env and os.path.isfile(set_env):
        rows.append(Row("CANN set_env.sh", OK, set_env + (" (sourced)" if sourced else ""), "steps 2 and 5 on the NPU",
                        "npu"))
    elif sourced:
        rows.append(Row("CANN set_env.sh", OK, f"{set_env or 'CANN_SET_ENV'} not found, but a CANN environment is "
                        "already set (ASCEND_HOME_PATH)", "steps 2 and 5 on the NPU", "npu"))
    else:
        rows.append(Row("CANN set_env.sh", MISSING, f"{set_env or '(CANN_SET_ENV unset)'} not found: install CANN "
                        "or set CANN_SET_ENV to its set_env.sh", "steps 2 and 5 on the NPU", "npu"))

    atc = shutil.which("atc")
    version, version_file = cann_version(cann_roots(set_env, atc))
    if version:
        rows.append(Row("CANN version", OK, f"{version} ({version_file})", "steps 2 and 5 on the NPU", "info"))
    else:
        rows.append(Row("CANN version", MISSING, "no ascend_toolkit_install.info found", "steps 2 and 5 on the NPU",
                        "info"))
    if atc:
        # atc has no version flag we could confirm; its toolkit's install.info is the version.
        rows.append(Row("atc", OK, atc + (f" (CANN {version})" if version else ""), "step 2", "npu"))
    else:
        rows.append(Row("atc", MISSING, "not on PATH (CANN's set_env.sh puts it there)", "step 2", "npu"))

    text, why = run_npu_smi(npu_smi_timeout)
    devices = parse_npu_smi(text) if text is not None else []
    if text is None:
        rows.append(Row("npu-smi", MISSING, why, "steps 2 and 5 on the NPU", "npu"))
    elif not devices:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "nothing")
        rows.append(Row("npu-smi", MISSING, f"`npu-smi info` printed no device table (first line: {first[:80]!r})",
                        "steps 2 and 5 on the NPU", "npu"))
    else:
        cards = sorted({d["card"] for d in devices})
        driver = npu_smi_version(text)
        rows.append(Row("npu-smi", OK, f"{len(devices)} device(s) on {len(cards)} card(s)"
                        + (f", driver {driver}" if driver else ""), "steps 2 and 5 on the NPU", "npu"))

    ids = [d["device_id"] for d in devices] or [device_id]
    probe = run_acl_probe(ids, python, acl_timeout)
    affects_acl = "steps 5-7 on the NPU (.om models)"
    if probe.get("error"):
        rows.append(Row("pyACL (import acl)", MISSING, probe["error"], affects_acl, "npu"))
    elif probe.get("import_error"):
        rows.append(Row("pyACL (import acl)", MISSING, f"{probe['import_error']} (source CANN's set_env.sh first)",
                        affects_acl, "npu"))
    elif probe.get("init") not in (0, 100002):
        rows.append(Row("pyACL (import acl)", MISSING, f"acl.init() returned {probe.get('init')}", affects_acl, "npu"))
    else:
        where = probe.get("file") or "acl"
        if probe.get("version"):
            where += f", version {probe['version']}"
        rows.append(Row("pyACL (import acl)", OK, where, affects_acl, "npu"))

    rows.append(check_ais_bench(python, acl_timeout))

    for dev in devices:
        rows.append(_device_row(dev, probe, device_id))
    if devices and device_id not in ids:
        rows.append(Row("DEVICE_ID", MISSING, f"{device_id} is not among the devices npu-smi lists "
                        f"({', '.join(str(i) for i in ids)})", "step 5 on the NPU", "npu"))
    elif not devices and probe.get("devices"):
        opened = probe["devices"].get(str(device_id))
        rows.append(Row(f"device {device_id}", OK if opened == 0 else MISSING,
                        f"not listed by npu-smi; acl.rt.set_device {'ok' if opened == 0 else f'failed ({opened})'}",
                        f"step 5 on the NPU with DEVICE_ID={device_id}", "npu"))

    rows.append(check_chip_name(chip_name, [d["chip"] for d in devices]))
    rows.append(check_disk(work_dir, image_dtype))
    rows.append(check_cpus())

    cpu_missing = [r.item for r in rows if r.status == MISSING and r.path in ("cpu", "both")]
    npu_missing = [r.item for r in rows if r.status == MISSING and r.path in ("npu", "both")]
    return {
        "rows": [r._asdict() for r in rows],
        "devices": devices,
        "cpu_path": {"ready": not cpu_missing, "missing": cpu_missing},
        "npu_path": {"ready": not npu_missing, "missing": npu_missing},
    }


def exit_code(report: Dict, need_npu: bool) -> int:
    """0 when a path can run: with `need_npu`, only the NPU path counts."""
    if need_npu:
        return 0 if report["npu_path"]["ready"] else 1
    return 0 if (report["cpu_path"]["ready"] or report["npu_path"]["ready"]) else 1


def format_report(report: Dict) -> str:
    rows = report["rows"]
    width = max(len(r["item"]) for r in rows)
    lines = []
    for r in rows:
        line = f"{r['status']:<8} {r['item']:<{width}}  {r['detail']}"
        if r["status"] != OK:
            line += f"  [affects {r['affects']}]"
        lines.append(line)

    def path(name: str, what: dict, steps: str) -> str:
        if what["ready"]:
            return f"{name} path ready ({steps})"
        return f"{name} path unavailable (missing {', '.join(what['missing'])})"

    lines.append(path("CPU", report["cpu_path"], "steps 1, 3-6 on ONNX Runtime / PyTorch") + "; "
                 + path("NPU", report["npu_path"], "steps 2-6 with atc and pyACL"))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="0_check_env", description="Check this host for the CPU path and the NPU path, one row per item.")
    parser.add_argument("--npu", action="store_true", help="exit 1 when any piece of the NPU path is missing")
    parser.add_argument("--json", action="store_true", help="print the rows and devices as JSON")
    parser.add_argument("--chip-name", default=os.environ.get("CHIP_NAME", ""), help="atc's chip (env CHIP_NAME)")
    parser.add_argument("--work-dir", default=os.environ.get("WORK_DIR", "work"), help="where outputs go")
    parser.add_argument("--cann-set-env", default=os.environ.get(
        "CANN_SET_ENV", "/usr/local/Ascend/ascend-toolkit/set_env.sh"), help="CANN's set_env.sh")
    parser.add_argument("--device-id", type=int, default=os.environ.get("DEVICE_ID") or "0",
                        help="the device step 5 will use (env DEVICE_ID)")
    parser.add_argument("--image-dtype", choices=("float32", "uint8"), default="float32",
                        help="how step 3 stores images, for the disk estimate (default: float32, the guide's)")
    parser.add_argument("--npu-smi-timeout", type=float, default=NPU_SMI_TIMEOUT, help=argparse.SUPPRESS)
    parser.add_argument("--acl-timeout", type=float, default=ACL_TIMEOUT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    report = collect(chip_name=args.chip_name, work_dir=args.work_dir, set_env=args.cann_set_env,
                     device_id=args.device_id, image_dtype=args.image_dtype,
                     npu_smi_timeout=args.npu_smi_timeout, acl_timeout=args.acl_timeout)
    code = exit_code(report, args.npu)
    report["exit_code"] = code
    from .cli import write_stdout

    # Written and flushed here, so `> /dev/full` is one line naming standard output, not a traceback.
    write_stdout((json.dumps(report, indent=2) if args.json else format_report(report)) + "\n")
    return code


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main))

"""The shell steps under the output policy (issue 20, classes 3, 4, 10 and 11).

- Class 3: `OVERWRITE=1` deletes this run's outputs by their exact names, never by pattern, each
  once, and never an output that is or holds an input.
- Class 4: every file a shell step writes, and every setting naming one, follows the Python
  stages' policy (`atomic.check_output`): not an input, not another setting's file, not a
  symlink, special file or folder; written under a temporary name and renamed.
- Class 10: an `npu-smi` that ignores SIGTERM stops no step: it is killed after a grace period,
  with everything it started.
- Class 11: a several-device run's results are read from `dumpOutput_device<first id>` by every
  step that names that folder.

Oracles: SHA-256 fingerprints of every input before and after (safety_helpers); the exact names
the steps write, typed here from scripts/env.sh's defaults; the arguments a stand-in python or
atc records.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import subprocess
import sys
import time

import pytest
from safety_helpers import fingerprint, one_line_error, tree

from mocoinfer import report
from mocoinfer.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
STEPS = sorted(n for n in os.listdir(SCRIPTS) if n.endswith(".sh"))


def _env(tmp_path, **extra):
    """No CANN, PATH = tmp_path/bin + the system tools, WORK_DIR in tmp_path."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in {"BS", "CHIP_NAME", "WORK_DIR", "CKPT", "VAL_DIR", "LABELS", "MODEL", "BACKEND", "DEVICE_ID",
                        "PREP_DIR", "INFO_FILE", "RESULT_DIR", "PERF_DIR", "ONNX_MODEL", "OM_BASE", "AIPP_CONFIG",
                        "AIPP", "OVERWRITE", "REFERENCE", "PERF", "BATCH_SIZES", "DYNAMIC_BATCH", "STREAM"}}
    env.update(PATH=f"{bindir}:/usr/bin:/bin", PYTHON=sys.executable, CANN_SET_ENV=str(tmp_path / "no-cann" / "x.sh"),
               WORK_DIR=str(tmp_path / "work"))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _tool(tmp_path, name, body):
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _run(script, env, *args, timeout=120):
    return subprocess.run([os.path.join(SCRIPTS, script), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _python_until_steps(tmp_path, log):
    """A PYTHON that runs the real one for the bookkeeping run_all does itself (the settings
    record, the output policy) and records every other call, succeeding: the steps "run" in no
    time, and what they were asked is in `log`."""
    return _tool(tmp_path, "py", f'case "$1 ${{2:-}} ${{3:-}}" in\n'
                                 '  "-m mocoinfer.report settings"|"-m mocoinfer.cli "*)\n'
                                 f'    exec "{sys.executable}" "$@";;\n'
                                 '  "-c import acl"*) exit 1;;\n'
                                 'esac\n'
                                 f'printf "%s\\n" "$*" >> "{log}"\n')


# --------------------------------------------------------------------------- class 3: OVERWRITE

def _work_with_outputs(work):
    """A work folder as runs of every step leave it (env.sh's default names, BS=1, the default
    BATCH_SIZES), plus a user's own files beside them."""
    outputs = ["moco-v2-bs1.onnx", "moco-v2-atc-bs1.om", "prep_dataset/a.bin", "dataset_prep_bin.info",
               "result/dumpOutput_device0/a_1.txt", "result_torch/dumpOutput_device0/a_1.txt", "result.json",
               "result_compare.json", "perf/onnxruntime/bs4/summary.json", "tables.md", "moco-v2-bs4.onnx",
               "moco-v2-bs4-int8.onnx", "moco-v2-atc-bs64.om"]
    mine = ["moco-v2-bs1-finetuned.onnx", "moco-v2-bs1.onnx.bak", "moco-v2-bs128.onnx", "moco-v2-atc-bs2.om",
            "moco-v2-bs[1].onnx", "notes/prep_dataset.txt"]
    for rel in outputs + mine:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(rel.encode())
    return outputs, mine


def test_overwrite_deletes_exactly_the_steps_files_and_nothing_by_pattern(tmp_path):
    """run_all.sh OVERWRITE=1 after a change of settings: every output of the steps (named by
    env.sh's settings; ONNX_MODEL listed twice, as BATCH_SIZES holds 1 too) is gone, every other
    file (`moco-v2-bs1-finetuned.onnx`, a name with glob characters, the checkpoint and labels
    kept in WORK_DIR) is byte for byte as it was, and the run goes on to step 1."""
    work = tmp_path / "work"
    val = tmp_path / "val"
    val.mkdir()
    (val / "a.JPEG").write_bytes(b"jpeg")
    log = tmp_path / "steps.log"
    env = _env(tmp_path, CKPT=work / "model_lincls_best.pth.tar", VAL_DIR=val, LABELS=work / "val_label.txt",
               PYTHON=_python_until_steps(tmp_path, log))
    work.mkdir()
    (work / "model_lincls_best.pth.tar").write_bytes(b"weights")
    (work / "val_label.txt").write_text("a.JPEG 1\n")
    # Record the settings of a first run (BS=1, bicubic by default); its steps leave their
    # outputs; then change INTERPOLATION with OVERWRITE=1.
    assert _run("run_all.sh", env).returncode == 1  # step 5: the stand-in wrote no model
    outputs, mine = _work_with_outputs(work)
    mine += ["model_lincls_best.pth.tar", "val_label.txt"]
    kept = {rel: fingerprint(str(work / rel)) for rel in mine}
    outside = tree(str(val))
    proc = _run("run_all.sh", dict(env, INTERPOLATION="bilinear", OVERWRITE="1"))
    assert "Traceback" not in proc.stderr and "== step 1" in proc.stdout, proc.stderr
    assert f"deleted {len(outputs)} earlier output(s)" in proc.stdout, proc.stdout
    for rel in outputs:
        top = rel.split("/")[0]
        assert not os.path.lexists(work / top), rel
    assert {rel: fingerprint(str(work / rel)) for rel in mine} == kept
    assert tree(str(val)) == outside


def test_overwrite_counts_a_file_named_twice_once_and_leaves_links_targets(tmp_path):
    """Class: one file reached by two output settings (equal paths, or a symlink and its target)
    is deleted once, with no crash; an output that is a symlink loses the link, never its target."""
    work = tmp_path / "w"
    work.mkdir()
    target = tmp_path / "precious.onnx"
    target.write_bytes(b"user's model")
    (work / "m.onnx").write_bytes(b"model")
    os.symlink(target, work / "link.onnx")
    before = fingerprint(str(target))
    settings = {"BS": "1", "INTERPOLATION": "bilinear", "CKPT": "/c", "CKPT_SIZE": "1", "CKPT_SHA256": "ab" * 32,
                "VAL_DIR": "/v", "LABELS": "/l", "MODEL_KIND": "onnx"}
    report.check_settings(str(work), settings, [])
    outs = [str(work / "m.onnx"), str(work / "m.onnx"), str(work / "." / "m.onnx"), str(work / "link.onnx")]
    action = report.check_settings(str(work), dict(settings, BS="4"), outs, overwrite=True)
    assert action.startswith("deleted 2 earlier output(s)")
    assert sorted(os.listdir(work)) == ["run_settings.json"]
    assert fingerprint(str(target)) == before


@pytest.mark.parametrize("setting", ["PERF_DIR", "RESULT_DIR"])
def test_overwrite_refuses_an_output_that_holds_an_input(tmp_path, setting):
    """Class: an output folder that is or holds the checkpoint (or labels, or images): OVERWRITE=1
    deletes nothing and says which output holds which input."""
    work = tmp_path / "work"
    models = work / "models"
    models.mkdir(parents=True)
    ckpt = models / "ckpt.pth.tar"
    ckpt.write_bytes(b"weights")
    val = tmp_path / "val"
    val.mkdir()
    (val / "a.JPEG").write_bytes(b"jpeg")
    (work / "val_label.txt").write_text("a.JPEG 1\n")
    log = tmp_path / "steps.log"
    env = _env(tmp_path, CKPT=ckpt, VAL_DIR=val, LABELS=work / "val_label.txt",
               PYTHON=_python_until_steps(tmp_path, log))
    assert _run("run_all.sh", env).returncode == 1  # settings recorded; step 5 finds no model
    (work / "result.json").write_text("{}")
    before = tree(str(tmp_path), skip=("steps.log",))
    proc = _run("run_all.sh", dict(env, BS="8", OVERWRITE="1", **{setting: str(models)}))
    assert proc.returncode == 1 and one_line_error(proc.stderr, str(models), str(ckpt), "nothing was deleted")
    assert tree(str(tmp_path), skip=("steps.log",)) == before


# --------------------------------------------------------------------------- class 4: outputs vs inputs

def _pipeline_inputs(tmp_path):
    """A work folder holding the inputs of every step: checkpoint, labels, images, ONNX model,
    preprocessed files; returns (env extras, every input path)."""
    work = tmp_path / "work"
    (work / "prep_dataset").mkdir(parents=True)
    (work / "prep_dataset" / "a.bin").write_bytes(b"\0" * 16)
    (work / "model_lincls_best.pth.tar").write_bytes(b"weights")
    (work / "val_label.txt").write_text("a.JPEG 1\n")
    (work / "moco-v2-bs1.onnx").write_bytes(b"onnx model")
    val = tmp_path / "val"
    val.mkdir()
    (val / "a.JPEG").write_bytes(b"jpeg")
    _tool(tmp_path, "atc", f'printf "%s\\n" "$@" > "{tmp_path}/atc.ran"\n'
                           'for a in "$@"; do case "$a" in --output=*) echo om > "${a#--output=}.om";; esac; done\n')
    return {"VAL_DIR": val, "CHIP_NAME": "310P3"}


def _cases(tmp_path):
    w = tmp_path / "work"
    onnx, labels, ckpt = w / "moco-v2-bs1.onnx", w / "val_label.txt", w / "model_lincls_best.pth.tar"
    link = tmp_path / "link.info"
    os.symlink(labels, link)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return [
        # (script, settings, the setting refused, the path it names)
        ("2_onnx2om.sh", {"AIPP": "1", "AIPP_CONFIG": onnx}, "AIPP_CONFIG", onnx),
        ("2_onnx2om.sh", {"AIPP": "1", "AIPP_CONFIG": ckpt}, "AIPP_CONFIG", ckpt),
        ("2_onnx2om.sh", {"AIPP": "1", "AIPP_CONFIG": tmp_path / "val"}, "AIPP_CONFIG", tmp_path / "val"),
        ("2_onnx2om.sh", {"ONNX_MODEL": w / "m.om", "OM_BASE": w / "m"}, "OM", w / "m.om"),
        ("2_onnx2om.sh", {"LABELS": w / "labels.om", "OM_BASE": w / "labels"}, "OM", w / "labels.om"),
        ("1_pth2onnx.sh", {"ONNX_MODEL": labels}, "ONNX_MODEL", labels),
        ("1_pth2onnx.sh", {"ONNX_MODEL": w / "aipp.cfg", "AIPP_CONFIG": w / "aipp.cfg"}, "ONNX_MODEL",
         w / "aipp.cfg"),
        ("4_get_info.sh", {"INFO_FILE": labels}, "INFO_FILE", labels),
        ("4_get_info.sh", {"INFO_FILE": onnx}, "INFO_FILE", onnx),
        ("4_get_info.sh", {"INFO_FILE": link}, "INFO_FILE", link),
        ("4_get_info.sh", {"INFO_FILE": fifo}, "INFO_FILE", fifo),
        ("6_eval.sh", {"LABELS": w / "result.json"}, "RESULT_JSON", w / "result.json"),
        ("run_all.sh", {"INFO_FILE": labels}, "INFO_FILE", labels),
        ("run_all.sh", {"ONNX_MODEL": ckpt}, "ONNX_MODEL", ckpt),
        ("run_all.sh", {"LABELS": w / "tables.md"}, "TABLES", w / "tables.md"),
    ]


def test_an_output_setting_that_names_an_input_is_refused_before_any_work(tmp_path):
    """Class: a setting naming a file a step writes names an input (AIPP_CONFIG = the ONNX model
    wrote the config over the model, then atc ran on it, exit 0), another setting's file, a
    folder, a symlink or a FIFO. Each step refuses in one line naming the setting and the path,
    exit 1, before any tool runs; every input is byte for byte as it was."""
    extra = _pipeline_inputs(tmp_path)
    cases = _cases(tmp_path)
    (tmp_path / "work" / "m.om").write_bytes(b"an ONNX model named .om")
    (tmp_path / "work" / "labels.om").write_text("a.JPEG 1\n")
    (tmp_path / "work" / "result.json").write_text('{"labels": "by hand"}')
    (tmp_path / "work" / "tables.md").write_text("1 2\n")
    log = tmp_path / "steps.log"
    py = _python_until_steps(tmp_path, log)
    for script, settings, name, path in cases:
        before = tree(str(tmp_path), skip=("steps.log",))
        env = _env(tmp_path, PYTHON=py, CKPT=tmp_path / "work" / "model_lincls_best.pth.tar",
                   LABELS=tmp_path / "work" / "val_label.txt", **extra)
        env.update({k: str(v) for k, v in settings.items()})
        proc = _run(script, env)
        assert proc.returncode == 1, (script, settings, proc.stdout, proc.stderr)
        assert one_line_error(proc.stderr, str(path), name), (script, settings, proc.stderr)
        assert tree(str(tmp_path), skip=("steps.log",)) == before, (script, settings)
        assert not (tmp_path / "atc.ran").exists() and not log.exists(), (script, settings)


def test_atc_writes_a_temporary_renamed_only_on_success(tmp_path):
    """Step 2's OM is written as every output is: atc writes a hidden temporary, renamed onto
    $OM_BASE.om once atc succeeded. A failing atc (which wrote half an OM) leaves the earlier OM
    as it was and no temporary behind; an OM path turned into a symlink is refused, link intact."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "moco-v2-bs1.onnx").write_bytes(b"onnx")
    old = work / "moco-v2-atc-bs1.om"
    old.write_bytes(b"earlier OM")
    _tool(tmp_path, "atc", 'for a in "$@"; do case "$a" in --output=*) echo half > "${a#--output=}.om";; esac; done\n'
                           "exit 3\n")
    env = _env(tmp_path, CHIP_NAME="310P3")
    before = tree(str(work))
    proc = _run("2_onnx2om.sh", env)
    assert proc.returncode == 3 and "2_onnx2om: failed (exit 3)" in proc.stderr
    assert tree(str(work)) == before  # no temporary left, the earlier OM untouched
    _tool(tmp_path, "atc", 'for a in "$@"; do case "$a" in --output=*) echo new > "${a#--output=}.om";; esac; done\n')
    proc = _run("2_onnx2om.sh", env)
    assert proc.returncode == 0, proc.stderr
    assert old.read_text() == "new\n" and sorted(os.listdir(work)) == ["moco-v2-atc-bs1.om", "moco-v2-bs1.onnx"]
    precious = tmp_path / "precious"
    precious.write_bytes(b"not an OM")
    old.unlink()
    os.symlink(precious, old)
    before = tree(str(tmp_path))
    proc = _run("2_onnx2om.sh", env)
    assert proc.returncode == 1 and one_line_error(proc.stderr, str(old), "symbolic link"), proc.stderr
    assert tree(str(tmp_path)) == before


def test_install_output_checks_again_then_renames(tmp_path):
    """env.sh's install_output, the one way a shell step puts a file it wrote in place (7_perf's
    accuracy info file, the demo's uint8 check): refused onto a symlink, a folder or an input
    (the temporary is removed, the target untouched), renamed onto a missing or regular file."""
    labels = tmp_path / "labels.txt"
    labels.write_text("a 1\n")
    target = tmp_path / "out.info"
    os.symlink(labels, target)
    script = ('source "$1/scripts/env.sh"; STEP_NAME=probe; tmp="$(temp_path "$2")"; echo new > "$tmp"; '
              'install_output "X=$2" "$tmp" "LABELS=$3"')

    def install(path):
        return subprocess.run(["bash", "-c", "set -euo pipefail; " + script, "_", ROOT, str(path), str(labels)],
                              env=_env(tmp_path), capture_output=True, text=True, timeout=60)

    for bad, why in ((target, "symbolic link"), (tmp_path, "folder"), (labels, "same file as the input")):
        before = tree(str(tmp_path))
        proc = install(bad)
        assert proc.returncode == 1 and one_line_error(proc.stderr, str(bad), why), proc.stderr
        assert tree(str(tmp_path)) == before
    assert install(tmp_path / "new.info").returncode == 0
    assert (tmp_path / "new.info").read_text() == "new\n"
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]


def test_demo_writes_and_deletes_only_inside_its_work_dir(tmp_path):
    """The demo clears its outputs on every run: a PREP_DIR (or RESULT_DIR, PERF_DIR) from the
    environment naming a user's folder is ignored, never cleared."""
    precious = {}
    for name in ("PREP_DIR", "RESULT_DIR", "PERF_DIR"):
        d = tmp_path / name.lower()
        d.mkdir()
        (d / "keep.bin").write_bytes(name.encode())
        precious[name] = d
    before = tree(str(tmp_path))
    py = _tool(tmp_path, "py", "exit 7\n")  # stops the demo at its first Python step, after its clean-up
    env = _env(tmp_path, PYTHON=py, WORK_DIR=tmp_path / "demo", **precious)
    proc = _run("demo.sh", env)
    assert proc.returncode == 7
    after = tree(str(tmp_path))
    assert {k: v for k, v in after.items() if not k.startswith(("demo", "bin"))} == \
        {k: v for k, v in before.items() if not k.startswith(("demo", "bin"))}


# --------------------------------------------------------------------------- class 10: hangs

def _stubborn_npu_smi(tmp_path):
    """An npu-smi that ignores SIGTERM, starts a child that ignores it too, and sleeps; each
    process it starts records its pid."""
    pids = tmp_path / "npu-smi.pids"
    _tool(tmp_path, "npu-smi", f"trap '' TERM\necho $$ >> '{pids}'\nsleep 300 &\necho $! >> '{pids}'\n"
                               "wait\nsleep 300\n")
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("script, args", [("0_check_env.sh", ()), ("0_check_env.sh", ("--json",))]
                         + [(s, ("--help",)) for s in STEPS if s not in ("0_check_env.sh",)])
def test_an_npu_smi_that_ignores_sigterm_hangs_no_step(tmp_path, script, args):
    """Class: every step sources env.sh, which reads CHIP_NAME from `npu-smi info` when it is not
    set, and step 0 runs npu-smi again from Python. With NPU_SMI_TIMEOUT=1 each finishes within
    1 s + the 2 s kill grace per call, and no process of the stand-in is left running."""
    pids = _stubborn_npu_smi(tmp_path)
    env = _env(tmp_path, NPU_SMI_TIMEOUT=1)
    before = tree(str(tmp_path), skip=("npu-smi.pids",))
    start = time.monotonic()
    proc = _run(script, env, *args, timeout=90)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert elapsed < 40, elapsed
    time.sleep(0.2)
    started = [int(p) for p in pids.read_text().split()]
    left = [p for p in started if _alive(p)]
    for p in left:  # never leave a stand-in behind, whatever the assertion below says
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    assert started and left == []
    assert tree(str(tmp_path), skip=("npu-smi.pids",)) == before
    if script == "0_check_env.sh":
        assert "did not answer within 1 s" in proc.stdout


def test_run_bounded_kills_the_group_after_the_grace(tmp_path, monkeypatch):
    """The Python side (ascendhost.run_npu_smi, and the acl probe through the same helper): TERM
    at the limit, KILL `grace` later, to the child's whole process group."""
    from mocoinfer import ascendhost

    pids = _stubborn_npu_smi(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    start = time.monotonic()
    text, why = ascendhost.run_npu_smi(timeout=0.5)
    assert time.monotonic() - start < 0.5 + ascendhost.KILL_GRACE + 3
    assert text is None and "did not answer within 0.5 s" in why
    time.sleep(0.2)
    assert not [p for p in map(int, pids.read_text().split()) if _alive(p)]


# --------------------------------------------------------------------------- class 11: several devices

def test_every_step_reads_the_first_devices_result_folder():
    """Class: the folder of a several-device run is dumpOutput_device<first id>; a shell step that
    builds it from DEVICE_ID (`dumpOutput_device0,1`) is the bug. Oracle: the scripts' text."""
    offenders = []
    for name in STEPS:
        with open(os.path.join(SCRIPTS, name), encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.lstrip().startswith("#"):
                    continue
                for m in re.finditer(r"dumpOutput_device(\$\{?\w+)", line):
                    if m.group(1).lstrip("${") != "FIRST_DEVICE":
                        offenders.append(f"{name}:{lineno}: {line.strip()}")
    assert offenders == []


def test_run_all_with_a_device_list_and_reference_scores_the_first_devices_folders(tmp_path):
    """run_all.sh DEVICE_ID=0,1 REFERENCE=1: step 5 gets the list, step 6 reads
    result/dumpOutput_device0 and compares with result_torch/dumpOutput_device0. Oracle: the
    arguments a stand-in python records."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "model_lincls_best.pth.tar").write_bytes(b"weights")
    (work / "val_label.txt").write_text("a.JPEG 1\n")
    (tmp_path / "val").mkdir()
    log = tmp_path / "steps.log"
    env = _env(tmp_path, DEVICE_ID="0,1", REFERENCE=1, VAL_DIR=tmp_path / "val",
               CKPT=work / "model_lincls_best.pth.tar", LABELS=work / "val_label.txt",
               PYTHON=_python_until_steps(tmp_path, log))
    assert _run("run_all.sh", env).returncode == 1  # settings recorded; step 5 finds no model
    (work / "moco-v2-bs1.onnx").write_bytes(b"onnx")  # as step 1 would leave it
    log.unlink()
    proc = _run("run_all.sh", env)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    metric = [c for c in calls if "vision_metric_ImageNet.py" in c]
    assert metric == [f"{ROOT}/vision_metric_ImageNet.py {work}/result/dumpOutput_device0/ {work}/val_label.txt "
                      f"{work} result.json --compare {work}/result_torch/dumpOutput_device0 --tolerance 1.0"]
    infer = [c for c in calls if "run_om_infer.py" in c]
    assert len(infer) == 2 and all("--device-id 0,1" in c for c in infer)


@pytest.mark.slow
def test_run_all_on_two_devices_with_the_reference_end_to_end(tmp_path):
    """The same, for real on the demo's inputs (two CPU worker processes stand for the devices):
    Top-1 100% for the run and for the PyTorch reference."""
    demo = tmp_path / "demo"
    subprocess.run([sys.executable, "-m", "mocoinfer.demo", "--make-inputs", str(demo), "--images", "8"],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    env = _env(tmp_path, CKPT=demo / "model_lincls_best.pth.tar", VAL_DIR=demo / "val",
               LABELS=demo / "val_label.txt", WORK_DIR=tmp_path / "run", BS=4, REFERENCE=1, DEVICE_ID="0,1")
    before = tree(str(demo))
    proc = _run("run_all.sh", env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| this run: checkpoint on PyTorch (REFERENCE=1) | 100.0% | 100.0% | 8 |" in proc.stdout
    assert (tmp_path / "run" / "result" / "dumpOutput_device0").is_dir()
    assert tree(str(demo)) == before


def test_a_user_error_from_report_is_one_line():
    with pytest.raises(UserError):
        report.check_deletable(["/"], [ROOT])

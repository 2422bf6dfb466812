"""Dynamic batch end to end in the shell steps: step 5 at BS on the one model, the sweep without
re-exporting or reconverting, DEVICE_ID lists, step 3's DTYPE; and the sweep's table saying which
model it measured.

Oracles: the command lines the steps hand a stand-in python and a stand-in atc (recorded, written
out by hand below); hand-written summaries for the table.
"""

from __future__ import annotations

import json
import os
import subprocess

from test_scripts import ROOT, _env, _recording_atc, _tool

from mocoinfer import sweep


def _recording_python(tmp_path, acl: bool):
    """A stand-in python: `-c "import acl"` succeeds when `acl`, every other call is recorded (one
    line each) and a `--output X` argument of pthtar2onnx.py gets an empty file X."""
    log = tmp_path / "py.calls"
    body = (f'if [ "${{1:-}}" = "-c" ]; then exit {0 if acl else 1}; fi\n'
            f'printf "%s\\n" "$*" >> "{log}"\n'
            'prev=""; for a in "$@"; do\n'
            '  if [ "$prev" = "--output" ] && [[ "$1" == *pthtar2onnx.py ]]; then : > "$a"; fi; prev="$a"\n'
            'done\n')
    return _tool(tmp_path, "fakepy", body), log


def _calls(log, script):
    return [line.split() for line in log.read_text().splitlines() if script in line]


def _arg(args, flag):
    return args[args.index(flag) + 1]


def test_sweep_measures_every_listed_size_on_one_dynamic_model(tmp_path):
    atc_log = _recording_atc(tmp_path)
    py, log = _recording_python(tmp_path, acl=True)
    work = tmp_path / "work"
    work.mkdir()
    (work / "model_lincls_best.pth.tar").write_bytes(b"ckpt")
    env = _env(tmp_path, PYTHON=py, CHIP_NAME="310P3", DYNAMIC_BATCH="1,4,16", PERF_BACKENDS="onnxruntime",
               BATCH_SIZES="2 3", DEVICE_ID="1,0")
    proc = subprocess.run([os.path.join(ROOT, "scripts", "7_perf.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    exports = _calls(log, "pthtar2onnx.py")
    assert len(exports) == 1 and "--dynamic" in exports[0]
    assert _arg(exports[0], "--output") == f"{work}/moco-v2-dynamic.onnx"
    atc = atc_log.read_text().splitlines()
    assert f"--model={work}/moco-v2-dynamic.onnx" in atc and "--dynamic_batch_size=1,4,16" in atc
    runs = _calls(log, "run_om_infer.py")
    # acl first (CANN is "here"), then onnxruntime, for each listed size; BATCH_SIZES is not used.
    got = [(_arg(r, "--backend"), _arg(r, "--batch-size"), _arg(r, "--model"), _arg(r, "--device-id")) for r in runs]
    want = [(b, bs, f"{work}/moco-v2-atc-dynamic.om" if b == "acl" else f"{work}/moco-v2-dynamic.onnx", "1")
            for bs in ("1", "4", "16") for b in ("acl", "onnxruntime")]
    assert got == want
    # A second sweep reuses both models: no export, no conversion.
    atc_log.unlink()
    log.unlink()
    proc = subprocess.run([os.path.join(ROOT, "scripts", "7_perf.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not _calls(log, "pthtar2onnx.py") and not atc_log.exists() and len(_calls(log, "run_om_infer.py")) == 6


def test_infer_runs_the_dynamic_model_at_bs_on_every_listed_device(tmp_path):
    py, log = _recording_python(tmp_path, acl=False)
    work = tmp_path / "work"
    work.mkdir()
    (work / "moco-v2-dynamic.onnx").write_bytes(b"onnx")
    env = _env(tmp_path, PYTHON=py, DYNAMIC_BATCH="1,4,8", BS=8, DEVICE_ID="0,1,2,3")
    proc = subprocess.run([os.path.join(ROOT, "scripts", "5_infer.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (run,) = _calls(log, "run_om_infer.py")
    assert (_arg(run, "--model"), _arg(run, "--batch-size"), _arg(run, "--device-id")) == \
        (f"{work}/moco-v2-dynamic.onnx", "8", "0,1,2,3")
    # The ONNX model takes any batch size (an .om only its listed ones: the runner says so).
    proc = subprocess.run([os.path.join(ROOT, "scripts", "5_infer.sh")], env=dict(env, BS="3"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and _arg(_calls(log, "run_om_infer.py")[-1], "--batch-size") == "3"


def test_eval_reads_the_first_devices_folder(tmp_path):
    py, log = _recording_python(tmp_path, acl=False)
    proc = subprocess.run([os.path.join(ROOT, "scripts", "6_eval.sh")],
                          env=_env(tmp_path, PYTHON=py, DEVICE_ID="2,3"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (run,) = _calls(log, "vision_metric_ImageNet.py")
    assert run[1] == f"{tmp_path}/work/result/dumpOutput_device2/"


def test_preprocess_writes_uint8_by_default_with_aipp(tmp_path):
    py, log = _recording_python(tmp_path, acl=False)
    (tmp_path / "val").mkdir()
    for extra, dtype in (({}, "float32"), ({"AIPP": "1"}, "uint8"), ({"AIPP": "1", "DTYPE": "float32"}, "float32"),
                         ({"DTYPE": "uint8"}, "uint8")):
        proc = subprocess.run([os.path.join(ROOT, "scripts", "3_preprocess.sh")],
                              env=_env(tmp_path, PYTHON=py, VAL_DIR=tmp_path / "val", **extra),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert _arg(_calls(log, "imagenet_torch_preprocess.py")[-1], "--dtype") == dtype


def test_sweep_table_names_the_one_dynamic_model(tmp_path):
    for backend, model in (("onnxruntime", "work/moco-v2-dynamic.onnx"), ("torch", None)):
        for bs, rate in ((1, 10.0), (4, 12.5)):
            folder = tmp_path / backend / f"bs{bs}"
            folder.mkdir(parents=True)
            summary = {"batch_size": bs, "throughput_images_per_s": rate, "device": "cpu",
                       "model": model or f"moco-v2-bs{bs}.onnx"}
            (folder / "summary.json").write_text(json.dumps(summary))
    table = sweep.markdown(str(tmp_path))
    assert "| 4 | 12.5 | 12.5 |" in table
    assert ("Models: onnxruntime moco-v2-dynamic.onnx for every batch size; torch one model per batch size."
            in table)

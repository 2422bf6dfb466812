"""scripts/run_all.sh and mocoinfer/report.py: the settings record, the refusal, and the tables.

Oracles: settings dicts and output folders written by hand here; the guide's published figures
typed in from the guide (67.589/87.990, 67.31/87.82, 67.41/88.02; MoCo README 67.7); perf lines
with known numbers; and, end to end, the demo's labels, which come from torchvision + PyTorch (an
independent path), so every stage agreeing gives Top-1 100%.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mocoinfer import report
from mocoinfer.atomic import write_json
from mocoinfer.errors import UserError
from mocoinfer.formats import RUN_SETTINGS_NAME, format_perf, read_run_settings, write_result_json, write_run_settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_ALL = os.path.join(ROOT, "scripts", "run_all.sh")


def settings(**over):
    s = {"BS": "1", "INTERPOLATION": "bilinear", "CKPT": "/data/model_lincls_best.pth.tar", "CKPT_SIZE": "100",
         "CKPT_SHA256": "ab" * 32, "VAL_DIR": "/data/val", "LABELS": "/data/val_label.txt", "MODEL_KIND": "onnx"}
    s.update(over)
    return s


def outputs(work):
    return [str(work / "prep_dataset"), str(work / "result"), str(work / "result.json"), str(work / "moco-v2-bs1.onnx")]


def test_settings_recorded_then_same_settings_keep_the_work(tmp_path):
    work = tmp_path / "w"
    assert report.check_settings(str(work), settings(), outputs(work)) == "recorded the settings"
    assert read_run_settings(str(work / RUN_SETTINGS_NAME)) == settings()
    (work / "result").mkdir()
    assert "completed work is kept" in report.check_settings(str(work), settings(), outputs(work))
    assert (work / "result").is_dir()


@pytest.mark.parametrize("key,new", [("INTERPOLATION", "bicubic"), ("BS", "16"), ("CKPT_SHA256", "cd" * 32),
                                     ("LABELS", "/other/val_label.txt"), ("MODEL_KIND", "om")])
def test_other_settings_are_refused_while_outputs_remain(tmp_path, key, new):
    """The one line names the setting, the recorded and the new value, and both fixes."""
    work = tmp_path / "w"
    report.check_settings(str(work), settings(), outputs(work))
    (work / "moco-v2-bs1.onnx").write_bytes(b"onnx")
    with pytest.raises(UserError) as exc:
        report.check_settings(str(work), settings(**{key: new}), outputs(work))
    msg = str(exc.value)
    assert "\n" not in msg
    assert f"{key} was {settings()[key]}" in msg and f"now {new}" in msg
    assert "another WORK_DIR" in msg and "OVERWRITE=1" in msg
    assert read_run_settings(str(work / RUN_SETTINGS_NAME)) == settings()  # the record is unchanged
    assert (work / "moco-v2-bs1.onnx").exists()


def test_overwrite_deletes_only_the_runs_outputs_inside_work_dir(tmp_path):
    work = tmp_path / "w"
    report.check_settings(str(work), settings(), outputs(work))
    for d in ("prep_dataset", "result"):
        (work / d).mkdir()
        (work / d / "x").write_text("x")
    (work / "moco-v2-bs1.onnx").write_bytes(b"onnx")
    (work / "model_lincls_best.pth.tar").write_bytes(b"ckpt")  # the default CKPT lives in WORK_DIR
    outside = tmp_path / "result.json"
    outside.write_text("{}")
    action = report.check_settings(str(work), settings(BS="8"), outputs(work) + [str(outside)], overwrite=True)
    assert action.startswith("deleted 3 earlier output(s)")
    assert sorted(os.listdir(work)) == ["model_lincls_best.pth.tar", RUN_SETTINGS_NAME]
    assert outside.exists()
    assert read_run_settings(str(work / RUN_SETTINGS_NAME))["BS"] == "8"


def test_changed_settings_without_outputs_are_recorded(tmp_path):
    """A first run that failed before writing anything does not lock the folder."""
    work = tmp_path / "w"
    report.check_settings(str(work), settings(), outputs(work))
    assert report.check_settings(str(work), settings(BS="4"), outputs(work)) == "recorded the new settings"


def test_outputs_of_unknown_settings_are_refused(tmp_path):
    work = tmp_path / "w"
    (work / "result").mkdir(parents=True)
    with pytest.raises(UserError, match="missing, but .* holds outputs made with unknown settings"):
        report.check_settings(str(work), settings(), outputs(work))


def test_current_settings_hash_the_checkpoint(tmp_path):
    """Oracle: sha256 of b'abc', the FIPS 180-2 test vector."""
    ckpt = tmp_path / "c.pth.tar"
    ckpt.write_bytes(b"abc")
    s = report.current_settings(4, "bicubic", str(ckpt), "val", "labels.txt", "onnx")
    assert s["CKPT_SHA256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert s["CKPT_SIZE"] == "3" and s["BS"] == "4" and os.path.isabs(s["VAL_DIR"])
    with pytest.raises(UserError, match="checkpoint not found"):
        report.current_settings(4, "bicubic", str(tmp_path / "none"), "val", "labels.txt", "onnx")


def _work_with_results(tmp_path, interpolation, compare=True):
    work = tmp_path / "w"
    result = work / "result"
    result.mkdir(parents=True)
    write_run_settings(str(work / RUN_SETTINGS_NAME), settings(INTERPOLATION=interpolation, BS="32"))
    write_result_json(str(work / "result.json"), 50000, 1000, [0.6731, 0.78, 0.82, 0.85, 0.8782])
    if compare:
        write_json(str(work / "result_compare.json"),
                   {"images_compared": 50000, "reference_accuracy": {"top1": 67.589, "top5": 87.99},
                    "top1_agreement": 0.97, "top1_drop": 0.279, "tolerance": 1.0, "passed": True})
    (result / "perf_vision_batchsize_32_device_0.txt").write_text(format_perf(
        e2e_rate=100.5, e2e_latency_ms=1, read_rate=1, read_latency_ms=1, pre_rate=1, pre_latency_ms=1,
        infer_rate=200.25, interface_rate=300.75, infer_latency_ms=1, post_rate=1, post_latency_ms=1))
    write_json(str(result / "summary.json"), {"backend": "acl", "device": "Ascend310P3", "model": "/x/m.om"})
    return work


def test_tables_bicubic_show_the_guides_figures(tmp_path):
    work = _work_with_results(tmp_path, "bicubic")
    text = report.tables(str(work), [str(work / "result")], None, with_compare=True)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert "| this run: ONNX model (ONNX Runtime), batch 32 | 67.31% | 87.82% | 50,000 |" in rows
    assert "| this run: checkpoint on PyTorch (REFERENCE=1) | 67.59% | 87.99% | 50,000 |" in rows
    assert "| ModelZoo guide: PyTorch checkpoint | 67.589% | 87.990% | 50,000 |" in rows
    assert "| ModelZoo guide: OM on Ascend 310, batch 32 | 67.31% | 87.82% | 50,000 |" in rows
    assert "| ModelZoo guide: OM on Ascend 310P3 | 67.41% | 88.02% | 50,000 |" in rows
    assert not any("MoCo README" in r for r in rows)  # a bilinear figure, not for bicubic pixels
    assert "| result | m.om | acl (Ascend310P3) | 32 | 100.5 | 200.2 | 300.8 |" in rows
    assert "PASS" in text and "real model_lincls_best.pth.tar" in text


def test_tables_bilinear_show_mocos_figure_and_no_comparison_row(tmp_path):
    work = _work_with_results(tmp_path, "bilinear", compare=False)
    text = report.tables(str(work), [str(work / "result")], None)
    # A result_compare.json left by an earlier REFERENCE=1 run is not this run's comparison.
    write_json(str(work / "result_compare.json"), {"reference_accuracy": {"top1": 1.0, "top5": 2.0}})
    assert report.tables(str(work), [str(work / "result")], None) == text
    assert "| MoCo README: released 200-epoch model (main_lincls.py) | 67.7% | - | 50,000 |" in text
    assert "ModelZoo guide:" not in text and "REFERENCE=1" not in text


def test_tables_include_the_sweep(tmp_path):
    work = _work_with_results(tmp_path, "bilinear")
    for bs, rate in ((1, 25.0), (4, 27.5)):
        (work / "perf" / "onnxruntime" / f"bs{bs}").mkdir(parents=True)
        write_json(str(work / "perf" / "onnxruntime" / f"bs{bs}" / "summary.json"),
                   {"batch_size": bs, "throughput_images_per_s": rate, "device": "CPUExecutionProvider"})
    text = report.tables(str(work), [str(work / "result")], str(work / "perf"))
    assert "Batch-size sweep (step 7" in text
    assert "| 1 | 25.0 |" in text and "| 4 | 27.5 |" in text


def test_tables_without_a_perf_file_name_the_folder(tmp_path):
    work = _work_with_results(tmp_path, "bilinear")
    os.remove(work / "result" / "perf_vision_batchsize_32_device_0.txt")
    with pytest.raises(UserError, match="no perf_vision_batchsize"):
        report.tables(str(work), [str(work / "result")], None)


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in {"BS", "CHIP_NAME", "WORK_DIR", "CKPT", "VAL_DIR", "LABELS", "MODEL", "BACKEND",
                        "INTERPOLATION", "REFERENCE", "PERF", "OVERWRITE"}}
    env["PATH"] = "/usr/bin:/bin"
    env["PYTHON"] = sys.executable
    env["CANN_SET_ENV"] = str(tmp_path / "no-cann" / "set_env.sh")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def test_run_all_names_a_missing_input(tmp_path):
    proc = subprocess.run([RUN_ALL], env=_env(tmp_path, WORK_DIR=tmp_path / "w", CKPT=tmp_path / "none.pth.tar"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"run_all: checkpoint {tmp_path}/none.pth.tar not found (set CKPT=...)"


@pytest.mark.slow
def test_run_all_on_the_demo_inputs(tmp_path):
    """Top-1 100% on the demo's stand-in checkpoint, images and labels, both tables printed; then a
    run with another INTERPOLATION into the same WORK_DIR is refused in one line, touching nothing."""
    demo = tmp_path / "demo"
    subprocess.run([sys.executable, "-m", "mocoinfer.demo", "--make-inputs", str(demo), "--images", "8"],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    work = tmp_path / "run"
    env = _env(tmp_path, CKPT=demo / "model_lincls_best.pth.tar", VAL_DIR=demo / "val",
               LABELS=demo / "val_label.txt", WORK_DIR=work, BS=4, REFERENCE=1)
    proc = subprocess.run([RUN_ALL], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "| this run: ONNX model (ONNX Runtime), batch 4 | 100.0% | 100.0% | 8 |" in out
    assert "| this run: checkpoint on PyTorch (REFERENCE=1) | 100.0% | 100.0% | 8 |" in out
    # The default is the guide's bicubic transform, so the guide's own figures stand beside the run.
    assert "| ModelZoo guide: PyTorch checkpoint | 67.589% | 87.990% | 50,000 |" in out
    assert "| result | moco-v2-bs4.onnx | onnxruntime" in out
    assert "| result_torch | model_lincls_best.pth.tar | torch" in out
    assert (work / "tables.md").read_text() in out
    recorded = json.loads((work / RUN_SETTINGS_NAME).read_text())["settings"]
    assert recorded["INTERPOLATION"] == "bicubic" and recorded["BS"] == "4" and recorded["MODEL_KIND"] == "onnx"

    before = sorted(p.name for p in work.iterdir())
    result_json = (work / "result.json").read_text()
    proc = subprocess.run([RUN_ALL], env=dict(env, INTERPOLATION="bilinear"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "INTERPOLATION was bicubic" in proc.stderr and "now bilinear" in proc.stderr
    assert "OVERWRITE=1" in proc.stderr and "another WORK_DIR" in proc.stderr
    assert sorted(p.name for p in work.iterdir()) == before
    assert (work / "result.json").read_text() == result_json

"""No traceback (issue 20, class 9), and messages whose figures mean something (class 12).

Class 9, each a one-line error naming the file, a non-zero exit, no input changed:
- int8 quantization: an unreadable calibration file, one holding NaN or infinity, and
  `--uint8-input --quantize int8`, all refused before the float model is written;
- `pthtar2onnx.py 100000 ckpt` under a memory limit (`ulimit -v`), and a batch over the memory
  available, refused before the checkpoint is loaded; a failed allocation during the export;
- a stage whose standard output refuses writes (`0_check_env.sh --json > /dev/full`).
(Names that are not UTF-8 are in test_safety_imagedirs.py.)

Class 12: sizes are written in a unit that shows them (`412.0 kB`, `12 bytes`), never `0.0 MB`.

Oracles: fingerprints of every input before and after (safety_helpers); the bytes the tests
write by hand; sizes worked out by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from safety_helpers import one_line_error, read_only_statvfs, tree

import pthtar2onnx
from mocoinfer import atomic, envcheck, pth2onnx, quantize, sizes
from mocoinfer.cli import run_main
from mocoinfer.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOAT_BYTES = quantize.FLOAT_SAMPLE_BYTES


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """main_lincls.py's layout for a random resnet18 (small and quick to load)."""
    import torch
    import torchvision

    state = {f"module.{k}": v for k, v in torchvision.models.resnet18(num_classes=10).state_dict().items()}
    path = tmp_path_factory.mktemp("ck") / "model_lincls_best.pth.tar"
    torch.save({"epoch": 1, "arch": "resnet18", "state_dict": state}, str(path))
    return str(path)


def run(argv, capsys):
    code = run_main(pthtar2onnx.main, argv)
    out, err = capsys.readouterr()
    return code, out, err


def calibration(folder, n=3, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        rng.standard_normal(FLOAT_BYTES // 4).astype(np.float32).tofile(folder / f"img_{i}.bin")
    return folder


# --------------------------------------------------------------------------- class 9: int8 quantization

@pytest.mark.parametrize("bad", ["nan", "inf", "unreadable", "vanished"])
def test_a_bad_calibration_file_stops_before_the_float_model_is_written(ckpt, tmp_path, capsys, monkeypatch, bad):
    """Class: a calibration file the quantizer cannot use (NaN- or infinity-filled, unreadable,
    gone since it was listed). One line naming the file, exit 1, no .onnx written at all."""
    calib = calibration(tmp_path / "calib")
    victim = calib / "img_1.bin"
    if bad in ("nan", "inf"):
        data = np.fromfile(victim, dtype=np.float32)
        data[::7] = np.nan if bad == "nan" else np.inf
        data.tofile(victim)
    else:
        real = atomic.open_regular

        def refusing(path):
            if os.path.basename(path) == victim.name:
                raise (PermissionError(13, "Permission denied", path) if bad == "unreadable"
                       else FileNotFoundError(2, "No such file or directory", path))
            return real(path)

        monkeypatch.setattr(atomic, "open_regular", refusing)
    out = tmp_path / "out"
    out.mkdir()
    before = tree(str(tmp_path))
    code, _, err = run(["1", ckpt, "--output", str(out / "m.onnx"), "--quantize", "int8", "--calibration",
                        str(calib)], capsys)
    why = {"nan": "NaN or infinite", "inf": "NaN or infinite", "unreadable": "permission denied",
           "vanished": "cannot read"}[bad]
    assert code == 1 and one_line_error(err, str(victim), why), err
    assert tree(str(tmp_path)) == before  # nothing written, the calibration files unchanged


def test_uint8_input_with_int8_quantization_is_refused_before_anything(ckpt, tmp_path, capsys):
    calib = calibration(tmp_path / "calib")
    before = tree(str(tmp_path))
    code, _, err = run(["1", ckpt, "--output", str(tmp_path / "m.onnx"), "--uint8-input", "--quantize", "int8",
                        "--calibration", str(calib)], capsys)
    assert code == 1 and one_line_error(err, ckpt, "--uint8-input", "nothing was written"), err
    assert tree(str(tmp_path)) == before


def test_quantizing_a_model_whose_input_is_not_float_is_one_line(tmp_path):
    """quantize_int8 called on a uint8-input model (its calibration samples are float32 CHW)."""
    inp = helper.make_tensor_value_info("actual_input_1", TensorProto.UINT8, [1, 224, 224, 3])
    outp = helper.make_tensor_value_info("output1", TensorProto.UINT8, [1, 224, 224, 3])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["actual_input_1"], ["output1"])],
                                                "u8", [inp], [outp]))
    path = tmp_path / "u8.onnx"
    onnx.save(model, str(path))
    calib = calibration(tmp_path / "calib")
    before = tree(str(tmp_path))
    with pytest.raises(UserError, match="is not float32") as exc:
        quantize.quantize_int8(str(path), str(calib))
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    assert tree(str(tmp_path)) == before


# --------------------------------------------------------------------------- class 9: memory

def test_a_batch_too_big_for_memory_is_refused_before_loading(ckpt, tmp_path, capsys, monkeypatch):
    """Oracle: 1 GB + batch x 16 MB by hand against a stand-in 2 GB available: batch 64 needs
    2,147,483,648 bytes + 1,073,741,824 = too much; batch 1 gets past the check."""
    monkeypatch.setattr(sizes, "available_memory", lambda: 2 * 10**9)
    loaded = []
    monkeypatch.setattr("mocoinfer.checkpoint.build_model", lambda *a, **k: loaded.append(a) or 1 / 0)
    before = tree(str(tmp_path))
    code, _, err = run(["64", ckpt, "--output", str(tmp_path / "m.onnx")], capsys)
    assert code == 1 and one_line_error(err, ckpt, "batch size 64", "2.0 GB is available", "2.1 GB"), err
    assert loaded == [] and tree(str(tmp_path)) == before
    with pytest.raises(ZeroDivisionError):  # batch 1 passes the check and reaches the (stand-in) load
        pth2onnx.export_checkpoint(ckpt, str(tmp_path / "m.onnx"), batch_size=1)


def test_running_out_of_memory_while_exporting_is_one_line(ckpt, tmp_path, capsys, monkeypatch):
    def oom(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr("mocoinfer.checkpoint.build_model", oom)
    before = tree(str(tmp_path))
    code, _, err = run(["8", ckpt, "--output", str(tmp_path / "m.onnx")], capsys)
    assert code == 1 and one_line_error(err, ckpt, "ran out of memory", "batch size 8"), err
    assert tree(str(tmp_path)) == before


def test_pthtar2onnx_100000_under_a_memory_limit(ckpt, tmp_path):
    """The issue's case, as a command under `ulimit -v` (8 GiB of address space): one line, exit 1,
    nothing written, no traceback, long before tracing would allocate 60 GB of input."""
    script = f'ulimit -v {8 * 1024 * 1024}; exec "{sys.executable}" "{ROOT}/pthtar2onnx.py" 100000 "{ckpt}"'
    before = tree(str(tmp_path))
    ck_before = tree(os.path.dirname(ckpt))
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert one_line_error(proc.stderr, ckpt, "batch size 100000", "is available"), proc.stderr
    assert tree(str(tmp_path)) == before and tree(os.path.dirname(ckpt)) == ck_before


# --------------------------------------------------------------------------- class 9: standard output

@pytest.mark.parametrize("args", [["--json"], []])
def test_check_env_into_a_full_device_is_one_line(tmp_path, args):
    """`0_check_env.sh --json > /dev/full`: exit 1, one line naming standard output and why,
    nothing written to WORK_DIR. And `| head -c 1` (a reader that goes away): no traceback."""
    env = {k: v for k, v in os.environ.items() if k not in {"CHIP_NAME", "DEVICE_ID", "PYTHONPATH"}}
    env.update(PATH="/usr/bin:/bin", PYTHON=sys.executable, CANN_SET_ENV=str(tmp_path / "none"),
               WORK_DIR=str(tmp_path / "work"))
    script = os.path.join(ROOT, "scripts", "0_check_env.sh")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([script, *args], env=env, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 1 and one_line_error(proc.stderr, "standard output", "no space left on device"), \
        proc.stderr
    proc = subprocess.run(["bash", "-c", f'"{script}" {" ".join(args)} | head -c 1'], env=env, capture_output=True,
                          text=True, timeout=300)
    assert "Traceback" not in proc.stderr and proc.stderr == "", proc.stderr
    assert not (tmp_path / "work").exists()


# --------------------------------------------------------------------------- class 12: figures

@pytest.mark.parametrize("n, words", [(0, "0 bytes"), (1, "1 byte"), (412, "412 bytes"), (1000, "1.0 kB"),
                                      (412_345, "412.3 kB"), (999_949, "999.9 kB"), (999_950, "1.0 MB"),
                                      (602_112 * 50_000, "30.1 GB"), (3 * 10**12, "3.0 TB")])
def test_human_size(n, words):
    """Oracle: decimal units by hand (df -H's), one decimal, exact bytes below 1 kB."""
    assert sizes.human_size(n) == words


def test_two_sizes_that_would_read_the_same_get_their_bytes():
    assert sizes.two_sizes(1_000_100, 1_000_000) == ("1.0 MB (1,000,100 bytes)", "1.0 MB (1,000,000 bytes)")
    assert sizes.two_sizes(2_000_000, 12) == ("2.0 MB", "12 bytes")


def test_the_disk_row_of_a_nearly_full_disk_has_figures(tmp_path, monkeypatch):
    """Class: a size shown in a unit too large for it. 412,000 bytes free: "412.0 kB free"; the
    need by hand: 50,000 x (602,112 + 16,000) + 300 x 2^20 = 31,220,172,800 bytes, "31.2 GB"."""
    usage = type("U", (), {"free": 412_000})
    monkeypatch.setattr(envcheck.shutil, "disk_usage", lambda p: usage)
    row = envcheck.check_disk(str(tmp_path))
    assert row.detail.startswith("412.0 kB free") and "31.2 GB as float32" in row.detail


def test_the_disk_full_refusal_has_figures(tmp_path, monkeypatch):
    """Class: "needs about 0.0 MB for this run but only 0.0 MB is free". 12 bytes free against a
    run of 40,000 bytes must say so in figures that differ."""
    vfs = read_only_statvfs(monkeypatch, str(tmp_path))
    vfs.f_flag, vfs.f_bavail, vfs.f_frsize = vfs.writable_flag, 3, 4
    with pytest.raises(UserError) as exc:
        atomic.check_writable_dir(str(tmp_path), 40_000)
    assert "needs about 40.0 kB" in str(exc.value) and "only 12 bytes is free" in str(exc.value)

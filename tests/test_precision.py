"""Precision variants of the runtimes: torch --precision fp32|bf16|fp16, and the refusals.

Oracles: PyTorch's float32 model for the bf16 outputs (top-1 on the demo's images); the
cpuinfo text written here for the capability check; the machine's own CUDA state for fp16.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import run_om_infer
from mocoinfer.backends import torch as torch_backend
from mocoinfer.cli import run_main
from mocoinfer.errors import UserError
from mocoinfer.formats import read_result

N_IMAGES = 6


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A ResNet-18 stand-in fitted to the demo's images, its checkpoint, and the images' float32
    .bin files made with torchvision's transform."""
    from PIL import Image
    from torchvision import transforms

    from mocoinfer.demo import fit_classifier, make_sample_images, make_standin_checkpoint, standin_model

    work = tmp_path_factory.mktemp("precision")
    paths = make_sample_images(str(work / "val"), N_IMAGES)
    model = fit_classifier(standin_model(seed=0, arch="resnet18", calibration_batches=1, batch_size=2), paths)
    path = make_standin_checkpoint(str(work / "model_lincls_best.pth.tar"), arch="resnet18", model=model)
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    prep = work / "prep"
    prep.mkdir()
    xs = []
    for p in paths:
        x = tf(Image.open(p).convert("RGB"))
        x.numpy().tofile(str(prep / (os.path.basename(p).split(".")[0] + ".bin")))
        xs.append(x)
    with torch.no_grad():
        logits = model.eval()(torch.stack(xs)).numpy()
    return {"path": path, "prep": str(prep), "logits": logits,
            "keys": [os.path.basename(p).split(".")[0] for p in paths]}


def _cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f {flags}\n\n", encoding="utf-8")
    return str(path)


def test_bf16_units_read_from_cpu_flags(tmp_path):
    """Oracle: the flags line written here."""
    assert torch_backend.cpu_bf16_units(_cpuinfo(tmp_path, "avx512_bf16 amx_tile"))[0]
    assert torch_backend.cpu_bf16_units(_cpuinfo(tmp_path, "amx_bf16"))[0]
    ok, found = torch_backend.cpu_bf16_units(_cpuinfo(tmp_path, "avx512_vnni"))
    assert not ok and "avx512_bf16" in found


def _run(argv, capsys):
    code = run_main(run_om_infer.main, argv)
    return code, capsys.readouterr()


@pytest.fixture()
def unread_ckpt(tmp_path):
    """The precision is checked before the checkpoint is loaded: a file that is never read."""
    path = tmp_path / "model_lincls_best.pth.tar"
    path.write_bytes(b"never loaded")
    return {"path": str(path)}


def test_bf16_without_units_is_a_clear_error(unread_ckpt, tmp_path, capsys, monkeypatch):
    """The capability check says no (simulated): exit 1, one line naming the checkpoint and the
    missing units, no traceback, nothing written."""
    ckpt = unread_ckpt
    monkeypatch.setattr(torch_backend, "cpu_bf16_units", lambda: (False, "none of avx512_bf16, amx_bf16"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    code, io = _run(["--model", ckpt["path"], "--pure-data", "zeros", "--precision", "bf16", "--output", str(out)],
                    capsys)
    assert code == 1 and "Traceback" not in io.err and len(io.err.strip().splitlines()) == 1
    assert ckpt["path"] in io.err and "bfloat16 units" in io.err and "avx512_bf16" in io.err
    assert not out.exists()


def test_fp16_on_cpu_is_refused(unread_ckpt, tmp_path, capsys, monkeypatch):
    """Oracle: CUDA is made unavailable; fp16 runs on CUDA only."""
    ckpt = unread_ckpt
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, io = _run(["--model", ckpt["path"], "--pure-data", "zeros", "--precision", "fp16",
                     "--output", str(tmp_path / "out")], capsys)
    assert code == 1 and "Traceback" not in io.err and "fp16 runs on CUDA only" in io.err


def test_precision_checks_by_runtime(tmp_path):
    """ONNX Runtime takes fp32 (and fp16 only with TensorRT); an .om's precision is atc's."""
    from mocoinfer.backends import open_backend

    onnx_path = tmp_path / "m.onnx"
    om_path = tmp_path / "m.om"
    for p in (onnx_path, om_path):
        p.write_bytes(b"not read")
    with pytest.raises(UserError, match="not an ONNX Runtime option"):
        open_backend("onnxruntime", str(onnx_path), precision="bf16")
    with pytest.raises(UserError, match="needs the TensorRT provider"):
        open_backend("onnxruntime", str(onnx_path), providers=["CPUExecutionProvider"], precision="fp16")
    with pytest.raises(UserError, match="fixed when atc converts it"):
        open_backend("acl", str(om_path), precision="bf16")
    with pytest.raises(UserError, match="unknown --precision"):
        torch_backend.check_precision("int4", False, "m.pth")


@pytest.mark.slow
@pytest.mark.skipif(not torch_backend.cpu_bf16_units()[0], reason="this CPU has no bfloat16 units")
def test_bf16_agrees_with_fp32_on_every_demo_image(ckpt, tmp_path, capsys):
    """bf16 results are float32 files whose top-1 equals PyTorch's float32 model on each image,
    close to its logits (bf16 keeps 8 mantissa bits); the summary names the precision."""
    from mocoinfer.runner import run_inference

    s = run_inference(ckpt["path"], ckpt["prep"], str(tmp_path / "out"), batch_size=4, backend="torch",
                      precision="bf16", progress=False)
    assert s["precision"] == "bf16"
    got = np.stack([read_result(os.path.join(s["result_dir"], f"{k}_1.txt")) for k in ckpt["keys"]])
    ref = ckpt["logits"]
    assert got.dtype == np.float32
    assert (got.argmax(1) == ref.argmax(1)).all()
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.99 and np.abs(got - ref).max() > 0  # close, and really computed in bf16


def test_sweep_reports_each_variant_against_float32(tmp_path):
    """Oracle: result files written here by hand, whose comparison is counted by hand: for the
    int8 variant image b goes from (0, 4) to (4, 3): top-1 changes, cosine 12/(4*5) = 0.6, difference
    4; image a is unchanged (cosine 1). So: agreement 50%, cosine mean 0.8, min 0.6, max diff 4."""
    from mocoinfer.atomic import write_json
    from mocoinfer.formats import write_result
    from mocoinfer.sweep import markdown

    logits = {"onnxruntime": [[3.0, 0.0], [0.0, 4.0]], "onnxruntime-int8": [[3.0, 0.0], [4.0, 3.0]]}
    precision = {"onnxruntime": "fp32", "onnxruntime-int8": "int8"}
    for variant, rows in logits.items():
        (tmp_path / variant / "bs1").mkdir(parents=True)
        write_json(str(tmp_path / variant / "bs1" / "summary.json"),
                   {"batch_size": 1, "throughput_images_per_s": 10.0, "precision": precision[variant]})
        out = tmp_path / variant / "accuracy" / "dumpOutput_device0"
        out.mkdir(parents=True)
        for name, row in zip(("a.bin", "b.bin"), rows):
            write_result(str(out), name, np.asarray(row, dtype=np.float32), "txt")
    table = markdown(str(tmp_path))
    assert "| onnxruntime-int8 | int8 | 50.00% | 0.80000 / 0.60000 | 4 | 2 |" in table
    assert "| onnxruntime | fp32 | 100.00% | 1.00000 / 1.00000 | 0 | 2 |" in table

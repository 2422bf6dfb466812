"""int8 variant: pthtar2onnx.py --quantize int8 and mocoinfer.quantize.

Oracles: PyTorch (the stand-in checkpoint's own logits) for the int8 model's top-1 on the demo's
images; torchvision's ToTensor + Normalize for decoding uint8 calibration files; ONNX Runtime's
float model for the comparison figures (recomputed here with plain numpy).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch

import pthtar2onnx
from mocoinfer.cli import run_main
from mocoinfer.errors import UserError
from mocoinfer.quantize import (
    FLOAT_SAMPLE_BYTES,
    compare_outputs,
    int8_output_name,
    load_sample,
    quantize_int8,
)

N_IMAGES = 6


def _transforms():
    from torchvision import transforms

    crop = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
    norm = transforms.Compose([transforms.ToTensor(),
                               transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    return crop, norm


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from mocoinfer.demo import make_sample_images

    return make_sample_images(str(tmp_path_factory.mktemp("val")), N_IMAGES)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, images):
    """A ResNet-18 stand-in fitted to the demo's images (so their top-1 is well separated), its
    checkpoint, the images' float32 .bin files (torchvision's transform) and the float export."""
    from PIL import Image

    from mocoinfer.demo import fit_classifier, make_standin_checkpoint, standin_model
    from mocoinfer.pth2onnx import export_checkpoint

    work = tmp_path_factory.mktemp("int8")
    paths = images
    # bilinear: the transform the .bin files below are made with (torchvision's Resize default)
    model = fit_classifier(standin_model(seed=0, arch="resnet18", calibration_batches=1, batch_size=2), paths,
                           interpolation="bilinear")
    ckpt = make_standin_checkpoint(str(work / "model_lincls_best.pth.tar"), arch="resnet18", model=model)
    crop, norm = _transforms()
    prep = work / "prep"
    prep.mkdir()
    tensors = []
    for p in paths:
        t = norm(crop(Image.open(p).convert("RGB")))
        t.numpy().tofile(str(prep / (os.path.basename(p).split(".")[0] + ".bin")))
        tensors.append(t)
    onnx_path = str(work / "moco-v2-bs2.onnx")
    export_checkpoint(ckpt, onnx_path, batch_size=2)
    with torch.no_grad():
        logits = model.eval()(torch.stack(tensors)).numpy()
    return {"work": work, "ckpt": ckpt, "prep": str(prep), "onnx": onnx_path, "paths": paths, "logits": logits,
            "inputs": torch.stack(tensors).numpy()}


def _ort(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + 2]})[0] for i in range(0, len(x), 2)])


@pytest.mark.slow
def test_int8_export_agrees_with_pytorch_on_every_demo_image(demo, tmp_path, capsys, monkeypatch):
    """Without --output both models are kept under the default names. The int8 file's top-1 matches
    PyTorch's float model on each image; the printed cosine and max difference are the ones numpy
    computes from the two outputs."""
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "moco-v2-bs2.onnx")
    code = run_main(pthtar2onnx.main,
                    ["2", demo["ckpt"], "--quantize", "int8", "--calibration", demo["prep"],
                     "--calibration-method", "minmax"])
    text = capsys.readouterr().out
    assert code == 0
    assert sorted(os.listdir(tmp_path)) == ["moco-v2-bs2-int8.onnx", "moco-v2-bs2.onnx"]
    int8 = str(tmp_path / "moco-v2-bs2-int8.onnx")
    assert os.path.isfile(int8) and os.path.getsize(int8) < os.path.getsize(out) / 2  # int8 weights
    got = _ort(int8, demo["inputs"])
    assert (got.argmax(1) == demo["logits"].argmax(1)).all()
    stats = compare_outputs(_ort(out, demo["inputs"]), got)
    assert f"top-1 agreement {stats['top1_agreement']:.1%}" in text
    assert f"cosine mean {stats['mean_cosine']:.4f}" in text
    assert f"max abs diff {stats['max_abs_diff']:.3g}" in text
    assert stats["max_abs_diff"] > 0 and stats["mean_cosine"] > 0.98  # really quantized, and close
    import onnx

    ops = {n.op_type for n in onnx.load(int8).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format, as asked of ORT


@pytest.mark.slow
def test_int8_output_name_given_gets_the_int8_model(demo, tmp_path, capsys, monkeypatch):
    """`--quantize int8 --output m_int8.onnx` writes the int8 model to m_int8.onnx, and only that:
    the float model it is made from lives in a temporary folder that is gone afterwards. Oracles:
    onnx's node list (QuantizeLinear/DequantizeLinear = int8, QDQ), PyTorch's top-1 on each image,
    and ONNX Runtime on the fixture's float export of the same checkpoint for the printed cosine."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = str(out_dir / "m_int8.onnx")
    code = run_main(pthtar2onnx.main, ["2", demo["ckpt"], "--output", out, "--quantize", "int8",
                                       "--calibration", demo["prep"]])
    text = capsys.readouterr().out
    assert code == 0
    assert os.listdir(out_dir) == ["m_int8.onnx"] and os.listdir(temp) == []
    import onnx

    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    got = _ort(out, demo["inputs"])
    assert (got.argmax(1) == demo["logits"].argmax(1)).all()
    stats = compare_outputs(_ort(demo["onnx"], demo["inputs"]), got)
    assert f"wrote {out} (int8)" in text and f"cosine mean {stats['mean_cosine']:.4f}" in text
    assert "not kept" in text


@pytest.mark.slow
def test_below_floor_is_refused_and_writes_nothing(demo, tmp_path):
    """A floor above what int8 reaches (cosine 0.999999: int8 logits differ from float, as the
    test above measures) is refused, and no int8 file or temporary is left."""
    out = str(tmp_path / "m-int8.onnx")
    with pytest.raises(UserError, match="refused.*below the floor"):
        quantize_int8(demo["onnx"], demo["prep"], output=out, min_cosine=0.999999)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("case", ["missing", "empty", "wrong-size"])
def test_bad_calibration_folder_is_a_one_line_error(case, tmp_path, capsys):
    """Oracle: the folder as made here; the error names the folder or the bad file, and comes
    before the export (no float or int8 file; the checkpoint is never opened)."""
    calib = tmp_path / "calib"
    if case != "missing":
        calib.mkdir()
    if case == "wrong-size":
        (calib / "a.bin").write_bytes(b"\0" * (FLOAT_SAMPLE_BYTES - 4))
    code = run_main(pthtar2onnx.main,
                    ["2", str(tmp_path / "never-read.pth.tar"), "--output", str(tmp_path / "m.onnx"),
                     "--quantize", "int8", "--calibration", str(calib)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(calib / "a.bin") in err if case == "wrong-size" else str(calib) in err
    assert sorted(os.listdir(tmp_path)) == ([] if case == "missing" else ["calib"])


def test_quantize_needs_calibration(capsys):
    with pytest.raises(SystemExit) as exc:
        pthtar2onnx.parse_args(["1", "x.pth.tar", "--quantize", "int8"])
    assert exc.value.code == 2 and "--calibration" in capsys.readouterr().err


@pytest.mark.slow
def test_uint8_calibration_file_decodes_as_torchvision(images, tmp_path):
    """Oracle: torchvision's ToTensor + Normalize of the same cropped pixels."""
    from PIL import Image

    crop, norm = _transforms()
    img = crop(Image.open(images[0]).convert("RGB"))
    path = tmp_path / "u8.bin"
    np.asarray(img, dtype=np.uint8).tofile(str(path))
    np.testing.assert_allclose(load_sample(str(path)), norm(img).numpy(), rtol=0, atol=1e-6)


def test_int8_output_name():
    assert int8_output_name("w/moco-v2-bs16.onnx") == "w/moco-v2-bs16-int8.onnx"


def test_compare_outputs_by_hand():
    """Hand count: rows 0 agree, row 1 flips; cosines 1 and 0; max diff 2."""
    ref = np.array([[1.0, 0.0], [0.0, 2.0]])
    got = np.array([[2.0, 0.0], [2.0, 0.0]])
    c = compare_outputs(ref, got)
    assert c["top1_agreement"] == 0.5 and c["min_cosine"] == 0.0 and c["mean_cosine"] == 0.5
    assert c["max_abs_diff"] == 2.0

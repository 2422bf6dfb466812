"""run_om_infer.py on uint8 files: host normalisation for a float32 model, as-is for a uint8 model.

Oracles: the float32 `.bin` files that preprocessing writes from the same images (themselves
bit-identical to torchvision's transform, tests/test_preprocess.py), so a float model must give
the same bits on the uint8 files; torchvision's `to_tensor` + `normalize` for the host
normalisation of random pixels; PyTorch (the export tolerance) for the uint8-input ONNX model.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from mocoinfer.errors import UserError
from mocoinfer.formats import read_result
from mocoinfer.runner import run_inference
from mocoinfer.transforms import normalize_batch
from tests.tiny_model import tiny_net

N_IMAGES = 6
ATOL, RTOL = 1e-4, 1e-3  # the export check's bound: max|ort - torch| <= ATOL + RTOL * max|torch|


def _tiny_net():
    return tiny_net()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The demo's sample images preprocessed both ways; a tiny float model (fixed batch 4 and
    dynamic) and its uint8-input export."""
    from mocoinfer.demo import make_sample_images
    from mocoinfer.export import export_model
    from mocoinfer.preprocess import preprocess_folder
    from mocoinfer.uint8_model import export_uint8_model

    root = tmp_path_factory.mktemp("u8")
    make_sample_images(str(root / "val"), N_IMAGES)
    for dtype in ("float32", "uint8"):
        preprocess_folder(str(root / "val"), str(root / dtype), workers=1, progress=False, dtype=dtype)
    net = _tiny_net()
    export_model(net, str(root / "tiny-bs4.onnx"), batch_size=4, verify=False)
    export_model(net, str(root / "tiny-dyn.onnx"), batch_size=1, dynamic=True, verify=False)
    export_uint8_model(net, str(root / "tiny-u8-dyn.onnx"), dynamic=True, verify=False)
    names = sorted(n[:-4] for n in os.listdir(root / "float32") if n.endswith(".bin"))
    return {"root": root, "f32": str(root / "float32"), "u8": str(root / "uint8"), "names": names,
            "fixed": str(root / "tiny-bs4.onnx"), "dyn": str(root / "tiny-dyn.onnx"),
            "u8model": str(root / "tiny-u8-dyn.onnx")}


def _results(out, names, fmt="bin"):
    folder = os.path.join(out, "dumpOutput_device0")
    return np.stack([read_result(os.path.join(folder, f"{n}_1.{fmt}")) for n in names])


def test_host_normalisation_gives_the_float32_files_bits(work):
    names = work["names"]
    pixels = np.stack([np.fromfile(os.path.join(work["u8"], n + ".bin"), np.uint8).reshape(224, 224, 3)
                       for n in names])
    floats = np.stack([np.fromfile(os.path.join(work["f32"], n + ".bin"), np.float32).reshape(3, 224, 224)
                       for n in names])
    out = np.empty(floats.shape, np.float32)
    assert normalize_batch(pixels, out).tobytes() == floats.tobytes()


def test_host_normalisation_is_torchvisions():
    import torch
    from torchvision.transforms import functional as F

    pixels = np.random.default_rng(3).integers(0, 256, size=(5, 17, 9, 3), dtype=np.uint8)
    got = normalize_batch(pixels, np.empty((5, 3, 17, 9), np.float32))
    want = torch.stack([F.normalize(F.to_tensor(p), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
                        for p in pixels]).numpy()
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("model,bs", [("fixed", None), ("dyn", 4), ("dyn", 1)])
def test_float_model_on_uint8_files_equals_its_results_on_float32_files(work, tmp_path, model, bs):
    """Bit for bit, at a fixed batch with padding and at free batch sizes."""
    runs = {}
    for kind in ("f32", "u8"):
        out = str(tmp_path / kind)
        s = run_inference(work[model], work[kind], out, batch_size=bs, outfmt="bin", progress=False)
        assert s["result_files"] == N_IMAGES
        runs[kind] = (_results(out, work["names"]), s)
    assert runs["u8"][0].tobytes() == runs["f32"][0].tobytes()
    assert runs["u8"][1]["input_files"] == "uint8 pixels, normalised on the host"
    assert runs["f32"][1]["input_files"] == "float32, as the model takes them"


def test_uint8_model_agrees_with_the_float_model(work, tmp_path):
    run_inference(work["dyn"], work["f32"], str(tmp_path / "f"), batch_size=2, outfmt="bin", progress=False)
    s = run_inference(work["u8model"], work["u8"], str(tmp_path / "u"), batch_size=4, outfmt="bin",
                      progress=False)
    assert s["input_files"] == "uint8, as the model takes them" and s["padded_images"] == 0
    ref, got = _results(str(tmp_path / "f"), work["names"]), _results(str(tmp_path / "u"), work["names"])
    np.testing.assert_allclose(got, ref, atol=ATOL + RTOL * float(np.abs(ref).max()), rtol=0)
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_a_mix_of_uint8_and_float32_files_is_refused_naming_one_of_each(work, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(work["f32"], mixed)
    name = work["names"][3]
    shutil.copy(os.path.join(work["u8"], name + ".bin"), mixed / (name + ".bin"))
    with pytest.raises(UserError) as err:
        run_inference(work["dyn"], str(mixed), str(tmp_path / "o"), progress=False)
    msg = str(err.value)
    assert msg.startswith(str(mixed / (name + ".bin"))) and str(mixed / (work["names"][0] + ".bin")) in msg
    assert "one kind of file" in msg and not (tmp_path / "o").exists()


def test_uint8_model_refuses_float32_files(work, tmp_path):
    with pytest.raises(UserError, match=r"602112 bytes, but .*tiny-u8-dyn.onnx \(input uint8 224x224x3\) "
                                        r"takes 150528 bytes per sample$"):
        run_inference(work["u8model"], work["f32"], str(tmp_path / "o"), progress=False)


def test_benchmark_width_and_height_on_the_uint8_model_read_its_nhwc_input(work, tmp_path):
    """-input_width=224 -input_height=224 (expect_hw) on the uint8-input ONNX model, whose input is
    224x224x3: accepted, and the results are those of the same run without the check (oracle);
    225x224 is refused before any result is written, and leaves no folder."""
    ref = run_inference(work["u8model"], work["u8"], str(tmp_path / "ref"), batch_size=2, outfmt="bin",
                        progress=False)
    s = run_inference(work["u8model"], work["u8"], str(tmp_path / "hw"), batch_size=2, outfmt="bin",
                      progress=False, expect_hw=(224, 224))
    assert s["result_files"] == ref["result_files"] == N_IMAGES
    got, want = _results(str(tmp_path / "hw"), work["names"]), _results(str(tmp_path / "ref"), work["names"])
    assert got.tobytes() == want.tobytes()
    with pytest.raises(UserError, match=r"^-input_width=225 -input_height=224 do not match .*its image is "
                                        r"224x224 \(NHWC\)$"):
        run_inference(work["u8model"], work["u8"], str(tmp_path / "bad"), progress=False, expect_hw=(225, 224))
    # The folder is made and locked before the model loads; the refused run wrote no result and
    # removes the folders it made (issue 21 item 7).
    assert not os.path.lexists(tmp_path / "bad")

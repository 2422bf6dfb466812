"""Stage 1 (pthtar2onnx.py): checkpoint shapes, graph interface, verification and every error case.

Oracle: PyTorch. Each exported graph is run here with ONNX Runtime and compared with the
torchvision model built from the same checkpoint, independently of the export's own check.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import pthtar2onnx
from mocoinfer import export as export_mod
from mocoinfer.checkpoint import build_model, load_checkpoint
from mocoinfer.cli import run_main
from mocoinfer.demo import make_standin_checkpoint, standin_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def r50_ckpt(tmp_path_factory):
    """The guide's model: a stand-in ResNet-50 checkpoint in main_lincls.py's exact layout."""
    return make_standin_checkpoint(str(tmp_path_factory.mktemp("r50") / "model_lincls_best.pth.tar"), seed=1)


@pytest.fixture(scope="module")
def r18_model():
    # ResNet-18 keeps the many checkpoint-shape cases fast; the loader treats every ResNet alike.
    return standin_model(seed=2, arch="resnet18", calibration_batches=1, batch_size=2)


def _state(model, prefix=""):
    return {prefix + k: v.clone() for k, v in model.state_dict().items()}


def _ort_vs_torch(onnx_path, model, batch):
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"actual_input_1": x.numpy()})[0]
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    return got, ref


def _dims(value_info):
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value_info.type.tensor_type.shape.dim]


def _run(argv, capsys):
    code = run_main(pthtar2onnx.main, argv)
    return code, capsys.readouterr()


# --------------------------------------------------------------------------- the stand-in checkpoint

@pytest.mark.slow
def test_standin_checkpoint_has_main_lincls_layout(r50_ckpt):
    """Oracle: the dict MoCo's main_lincls.py saves (save_checkpoint call), read back weights_only."""
    ckpt = torch.load(r50_ckpt, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"epoch", "arch", "state_dict", "best_acc1", "optimizer"}
    assert ckpt["arch"] == "resnet50"
    assert isinstance(ckpt["best_acc1"], torch.Tensor) and ckpt["best_acc1"].dim() == 0
    assert all(k.startswith("module.") for k in ckpt["state_dict"])
    assert "module.fc.weight" in ckpt["state_dict"] and ckpt["state_dict"]["module.fc.weight"].shape == (1000, 2048)
    # Only the classifier is optimised in linear evaluation: two parameters with momentum buffers.
    assert ckpt["optimizer"]["param_groups"][0]["params"] == [0, 1]
    assert set(ckpt["optimizer"]["state"]) == {0, 1}
    # BatchNorm statistics are measured, not left at their 0/1 initial values.
    sd = ckpt["state_dict"]
    mean, var = sd["module.bn1.running_mean"], sd["module.bn1.running_var"]
    assert mean.abs().max() > 1e-3 and (var - 1).abs().max() > 1e-2
    assert (sd["module.layer4.2.bn3.weight"] - 1).abs().max() > 1e-2


def test_standin_is_deterministic_per_seed(tmp_path):
    a = standin_model(seed=5, arch="resnet18", calibration_batches=1, batch_size=2).state_dict()
    b = standin_model(seed=5, arch="resnet18", calibration_batches=1, batch_size=2).state_dict()
    c = standin_model(seed=6, arch="resnet18", calibration_batches=1, batch_size=2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])
    assert not torch.equal(a["bn1.running_var"], c["bn1.running_var"])


# --------------------------------------------------------------------------- the guide's command forms

@pytest.mark.slow
@pytest.mark.parametrize("form", ["positional", "flags"])
def test_guide_command_forms_write_verified_fixed_batch_graph(form, r50_ckpt, tmp_path):
    """Both guide forms, as real processes in the working folder; oracle: PyTorch via ONNX Runtime."""
    bs = 1 if form == "positional" else 2
    args = [str(bs), r50_ckpt] if form == "positional" else ["--bs", str(bs), "--weight", r50_ckpt]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "pthtar2onnx.py"), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / f"moco-v2-bs{bs}.onnx"
    assert out.is_file()
    _assert_limit_is_printed_with_its_formula(proc.stdout)
    graph = onnx.load(str(out))
    assert graph.opset_import[0].version == 11
    assert [i.name for i in graph.graph.input] == ["actual_input_1"]
    assert [o.name for o in graph.graph.output] == ["output1"]
    assert _dims(graph.graph.input[0]) == [bs, 3, 224, 224]
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _dims(graph.graph.output[0]) == [bs, 1000]
    got, ref = _ort_vs_torch(str(out), build_model(r50_ckpt), bs)
    np.testing.assert_allclose(got, ref, atol=1e-3, rtol=0)
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []  # no temporary left


def _assert_limit_is_printed_with_its_formula(stdout):
    """Oracle: the check's definition, max|ort - torch| <= ATOL + RTOL * max|torch|, recomputed from
    the printed figures (to the two and three significant digits they are printed with)."""
    m = re.search(r"max abs diff (\S+) \(limit (\S+) = (\S+) \+ (\S+) x max\|torch\| (\S+)\)", stdout)
    assert m, stdout
    diff, limit, atol, rtol, scale = map(float, m.groups())
    assert (atol, rtol) == (export_mod.ATOL, export_mod.RTOL)
    assert limit == pytest.approx(atol + rtol * scale, rel=0.06) and diff <= limit


def test_dynamic_export_runs_at_other_batch_sizes(r18_model, tmp_path, capsys):
    ckpt = str(tmp_path / "r18.pth.tar")
    torch.save({"arch": "resnet18", "state_dict": _state(r18_model, "module.")}, ckpt)
    out = str(tmp_path / "dyn.onnx")
    code, io = _run([ckpt, "--bs", "2", "--dynamic", "--output", out], capsys)
    assert code == 0, io.err
    assert "fixed-batch models more accurate and faster" in io.err
    assert "batch sizes 2, 3" in io.out
    _assert_limit_is_printed_with_its_formula(io.out)
    dims = _dims(onnx.load(out).graph.input[0])
    assert isinstance(dims[0], str) and dims[1:] == [3, 224, 224]
    got, ref = _ort_vs_torch(out, r18_model, 3)
    np.testing.assert_allclose(got, ref, atol=1e-3, rtol=0)


# --------------------------------------------------------------------------- checkpoint shapes

@pytest.mark.parametrize("shape", ["main_lincls_prefixed", "main_lincls_plain", "bare_state_dict", "bare_prefixed"])
def test_every_checkpoint_shape_exports_the_same_model(shape, r18_model, tmp_path, capsys):
    """Oracle: PyTorch on the model the weights came from."""
    prefix = "module." if shape.endswith("prefixed") else ""
    state = _state(r18_model, prefix)
    obj = state if shape.startswith("bare") else {"epoch": 1, "arch": "resnet18", "state_dict": state}
    ckpt = str(tmp_path / "ckpt.pth.tar")
    torch.save(obj, ckpt)
    out = str(tmp_path / "m.onnx")
    argv = ["1", ckpt, "--output", out] + (["--arch", "resnet18"] if shape.startswith("bare") else [])
    code, io = _run(argv, capsys)
    assert code == 0, io.err
    got, ref = _ort_vs_torch(out, r18_model, 1)
    np.testing.assert_allclose(got, ref, atol=1e-3, rtol=0)


@pytest.mark.slow
def test_arch_from_checkpoint_and_1001_classes(tmp_path):
    model = standin_model(seed=3, arch="resnet18", num_classes=1001, calibration_batches=1, batch_size=2)
    ckpt = str(tmp_path / "c.pth.tar")
    torch.save({"arch": "resnet18", "state_dict": _state(model, "module.")}, ckpt)
    state, arch = load_checkpoint(ckpt)
    assert arch == "resnet18" and "fc.weight" in state
    built = build_model(ckpt)
    assert built.fc.out_features == 1001
    out = str(tmp_path / "c.onnx")
    report = export_mod.export_model(built, out, batch_size=1)
    assert report.max_abs_diff <= report.tolerance
    assert _dims(onnx.load(out).graph.output[0]) == [1, 1001]


# --------------------------------------------------------------------------- errors: message, exit code, nothing left

def _assert_failed(code, io, tmp_path, *needles):
    assert code == 1
    line = io.err.strip()
    assert "\n" not in line, line  # one line, no traceback
    for n in needles:
        assert n in line, line
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".onnx") or ".onnx.tmp" in p]


def test_pretraining_checkpoint_is_explained(tmp_path, capsys, r18_model):
    state = {f"module.encoder_q.{k}": v for k, v in r18_model.state_dict().items()}
    state.update({f"module.encoder_k.{k}": v for k, v in r18_model.state_dict().items()})
    state["module.queue"] = torch.zeros(128, 16)
    ckpt = str(tmp_path / "checkpoint_0199.pth.tar")
    torch.save({"epoch": 200, "arch": "resnet50", "state_dict": state}, ckpt)
    code, io = _run(["1", ckpt], capsys)
    _assert_failed(code, io, tmp_path, ckpt, "MoCo pretraining checkpoint", "main_lincls.py")


def test_wrong_architecture_lists_missing_and_unexpected_keys(tmp_path, capsys, r18_model):
    ckpt = str(tmp_path / "r18.pth.tar")
    torch.save({"arch": "resnet18", "state_dict": _state(r18_model, "module.")}, ckpt)
    code, io = _run(["1", ckpt, "--arch", "resnet50", "--output", str(tmp_path / "x.onnx")], capsys)
    _assert_failed(code, io, tmp_path, "does not match torchvision resnet50", "missing keys: ", "layer1.0.conv3.weight")


def test_mismatched_keys_are_listed(tmp_path, capsys, r18_model):
    state = _state(r18_model, "module.")
    del state["module.fc.bias"]
    state["module.head.weight"] = torch.zeros(3)
    ckpt = str(tmp_path / "bad.pth.tar")
    torch.save({"arch": "resnet18", "state_dict": state}, ckpt)
    code, io = _run(["1", ckpt, "--output", str(tmp_path / "x.onnx")], capsys)
    _assert_failed(code, io, tmp_path, "missing keys: fc.bias", "unexpected keys: head.weight")


def test_unsupported_arch_is_refused(tmp_path, capsys, r18_model):
    ckpt = str(tmp_path / "vit.pth.tar")
    torch.save({"arch": "vit_b_16", "state_dict": _state(r18_model)}, ckpt)
    code, io = _run(["1", ckpt, "--output", str(tmp_path / "x.onnx")], capsys)
    _assert_failed(code, io, tmp_path, "architecture 'vit_b_16' is not supported")


@pytest.mark.parametrize("content,needle", [
    (b"", "not a PyTorch checkpoint"),
    (b"this is a text file\n", "not a PyTorch checkpoint"),
    (bytes(range(256)) * 4, "not a PyTorch checkpoint"),
])
def test_not_a_checkpoint(content, needle, tmp_path, capsys):
    ckpt = tmp_path / "model_lincls_best.pth.tar"
    ckpt.write_bytes(content)
    code, io = _run(["1", str(ckpt), "--output", str(tmp_path / "x.onnx")], capsys)
    _assert_failed(code, io, tmp_path, str(ckpt), needle)


def test_missing_checkpoint_and_folder(tmp_path, capsys):
    code, io = _run(["1", str(tmp_path / "nope.pth.tar"), "--output", str(tmp_path / "x.onnx")], capsys)
    _assert_failed(code, io, tmp_path, "nope.pth.tar: checkpoint not found")
    code, io = _run(["1", str(tmp_path), "--output", str(tmp_path / "x.onnx")], capsys)
    _assert_failed(code, io, tmp_path, "is a folder")


class _Payload:
    """Pickles to a call of os.system: loading it without weights_only would run the command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_arbitrary_unpickling_is_refused_and_nothing_runs(tmp_path, capsys, r18_model):
    marker = tmp_path / "EXECUTED"
    ckpt = str(tmp_path / "evil.pth.tar")
    torch.save({"arch": "resnet18", "state_dict": _state(r18_model), "hook": _Payload(str(marker))}, ckpt)
    code, io = _run(["1", ckpt, "--output", str(tmp_path / "x.onnx")], capsys)
    _assert_failed(code, io, tmp_path, "refused", "arbitrary unpickling", "nothing in it was executed")
    assert not marker.exists()


def test_error_exit_code_from_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "pthtar2onnx.py"), "1", "missing.pth.tar"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "pthtar2onnx.py: error: missing.pth.tar: checkpoint not found"
    assert os.listdir(tmp_path) == []


def test_missing_arguments_give_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        pthtar2onnx.main([])
    assert exc.value.code == 2
    assert "no checkpoint given" in capsys.readouterr().err


# --------------------------------------------------------------------------- the verification catches a bad export

def test_verification_catches_a_corrupted_export(r18_model, tmp_path, monkeypatch):
    """A graph whose classifier weights were altered after export must fail, and leave no file."""
    real_export = export_mod.torch_export

    def corrupting_export(model, path, *args):
        real_export(model, path, *args)
        graph = onnx.load(path)
        for init in graph.graph.initializer:
            if init.name == "fc.weight":
                w = onnx.numpy_helper.to_array(init).copy()
                w[:, :8] += 0.05  # a small, plausible-looking corruption
                init.CopyFrom(onnx.numpy_helper.from_array(w, init.name))
                break
        else:
            raise AssertionError("fc.weight not found among the initializers")
        onnx.save(graph, path)

    monkeypatch.setattr(export_mod, "torch_export", corrupting_export)
    out = tmp_path / "m.onnx"
    with pytest.raises(Exception, match="differs from PyTorch"):
        export_mod.export_model(r18_model, str(out), batch_size=2)
    assert os.listdir(tmp_path) == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_verification_rejects_wrong_interface_names(r18_model, tmp_path):
    path = str(tmp_path / "renamed.onnx")
    torch.onnx.export(r18_model, (torch.randn(1, 3, 224, 224),), path, input_names=["input"],
                      output_names=["output1"], opset_version=11, dynamo=False)
    with pytest.raises(Exception, match="expected input 'actual_input_1'"):
        export_mod.verify_onnx(path, r18_model, [1])


def test_both_forms_must_agree(capsys):
    with pytest.raises(SystemExit) as exc:
        pthtar2onnx.main(["1", "model_lincls_best.pth.tar", "--bs", "2"])
    assert exc.value.code == 2
    assert "batch size given twice with different values (1 and 2)" in capsys.readouterr().err
    # The same value in both forms is accepted.
    args = pthtar2onnx.parse_args(["4", "m.pth.tar", "--bs", "4", "--weight", "m.pth.tar"])
    assert (args.batch_size, args.checkpoint) == (4, "m.pth.tar")


# --------------------------------------------------------------------------- --uint8-input

def _torchvision_pixels(path, interpolation="bilinear"):
    """Oracle for uint8 input: torchvision Resize → CenterCrop, as HWC uint8."""
    from PIL import Image
    from torchvision import transforms as T

    mode = getattr(T.InterpolationMode, interpolation.upper())
    tf = T.Compose([T.Resize(256, interpolation=mode), T.CenterCrop(224)])
    return np.asarray(tf(Image.open(path).convert("RGB")), dtype=np.uint8)


def test_uint8_wrapper_normalises_bit_identically_to_torchvision(r18_model):
    """Oracle: torchvision ToTensor + Normalize(ImageNet) on the same pixels, bit for bit."""
    from PIL import Image
    from torchvision import transforms as T

    from mocoinfer.uint8_model import Uint8Input

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    pixels[1].reshape(-1, 3)[:256] = np.arange(256, dtype=np.uint8)[:, None]  # every value in every channel
    tv = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    expected = torch.stack([tv(Image.fromarray(p)) for p in pixels])
    got = Uint8Input(r18_model).normalize(torch.from_numpy(pixels))
    assert got.dtype == torch.float32 and got.shape == (2, 3, 224, 224)
    assert got.numpy().tobytes() == expected.numpy().tobytes()


@pytest.mark.slow
def test_uint8_input_export_agrees_with_the_float_model_on_the_demo_images(tmp_path, capsys):
    """Oracle: the demo's independent reference path (torchvision transform + PyTorch float model) on
    the demo's images, against ONNX Runtime fed torchvision's uint8 pixels of the same files: max
    difference within the export tolerance and the same top-1 for every image."""
    from mocoinfer.demo import make_demo_inputs, reference_logits

    demo = make_demo_inputs(str(tmp_path / "demo"), n=8)
    out = str(tmp_path / "u8.onnx")
    code, io = _run(["--bs", "4", "--weight", demo["checkpoint"], "--uint8-input", "--output", out], capsys)
    assert code == 0, io.err
    assert "uint8 NHWC input" in io.out and "top-1 agreement 100%" in io.out
    graph = onnx.load(out)
    assert graph.opset_import[0].version == 11
    assert [i.name for i in graph.graph.input] == ["actual_input_1"]
    assert [o.name for o in graph.graph.output] == ["output1"]
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert _dims(graph.graph.input[0]) == [4, 224, 224, 3]
    assert _dims(graph.graph.output[0]) == [4, 1000]
    ops = [n.op_type for n in graph.graph.node]
    assert set(ops[:ops.index("Conv")]) <= {"Transpose", "Cast", "Constant", "Div", "Sub"}
    for op in set(ops):  # every operator is defined at opset 11 (raises otherwise)
        assert onnx.defs.get_schema(op, 11, "").since_version <= 11

    paths = sorted(os.path.join(demo["val_dir"], n) for n in os.listdir(demo["val_dir"]))
    # Both sides bicubic, the demo's (and preprocessing's) default transform.
    ref = reference_logits(build_model(demo["checkpoint"]), paths, "bicubic").numpy()
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    batches = [np.stack([_torchvision_pixels(p, "bicubic") for p in paths[i:i + 4]])
               for i in range(0, len(paths), 4)]
    got = np.concatenate([sess.run(None, {"actual_input_1": batch})[0] for batch in batches])
    tol = export_mod.ATOL + export_mod.RTOL * np.abs(ref).max()
    assert np.abs(got - ref).max() <= tol
    assert (got.argmax(1) == ref.argmax(1)).all()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


@pytest.mark.slow
def test_uint8_input_dynamic_export_and_default_name(r18_model, tmp_path, capsys, monkeypatch):
    """Oracle: PyTorch float model on the float32 preprocessing of the same pixels, at batch 3."""
    from mocoinfer.transforms import EvalTransform

    ckpt = str(tmp_path / "r18.pth.tar")
    torch.save({"arch": "resnet18", "state_dict": _state(r18_model, "module.")}, ckpt)
    monkeypatch.chdir(tmp_path)
    code, io = _run([ckpt, "--bs", "2", "--dynamic", "--uint8-input"], capsys)
    assert code == 0, io.err
    out = tmp_path / "moco-v2-uint8-dynamic.onnx"
    dims = _dims(onnx.load(str(out)).graph.input[0])
    assert isinstance(dims[0], str) and dims[1:] == [224, 224, 3]
    pixels = np.random.default_rng(4).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    floats = np.stack([EvalTransform().to_normalized(p) for p in pixels])
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"actual_input_1": pixels})[0]
    with torch.no_grad():
        ref = r18_model.eval()(torch.from_numpy(floats)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-3, rtol=0)


@pytest.mark.slow
def test_uint8_verification_catches_a_wrong_channel_order(r18_model, tmp_path, monkeypatch):
    """A graph that normalises BGR instead of RGB must fail against the float model, leaving no file."""
    from mocoinfer import uint8_model

    real = uint8_model.Uint8Input.normalize
    monkeypatch.setattr(uint8_model.Uint8Input, "normalize", lambda self, x: real(self, x.flip(-1)))
    with pytest.raises(Exception, match="differs from the float model"):
        uint8_model.export_uint8_model(r18_model, str(tmp_path / "bad.onnx"), batch_size=2)
    assert os.listdir(tmp_path) == []

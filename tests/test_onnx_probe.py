"""The ONNX Runtime backend's probe reads a model's input without `import onnx` (issue 18: that import
costs about 0.45 s of every run_om_infer.py command, ml_dtypes' extension).

Oracle: the probe as it was written with the onnx package (`onnx.load(..., load_external_data=False)`
and `onnx.helper.tensor_dtype_to_np_dtype`), run here in-process; the probe under test runs in a child
Python where onnx is not imported, and must give the same answer for every file, and leave onnx
unimported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _oracle(path):
    """The probe's answer computed with the onnx package itself."""
    try:
        graph = onnx.load(path, load_external_data=False).graph
    except Exception:
        return None
    weights = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1:
        return None
    tensor = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim]
    if len(dims) < 2 or any(d <= 0 for d in dims[1:]):
        return None
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    except (KeyError, TypeError):
        return None
    return [list(dims[1:]), dtype.str, dims[0] or None]


def _model(path, elem, shape, extra_inputs=0, weight_as_input=False):
    x = helper.make_tensor_value_info("x", elem, shape)
    inputs = [x] + [helper.make_tensor_value_info(f"e{i}", elem, shape) for i in range(extra_inputs)]
    inits = []
    nodes = [helper.make_node("Identity", ["x"], ["y"])]
    if weight_as_input:  # an initializer listed among the graph's inputs (older exporters do this)
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [1]))
        inits.append(helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0]))
    y = helper.make_tensor_value_info("y", elem, shape)
    graph = helper.make_graph(nodes, "g", inputs, [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))
    return str(path)


@pytest.fixture
def files(tmp_path):
    out = [
        _model(tmp_path / "float.onnx", TensorProto.FLOAT, [1, 3, 224, 224]),
        _model(tmp_path / "dynamic.onnx", TensorProto.FLOAT, ["batch", 3, 224, 224]),
        _model(tmp_path / "uint8.onnx", TensorProto.UINT8, [4, 224, 224, 3]),
        _model(tmp_path / "fp16.onnx", TensorProto.FLOAT16, [2, 3, 8, 8]),
        _model(tmp_path / "bf16.onnx", TensorProto.BFLOAT16, [2, 3, 8, 8]),  # not a numpy type
        _model(tmp_path / "two.onnx", TensorProto.FLOAT, [1, 3, 8, 8], extra_inputs=1),
        _model(tmp_path / "weights.onnx", TensorProto.FLOAT, [1, 3, 8, 8], weight_as_input=True),
        _model(tmp_path / "flat.onnx", TensorProto.FLOAT, [5]),
    ]
    (tmp_path / "text.onnx").write_text("not a model\n")
    good = (tmp_path / "float.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(good[: len(good) // 2])
    (tmp_path / "empty.onnx").write_bytes(b"")
    return out + [str(tmp_path / n) for n in ("text.onnx", "cut.onnx", "empty.onnx")]


def test_probe_without_onnx_equals_the_onnx_package(files):
    script = (
        "import json, sys\n"
        "from mocoinfer.backends.onnxruntime import OrtBackend\n"
        "out = []\n"
        "for path in sys.argv[1:]:\n"
        "    p = OrtBackend.probe(path)\n"
        "    out.append(None if p is None else [list(p.shape), p.dtype.str, p.batch_size])\n"
        "print(json.dumps({'probes': out, 'onnx_imported': 'onnx' in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script] + files, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    want = [_oracle(f) for f in files]
    assert got["probes"] == want
    # Only the bfloat16 model needed onnx.helper (numpy has no bfloat16): every other answer came
    # without the package; the child imported it once, for that one file.
    assert want[4] is not None and want[0] == [[3, 224, 224], "<f4", 1] and want[1][2] is None
    assert got["onnx_imported"] is True


def test_a_plain_probe_leaves_onnx_unimported(files):
    script = ("import sys\nfrom mocoinfer.backends.onnxruntime import OrtBackend\n"
              "p = OrtBackend.probe(sys.argv[1])\nprint(p.shape, 'onnx' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", script, files[0]], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["(3,", "224,", "224)", "False"]


def test_in_a_process_that_imported_onnx_the_package_reads_it(files):
    """Where onnx is already imported (the export, the tests), the probe uses it as before."""
    from mocoinfer.backends.onnxruntime import OrtBackend

    assert "onnx" in sys.modules
    for f in files:
        p = OrtBackend.probe(f)
        assert (None if p is None else [list(p.shape), p.dtype.str, p.batch_size]) == _oracle(f)

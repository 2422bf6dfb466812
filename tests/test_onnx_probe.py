"""The runner's ONNX probe reads a model's input from the protobuf wire format (backends/onnxwire.py)
exactly as the onnx package reads it.

Oracle: `probe_with_onnx`, the probe by `onnx.load` (the onnx package's own protobuf parser) and
`onnx.helper.tensor_dtype_to_np_dtype`, on models built with onnx.helper that cover each branch:
free and fixed batch, named and missing dimensions, uint8 NHWC and float16 inputs, initializers
also listed as inputs (older exporters), two inputs, a sequence input, types numpy lacks
(bfloat16), and files that are not ONNX at all or are cut short.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mocoinfer.backends.onnxruntime import WIRE_DTYPES, OrtBackend, probe_with_onnx

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model(inputs, initializers=(), extra_inputs=(), output_dims=("n", 4)):
    nodes = [helper.make_node("Identity", [inputs[0].name], ["y"])]
    graph = helper.make_graph(nodes, "g", list(inputs) + list(extra_inputs),
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(output_dims))],
                              list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _cases():
    w = numpy_helper.from_array(np.ones((3, 4), dtype=np.float32), "w")
    t = helper.make_tensor_value_info
    seq = helper.make_value_info("s", helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, [2])))
    return {
        "free batch": _model([t("x", TensorProto.FLOAT, ["batch", 3, 224, 224])]),
        "fixed batch": _model([t("x", TensorProto.FLOAT, [4, 3, 224, 224])]),
        "no batch name": _model([t("x", TensorProto.FLOAT, [None, 3, 224, 224])]),
        "uint8 nhwc": _model([t("x", TensorProto.UINT8, [1, 224, 224, 3])]),
        "float16": _model([t("x", TensorProto.FLOAT16, ["n", 3, 8, 8])]),
        "int64": _model([t("x", TensorProto.INT64, ["n", 5])]),
        "bool": _model([t("x", TensorProto.BOOL, ["n", 5])]),
        "bfloat16": _model([t("x", TensorProto.BFLOAT16, ["n", 3, 8, 8])]),
        "string": _model([t("x", TensorProto.STRING, ["n", 5])]),
        "initializer as input": _model([t("x", TensorProto.FLOAT, ["n", 3, 4, 4])], [w],
                                       [t("w", TensorProto.FLOAT, [3, 4])]),
        "two inputs": _model([t("x", TensorProto.FLOAT, ["n", 3]), t("z", TensorProto.FLOAT, ["n", 3])]),
        "named inner dim": _model([t("x", TensorProto.FLOAT, ["n", "c", 4])]),
        "zero inner dim": _model([t("x", TensorProto.FLOAT, ["n", 0, 4])]),
        "one dim": _model([t("x", TensorProto.FLOAT, ["n"])]),
        "no shape": _model([t("x", TensorProto.FLOAT, None)]),
        "sequence": _model([seq]),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_wire_probe_equals_onnx_probe(case, tmp_path):
    path = str(tmp_path / "m.onnx")
    onnx.save(_cases()[case], path)
    ours, oracle = OrtBackend.probe(path), probe_with_onnx(path)
    assert ours == oracle
    if oracle is not None:
        assert np.dtype(ours.dtype) == np.dtype(oracle.dtype)


@pytest.mark.parametrize("content", [b"", b"not a model at all\n", b"\x08\x07\x3a\x05\x0a\x03abc", b"\xff" * 64])
def test_files_that_are_not_models(content, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(content)
    assert OrtBackend.probe(str(path)) == probe_with_onnx(str(path))


def test_truncated_model_is_read_as_onnx_reads_it(tmp_path):
    data = _cases()["free batch"].SerializeToString()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 3):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(data[:cut])
        assert OrtBackend.probe(str(path)) == probe_with_onnx(str(path)), cut


def test_element_types_map_as_onnx_maps_them():
    """Each element type the wire reader maps itself gives onnx.helper's numpy dtype."""
    for code, dtype in WIRE_DTYPES.items():
        assert np.dtype(dtype) == np.dtype(helper.tensor_dtype_to_np_dtype(code)), code


def test_probe_does_not_import_onnx(tmp_path):
    """The point of the wire reader: a float32 model is probed without the onnx package."""
    path = str(tmp_path / "m.onnx")
    onnx.save(_cases()["free batch"], path)
    code = ("import sys; from mocoinfer.backends.onnxruntime import OrtBackend; "
            f"p = OrtBackend.probe({path!r}); print(p.shape, p.batch_size, 'onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["(3,", "224,", "224)", "None", "False"]

"""An ONNX model's graph inputs read straight from the protobuf wire format, without `import onnx`.

The runner probes a model's input before any runtime starts (`OrtBackend.probe`). Importing the
onnx package for that costs about half a second (its ml_dtypes extension alone, measured on the
2-core test VM), a tenth of a whole 20,000-image run at the host side's speed. The probe needs
four things: the names of the initializers, and each graph input's name, element type and
dimensions, all plain fields of `ModelProto.graph` (onnx.proto: GraphProto.initializer = 5,
.input = 11; TensorProto.name = 8; ValueInfoProto.name = 1, .type = 2; TypeProto.tensor_type
= 1; TypeProto.Tensor.elem_type = 1, .shape = 2; TensorShapeProto.dim = 1; Dimension.dim_value
= 1, .dim_param = 2).

`graph_inputs` gives them, or None whenever the file holds anything it does not read the way
protobuf does (a repeated singular message, which protobuf would merge; a group; a truncated
field): the caller then asks the onnx package, so what a probe says never depends on which
reader ran.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Set, Tuple

# protobuf wire types
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class WireInput(NamedTuple):
    """One graph input: its name, element type (onnx TensorProto.DataType) and dimensions, each
    `(dim_value, has_dim_value)`."""

    name: str
    elem_type: int
    dims: Tuple[Tuple[int, bool], ...]


class _Malformed(Exception):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview, pos: int, end: int):
    """(field number, wire type, value) of each field in buf[pos:end]; a length-delimited value
    is its (start, end) span."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _Malformed
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
        elif wire == _BYTES:
            n, pos = _varint(buf, pos, end)
            value, pos = (pos, pos + n), pos + n
        elif wire == _FIXED64:
            value, pos = None, pos + 8
        elif wire == _FIXED32:
            value, pos = None, pos + 4
        else:  # groups: not in onnx.proto
            raise _Malformed
        if pos > end:
            raise _Malformed
        yield field, wire, value


def _only(buf: memoryview, span: Tuple[int, int], wanted: Dict[int, int]) -> Dict[int, object]:
    """The fields of one message that `wanted` names (field → wire type), each at most once."""
    seen: Dict[int, object] = {}
    for field, wire, value in _fields(buf, span[0], span[1]):
        if field in wanted:
            if wire != wanted[field] or (field in seen and wire == _BYTES):
                raise _Malformed  # another type, or a singular message/string given twice
            seen[field] = value
    return seen


def _text(buf: memoryview, span) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8")


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _dims(buf: memoryview, shape_span) -> Tuple[Tuple[int, bool], ...]:
    dims = []
    for field, wire, value in _fields(buf, shape_span[0], shape_span[1]):
        if field != 1:
            continue
        if wire != _BYTES:
            raise _Malformed
        dim_value, has_value = 0, False
        # Dimension's oneof {dim_value, dim_param}: the last one on the wire is the one set.
        for f, w, v in _fields(buf, value[0], value[1]):
            if f == 1:
                if w != _VARINT:
                    raise _Malformed
                dim_value, has_value = _signed64(v), True
            elif f == 2:
                if w != _BYTES:
                    raise _Malformed
                dim_value, has_value = 0, False
        dims.append((dim_value, has_value))
    return tuple(dims)


def _input(buf: memoryview, span) -> WireInput:
    info = _only(buf, span, {1: _BYTES, 2: _BYTES})
    name = _text(buf, info[1]) if 1 in info else ""
    elem_type, dims = 0, ()
    if 2 in info:
        type_fields = _only(buf, info[2], {1: _BYTES})
        if 1 in type_fields:
            tensor = _only(buf, type_fields[1], {1: _VARINT, 2: _BYTES})
            elem_type = _signed64(tensor.get(1, 0)) & 0xFFFFFFFF  # an int32 field
            if elem_type >= 1 << 31:
                elem_type -= 1 << 32
            if 2 in tensor:
                dims = _dims(buf, tensor[2])
    return WireInput(name, elem_type, dims)


def graph_inputs(data: bytes) -> Optional[Tuple[Set[str], List[WireInput]]]:
    """(initializer names, graph inputs in order) of a serialized ModelProto, or None when the
    bytes hold anything this reader does not read exactly as protobuf would."""
    buf = memoryview(data)
    try:
        model = _only(buf, (0, len(buf)), {7: _BYTES})
        if 7 not in model:
            return None
        graph = model[7]
        weights: Set[str] = set()
        inputs: List[WireInput] = []
        for field, wire, value in _fields(buf, graph[0], graph[1]):
            if field == 5:
                if wire != _BYTES:
                    raise _Malformed
                tensor = _only(buf, value, {8: _BYTES})
                weights.add(_text(buf, tensor[8]) if 8 in tensor else "")
            elif field == 11:
                if wire != _BYTES:
                    raise _Malformed
                inputs.append(_input(buf, value))
        return weights, inputs
    except (_Malformed, UnicodeDecodeError):
        return None

"""A stand-in for ais_bench's compiled `aclruntime` module, for tests only (never importable from the product).

The real `aclruntime` is the C++ core (ait/components/benchmark/backend) that
`ais_bench.infer.interface.InferSession` wraps; this one models the parts that wrapper calls, with
their names and conventions from the real source:
- `InferenceSession(model_path, device_id, options)` (PyInferenceSession.cpp, RegistInferenceSession);
  a failure is a `RuntimeError`, as pybind11 turns the C++ `std::runtime_error` into;
- `get_inputs()` / `get_outputs()`: `tensor_desc` objects with `name`, `datatype` (the `dtype`
  enum, TensorBase.h's TensorDataType codes), `format` (aclFormat), `shape` (a list; -1 on the batch
  axis of a dynamic-batch model, as aclmdlGetInputDims reports it), `size` and `realsize` (bytes
  at the largest batch). The dynamic-batch input `ascend_mbatch_shape_data` is not listed
  (ModelInferenceProcessor::GetModelDescInfo skips dynamicIndex_);
- `set_staticbatch`, `set_dynamic_batchsize` (a batch the model does not list is refused, as
  aclmdlSetDynamicBatchSize refuses it), `get_max_dym_batchsize`;
- `run(output_names, inputs)` with `BaseTensor(address, size)` inputs (InferBaseTensorVector)
  returns one array per output, shaped `(batch, ...)`, in the output's data type;
- `sumary().exec_time_list`: one `(start_ms, end_ms)` pair per execute, milliseconds since the
  session was made (ModelInferenceProcessor::Execute and InitSumaryInfo); `reset_sumaryinfo()`;
- `free_resource()` (PyInferenceSession::FreeResource), `InferenceSession.finalize()`.

A "model file" is either an ONNX file (named `.om` by the tests), run with ONNX Runtime on the
CPU: its input's batch axis is dynamic when it is not a number, with the batch sizes listed in the
ONNX metadata key `dynamic_batch` ("1,2,4"), as `atc --dynamic_batch_size` would list them; an
input whose last axis is 3 (and first is not) reports aclFormat NHWC (1), as an AIPP .om does;
or the JSON model description of tests/fake_acl (inputs and outputs with dims, ACL data type,
`format`, optional `dynamic_batch`), executed as the fake acl executes it:
`output = 2 * (first D input values) + 1` per sample, so one .om runs through both stand-ins.

Test hooks: `CALLS` records every call by name (`"free_resource"`, `"set_dynamic_batchsize"`, ...);
`FAIL["run"] = RuntimeError("...")` raises it from that call (a tuple `(exception, skip)` lets the
first `skip` calls succeed; KeyboardInterrupt works too); `open_sessions()` lists what was made and
not freed; `S.exec_log` holds every exec_time_list pair, across resets; four devices, 0-3. For
worker processes: `FAKE_AIS_BENCH_FAIL="run=2"` arms `FAIL["run"] = (RuntimeError, 2)`, and
`FAKE_AIS_BENCH_REPORT_DIR=<folder>` makes each process write `<folder>/<pid>.json` at exit: the
devices it opened sessions on, and how many sessions it left open.
"""

from __future__ import annotations

import atexit
import ctypes
import enum
import json
import os
import time

import numpy as np

DEVICE_COUNT = 4
DYNAMIC_INPUT = "ascend_mbatch_shape_data"
FAIL: dict = {}
CALLS: list = []


class dtype(enum.IntEnum):
    """TensorBase.h's TensorDataType, registered in Python as `aclruntime.dtype` (PyTensor.cpp)."""

    float32 = 0
    float16 = 1
    int8 = 2
    int32 = 3
    uint8 = 4
    int16 = 6
    uint16 = 7
    uint32 = 8
    int64 = 9
    uint64 = 10
    double = 11
    bool = 12


_NUMPY = {dtype.float32: np.float32, dtype.float16: np.float16, dtype.int8: np.int8, dtype.int32: np.int32,
          dtype.uint8: np.uint8, dtype.int64: np.int64, dtype.double: np.float64}
_ONNX = {"tensor(float)": dtype.float32, "tensor(float16)": dtype.float16, "tensor(uint8)": dtype.uint8,
         "tensor(int8)": dtype.int8, "tensor(int32)": dtype.int32, "tensor(int64)": dtype.int64}


class _State:
    def __init__(self) -> None:
        self.sessions = {}  # id -> device of every session made and not freed
        self.devices_used = set()
        self.calls_by_name = {}
        self.exec_log = []  # every (start_ms, end_ms) any session recorded, never reset


S = _State()


def reset() -> None:
    """Forget all state (a fresh process)."""
    global S
    S = _State()
    FAIL.clear()
    CALLS.clear()
    spec = os.environ.get("FAKE_AIS_BENCH_FAIL", "")
    if spec:
        name, _, skip = spec.partition("=")
        FAIL[name] = (RuntimeError, int(skip or 0))


def open_sessions() -> dict:
    """{session id: device} of every session made and not freed; {} after a clean run."""
    return dict(S.sessions)


def _call(name: str) -> None:
    CALLS.append(name)
    n = S.calls_by_name.get(name, 0)
    S.calls_by_name[name] = n + 1
    rule = FAIL.get(name)
    if rule is not None:
        exc, skip = rule if isinstance(rule, tuple) else (rule, 0)
        if n >= skip:
            if isinstance(exc, type):
                exc = exc(f"stand-in failure of {name}")
            raise exc


class MisuseError(AssertionError):
    """What the real runtime would reject or crash on: fails the test loudly."""


class tensor_desc:
    """PyInferenceSession.cpp RegistTensor: name, datatype, format, shape, realsize, size."""

    def __init__(self, name, datatype, fmt, shape, size) -> None:
        self.name, self.datatype, self.format, self.shape = name, datatype, fmt, list(shape)
        self.size = self.realsize = size


class BaseTensor:
    """PyInferenceSession.cpp RegistTensor: `BaseTensor(buf, size)`, an address and a byte count."""

    def __init__(self, buf: int, size: int) -> None:
        self.buf, self.size = buf, size


class session_options:
    """PyInferenceSession.cpp RegistOptions: loop, log_level, acl_json_path."""

    def __init__(self) -> None:
        self.loop = 1
        self.log_level = 2
        self.acl_json_path = ""


class sumary:
    """PyInferenceSession.cpp RegistInferenceSession: `exec_time_list`, (start, end) in ms."""

    def __init__(self, times) -> None:
        self.exec_time_list = list(times)


def _size(shape, code, batch) -> int:
    dims = [batch if d < 0 else d for d in shape]
    return int(np.prod(dims)) * np.dtype(_NUMPY[code]).itemsize


class _OnnxModel:
    def __init__(self, path: str) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.gears = [int(b) for b in meta["dynamic_batch"].split(",")] if "dynamic_batch" in meta else None
        self.inputs = []
        for spec in self.session.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else -1 for d in spec.shape]
            fmt = 1 if len(shape) == 4 and shape[-1] == 3 and shape[1] != 3 else 0
            self.inputs.append((spec.name, _ONNX[spec.type], fmt, shape))
        self.outputs = [(o.name, _ONNX[o.type], 2, [d if isinstance(d, int) and d > 0 else -1 for d in o.shape])
                        for o in self.session.get_outputs()]
        if any(s[0] < 0 for _, _, _, s in self.inputs) and not self.gears:
            raise RuntimeError(f"{path}: a dynamic batch axis without 'dynamic_batch' metadata is not an .om "
                               "atc could make")

    def execute(self, arrays):
        feeds = {name: a for (name, _, _, _), a in zip(self.inputs, arrays)}
        return self.session.run(None, feeds)


class _JsonModel:
    """tests/fake_acl's model description, executed as fake acl's `_execute` does."""

    def __init__(self, doc: dict) -> None:
        self.gears = doc.get("dynamic_batch")
        self.inputs = [(s["name"], dtype(s.get("dtype", 0)), s.get("format", 0), list(s["dims"]))
                       for s in doc["inputs"]]
        self.outputs = [(s["name"], dtype(s.get("dtype", 0)), 2, list(s["dims"])) for s in doc["outputs"]]

    def execute(self, arrays):
        x = arrays[0]
        x = x.reshape(len(x), -1).astype(np.float32)
        outs = []
        for _, code, _, dims in self.outputs:
            per_sample = int(np.prod(dims[1:]))
            outs.append((2.0 * x[:, :per_sample] + 1.0).astype(_NUMPY[code]).reshape(len(x), *dims[1:]))
        return outs


def _load(path: str):
    if not os.path.isfile(path):
        raise RuntimeError(f"model {path} not found")  # ModelProcess::LoadModelFromFile fails
    with open(path, "rb") as f:
        head = f.read(1)
    if head == b"{":
        with open(path, encoding="utf-8") as f:
            return _JsonModel(json.load(f))
    try:
        return _OnnxModel(path)
    except RuntimeError:
        raise
    except Exception as exc:  # not a model: the real load fails with an ACL error code
        raise RuntimeError(f"load model from file failed: {exc}") from None


class InferenceSession:
    """PyInferenceSession: `InferenceSession(model_path, device_id, options)`."""

    def __init__(self, model_path: str, device_id: int, options=None) -> None:
        _call("InferenceSession")
        if not 0 <= int(device_id) < DEVICE_COUNT:
            raise RuntimeError(f"[error][acl] set device {device_id} failed: invalid device id")
        self._model = _load(model_path)
        self.device_id = int(device_id)
        self._options = options or session_options()
        self._zero = time.perf_counter()  # InitSumaryInfo's zero_point
        self._times = []
        self._batch = None  # None: static; else the dynamic batch set for the next run
        self._freed = False
        S.sessions[id(self)] = self.device_id
        S.devices_used.add(self.device_id)

    def _live(self, call: str) -> None:
        _call(call)
        if self._freed:
            raise MisuseError(f"{call} on a session whose resources were freed")

    def _descs(self, specs, batch):
        return [tensor_desc(name, code, fmt, shape, _size(shape, code, batch)) for name, code, fmt, shape in specs]

    def get_inputs(self):
        self._live("get_inputs")
        return self._descs(self._model.inputs, max(self._model.gears or [1]))

    def get_outputs(self):
        self._live("get_outputs")
        return self._descs(self._model.outputs, max(self._model.gears or [1]))

    def options(self):
        return self._options

    def set_staticbatch(self) -> None:
        self._live("set_staticbatch")
        self._batch = None

    def set_dynamic_batchsize(self, batch) -> None:
        self._live("set_dynamic_batchsize")
        gears = self._model.gears
        if not gears or int(batch) not in gears:
            raise RuntimeError(f"set dynamic batch size {batch} failed: the model's batch sizes are {gears}")
        self._batch = int(batch)

    def get_max_dym_batchsize(self) -> int:
        self._live("get_max_dym_batchsize")
        return max(self._model.gears or [0])

    def run(self, output_names, inputs):
        """InferBaseTensorVector: one BaseTensor per model input, read at its address."""
        self._live("run")
        if len(inputs) != len(self._model.inputs):
            raise RuntimeError(f"{len(inputs)} inputs for a model of {len(self._model.inputs)}")
        if self._model.gears and self._batch is None:
            raise RuntimeError("a dynamic-batch model run without a dynamic batch size set")
        arrays = []
        for tensor, (name, code, _, shape) in zip(inputs, self._model.inputs):
            if not isinstance(tensor, BaseTensor):
                raise MisuseError(f"run takes BaseTensor inputs, got {type(tensor).__name__}")
            batch = self._batch or shape[0]
            want = _size(shape, code, batch)
            if tensor.size != want:  # the runtime checks each input's size against the model's
                raise RuntimeError(f"input {name}: {tensor.size} bytes, the model wants {want} at batch {batch}")
            raw = ctypes.string_at(tensor.buf, tensor.size)
            arrays.append(np.frombuffer(raw, dtype=_NUMPY[code]).reshape(batch, *shape[1:]))
        start = (time.perf_counter() - self._zero) * 1000.0
        outputs = self._model.execute(arrays)
        end = (time.perf_counter() - self._zero) * 1000.0
        self._times.append((start, end))
        S.exec_log.append((start, end))
        return [np.ascontiguousarray(o, dtype=_NUMPY[code]) for o, (_, code, _, _) in zip(outputs, self._model.outputs)]

    def sumary(self):
        self._live("sumary")
        return sumary(self._times)

    def reset_sumaryinfo(self) -> None:
        self._live("reset_sumaryinfo")
        self._times = []

    def free_resource(self) -> None:
        self._live("free_resource")
        self._freed = True
        S.sessions.pop(id(self), None)

    @staticmethod
    def finalize() -> None:
        _call("finalize")


def _report_at_exit() -> None:
    folder = os.environ.get("FAKE_AIS_BENCH_REPORT_DIR")
    if folder and S.devices_used:
        with open(os.path.join(folder, f"{os.getpid()}.json"), "w", encoding="utf-8") as f:
            json.dump({"devices_used": sorted(S.devices_used), "open_sessions": len(S.sessions)}, f)


atexit.register(_report_at_exit)
reset()

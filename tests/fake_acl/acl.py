"""A stand-in for CANN's pyACL `acl` module, for tests only (never importable from the product).

It models what the real module would do to an NPU closely enough to check a caller:
- device and host memory are bytearrays behind integer pointers; `memcpy` copies real bytes in
  the direction its `kind` says, and refuses overruns and wrong directions;
- `util.bytes_to_ptr` and `util.numpy_to_ptr` behave as pyACL's (util/bytes_convert.cpp,
  numpy_convert.cpp): the first takes a `bytes` object only (ValueError otherwise) and returns the
  address of its own buffer, the second an ndarray's data address; neither keeps its argument
  alive. A host-to-device `memcpy` from such an address reads this process's memory there, as the
  runtime would, and records the address in `S.h2d_sources`, so a test can tell whether the copy
  read the caller's array or a temporary copy of it. Handles and the stand-in's own pointers are
  numbers from `HANDLE_BASE` up, above any user-space address, so the two never mix;
- every handle (context, model, desc, dataset, data buffer, allocation) is tracked, so
  `leaks()` lists whatever a caller forgot to release;
- a "model file" is JSON written by the test: inputs and outputs with dims, ACL data type,
  optional aclFormat (`"format"`, default 0 = NCHW; 1 = NHWC for an AIPP-like input, as
  `mdl.get_input_format` reports it) and optional dynamic batch sizes. Executing it computes, per sample,
  `output = 2 * (first D input values) + 1`, D being the output's per-sample element count,
  stored in the output's data type (fp16 rounds), so a test can compute the oracle by hand;
- any call can be made to fail: `FAIL["acl.mdl.execute"] = 507011` makes it return that code
  in its own return convention (an exception instance or class is raised instead; a tuple
  `(code, skip)` lets the first `skip` calls succeed);
- `USE_NEW_API = False` removes `bytes_to_ptr` / `ptr_to_bytes` (old CANN), `True` removes
  `numpy_to_ptr` / `ptr_to_numpy` (CANN >= 7); call `reset()` after changing it.

- `FAIL_DEVICES[id] = code` makes `rt.set_device(id)` return `code` for that id only (a busy or
  broken device among good ones); a child process gets the same from the environment variable
  `FAKE_ACL_FAIL_DEVICES="1=507033,3=507033"`, read at import and by `reset()`.

- four devices, 0-3 (`DEVICE_COUNT`): `rt.set_device` of another id returns 107001 (invalid
  device id), `rt.get_device_count()` gives 4; input data type 4 is uint8 (an AIPP model's input);
- for several worker processes, each with its own state: `FAKE_ACL_FAIL_ON_DEVICE="2:acl.mdl.execute=507011:3"`
  arms `FAIL["acl.mdl.execute"] = (507011, 3)` when `rt.set_device(2)` succeeds (the fourth
  execute on device 2 fails), and `FAKE_ACL_REPORT_DIR=<folder>` makes each process write
  `<folder>/<pid>.json` at exit: the devices it set and its `leaks()` then;
  `FAKE_ACL_EXECUTE_DELAY=<seconds>` makes every execute that slow (to stop a run part-way).

`CALLS` records every call name in order.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import time
import types

import numpy as np

_ACL_NP = {0: np.float32, 1: np.float16, 3: np.int32, 4: np.uint8, 9: np.int64}
DEVICE_COUNT = 4
# Handles and stand-in pointers start here: beyond every user-space address (x86-64 and AArch64
# keep user space below 2**52), so a real host address is never mistaken for one.
HANDLE_BASE = 1 << 62
ACL_ERROR_RT_INVALID_DEVICEID = 107001
NPY_FLOAT32 = 11
NPY_HALF = 23
DYNAMIC_INPUT = "ascend_mbatch_shape_data"

FAIL: dict = {}
FAIL_DEVICES: dict = {}
CALLS: list = []
USE_NEW_API = True

rt = types.SimpleNamespace()
mdl = types.SimpleNamespace()
util = types.SimpleNamespace()


class _State:
    def __init__(self) -> None:
        self.initialized = False
        self.devices = set()
        self.contexts = {}
        self.models = {}
        self.descs = {}
        self.datasets = {}
        self.buffers = {}
        self.device_mem = {}
        self.host_mem = {}
        self.h2d_sources = []  # the host address each host-to-device memcpy read
        self.next_handle = HANDLE_BASE
        self.calls_by_name = {}
        self.devices_used = set()

    def handle(self) -> int:
        self.next_handle += 0x1000
        return self.next_handle


S = _State()


def reset() -> None:
    """Forget all state (a fresh process) and apply USE_NEW_API."""
    global S
    S = _State()
    FAIL.clear()
    FAIL_DEVICES.clear()
    for item in filter(None, os.environ.get("FAKE_ACL_FAIL_DEVICES", "").split(",")):
        dev, _, code = item.partition("=")
        FAIL_DEVICES[int(dev)] = int(code)
    CALLS.clear()
    for name in ("bytes_to_ptr", "ptr_to_bytes", "numpy_to_ptr", "ptr_to_numpy"):
        if hasattr(util, name):
            delattr(util, name)
    if USE_NEW_API:
        util.bytes_to_ptr, util.ptr_to_bytes = _bytes_to_ptr, _ptr_to_bytes
    else:
        util.numpy_to_ptr, util.ptr_to_numpy = _numpy_to_ptr, _ptr_to_numpy


def leaks() -> dict:
    """Everything acquired and not released; {} after a clean teardown."""
    out = {
        "initialized": S.initialized, "devices": sorted(S.devices), "contexts": len(S.contexts),
        "models": len(S.models), "descs": len(S.descs), "datasets": len(S.datasets),
        "buffers": len(S.buffers), "device_mem": len(S.device_mem), "host_mem": len(S.host_mem),
    }
    return {k: v for k, v in out.items() if v}


# --------------------------------------------------------------------------- failure injection

_NO_VALUE = object()


def _api(name: str, convention: str, namespace=None):
    """Register a fake call. convention: 'ret' → returns ret; 'pair' → (value, ret);
    'handle' → value alone, 0 on failure; 'count' → int, 0 on failure; 'dtype' → -1 on failure;
    'name' → '' on failure; 'ptr' → 0 on failure; 'obj' → None on failure."""
    failed = {"ret": None, "pair": None, "handle": 0, "count": 0, "dtype": -1, "name": "", "ptr": 0, "obj": None}

    def wrap(fn):
        def call(*args, **kwargs):
            CALLS.append(name)
            n = S.calls_by_name.get(name, 0)
            S.calls_by_name[name] = n + 1
            rule = FAIL.get(name, _NO_VALUE)
            if rule is not _NO_VALUE:
                code, skip = rule if isinstance(rule, tuple) else (rule, 0)
                if n >= skip:
                    if isinstance(code, BaseException) or (isinstance(code, type)
                                                            and issubclass(code, BaseException)):
                        raise code
                    if convention == "ret":
                        return code
                    if convention == "pair":
                        return None, code
                    return failed[convention]
            return fn(*args, **kwargs)

        call.__name__ = fn.__name__
        attr = name.rsplit(".", 1)[1]
        target = {"rt": rt, "mdl": mdl, "util": util}.get(namespace) if namespace else None
        if target is not None:
            setattr(target, attr, call)
        return call

    return wrap


class AclCallError(RuntimeError):
    """Misuse the real runtime would reject (or crash on); fails the test loudly."""


def _require(cond, message) -> None:
    if not cond:
        raise AclCallError(message)


# --------------------------------------------------------------------------- init, device, context

@_api("acl.init", "ret")
def init(config_path=None):
    if S.initialized:
        return 100002
    S.initialized = True
    return 0


@_api("acl.finalize", "ret")
def finalize():
    if not S.initialized:
        return 100037
    _require(not S.devices, "finalize with a device still set")
    S.initialized = False
    return 0


@_api("acl.rt.set_device", "ret", "rt")
def _set_device(device_id):
    _require(S.initialized, "set_device before init")
    if device_id in FAIL_DEVICES:
        return FAIL_DEVICES[device_id]
    if not 0 <= device_id < DEVICE_COUNT:
        return ACL_ERROR_RT_INVALID_DEVICEID
    S.devices.add(device_id)
    S.devices_used.add(device_id)
    spec = os.environ.get("FAKE_ACL_FAIL_ON_DEVICE", "")
    if spec:
        dev, _, rule = spec.partition(":")
        name, _, code_skip = rule.partition("=")
        code, _, skip = code_skip.partition(":")
        if int(dev) == device_id:
            FAIL[name] = (int(code), int(skip or 0))
    return 0


@_api("acl.rt.get_device_count", "pair", "rt")
def _get_device_count():
    return DEVICE_COUNT, 0


@_api("acl.rt.reset_device", "ret", "rt")
def _reset_device(device_id):
    _require(device_id in S.devices, f"reset_device({device_id}) on a device not set")
    # As the runtime does: resetting a device destroys the contexts still open on it.
    for ctx in [c for c, d in S.contexts.items() if d == device_id]:
        del S.contexts[ctx]
    S.devices.discard(device_id)
    return 0


@_api("acl.rt.create_context", "pair", "rt")
def _create_context(device_id):
    _require(device_id in S.devices, "create_context on a device not set")
    h = S.handle()
    S.contexts[h] = device_id
    return h, 0


@_api("acl.rt.destroy_context", "ret", "rt")
def _destroy_context(ctx):
    _require(ctx in S.contexts, "destroy_context on an unknown context")
    del S.contexts[ctx]
    return 0


@_api("acl.rt.create_stream", "pair", "rt")
def _create_stream():
    return S.handle(), 0


@_api("acl.rt.destroy_stream", "ret", "rt")
def _destroy_stream(stream):
    return 0


# --------------------------------------------------------------------------- memory

def _need_context():
    _require(S.contexts, "device call without a context")


@_api("acl.rt.malloc", "pair", "rt")
def _malloc(size, policy):
    _need_context()
    _require(size > 0 and policy in (0, 1, 2), f"malloc({size}, {policy})")
    h = S.handle()
    S.device_mem[h] = bytearray(size)
    return h, 0


@_api("acl.rt.free", "ret", "rt")
def _free(ptr):
    _require(ptr in S.device_mem, "free of an unknown device pointer")
    _require(not any(b["ptr"] == ptr for b in S.buffers.values()), "free of memory a data buffer still uses")
    del S.device_mem[ptr]
    return 0


@_api("acl.rt.malloc_host", "pair", "rt")
def _malloc_host(size):
    _need_context()
    h = S.handle()
    S.host_mem[h] = bytearray(size)
    return h, 0


@_api("acl.rt.free_host", "ret", "rt")
def _free_host(ptr):
    _require(ptr in S.host_mem, "free_host of an unknown host pointer")
    del S.host_mem[ptr]
    return 0


def _region(ptr, table_names):
    for table in table_names:
        mem = getattr(S, table)
        if ptr in mem:
            return table, mem[ptr]
    raise AclCallError(f"pointer {ptr:#x} is not in {table_names}")


def _host_source(src, count):
    """What a host-to-device copy reads at `src`: a stand-in host buffer, or (an address from
    bytes_to_ptr / numpy_to_ptr / ndarray.ctypes.data) this process's memory itself."""
    S.h2d_sources.append(src)
    if src in S.host_mem:
        return S.host_mem[src]
    _require(isinstance(src, int) and 0 < src < HANDLE_BASE,
             f"host-to-device memcpy from {src!r}: neither host memory nor a host address")
    return ctypes.string_at(src, count)


@_api("acl.rt.memcpy", "ret", "rt")
def _memcpy(dst, dst_size, src, count, kind):
    _need_context()
    if kind == 1:
        _, d = _region(dst, ("device_mem",))
        _require(count <= dst_size <= len(d), f"memcpy of {count} bytes into {dst_size} (buffer {len(d)})")
        s = _host_source(src, count)
    elif kind == 2:
        _, d = _region(dst, ("host_mem",))
        _, s = _region(src, ("device_mem",))
    else:
        raise AclCallError(f"memcpy kind {kind} not modelled")
    _require(count <= dst_size <= len(d), f"memcpy of {count} bytes into {dst_size} (buffer {len(d)})")
    _require(count <= len(s), f"memcpy of {count} bytes from a {len(s)}-byte source")
    d[:count] = bytes(memoryview(s)[:count])
    return 0


# --------------------------------------------------------------------------- numpy <-> pointer

def _numpy_to_ptr(arr):
    CALLS.append("acl.util.numpy_to_ptr")
    rule = FAIL.get("acl.util.numpy_to_ptr")
    if rule is not None:
        return 0
    if not isinstance(arr, np.ndarray):
        raise ValueError("needs an ndarray as argument")  # pyACL's PyArray_Check
    # pyACL only warns about a non-contiguous array and memcpy then copies the wrong bytes: refused here.
    _require(arr.flags.c_contiguous, "numpy_to_ptr needs a contiguous array")
    return arr.ctypes.data


def _ptr_to_numpy(ptr, shape, npy_type):
    CALLS.append("acl.util.ptr_to_numpy")
    if FAIL.get("acl.util.ptr_to_numpy") is not None:
        return None
    dtype = {NPY_FLOAT32: np.float32, NPY_HALF: np.float16}[npy_type]
    _, mem = _region(ptr, ("host_mem",))
    return np.frombuffer(mem, dtype=dtype, count=int(np.prod(shape))).reshape(shape)


def _bytes_to_ptr(data):
    CALLS.append("acl.util.bytes_to_ptr")
    if FAIL.get("acl.util.bytes_to_ptr") is not None:
        return 0
    if not isinstance(data, bytes):  # pyACL's PyBytes_Check: no bytearray, memoryview or ndarray
        raise ValueError("needs an byte as argument")
    # PyBytes_AsString: the object's own buffer, not a copy (c_char_p points into it too).
    return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value


def _ptr_to_bytes(ptr, size):
    CALLS.append("acl.util.ptr_to_bytes")
    if FAIL.get("acl.util.ptr_to_bytes") is not None:
        return None
    _, mem = _region(ptr, ("host_mem",))
    return bytes(mem[:size])


# --------------------------------------------------------------------------- data buffers, datasets

@_api("acl.create_data_buffer", "handle")
def create_data_buffer(ptr, size):
    _require(ptr in S.device_mem and len(S.device_mem[ptr]) >= size, "data buffer over unknown memory")
    h = S.handle()
    S.buffers[h] = {"ptr": ptr, "size": size}
    return h


@_api("acl.destroy_data_buffer", "ret")
def destroy_data_buffer(buf):
    _require(buf in S.buffers, "destroy of an unknown data buffer")
    del S.buffers[buf]
    return 0


@_api("acl.mdl.create_dataset", "handle", "mdl")
def _create_dataset():
    h = S.handle()
    S.datasets[h] = []
    return h


@_api("acl.mdl.add_dataset_buffer", "pair", "mdl")
def _add_dataset_buffer(ds, buf):
    _require(ds in S.datasets and buf in S.buffers, "add_dataset_buffer with unknown handles")
    S.datasets[ds].append(buf)
    return ds, 0


@_api("acl.mdl.destroy_dataset", "ret", "mdl")
def _destroy_dataset(ds):
    _require(ds in S.datasets, "destroy of an unknown dataset")
    del S.datasets[ds]
    return 0


# --------------------------------------------------------------------------- model

def _dims(dims):
    return {"name": "", "dimCount": len(dims), "dims": list(dims)}


def _spec_size(spec, max_batch):
    dims = [max_batch if d == -1 else d for d in spec["dims"]]
    return int(np.prod(dims)) * np.dtype(_ACL_NP[spec.get("dtype", 0)]).itemsize


class _Model:
    def __init__(self, doc):
        self.doc = doc
        self.dynamic = doc.get("dynamic_batch")
        self.max_batch = max(self.dynamic) if self.dynamic else None
        self.inputs = list(doc["inputs"])
        if self.dynamic:
            self.inputs.append({"name": DYNAMIC_INPUT, "dims": [1], "dtype": 9})
        self.outputs = list(doc["outputs"])
        self.current_batch = None

    def size(self, spec):
        return _spec_size(spec, self.max_batch or 1)


@_api("acl.mdl.load_from_file", "pair", "mdl")
def _load_from_file(path):
    _need_context()
    with open(path, encoding="utf-8") as f:
        model = _Model(json.load(f))
    h = S.handle()
    S.models[h] = model
    return h, 0


@_api("acl.mdl.unload", "ret", "mdl")
def _unload(model_id):
    _require(model_id in S.models, "unload of an unknown model")
    del S.models[model_id]
    return 0


@_api("acl.mdl.create_desc", "handle", "mdl")
def _create_desc():
    h = S.handle()
    S.descs[h] = None
    return h


@_api("acl.mdl.get_desc", "ret", "mdl")
def _get_desc(desc, model_id):
    _require(desc in S.descs and model_id in S.models, "get_desc with unknown handles")
    S.descs[desc] = S.models[model_id]
    return 0


@_api("acl.mdl.destroy_desc", "ret", "mdl")
def _destroy_desc(desc):
    _require(desc in S.descs, "destroy of an unknown desc")
    del S.descs[desc]
    return 0


def _model_of(desc) -> _Model:
    _require(S.descs.get(desc) is not None, "query on an empty desc")
    return S.descs[desc]


@_api("acl.mdl.get_num_inputs", "count", "mdl")
def _get_num_inputs(desc):
    return len(_model_of(desc).inputs)


@_api("acl.mdl.get_num_outputs", "count", "mdl")
def _get_num_outputs(desc):
    return len(_model_of(desc).outputs)


@_api("acl.mdl.get_input_name_by_index", "name", "mdl")
def _get_input_name_by_index(desc, i):
    return _model_of(desc).inputs[i]["name"]


@_api("acl.mdl.get_input_index_by_name", "pair", "mdl")
def _get_input_index_by_name(desc, name):
    names = [s["name"] for s in _model_of(desc).inputs]
    return (names.index(name), 0) if name in names else (None, 148052)


@_api("acl.mdl.get_dynamic_batch", "pair", "mdl")
def _get_dynamic_batch(desc):
    batches = _model_of(desc).dynamic or []
    return {"batchCount": len(batches), "batch": list(batches)}, 0


@_api("acl.mdl.get_input_dims", "pair", "mdl")
def _get_input_dims(desc, i):
    return _dims(_model_of(desc).inputs[i]["dims"]), 0


@_api("acl.mdl.get_output_dims", "pair", "mdl")
def _get_output_dims(desc, i):
    return _dims(_model_of(desc).outputs[i]["dims"]), 0


@_api("acl.mdl.get_input_format", "dtype", "mdl")
def _get_input_format(desc, i):
    spec = _model_of(desc).inputs[i]
    # The extra dynamic-batch input is a plain vector: ND (2).
    return spec.get("format", 2 if spec["name"] == DYNAMIC_INPUT else 0)


@_api("acl.mdl.get_input_data_type", "dtype", "mdl")
def _get_input_data_type(desc, i):
    return _model_of(desc).inputs[i].get("dtype", 0)


@_api("acl.mdl.get_output_data_type", "dtype", "mdl")
def _get_output_data_type(desc, i):
    return _model_of(desc).outputs[i].get("dtype", 0)


@_api("acl.mdl.get_input_size_by_index", "count", "mdl")
def _get_input_size_by_index(desc, i):
    model = _model_of(desc)
    return model.size(model.inputs[i])


@_api("acl.mdl.get_output_size_by_index", "count", "mdl")
def _get_output_size_by_index(desc, i):
    model = _model_of(desc)
    return model.size(model.outputs[i])


@_api("acl.mdl.set_dynamic_batch_size", "ret", "mdl")
def _set_dynamic_batch_size(model_id, ds, index, batch):
    model = S.models[model_id]
    _require(model.dynamic and batch in model.dynamic, f"batch {batch} not in {model.dynamic}")
    _require(ds in S.datasets and index < len(S.datasets[ds]), "set_dynamic_batch_size: bad dataset/index")
    _require(model.inputs[index]["name"] == DYNAMIC_INPUT, "set_dynamic_batch_size: index is not the mbatch input")
    model.current_batch = batch
    return 0


def _buffer_mem(buf, expected_size, what):
    info = S.buffers[buf]
    _require(info["size"] == expected_size, f"{what}: buffer of {info['size']} bytes, model wants {expected_size}")
    return S.device_mem[info["ptr"]]


@_api("acl.mdl.execute", "ret", "mdl")
def _execute(model_id, in_ds, out_ds):
    _need_context()
    # A slow device, for tests that stop a run part-way (seconds per execute).
    time.sleep(float(os.environ.get("FAKE_ACL_EXECUTE_DELAY", "0") or 0))
    model = S.models[model_id]
    ins, outs = S.datasets[in_ds], S.datasets[out_ds]
    _require(len(ins) == len(model.inputs) and len(outs) == len(model.outputs), "dataset buffer count")
    batch = model.current_batch if model.dynamic else model.doc["inputs"][0]["dims"][0]
    _require(batch, "dynamic model executed without set_dynamic_batch_size")
    spec = model.inputs[0]
    x = np.frombuffer(_buffer_mem(ins[0], model.size(spec), "input 0"), dtype=_ACL_NP[spec.get("dtype", 0)])
    x = x[: x.size // (model.max_batch or batch) * batch].reshape(batch, -1).astype(np.float32)
    for buf, ospec in zip(outs, model.outputs):
        dtype = _ACL_NP[ospec.get("dtype", 0)]
        mem = _buffer_mem(buf, model.size(ospec), "output")
        per_sample = len(mem) // np.dtype(dtype).itemsize // (model.max_batch or batch)
        y = (2.0 * x[:, :per_sample] + 1.0).astype(dtype)
        mem[: y.nbytes] = y.tobytes()
    model.current_batch = None
    return 0


def _report_at_exit() -> None:
    folder = os.environ.get("FAKE_ACL_REPORT_DIR")
    if folder and S.devices_used:
        with open(os.path.join(folder, f"{os.getpid()}.json"), "w", encoding="utf-8") as f:
            json.dump({"devices_used": sorted(S.devices_used), "leaks": leaks()}, f)


atexit.register(_report_at_exit)
reset()

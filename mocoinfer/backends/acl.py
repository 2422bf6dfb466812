"""pyACL backend: runs an Ascend `.om` model on the NPU through CANN's Python `acl` module.

The call sequence is CANN's: init → set_device → create_context → load_from_file → create_desc /
get_desc → query inputs and outputs → one device buffer per input and output, allocated once and
reused for every batch → per batch: memcpy host→device, execute, memcpy device→host. Teardown
runs in the documented order (data buffers and datasets, unload, desc, device and host memory,
context, reset_device, finalize) on every exit path, errors and Ctrl-C included, and releases
exactly what was acquired.

Every failing call is reported with its name and return code. Both numpy↔pointer APIs are
supported: `acl.util.bytes_to_ptr` / `ptr_to_bytes` (CANN ≥ 6) and the older `numpy_to_ptr` /
`ptr_to_numpy`, picked by `hasattr`, never by version; under both, the host-to-device copy reads
the batch array's own buffer (no `tobytes()` copy in the timed phase). fp16 outputs come back as
float32. Dynamic-batch OMs (`atc --dynamic_batch_size`) get `set_dynamic_batch_size` before each
execute. At load, one info line gives the data input's name, format (`get_input_format`; NHWC is
what an AIPP OM should report), dims and data type: the first thing to compare on a new CANN
version.

Only verified against the stand-in `acl` module under tests/, never on Ascend hardware.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import time
from typing import List, Optional, Sequence

import numpy as np

from ..errors import UserError
from ..progress import log
from .base import Backend

ACL_SUCCESS = 0
ACL_ERROR_REPEAT_INITIALIZE = 100002
ACL_MEM_MALLOC_HUGE_FIRST = 0
ACL_MEMCPY_HOST_TO_DEVICE = 1
ACL_MEMCPY_DEVICE_TO_HOST = 2
NPY_FLOAT32 = 11
NPY_HALF = 23
# aclFormat values get_input_format returns (CANN's aclFormat enum); the rest are logged by number.
ACL_FORMATS = {-1: "UNDEFINED", 0: "NCHW", 1: "NHWC", 2: "ND", 3: "NC1HWC0"}
DYNAMIC_BATCH_INPUT = "ascend_mbatch_shape_data"

# aclDataType → numpy
ACL_DTYPES = {0: np.float32, 1: np.float16, 2: np.int8, 3: np.int32, 4: np.uint8, 6: np.int16,
              7: np.uint16, 8: np.uint32, 9: np.int64, 10: np.uint64, 11: np.float64, 12: np.bool_}


class AclError(UserError):
    """A pyACL call failed; the message names the call and its return code."""


def _onnx_hint(model_path: str) -> str:
    """Point at the ONNX model only where ONNX Runtime is installed to run it (an NPU host set up
    from requirements-npu.txt has none)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return ""
    folder = os.path.dirname(os.path.abspath(model_path))
    onnx = sorted(glob.glob(os.path.join(folder, "*.onnx")))
    if onnx:
        return f"; the ONNX model runs on this machine with ONNX Runtime: --model {os.path.relpath(onnx[0])}"
    return "; an .onnx model runs on this machine with ONNX Runtime (--model moco-v2-bs1.onnx)"


def _import_acl(model_path: str):
    try:
        import acl
    except ImportError:
        raise UserError(f"{model_path}: pyACL (the 'acl' Python module) was not found; .om models need "
                        "CANN installed and its set_env.sh sourced (e.g. source "
                        f"/usr/local/Ascend/ascend-toolkit/set_env.sh){_onnx_hint(model_path)}") from None
    return acl


class _Buffer:
    """One device buffer of a dataset, with what it holds."""

    def __init__(self, name: str, size: int, dims: List[int], dtype) -> None:
        self.name, self.size, self.dims, self.dtype = name, size, dims, np.dtype(dtype)
        self.ptr = 0
        self.data_buffer = 0


class AclBackend(Backend):
    name = "acl"
    compute_label = "NPU_compute_time"
    extensions = (".om",)

    # No probe: only pyACL on the device can read an .om's input description (checked right
    # after the load, before any copy or execute).

    @classmethod
    def load(cls, model_path: str, device_id: int = 0, providers: Optional[Sequence[str]] = None,
             threads: int = 0, precision: str = "fp32") -> AclBackend:
        return cls(model_path, device_id=device_id)

    def __init__(self, model_path: str, device_id: int = 0) -> None:
        super().__init__()
        self.model_path = model_path
        self.device_id = device_id
        self.device = f"npu:{device_id}"
        self._acl = _import_acl(model_path)
        self._new_api = hasattr(self._acl.util, "bytes_to_ptr")
        # What has been acquired, so teardown releases exactly that (also after a partial open).
        self._initialized = self._device_set = False
        self._context = self._model_id = self._desc = None
        self._in_dataset = self._out_dataset = 0
        self._inputs: List[_Buffer] = []
        self._outputs: List[_Buffer] = []
        self._host_ptrs: List[int] = []
        self._dynamic_index: Optional[int] = None
        try:
            self._open()
        except BaseException:
            self._teardown(raise_errors=False)
            raise

    # Checked calls.

    def _fail(self, call: str, ret) -> None:
        raise AclError(f"{call} failed with return code {ret} (model {self.model_path}, device {self.device_id})")

    def _check(self, call: str, ret) -> None:
        if ret != ACL_SUCCESS:
            self._fail(call, ret)

    def _value(self, call: str, result):
        value, ret = result
        self._check(call, ret)
        return value

    def _handle(self, call: str, handle):
        # Getters such as create_desc return the handle alone; a null one is their failure.
        if not handle:
            raise AclError(f"{call} returned a null handle (model {self.model_path}, device {self.device_id})")
        return handle

    # Opening.

    def _open(self) -> None:
        acl = self._acl
        ret = acl.init()
        if ret == ACL_ERROR_REPEAT_INITIALIZE:
            pass  # someone in this process already initialised ACL: theirs to finalize
        else:
            self._check("acl.init", ret)
            self._initialized = True
        self._check("acl.rt.set_device", acl.rt.set_device(self.device_id))
        self._device_set = True
        self._context = self._value("acl.rt.create_context", acl.rt.create_context(self.device_id))
        self._model_id = self._value("acl.mdl.load_from_file", acl.mdl.load_from_file(self.model_path))
        self._desc = self._handle("acl.mdl.create_desc", acl.mdl.create_desc())
        self._check("acl.mdl.get_desc", acl.mdl.get_desc(self._desc, self._model_id))
        self._describe()
        self._allocate()

    def _describe(self) -> None:
        acl, desc = self._acl, self._desc
        n_in = acl.mdl.get_num_inputs(desc)
        n_out = acl.mdl.get_num_outputs(desc)
        if n_in < 1:
            raise AclError(f"acl.mdl.get_num_inputs returned {n_in} for {self.model_path}")
        if n_out < 1:
            raise AclError(f"acl.mdl.get_num_outputs returned {n_out} for {self.model_path}")
        names = []
        for i in range(n_in):
            name = acl.mdl.get_input_name_by_index(desc, i)
            if not name:
                raise AclError(f"acl.mdl.get_input_name_by_index returned no name for input {i} of {self.model_path}")
            names.append(name)
        if DYNAMIC_BATCH_INPUT in names:
            self._dynamic_index = self._value("acl.mdl.get_input_index_by_name",
                                              acl.mdl.get_input_index_by_name(desc, DYNAMIC_BATCH_INPUT))
            info = self._value("acl.mdl.get_dynamic_batch", acl.mdl.get_dynamic_batch(desc))
            choices = sorted(int(b) for b in info.get("batch", [])[: info.get("batchCount", 0)])
            if not choices:
                raise AclError(f"acl.mdl.get_dynamic_batch lists no batch sizes for {self.model_path}")
            self.batch_choices = choices
        for i in range(n_in):
            self._inputs.append(self._io_spec("input", i, names[i]))
        for i in range(n_out):
            self._outputs.append(self._io_spec("output", i, f"output {i}"))
        data = [b for i, b in enumerate(self._inputs) if i != self._dynamic_index]
        if len(data) != 1:
            raise UserError(f"{self.model_path}: expected one data input, found {len(data)} "
                            f"({', '.join(b.name for b in data)})")
        self._data_index = self._inputs.index(data[0])
        dims = data[0].dims
        if len(dims) < 2 or any(d <= 0 for d in dims[1:]):
            raise UserError(f"{self.model_path}: input {data[0].name!r} has dims {dims}; only the batch axis "
                            "may be dynamic")
        self.input_shape = tuple(int(d) for d in dims[1:])
        self.input_dtype = data[0].dtype
        fmt = self._input_format(self._data_index)
        if fmt in ("NCHW", "NHWC"):
            self.input_format = fmt
        log.info(f"{self.model_path}: input {data[0].name!r} format {fmt}, dims {dims}, {self.input_dtype.name}")
        self.batch_size = int(dims[0]) if dims[0] > 0 and self._dynamic_index is None else None
        # Buffers hold the largest batch the model takes; per-sample sizes follow from it.
        self._max_batch = self.batch_size or max(self.batch_choices or [1])
        if data[0].size != self._max_batch * self.sample_bytes:
            raise UserError(f"{self.model_path}: input size {data[0].size} bytes does not match dims {dims} "
                            f"({data[0].dtype.name}, batch {self._max_batch})")
        for out in self._outputs:
            if out.size % (self._max_batch * out.dtype.itemsize):
                raise UserError(f"{self.model_path}: {out.name} size {out.size} bytes is not a whole number "
                                f"of {out.dtype.name} samples at batch {self._max_batch}")

    def _input_format(self, i: int) -> str:
        """Input `i`'s aclFormat by name ("NCHW", "NHWC", "ND", ...; "format 29" for one not named
        here). Only reported and used to read the image size: a pyACL without the call, or an
        unknown or undefined format, leaves the layout to the input's shape."""
        get_format = getattr(self._acl.mdl, "get_input_format", None)
        if get_format is None:
            return "not reported (no acl.mdl.get_input_format)"
        code = get_format(self._desc, i)
        return ACL_FORMATS.get(code, f"format {code}")

    def _io_spec(self, kind: str, i: int, name: str) -> _Buffer:
        acl, desc = self._acl, self._desc
        mdl = acl.mdl
        get_dims, get_type, get_size = ((mdl.get_input_dims, mdl.get_input_data_type, mdl.get_input_size_by_index)
                                        if kind == "input" else
                                        (mdl.get_output_dims, mdl.get_output_data_type, mdl.get_output_size_by_index))
        dims = self._value(f"acl.mdl.get_{kind}_dims", get_dims(desc, i))
        acl_type = get_type(desc, i)
        if acl_type not in ACL_DTYPES:
            raise AclError(f"acl.mdl.get_{kind}_data_type gave unsupported type {acl_type} for {name} "
                           f"of {self.model_path}")
        size = get_size(desc, i)
        if size <= 0:
            raise AclError(f"acl.mdl.get_{kind}_size_by_index returned {size} for {name} of {self.model_path}")
        return _Buffer(name, int(size), [int(d) for d in dims.get("dims", [])[: dims.get("dimCount", 99)]],
                       ACL_DTYPES[acl_type])

    def _allocate(self) -> None:
        acl = self._acl
        self._in_dataset = self._handle("acl.mdl.create_dataset", acl.mdl.create_dataset())
        self._out_dataset = self._handle("acl.mdl.create_dataset", acl.mdl.create_dataset())
        for dataset, buffers in ((self._in_dataset, self._inputs), (self._out_dataset, self._outputs)):
            for buf in buffers:
                buf.ptr = self._value("acl.rt.malloc", acl.rt.malloc(buf.size, ACL_MEM_MALLOC_HUGE_FIRST))
                buf.data_buffer = self._handle("acl.create_data_buffer", acl.create_data_buffer(buf.ptr, buf.size))
                self._value("acl.mdl.add_dataset_buffer", acl.mdl.add_dataset_buffer(dataset, buf.data_buffer))
        # One pinned host buffer per output, reused: device results land here, then get copied out.
        for out in self._outputs:
            self._host_ptrs.append(self._value("acl.rt.malloc_host", acl.rt.malloc_host(out.size)))

    # Running.

    def run(self, batch: np.ndarray) -> List[np.ndarray]:
        acl = self._acl
        n = self.check_batch(batch)
        data = np.ascontiguousarray(batch, dtype=self.input_dtype)
        count = data.nbytes
        if self._dynamic_index is not None:
            self._check("acl.mdl.set_dynamic_batch_size",
                        acl.mdl.set_dynamic_batch_size(self._model_id, self._in_dataset, self._dynamic_index, n))
        t0 = time.perf_counter()
        target = self._inputs[self._data_index]
        # The copy reads `data`'s own buffer; `data` stays referenced here until the synchronous
        # memcpy has returned. The old API hands out that address (numpy_to_ptr). The new API's
        # bytes_to_ptr takes a `bytes` object only (pyACL util/bytes_convert.cpp: PyBytes_Check,
        # then PyBytes_AsString), so giving it the array means tobytes(), a full copy of the batch
        # inside the timed phase; numpy gives the buffer's address itself (ndarray.ctypes.data),
        # an int in ordinary host memory, as bytes_to_ptr's pointer was.
        if self._new_api:
            src = data.ctypes.data
        else:
            src = acl.util.numpy_to_ptr(data)
            if not src:
                raise AclError("acl.util.numpy_to_ptr returned a null pointer")
        self._check("acl.rt.memcpy", acl.rt.memcpy(target.ptr, target.size, src, count, ACL_MEMCPY_HOST_TO_DEVICE))
        t1 = time.perf_counter()
        self._check("acl.mdl.execute", acl.mdl.execute(self._model_id, self._in_dataset, self._out_dataset))
        t2 = time.perf_counter()
        results = []
        for out, host in zip(self._outputs, self._host_ptrs):
            nbytes = out.size // self._max_batch * n
            self._check("acl.rt.memcpy", acl.rt.memcpy(host, out.size, out.ptr, nbytes, ACL_MEMCPY_DEVICE_TO_HOST))
            if self._new_api:
                raw = acl.util.ptr_to_bytes(host, nbytes)
                if raw is None:
                    raise AclError("acl.util.ptr_to_bytes returned nothing")
                array = np.frombuffer(raw, dtype=out.dtype)
            else:
                npy_type = NPY_HALF if out.dtype == np.float16 else NPY_FLOAT32
                if out.dtype not in (np.float16, np.float32):
                    raise UserError(f"{self.model_path}: {out.name} is {out.dtype.name}; the numpy_to_ptr API "
                                    "path reads float16/float32 outputs only")
                array = acl.util.ptr_to_numpy(host, (nbytes // out.dtype.itemsize,), npy_type)
                if array is None:
                    raise AclError("acl.util.ptr_to_numpy returned nothing")
            # A copy in float32: the host buffer is overwritten by the next batch.
            results.append(np.array(array, dtype=np.float32).reshape(n, -1))
        t3 = time.perf_counter()
        self.timing.h2d.append(t1 - t0)
        self.timing.compute.append(t2 - t1)
        self.timing.d2h.append(t3 - t2)
        return results

    # Teardown.

    def close(self) -> None:
        self._teardown(raise_errors=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        # While an error is already propagating, a teardown failure must not replace it.
        self._teardown(raise_errors=exc_type is None)

    def _teardown(self, raise_errors: bool) -> None:
        acl = self._acl
        errors = []

        def release(call: str, fn, *args) -> None:
            try:
                ret = fn(*args)
            except Exception as exc:  # keep releasing the rest whatever one call does
                errors.append(f"{call} raised {exc!r}")
                return
            if ret != ACL_SUCCESS:
                errors.append(f"{call} failed with return code {ret}")

        for dataset, buffers in ((self._in_dataset, self._inputs), (self._out_dataset, self._outputs)):
            for buf in buffers:
                if buf.data_buffer:
                    release("acl.destroy_data_buffer", acl.destroy_data_buffer, buf.data_buffer)
                    buf.data_buffer = 0
            if dataset:
                release("acl.mdl.destroy_dataset", acl.mdl.destroy_dataset, dataset)
        self._in_dataset = self._out_dataset = 0
        if self._model_id is not None:
            release("acl.mdl.unload", acl.mdl.unload, self._model_id)
            self._model_id = None
        if self._desc:
            release("acl.mdl.destroy_desc", acl.mdl.destroy_desc, self._desc)
            self._desc = None
        for buf in self._inputs + self._outputs:
            if buf.ptr:
                release("acl.rt.free", acl.rt.free, buf.ptr)
                buf.ptr = 0
        for ptr in self._host_ptrs:
            release("acl.rt.free_host", acl.rt.free_host, ptr)
        self._host_ptrs = []
        if self._context is not None:
            release("acl.rt.destroy_context", acl.rt.destroy_context, self._context)
            self._context = None
        if self._device_set:
            release("acl.rt.reset_device", acl.rt.reset_device, self.device_id)
            self._device_set = False
        if self._initialized:
            release("acl.finalize", acl.finalize)
            self._initialized = False
        if errors:
            counted = {e: errors.count(e) for e in errors}  # one entry per distinct failure, in order
            message = f"teardown of {self.model_path}: " + "; ".join(
                e + (f" (x{n})" if n > 1 else "") for e, n in counted.items())
            if raise_errors:
                raise AclError(message)
            log.warning(message)

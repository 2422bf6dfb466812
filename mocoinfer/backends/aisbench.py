"""ais_bench backend: runs an Ascend `.om` through Huawei's `ais_bench.infer.interface.InferSession`.

A second NPU runtime beside pyACL (`--backend aisbench`): the same inputs through both, compared by
`vision_metric_ImageNet.py --compare`, check our pyACL call sequence against the one Huawei
maintains for every CANN release (docs/cross-check.md). The calls are those of ais_bench's own
API samples (ait/components/benchmark/api_samples/interface_api_usage/api_infer):
`InferSession(device_id, model_path)`, the input from `get_inputs()` (name, shape, datatype,
format), checked right after the load as the acl backend checks its description; per batch
`infer([batch], mode='static')` for a fixed-batch model or `mode='dymbatch'` for a dynamic-batch
one (InferSession then calls `set_dynamic_batchsize` with the batch's size); the compute time
of each batch from `summary().exec_time_list` (one (start, end) pair in milliseconds per execute,
cleared after each read with `reset_summaryinfo()` so a long run never copies a growing list);
`free_resource()` on every exit path, errors and Ctrl-C included.

InferSession lists a dynamic-batch model's largest batch size only (`get_max_dym_batchsize`), not
the others atc was given, so such a model runs every batch at that size here, the short last
one padded (the acl backend's default too). `InferSession.finalize()` (aclFinalize) is not
called: a process runs one model and the runtime goes with it, while a finalized ACL may refuse
a second session in the same process. uint8 (AIPP) models take uint8 files as they are.

Only verified against the stand-in `ais_bench` package under tests/, never on Ascend hardware.
"""

from __future__ import annotations

import time
from typing import List, Optional, Sequence

import numpy as np

from ..errors import UserError, first_line
from ..progress import log
from .base import Backend

#: how the runtime is installed: the two wheels of the `ait` benchmark component
INSTALL = ("install the ait benchmark component's two wheels, aclruntime then ais_bench (pip3 install "
           "./aclruntime-{version}-{python}-linux_{arch}.whl ./ais_bench-{version}-py3-none-any.whl, from "
           "gitee.com/ascend/ait ait/components/benchmark), with CANN's set_env.sh sourced")
# TensorBase.h's TensorDataType (aclruntime.dtype), the codes of aclDataType → numpy
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int8, 3: np.int32, 4: np.uint8, 6: np.int16, 7: np.uint16,
           8: np.uint32, 9: np.int64, 10: np.uint64, 11: np.float64, 12: np.bool_}
# aclFormat values a tensor_desc's `format` holds; the rest are logged by number
_FORMATS = {-1: "UNDEFINED", 0: "NCHW", 1: "NHWC", 2: "ND", 3: "NC1HWC0"}


def _import_session(model_path: str):
    try:
        from ais_bench.infer.interface import InferSession
    except ImportError as exc:  # ais_bench itself, or the aclruntime it imports, is missing
        raise UserError(f"{model_path}: --backend aisbench needs ais_bench's Python API, which was not found "
                        f"({first_line(exc)}): {INSTALL}") from None
    except Exception as exc:  # a broken install (a CANN library that will not load) raises more
        raise UserError(f"{model_path}: ais_bench could not be imported ({type(exc).__name__}: "
                        f"{first_line(exc)}); source CANN's set_env.sh, or reinstall: {INSTALL}") from None
    return InferSession


class AisBenchBackend(Backend):
    name = "aisbench"
    compute_label = "NPU_compute_time"
    # An .om; `--backend auto` still gives it to acl: this runtime is asked for by name.
    extensions = (".om",)

    @classmethod
    def load(cls, model_path: str, device_id: int = 0, providers: Optional[Sequence[str]] = None,
             threads: int = 0, precision: str = "fp32") -> AisBenchBackend:
        cls.check_precision(model_path, precision)
        return cls(model_path, device_id=device_id)

    def __init__(self, model_path: str, device_id: int = 0) -> None:
        super().__init__()
        self.model_path = model_path
        self.device_id = device_id
        self.device = f"npu:{device_id}"
        self._session = None
        self._mode = "static"
        if not model_path.lower().endswith(".om"):
            raise UserError(f"{model_path}: --backend aisbench runs Ascend .om models (atc's output); "
                            "an .onnx runs with --backend onnxruntime, a checkpoint with --backend torch")
        session_class = _import_session(model_path)
        try:
            self._session = session_class(device_id, model_path)
        except (KeyboardInterrupt, UserError):
            raise
        except Exception as exc:  # aclruntime raises RuntimeError for a load or a device that fails
            raise UserError(f"{model_path}: ais_bench InferSession could not load it on device {device_id} "
                            f"({first_line(exc)})") from None
        try:
            self._describe()
            self._reset_summary()
        except BaseException:
            self._free(raise_errors=False)
            raise

    def _call(self, what: str, fn, *args, **kwargs):
        """A runtime call; its failure as one line naming the call, the model and the device."""
        try:
            return fn(*args, **kwargs)
        except (KeyboardInterrupt, UserError):
            raise
        except Exception as exc:
            raise UserError(f"ais_bench {what} failed: {first_line(exc)} (model {self.model_path}, "
                            f"device {self.device_id})") from None

    def _describe(self) -> None:
        inputs = list(self._call("InferSession.get_inputs", self._session.get_inputs))
        outputs = list(self._call("InferSession.get_outputs", self._session.get_outputs))
        # The dynamic-batch input (ascend_mbatch_shape_data) is never listed: ais_bench keeps it.
        if len(inputs) != 1:
            raise UserError(f"{self.model_path}: expected one data input, found {len(inputs)} "
                            f"({', '.join(str(d.name) for d in inputs)})")
        if not outputs:
            raise UserError(f"{self.model_path}: InferSession.get_outputs lists no output")
        desc = inputs[0]
        shape = [int(d) for d in desc.shape]
        code = int(desc.datatype)  # aclruntime.dtype, a pybind11 enum of TensorDataType's codes
        if code not in _DTYPES:
            raise UserError(f"{self.model_path}: input {desc.name!r} has data type {desc.datatype}, which this "
                            "runner does not read")
        if len(shape) < 2 or any(d <= 0 for d in shape[1:]):
            raise UserError(f"{self.model_path}: input {desc.name!r} has shape {shape}; only the batch axis "
                            "may be dynamic")
        self.input_shape = tuple(shape[1:])
        self.input_dtype = np.dtype(_DTYPES[code])
        fmt_code = getattr(desc, "format", None)
        fmt = _FORMATS.get(int(fmt_code), f"format {fmt_code}") if fmt_code is not None else "not reported"
        if fmt in ("NCHW", "NHWC"):
            self.input_format = fmt
        if shape[0] > 0:
            self.batch_size = shape[0]
        else:
            self._mode = "dymbatch"
            get_max = getattr(self._session, "get_max_dym_batchsize", None)
            if get_max is None:
                raise UserError(f"{self.model_path}: a dynamic-batch .om, and this ais_bench has no "
                                "get_max_dym_batchsize to tell its sizes; run it with --backend acl")
            largest = int(self._call("InferSession.get_max_dym_batchsize", get_max))
            if largest < 1:
                raise UserError(f"{self.model_path}: InferSession.get_max_dym_batchsize returned {largest} for a "
                                f"model whose input shape is {shape}")
            self.batch_choices = (largest,)
        log.info(f"{self.model_path}: input {desc.name!r} format {fmt}, shape {shape}, {self.input_dtype.name} "
                 f"(ais_bench InferSession, mode {self._mode})")

    def _reset_summary(self) -> None:
        reset = getattr(self._session, "reset_summaryinfo", None)
        if reset is not None:
            self._call("InferSession.reset_summaryinfo", reset)
        self._times_seen = 0  # entries of exec_time_list already counted, where nothing resets it

    def run(self, batch: np.ndarray) -> List[np.ndarray]:
        n = self.check_batch(batch)
        data = np.ascontiguousarray(batch, dtype=self.input_dtype)
        t0 = time.perf_counter()
        outputs = self._call(f"InferSession.infer (mode {self._mode!r})", self._session.infer, [data],
                             mode=self._mode, out_array=True)
        wall = time.perf_counter() - t0
        self.timing.compute.append(self._compute_seconds(wall))
        results = []
        for i, out in enumerate(outputs):
            array = np.array(out, dtype=np.float32)  # a copy: the caller owns it
            if array.size % n:
                raise UserError(f"{self.model_path}: output {i} holds {array.size} values, not a whole number "
                                f"per sample of a batch of {n}")
            results.append(array.reshape(n, -1))
        return results

    def _compute_seconds(self, wall: float) -> float:
        """This batch's execute time from exec_time_list ((start, end) in ms per execute)."""
        times = list(self._call("InferSession.summary", self._session.summary).exec_time_list)
        if getattr(self._session, "reset_summaryinfo", None) is not None:
            self._call("InferSession.reset_summaryinfo", self._session.reset_summaryinfo)
        else:
            times, self._times_seen = times[self._times_seen:], len(times)
        if not times:
            log.warning(f"{self.model_path}: ais_bench recorded no execute time for a batch; its wall time "
                        "(with the copies) is counted as compute")
            return wall
        return sum(float(end) - float(start) for start, end in times) / 1000.0

    def close(self) -> None:
        self._free(raise_errors=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        # While an error is already propagating, a failure to free must not replace it.
        self._free(raise_errors=exc_type is None)

    def _free(self, raise_errors: bool) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            session.free_resource()
        except Exception as exc:
            message = f"ais_bench InferSession.free_resource failed for {self.model_path}: {first_line(exc)}"
            if raise_errors:
                raise UserError(message) from None
            log.warning(message)

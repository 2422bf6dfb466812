"""ONNX Runtime backend: runs the exported `.onnx` on any machine, GPU providers when present.

Providers are always explicit: `--providers` when given, otherwise TensorRT and CUDA when this
onnxruntime build has them, then CPU. Thread count is explicit too (one per usable CPU unless told).
ONNX Runtime does its host/device copies inside `run`, so all of its time is recorded as compute.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import time
from typing import List, Optional, Sequence

import numpy as np

from ..errors import UserError, first_line
from ..progress import usable_cpus
from .base import Backend, Probe

# Preferred order when nothing is asked: fastest first, CPU always last as the fallback.
_AUTO_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
                "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32,
                "tensor(int64)": np.int64}
#: ONNX's TensorProto.DataType codes (onnx.proto) of the types numpy has itself; others go to onnx.helper
_ELEM_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
                9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def _model_proto(path: str):
    """The ModelProto of `path` as `onnx.load(path, load_external_data=False)` gives it. Where the
    onnx package is not imported yet, its own generated classes (`onnx_ml_pb2`) parse the file
    through protobuf without `import onnx`, whose helper module imports ml_dtypes: about 0.45 s of
    every run_om_infer.py command, for a probe that reads a few fields."""
    pb2 = None if "onnx" in sys.modules else _onnx_pb2()
    if pb2 is None:
        import onnx

        return onnx.load(path, load_external_data=False)
    model = pb2.ModelProto()
    with open(path, "rb") as f:
        model.ParseFromString(f.read())
    return model


@functools.lru_cache(maxsize=None)
def _onnx_pb2():
    """onnx's `onnx_ml_pb2` module loaded from its file under a name of ours (the package's
    `__init__` not run), or None when that fails (then `import onnx` as usual)."""
    try:
        spec = importlib.util.find_spec("onnx")
        if spec is None or not spec.submodule_search_locations:
            return None
        path = os.path.join(list(spec.submodule_search_locations)[0], "onnx_ml_pb2.py")
        pb2_spec = importlib.util.spec_from_file_location("mocoinfer_onnx_ml_pb2", path)
        module = importlib.util.module_from_spec(pb2_spec)
        pb2_spec.loader.exec_module(module)
        return module
    except Exception:  # another onnx layout or protobuf: the package's own import
        return None


def choose_providers(requested: Optional[Sequence[str]], available: Sequence[str]) -> List[str]:
    """The provider list for a session: the user's (each must be available) or the automatic one."""
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise UserError(f"ONNX Runtime provider(s) {', '.join(missing)} not available in this "
                            f"onnxruntime build (available: {', '.join(available)})")
        return list(requested)
    return [p for p in _AUTO_ORDER if p in available] + ["CPUExecutionProvider"]


def ort_session(onnx_path: str, providers: Optional[Sequence[str]] = None, threads: int = 0):
    """An ONNX Runtime session with explicit providers and thread count (0 = one per usable CPU)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or usable_cpus()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx_path, sess_options=opts,
                                providers=list(providers or ["CPUExecutionProvider"]))


#: the metadata key `quantize.py` tags a model's precision with (read back by the backend)
PRECISION_KEY = "mocoinfer.precision"


def model_precision(session) -> str:
    """The precision an ONNX Runtime session's model was tagged with by this module, else fp32."""
    try:
        return session.get_modelmeta().custom_metadata_map.get(PRECISION_KEY, "fp32")
    except Exception:  # metadata is informative only; never fail a run on it
        return "fp32"


class OrtBackend(Backend):
    name = "onnxruntime"
    requires = ("onnxruntime",)
    extensions = (".onnx",)

    @classmethod
    def computes_on_host(cls, providers: Optional[Sequence[str]] = None) -> bool:
        import onnxruntime as ort

        return choose_providers(providers, ort.get_available_providers()) == ["CPUExecutionProvider"]

    def summary_extras(self) -> dict:
        return {"providers": list(self.providers)}

    @classmethod
    def check_precision(cls, model_path: str, precision: str) -> None:
        # fp16 needs the TensorRT provider, which only the session can tell: checked at the load.
        if precision not in ("fp32", "fp16"):
            raise UserError(f"{model_path}: --precision {precision} is not an ONNX Runtime option (fp32, or fp16 "
                            "with TensorRT; for int8 export with pthtar2onnx.py --quantize int8)")

    @classmethod
    def probe(cls, model_path: str) -> Optional[Probe]:
        """The input from the graph alone, or None when the file is not a one-input ONNX model
        (the session then reports what is wrong)."""
        try:
            graph = _model_proto(model_path).graph
        except Exception:  # not ONNX: OrtBackend gives the user-facing error
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
            if tensor.elem_type in _ELEM_DTYPES:
                dtype = np.dtype(_ELEM_DTYPES[tensor.elem_type])
            else:
                import onnx

                dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        except (KeyError, TypeError):
            return None
        return Probe(tuple(dims[1:]), dtype, dims[0] or None)

    @classmethod
    def load(cls, model_path: str, device_id: int = 0, providers: Optional[Sequence[str]] = None,
             threads: int = 0, precision: str = "fp32") -> OrtBackend:
        return cls(model_path, device_id=device_id, providers=providers, threads=threads, precision=precision)

    def __init__(self, model_path: str, device_id: int = 0, providers: Optional[Sequence[str]] = None,
                 threads: int = 0, precision: str = "fp32") -> None:
        super().__init__()
        import onnxruntime as ort

        self.model_path = model_path
        self.providers = choose_providers(providers, ort.get_available_providers())
        if precision not in ("fp32", "fp16"):
            raise UserError(f"{model_path}: --precision {precision} is not an ONNX Runtime option (fp32, or fp16 "
                            "with TensorRT; for int8 export with pthtar2onnx.py --quantize int8)")
        if precision == "fp16" and "TensorrtExecutionProvider" not in self.providers:
            raise UserError(f"{model_path}: --precision fp16 with ONNX Runtime needs the TensorRT provider, "
                            f"which this run does not have (providers: {', '.join(self.providers)})")
        # GPU providers take their device from provider options; CPU ignores device_id. TensorRT
        # builds its engine in fp16 when asked (written for GPU hosts, not run here: no GPU).
        with_options = [(p, dict({"device_id": device_id},
                                 **({"trt_fp16_enable": True} if precision == "fp16" and p.startswith("Tensorrt")
                                    else {})))
                        if p in _AUTO_ORDER else p for p in self.providers]
        try:
            self._session = ort_session(model_path, providers=with_options, threads=threads)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise UserError(f"{model_path}: ONNX Runtime cannot load the model ({first_line(exc)})") from None
        self.providers = self._session.get_providers()
        self.precision = precision if precision != "fp32" else model_precision(self._session)
        self.device = ", ".join(self.providers)
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise UserError(f"{model_path}: expected one model input, found {len(inputs)} "
                            f"({', '.join(i.name for i in inputs)})")
        spec = inputs[0]
        self._input_name = spec.name
        shape = list(spec.shape)
        if len(shape) < 2 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
            raise UserError(f"{model_path}: input {spec.name!r} has shape {shape}; only the batch axis may "
                            "be dynamic")
        self.input_shape = tuple(shape[1:])
        self.batch_size = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        if spec.type not in _ONNX_DTYPES:
            raise UserError(f"{model_path}: input {spec.name!r} has unsupported type {spec.type}")
        self.input_dtype = np.dtype(_ONNX_DTYPES[spec.type])

    def run(self, batch: np.ndarray) -> List[np.ndarray]:
        t0 = time.perf_counter()
        outputs = self._session.run(None, {self._input_name: batch})
        self.timing.compute.append(time.perf_counter() - t0)
        return [np.asarray(o, dtype=np.float32) for o in outputs]

    def close(self) -> None:
        # Sessions free their memory when collected; dropping the reference is the teardown.
        self._session = None

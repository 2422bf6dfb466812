"""PyTorch backend: the reference path, running the checkpoint itself with the export's loader.

The model comes from `checkpoint.build_model`, the same function the ONNX export uses, so ONNX
Runtime and pyACL results can be compared against exactly the model that was exported. It runs
on `cuda:{device_id}` when CUDA is available (copies and compute timed separately, with
synchronisation), otherwise on the CPU where all time is compute.

`precision` picks the arithmetic: fp32 (the reference, the model as loaded), bf16 (CPUs with
bfloat16 units, or CUDA) or fp16 (CUDA only). The reduced precisions fold BatchNorm into the
convolutions, cast the weights and use channels-last memory (what oneDNN's bf16 kernels and
tensor cores run fastest); outputs always come back as float32. The CUDA paths are written but
have not been run here (no GPU on the development machine).
"""

from __future__ import annotations

import time
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError
from ..formats import INPUT_CHANNELS, INPUT_SIZE
from .base import Backend, Probe

PRECISIONS = ("fp32", "bf16", "fp16")
# x86 flags (/proc/cpuinfo) of units that compute in bfloat16. Without them oneDNN still accepts
# bf16 (emulated with AVX-512 conversions), usually slower than float32, so they are required.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_units(cpuinfo: str = "/proc/cpuinfo") -> Tuple[bool, str]:
    """(has bfloat16 units, what was found), from the CPU flags; where the flags cannot be read
    (not Linux), PyTorch's own oneDNN check decides."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags = set()
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags.update(line.split(":", 1)[1].split())
    except OSError:
        flags = None
    if flags:
        found = [f for f in BF16_CPU_FLAGS if f in flags]
        return bool(found), (", ".join(found) if found else f"none of {', '.join(BF16_CPU_FLAGS)} in {cpuinfo}")
    import torch

    ok = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return ok, "oneDNN reports bf16 support" if ok else "oneDNN reports no bf16 support"


def check_precision(precision: str, cuda: bool, model_path: str) -> None:
    """Refuse a precision this machine cannot run, before the model is loaded."""
    if precision not in PRECISIONS:
        raise UserError(f"{model_path}: unknown --precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    if precision == "fp16" and not cuda:
        raise UserError(f"{model_path}: --precision fp16 runs on CUDA only and no CUDA device is available "
                        "(on a CPU use bf16 where it has bfloat16 units, or the int8 ONNX model)")
    if precision == "bf16" and cuda:
        import torch

        if not torch.cuda.is_bf16_supported():
            raise UserError(f"{model_path}: --precision bf16: this CUDA device has no bfloat16 support; use fp16")
    elif precision == "bf16":
        ok, found = cpu_bf16_units()
        if not ok:
            raise UserError(f"{model_path}: --precision bf16 needs a CPU with bfloat16 units ({found}); "
                            "use fp32 here")



class TorchBackend(Backend):
    name = "torch"
    requires = ("torch", "torchvision")
    extensions = (".pth.tar", ".pth", ".pt", ".tar")

    @classmethod
    def computes_on_host(cls, providers: Optional[Sequence[str]] = None) -> bool:
        import torch

        return not torch.cuda.is_available()

    @classmethod
    def check_precision(cls, model_path: str, precision: str) -> None:
        import torch

        check_precision(precision, torch.cuda.is_available(), model_path)

    @classmethod
    def probe(cls, model_path: str) -> Probe:
        """A checkpoint has no input shape of its own: the guide's model takes float32 3x224x224."""
        return Probe((INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE), np.dtype(np.float32), None)

    @classmethod
    def load(cls, model_path: str, device_id: int = 0, providers: Optional[Sequence[str]] = None,
             threads: int = 0, precision: str = "fp32") -> TorchBackend:
        return cls(model_path, device_id=device_id, threads=threads, precision=precision)

    def __init__(self, model_path: str, device_id: int = 0, threads: int = 0, precision: str = "fp32") -> None:
        super().__init__()
        import torch

        from ..checkpoint import build_model

        self._torch = torch
        self.model_path = model_path
        if threads:
            torch.set_num_threads(threads)
        self._cuda = torch.cuda.is_available()
        check_precision(precision, self._cuda, model_path)
        self.precision = precision
        self._device = torch.device(f"cuda:{device_id}" if self._cuda else "cpu")
        self.device = str(self._device)
        model = build_model(model_path)
        self._dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self._channels_last = precision != "fp32"
        if self._channels_last:
            from torch.fx.experimental.optimization import fuse

            # fp32 stays the model exactly as loaded: it is the reference the variants are judged by.
            model = fuse(model.eval()).to(dtype=self._dtype, memory_format=torch.channels_last)
        self._model = model.to(self._device)
        self.input_shape, self.input_dtype, self.batch_size = self.probe(model_path)

    def _input(self, batch: np.ndarray):
        x = self._torch.from_numpy(batch).to(self._device)
        if self._channels_last:
            x = x.to(dtype=self._dtype, memory_format=self._torch.channels_last)
        return x

    def run(self, batch: np.ndarray) -> List[np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            if not self._cuda:
                t0 = time.perf_counter()
                out = self._model(self._input(batch)).float().numpy()
                self.timing.compute.append(time.perf_counter() - t0)
                return [out.astype(np.float32, copy=False)]
            t0 = time.perf_counter()
            x = self._input(batch)
            torch.cuda.synchronize(self._device)
            t1 = time.perf_counter()
            y = self._model(x)
            torch.cuda.synchronize(self._device)
            t2 = time.perf_counter()
            out = y.float().cpu().numpy()
            t3 = time.perf_counter()
        self.timing.h2d.append(t1 - t0)
        self.timing.compute.append(t2 - t1)
        self.timing.d2h.append(t3 - t2)
        return [out]

    def close(self) -> None:
        self._model = None

"""PyTorch backend: the reference path, running the checkpoint itself with the export's loader.

The model comes from `checkpoint.build_model`, the same function the ONNX export uses, so ONNX
Runtime and pyACL results can be compared against exactly the model that was exported. It runs
on `cuda:{device_id}` when CUDA is available (copies and compute timed separately, with
synchronisation), otherwise on the CPU where all time is compute.
"""

from __future__ import annotations

import time
from typing import List, Optional, Sequence

import numpy as np

from ..formats import INPUT_CHANNELS, INPUT_SIZE
from .base import Backend, Probe


class TorchBackend(Backend):
    name = "torch"

    @classmethod
    def probe(cls, model_path: str) -> Probe:
        """A checkpoint has no input shape of its own: the guide's model takes float32 3x224x224."""
        return Probe((INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE), np.dtype(np.float32), None)

    @classmethod
    def load(cls, model_path: str, device_id: int = 0, providers: Optional[Sequence[str]] = None,
             threads: int = 0) -> TorchBackend:
        return cls(model_path, device_id=device_id, threads=threads)

    def __init__(self, model_path: str, device_id: int = 0, threads: int = 0) -> None:
        super().__init__()
        import torch

        from ..checkpoint import build_model

        self._torch = torch
        self.model_path = model_path
        if threads:
            torch.set_num_threads(threads)
        self._cuda = torch.cuda.is_available()
        self._device = torch.device(f"cuda:{device_id}" if self._cuda else "cpu")
        self.device = str(self._device)
        self._model = build_model(model_path).to(self._device)
        self.input_shape, self.input_dtype, self.batch_size = self.probe(model_path)

    def run(self, batch: np.ndarray) -> List[np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            if not self._cuda:
                t0 = time.perf_counter()
                out = self._model(torch.from_numpy(batch)).numpy()
                self.timing.compute.append(time.perf_counter() - t0)
                return [out.astype(np.float32, copy=False)]
            t0 = time.perf_counter()
            x = torch.from_numpy(batch).to(self._device)
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

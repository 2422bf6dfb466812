"""Inference backends, one runtime per module, chosen once by name or by the model file's extension.

`choose_backend(path, "auto")` gives the class for pyACL (`.om`), ONNX Runtime (`.onnx`) or
PyTorch (a checkpoint: `.pth`, `.pth.tar`, `.pt`, `.tar`); the class can `probe` the file before
any runtime starts, and `open_backend` loads it. Only the chosen module is imported, so a
machine without CANN or without a GPU runtime never imports what it does not have.
"""

from __future__ import annotations

import importlib
import os
from typing import Optional, Sequence, Type, Union

from ..atomic import special_kind
from ..deps import missing_message, missing_packages
from ..errors import UserError
from .base import Backend, Probe, Timing

#: the registry: a backend's name (its module under backends/) and its class. A new runtime is
#: one module and one line here.
_CLASSES = {"acl": "AclBackend", "onnxruntime": "OrtBackend", "torch": "TorchBackend", "aisbench": "AisBenchBackend"}
BACKENDS = tuple(_CLASSES)
CHOICES = ("auto",) + BACKENDS
#: the float32 runtimes that run on any host, in order of preference as an accuracy reference
REFERENCE_BACKENDS = ("onnxruntime", "torch")
_CHECKPOINT_EXTENSIONS = (".pth.tar", ".pth", ".pt", ".tar")

__all__ = ["BACKENDS", "CHOICES", "REFERENCE_BACKENDS", "Backend", "Probe", "Timing", "choose_backend", "open_backend"]


def _backend_name(model_path: str, name: str) -> str:
    if name != "auto":
        if name not in BACKENDS:
            raise UserError(f"unknown backend {name!r} (choose from {', '.join(CHOICES)})")
        return name
    lower = model_path.lower()
    if lower.endswith(".om"):
        return "acl"
    if lower.endswith(".onnx"):
        return "onnxruntime"
    if lower.endswith(_CHECKPOINT_EXTENSIONS):
        return "torch"
    raise UserError(f"{model_path}: cannot tell the backend from the extension (.om → acl, .onnx → "
                    "onnxruntime, .pth/.pth.tar/.pt → torch); pass --backend")


def choose_backend(model_path: str, name: str = "auto") -> Type[Backend]:
    """The backend class that runs `model_path`: `name` itself, or the one its extension implies."""
    chosen = _backend_name(model_path, name)
    module = importlib.import_module(f"{__name__}.{chosen}")
    cls = getattr(module, _CLASSES[chosen])
    missing = missing_packages(cls.requires)
    if missing:  # one line now, not a traceback from deep inside the first load
        raise UserError(f"{model_path} (the {chosen} backend): {missing_message(missing)}")
    return cls


def open_backend(backend: Union[str, Type[Backend]], model_path: str, device_id: int = 0,
                 providers: Optional[Sequence[str]] = None, threads: int = 0, precision: str = "fp32") -> Backend:
    """Load `model_path` with `backend` (a class from `choose_backend`, or a name or "auto");
    use the result as a context manager.

    `providers` only applies to ONNX Runtime, `threads` (0 = one per usable CPU) to the CPU runtimes,
    `precision` (fp32, bf16, fp16) to PyTorch and, for fp16, ONNX Runtime's TensorRT provider.
    """
    cls = choose_backend(model_path, backend) if isinstance(backend, str) else backend
    if not os.path.exists(model_path):
        raise UserError(f"{model_path}: model not found")
    # A folder, a FIFO or a device is never handed to a runtime: reading a FIFO would block forever.
    kind = special_kind(os.stat(model_path).st_mode)
    if kind is not None:
        raise UserError(f"{model_path}: is {kind}, expected a model file")
    if providers and cls.name != "onnxruntime":
        raise UserError(f"--providers applies to the onnxruntime backend only, not {cls.name}")
    if precision != "fp32" and cls.name == "acl":
        raise UserError(f"{model_path}: --precision applies to torch and onnxruntime; an .om's precision is "
                        "fixed when atc converts it")
    return cls.load(model_path, device_id=device_id, providers=providers, threads=threads, precision=precision)

"""Inference backends, one runtime per module, chosen by name or by the model file's extension.

`open_backend("auto", path)` picks pyACL for `.om`, ONNX Runtime for `.onnx` and PyTorch for a
checkpoint (`.pth`, `.pth.tar`, `.pt`, `.tar`). Only the chosen module is imported, so a machine
without CANN or without a GPU runtime never imports what it does not have.
"""

from __future__ import annotations

import importlib
import os
from typing import Optional, Sequence

from ..errors import UserError
from .base import Backend, Timing

BACKENDS = ("acl", "onnxruntime", "torch")
CHOICES = ("auto",) + BACKENDS

_CHECKPOINT_EXTENSIONS = (".pth.tar", ".pth", ".pt", ".tar")

__all__ = ["BACKENDS", "CHOICES", "Backend", "Timing", "backend_for", "open_backend"]


def backend_for(model_path: str, name: str = "auto") -> str:
    """The backend that runs `model_path`: `name` itself, or the one its extension implies."""
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


def open_backend(name: str, model_path: str, device_id: int = 0,
                 providers: Optional[Sequence[str]] = None, threads: int = 0, precision: str = "fp32") -> Backend:
    """Load `model_path` with backend `name` (or "auto"); use the result as a context manager.

    `providers` only applies to ONNX Runtime, `threads` (0 = one per core) to the CPU runtimes,
    `precision` (fp32, bf16, fp16) to PyTorch and, for fp16, ONNX Runtime's TensorRT provider.
    """
    chosen = backend_for(model_path, name)
    if not os.path.exists(model_path):
        raise UserError(f"{model_path}: model not found")
    if os.path.isdir(model_path):
        raise UserError(f"{model_path}: is a folder, expected a model file")
    if providers and chosen != "onnxruntime":
        raise UserError(f"--providers applies to the onnxruntime backend only, not {chosen}")
    module = importlib.import_module(f"{__name__}.{chosen}")
    if precision != "fp32" and chosen == "acl":
        raise UserError(f"{model_path}: --precision applies to torch and onnxruntime; an .om's precision is "
                        "fixed when atc converts it")
    if chosen == "acl":
        return module.AclBackend(model_path, device_id=device_id)
    if chosen == "onnxruntime":
        return module.OrtBackend(model_path, device_id=device_id, providers=providers, threads=threads,
                                 precision=precision)
    return module.TorchBackend(model_path, device_id=device_id, threads=threads, precision=precision)

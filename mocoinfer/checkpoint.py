"""Load a MoCo linear-classification checkpoint safely and turn it into a torchvision model.

MoCo's `main_lincls.py` saves `{'epoch', 'arch', 'state_dict', 'best_acc1', 'optimizer'}` with
`module.`-prefixed keys (the model ran under DataParallel). People also hand us the bare state
dict, a copy with the prefix stripped, or by mistake the *pretraining* checkpoint of
`main_moco.py`, whose `encoder_q` has no trained classifier. Each gets either a model or one
clear error. Loading is always `weights_only=True`: a checkpoint that needs arbitrary
unpickling is refused and nothing in it runs.
"""

from __future__ import annotations

import os
import pickle
import re
from typing import Dict, List, Optional, Tuple

from .atomic import special_kind
from .errors import UserError

DEFAULT_ARCH = "resnet50"

# torchvision classifiers whose state-dict layout MoCo's linear evaluation produces.
RESNET_ARCHS = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
    "wide_resnet50_2", "wide_resnet101_2",
)


def load_checkpoint(path: str) -> Tuple[Dict[str, object], Optional[str]]:
    """Return `(state_dict with plain keys, arch named by the checkpoint or None)`."""
    import torch

    if not os.path.exists(path):
        raise UserError(f"{path}: checkpoint not found")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a folder, expected a checkpoint file (.pth.tar)")
    kind = special_kind(os.stat(path).st_mode)
    if kind is not None:  # torch.load would block forever on a FIFO
        raise UserError(f"{path}: is {kind}, expected a checkpoint file (.pth.tar); not opened")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        if found:
            raise UserError(
                f"{path}: refused: the checkpoint needs arbitrary unpickling (it references "
                f"{found.group(1)}), which weights_only loading does not allow; nothing in it was "
                "executed. Where you trust the file, re-save only its tensors "
                "(torch.save({'state_dict': ckpt['state_dict']}, ...))") from None
        raise UserError(f"{path}: not a PyTorch checkpoint ({_last_line(exc)})") from None
    except Exception as exc:  # torch raises KeyError, RuntimeError, EOFError... for non-checkpoints
        raise UserError(f"{path}: not a PyTorch checkpoint ({_last_line(exc)})") from None

    arch = None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        state = obj["state_dict"]
        arch = obj.get("arch") if isinstance(obj.get("arch"), str) else None
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
    else:
        raise UserError(f"{path}: no 'state_dict' in the checkpoint and it is not a state dict itself")

    not_tensors = [f"{k!r} ({type(v).__name__})" for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise UserError(f"{path}: state_dict holds values that are not tensors: {_first(not_tensors)}; "
                        "a checkpoint's state_dict maps parameter names to tensors only")
    keys = list(state)
    if any(k.startswith(("module.encoder_q.", "encoder_q.")) for k in keys):
        raise UserError(
            f"{path}: this is a MoCo pretraining checkpoint (encoder_q/encoder_k keys) with no trained "
            "classifier; run MoCo's main_lincls.py linear evaluation and export its "
            "model_lincls_best.pth.tar instead")
    # DataParallel / DistributedDataParallel prefix every key with 'module.'.
    if keys and all(k.startswith("module.") for k in keys):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state, arch


# How torch names the global that its weights-only unpickler would not import.
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _last_line(exc: BaseException) -> str:
    """The informative part of torch's multi-paragraph load errors, on one line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith("Check the")]
    detail = lines[-1] if lines else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _first(items: List[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


def build_model(path: str, arch: Optional[str] = None):
    """The eval-mode torchvision model holding the checkpoint's weights.

    `arch` overrides the checkpoint's own `arch`; default resnet50. The number of classes is
    read from `fc.weight`, so 1000- and 1001-class heads both load.
    """
    import torchvision

    state, ckpt_arch = load_checkpoint(path)
    name = arch or ckpt_arch or DEFAULT_ARCH
    if name not in RESNET_ARCHS:
        raise UserError(f"{path}: architecture {name!r} is not supported "
                        f"(torchvision ResNets only: {', '.join(RESNET_ARCHS)})")
    fc = state.get("fc.weight")
    num_classes = int(fc.shape[0]) if fc is not None and getattr(fc, "ndim", 0) == 2 else 1000
    model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_first(unexpected)}")
        raise UserError(f"{path}: does not match torchvision {name}: " + "; ".join(parts))
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
                  for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if mismatched:
        raise UserError(f"{path}: does not match torchvision {name}: shape mismatch in {_first(mismatched, 3)}")
    bad = _non_finite(state)
    if bad:
        raise UserError(f"{path}: weights are not finite: {_first(bad, 3)}; the checkpoint is corrupt or its "
                        "training diverged, and the exported model would output NaN")
    model.load_state_dict(state, strict=True)
    return model.eval()


def _non_finite(state: Dict[str, object]) -> List[str]:
    """`name (n NaN, m Inf)` for every floating tensor holding a NaN or an infinity."""
    import torch

    bad = []
    for name, t in state.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
            parts = ([f"{nan} NaN"] if nan else []) + ([f"{inf} Inf"] if inf else [])
            bad.append(f"{name} ({', '.join(parts)})")
    return bad

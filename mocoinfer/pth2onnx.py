"""Stage 1's entry: a checkpoint to a verified ONNX file, float or uint8-input (pthtar2onnx.py).

Every argument and the output path are checked before the (slow) load, then the float export
(`export.export_model`) or the uint8-input one (`uint8_model.export_uint8_model`) runs. This
module sits above both, so neither imports the other's caller.
"""

from __future__ import annotations

import time
from typing import Optional

from . import atomic, uint8_model
from .errors import UserError
from .export import (
    DEFAULT_OPSET,
    check_export_memory,
    check_opset,
    default_output_name,
    export_model,
    out_of_memory,
)
from .progress import log, progress_bar


def export_checkpoint(checkpoint: str, output: Optional[str] = None, batch_size: int = 1,
                      opset: int = DEFAULT_OPSET, dynamic: bool = False, arch: Optional[str] = None,
                      verify: bool = True, uint8_input: bool = False) -> dict:
    """Checkpoint → verified ONNX file; the Python entry point behind pthtar2onnx.py.

    `uint8_input`: the model takes uint8 NHWC pixels and normalises them in the graph
    (`mocoinfer.uint8_model`).
    """
    from .checkpoint import build_model

    if uint8_input:
        output = output or uint8_model.default_output_name(batch_size, dynamic)
    output = output or default_output_name(batch_size, dynamic)
    # Every argument and the output path before the (slow) load.
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    check_opset(opset)
    atomic.check_output(output, [checkpoint], what="output")
    if dynamic:
        log.warning("--dynamic exports a dynamic batch axis; the guide found fixed-batch models "
                    "more accurate and faster on Ascend (atc needs --dynamic_batch_size for it)")
    check_export_memory(checkpoint, batch_size, dynamic)
    t0 = time.perf_counter()
    # Two steps (the checkpoint's load; the export with its verification), in the one progress
    # convention: a bar on a terminal, a line in a log once a step ends after the interval.
    bar = progress_bar(2, "export", unit="step")
    try:
        model = build_model(checkpoint, arch)
        bar.update(1)
        t1 = time.perf_counter()
        if uint8_input:
            report = uint8_model.export_uint8_model(model, output, batch_size=batch_size, opset=opset,
                                                    dynamic=dynamic, verify=verify)
        else:
            report = export_model(model, output, batch_size=batch_size, opset=opset, dynamic=dynamic,
                                  verify=verify, inputs=[checkpoint])
        bar.update(1)
    except Exception as exc:  # the estimate above is an estimate: a failed allocation is still one line
        if not out_of_memory(exc):
            raise
        from .sizes import available_memory, human_size

        free = available_memory()
        raise UserError(f"{checkpoint}: ran out of memory exporting batch size {batch_size} ("
                        f"{human_size(free) if free is not None else 'unknown'} available now): use a smaller "
                        "batch; nothing was written") from None
    finally:
        bar.close()
    t2 = time.perf_counter()
    return {"output": output, "batch_size": batch_size, "dynamic": dynamic, "opset": opset,
            "load_seconds": t1 - t0, "export_seconds": t2 - t1, "verify": report, "uint8_input": uint8_input}

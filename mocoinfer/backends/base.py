"""The one interface every inference runtime implements, and the timing record they share.

A backend class can `probe` a model file before any runtime starts and `load` it; a loaded
backend owns one model. The runner only needs to know the per-sample input shape and
dtype (to check input files before any batch runs), the model's batch size (fixed or free), the
image size its input layout implies (`image_size`, for the benchmark's -input_width and
-input_height), and `run(batch) -> [float32 array per output]`. Each `run` appends its phase
times to `timing`, split into host-to-device copy, compute and device-to-host copy where the
runtime exposes them separately (pyACL, PyTorch on CUDA); a runtime that does everything in one
call (ONNX Runtime, PyTorch on CPU) records it all as compute.

Backends are context managers: `close()` runs on every exit path, errors and Ctrl-C included.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError


class Probe(NamedTuple):
    """A model's input as read from its file, before any runtime starts."""

    shape: Tuple[int, ...]  # per sample, e.g. (3, 224, 224)
    dtype: np.dtype
    batch_size: Optional[int]  # fixed batch, or None when the batch axis is free

    @property
    def sample_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def describe(self, model_path: str) -> str:
        return f"{model_path} (input {np.dtype(self.dtype).name} {'x'.join(map(str, self.shape))})"


class Timing:
    """Seconds per `run` call, per phase. A phase the runtime does not separate stays empty."""

    PHASES = ("h2d", "compute", "d2h")

    def __init__(self) -> None:
        self.h2d: List[float] = []
        self.compute: List[float] = []
        self.d2h: List[float] = []

    def clear(self) -> None:
        for phase in self.PHASES:
            getattr(self, phase).clear()

    def phases(self):
        """`(name, list of seconds)` for each phase this runtime measured."""
        return [(p, getattr(self, p)) for p in self.PHASES if getattr(self, p)]


class Backend:
    """Base class: subclasses set the attributes in `__init__` and implement `run`."""

    name = "base"
    #: the packages (import names) the runtime needs, checked before it is imported (`deps`)
    requires: Tuple[str, ...] = ()
    #: per-sample input shape, e.g. (3, 224, 224)
    input_shape: Tuple[int, ...] = ()
    input_dtype: np.dtype = np.dtype(np.float32)
    #: the model's fixed batch size, or None when the batch axis is free
    batch_size: Optional[int] = None
    #: for dynamic models that only accept some batch sizes (Ascend dynamic-batch OMs); None = any
    batch_choices: Optional[Sequence[int]] = None
    #: the input's layout as the runtime reports it ("NCHW" or "NHWC"; pyACL's get_input_format),
    #: or None where it reports none (ONNX Runtime, PyTorch) and the shape alone tells
    input_format: Optional[str] = None
    model_path = ""
    device = ""
    #: what this runtime calls its compute phase in ais_bench's summary
    compute_label = "compute_time"
    #: model file names this runtime loads, by their ending (what `--backend auto` goes by)
    extensions: Tuple[str, ...] = ()

    def __init__(self) -> None:
        self.timing = Timing()

    @classmethod
    def check_precision(cls, model_path: str, precision: str) -> None:
        """Refuse, before anything is loaded or written, a precision this runtime cannot run here.
        The default runtime runs its model as converted (an .om's precision is fixed by atc)."""
        if precision != "fp32":
            raise UserError(f"{model_path}: --precision applies to torch and onnxruntime; an .om's precision is "
                            "fixed when atc converts it")

    @classmethod
    def computes_on_host(cls, providers: Optional[Sequence[str]] = None) -> bool:
        """Whether this runtime computes on the host's CPU cores here (so a device worker of a
        several-device run takes a share of them); an accelerator's runtime does not."""
        return False

    def summary_extras(self) -> dict:
        """What this runtime adds to a run's summary (ONNX Runtime: the providers it used)."""
        return {}

    @classmethod
    def probe(cls, model_path: str) -> Optional[Probe]:
        """The model's input read from the file without starting a runtime, or None where only
        the loaded runtime can tell (or the file is not what this backend reads)."""
        return None

    @classmethod
    def load(cls, model_path: str, device_id: int = 0, providers: Optional[Sequence[str]] = None,
             threads: int = 0, precision: str = "fp32") -> Backend:
        """Open `model_path` with the options this runtime takes (`open_backend` has checked the
        rest do not apply)."""
        raise NotImplementedError

    @property
    def sample_bytes(self) -> int:
        """Bytes of one sample as the model takes it: what each input file must hold."""
        return int(np.prod(self.input_shape, dtype=np.int64)) * self.input_dtype.itemsize

    @property
    def input_layout(self) -> str:
        """"NHWC" or "NCHW", for one sample's input: "NHWC" where the runtime reports it, or where
        the last axis holds the 3 channels and the first does not (an AIPP .om or a uint8-input ONNX
        model takes 224x224x3; atc makes an AIPP input NHWC whatever the atc line's --input_format
        says, so a report of NCHW does not overrule that shape); "NCHW" otherwise."""
        shape = self.input_shape
        if self.input_format == "NHWC" or (len(shape) >= 3 and shape[-1] == 3 and shape[-3] != 3):
            return "NHWC"
        return "NCHW"

    def image_size(self) -> Optional[Tuple[int, int]]:
        """The model's image `(width, height)` in its input layout: NCHW `(shape[-1], shape[-2])`,
        NHWC `(shape[-2], shape[-3])`; None for an input of fewer axes than an image has."""
        shape = self.input_shape
        if self.input_layout == "NHWC" and len(shape) >= 3:
            return int(shape[-2]), int(shape[-3])
        if len(shape) >= 2:
            return int(shape[-1]), int(shape[-2])
        return None

    def describe(self) -> str:
        batch = self.batch_size if self.batch_size is not None else "dynamic"
        shape = "x".join(str(d) for d in self.input_shape)
        return f"{self.model_path} ({self.name}, input {self.input_dtype.name} {shape}, batch {batch})"

    def check_batch(self, batch: np.ndarray) -> int:
        """The batch's size, refused in one line when the model cannot take it: not its fixed
        batch, or not one of a dynamic-batch model's sizes (`batch_choices`)."""
        n = int(batch.shape[0])
        if self.batch_size is not None and n != self.batch_size:
            raise UserError(f"{self.model_path}: the model takes batches of {self.batch_size}, got {n}")
        if self.batch_choices is not None and n not in self.batch_choices:
            raise UserError(f"{self.model_path}: batch {n} is not one of the model's dynamic batch sizes "
                            f"{list(self.batch_choices)}")
        return n

    def run(self, batch: np.ndarray) -> List[np.ndarray]:
        """Outputs for `batch` (shape `(n, *input_shape)`), each float32 `(n, ...)` and owned by
        the caller (never a view of a buffer the backend reuses)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release everything the backend holds; safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

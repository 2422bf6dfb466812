"""What an inference pass reads: `.bin` files (a folder or an info file) or streamed images.

A source gives `onepass.run_pass` everything that differs between the two: the result names of
the inputs it runs (`names`), whether the model takes what it gives (`check_model`), the batch
plan and the pipeline's reader (`plan`, `pipeline_options`), the input each run index stands for
(`index`, what the result folder's manifest records against) and a line for the summary. Both
are context managers: a stream's decoding pool starts on entry, before the model loads, so the
first images decode meanwhile.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from .backends import Backend
from .inputs import InputKind, check_preprocessing_record, input_kind
from .pipeline import Batch, plan_batches


class FileSource:
    """Preprocessed `.bin` files: `paths` to run, their `sizes`, and what they hold (`kind`, known
    before the load from the model file, else checked against the loaded model). The reader
    stores each input's proof at `proofs[index_of[i]]` (`index_of` None: at `proofs[i]`)."""

    def __init__(self, paths: Sequence[str], sizes: Sequence[int], kind: Optional[InputKind] = None,
                 proofs: Optional[List] = None, index_of: Optional[Sequence[int]] = None) -> None:
        self.names = list(paths)
        self.sizes = list(sizes)
        self.kind = kind
        self.proofs, self.index_of = proofs, index_of
        self.batch_cap: Optional[int] = len(self.names)
        self.total = len(self.names)  # inputs to run, for the progress bar

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def check_model(self, be: Backend) -> None:
        if self.kind is None:  # only the loaded runtime can tell (an .om), or the caller's backend
            self.kind = input_kind(self.names, self.sizes, be.input_shape, be.input_dtype, be.describe())
            check_preprocessing_record(self.names, self.kind, be.input_shape, be.input_dtype, be.describe())

    def plan(self, batch_size: int, be: Backend) -> List[Batch]:
        return plan_batches(len(self.names), batch_size, be)

    def pipeline_options(self, batch_size: int, be: Backend) -> dict:
        return {"proofs": self.proofs, "index_of": self.index_of,
                "host_normalize": bool(self.kind and self.kind.host_normalize)}

    def index(self, i: int) -> int:
        return self.index_of[i] if self.index_of is not None else i

    def describe(self, be: Backend) -> str:
        if self.kind is not None and self.kind.host_normalize:
            return "uint8 pixels, normalised on the host"
        return f"{be.input_dtype.name}, as the model takes them"


class ImageSource:
    """Images decoded as they run (`stream.ImageFeed`): the names and the plan grow as the good
    images arrive, so the pipeline's reader is the feed's own."""

    batch_cap: Optional[int] = None  # how many images decode is known only at the end

    def __init__(self, feed) -> None:
        self.feed = feed
        self.total = len(feed.todo)

    @property
    def names(self) -> List[str]:
        return self.feed.names

    def __enter__(self) -> ImageSource:
        self.feed.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.feed.__exit__(*exc)

    def check_model(self, be: Backend) -> None:
        self.feed.check_model(be)

    def plan(self, batch_size: int, be: Backend) -> List[Batch]:
        return self.feed.plan

    def pipeline_options(self, batch_size: int, be: Backend) -> dict:
        return {"make_reader": self.feed.reader(batch_size, be)}

    def index(self, i: int) -> int:
        return self.feed.positions[i]

    def describe(self, be: Backend) -> str:
        return "images, decoded and cropped by worker processes as the model runs"

"""Streaming inference: a folder of images in, result files out, in one pass and with no `.bin` files.

`run_om_infer.py --input VAL_DIR` (or a `get_info.py jpg` info file) lands here through one hook
in `runner.run_inference` (`open_feed`). Each image gives the result file its `.bin` would:

- a pool of worker processes (`decoding.DecodePool`) decodes and transforms each image with
  preprocessing's own transform and defaults (`transforms.EvalTransform`) and sends back the
  uint8 crop, HWC (150 KB at 224, a quarter of the float32 tensor), and the size and SHA-256 of
  the bytes it decoded;
- a reader thread in the runner's pipeline (`pipeline.run_pipeline`'s `make_reader`) takes them
  in input order and normalises them into the batch buffer by preprocessing's table look-up
  (`EvalTransform.to_normalized`: the bits the `.bin` files would hold), or copies them as they
  are for a model that takes uint8 pixels;
- the order is the `.bin` folder's (natural order of the keys, the name before the first '.',
  which names the result `<key>_1.txt`), or an info file's order.

Resume is the `.bin` path's (`resume.ResultFolder`, the same manifest), with the image's digest
as each result's source and the transform (interpolation, resize, crop) among the settings: a
rerun decodes only the images whose results the manifest does not prove. Bad images make no
result (a rerun tries them again); they are listed with their reason on stderr and in
`failed.txt`, and the stage exits 1 unless `--skip-bad`, as preprocessing does. Memory stays
flat: at most `window` chunks of images are in the pool's hands, and the pipeline's queues are
bounded.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import formats, sidecar
from .backends import Backend
from .cli import signals_as_interrupt
from .decoding import DecodePool, DecodeStats, Digest, is_image_input, list_folder, list_info
from .errors import UserError
from .pipeline import StageThread, get_item, plan_batches, put_item
from .progress import log, usable_cpus
from .transforms import DEFAULT_CROP, DEFAULT_INTERPOLATION, DEFAULT_RESIZE, EvalTransform

# Images per pool task: enough to amortise a round trip (~0.1 ms) against a decode (~5-10 ms),
# few enough that the pool's first results come back quickly.
MAX_CHUNK = 8
# Chunks in flight per worker: one being decoded, one queued so the worker never idles, and one
# finished and waiting for the reader.
CHUNKS_PER_WORKER = 3

#: summary.json's "stream" section: what its figures count.
STREAM_DEFINITIONS = {
    "read": "in a streamed run: images / reader time waiting for the decoded crops of each batch",
    "preprocess": "in a streamed run: images / reader time preparing batches (waiting for crops, "
                  "normalising them into the batch, padding)",
    "decode_rate_images_per_s": "images decoded and transformed per second by the pool: images x "
                                "workers / the workers' summed seconds per image",
    "decode_wait_seconds": "reader time waiting for decoded crops from the pool",
    "model_wait_seconds": "reader time waiting for the model side (a free batch buffer or room in the queue)",
    "model_rate_images_per_s": "the run phase's rate: images / backend.run wall time",
    "images_decoded": "images the pool decoded in this run (the good ones and the bad); images whose results "
                      "the result folder's manifest proves are not decoded again",
    "bounded_by": "the slower side: decoding when the pool's decode rate is below the model's rate, else the "
                  "model (more cores help the first, a faster device the second)",
}


@dataclass
class StreamOptions:
    """How images are turned into model inputs: preprocessing's settings and defaults."""

    workers: Optional[int] = None  # default: usable_cpus()
    interpolation: str = DEFAULT_INTERPOLATION
    resize: int = DEFAULT_RESIZE
    crop: int = DEFAULT_CROP

    def transform(self) -> EvalTransform:
        try:
            return EvalTransform(resize=self.resize, crop=self.crop, interpolation=self.interpolation)
        except ValueError as exc:
            raise UserError(str(exc)) from None


    def settings(self) -> Dict[str, object]:
        """What the result folder's manifest records of the transform (each a resume key)."""
        return {"interpolation": self.interpolation, "resize": self.resize, "crop": self.crop}


class ImageFeed:
    """The images of one run, decoded by a pool and consumed in order by `StreamReader`.

    `candidates` are every good-looking image listed, `failed` the entries already known bad;
    `select` picks the candidates to decode (the others have proven results). A context manager:
    entering starts the pool (before the model loads, so the first images decode meanwhile) and
    makes SIGTERM stop the run as Ctrl-C does; leaving stops the pool. `names` (result names) and
    `plan` are the runner's `paths` and batch plan, and `positions` each name's candidate, filled
    by the reader as good images arrive (the writers only look at batches already handed on).
    """

    def __init__(self, input_path: str, options: Optional[StreamOptions] = None,
                 output: Optional[str] = None) -> None:
        options = options or StreamOptions()
        self.input_path = input_path
        self.options = options
        self.transform = options.transform()
        self.max_workers = usable_cpus() if options.workers is None else options.workers
        if self.max_workers < 1:
            raise UserError(f"--workers must be >= 1, got {self.max_workers}")
        self.hidden: List[str] = []
        if os.path.isdir(input_path):
            self.candidates, self.failed, self.hidden = list_folder(input_path, output)
            self.source = f"image folder {input_path}"
        else:
            self.candidates, self.failed = list_info(input_path), []
            self.source = f"info file {input_path}"
        self.total = len(self.candidates) + len(self.failed)
        self.uint8 = False  # set by check_model
        self.names: List[str] = []
        self.positions: List[int] = []
        self.plan: list = []
        self.stats = DecodeStats()
        self.model_wait = 0.0
        self._pool: Optional[DecodePool] = None
        self._stack = contextlib.ExitStack()
        self.finished = False
        self.select(range(len(self.candidates)), [None] * len(self.candidates))

    def select(self, todo: Sequence[int], proofs: List[Optional[Digest]]) -> None:
        """Decode only the candidates at positions `todo`; the reader stores each one's proof in
        `proofs[position]` (the result folder's list, which the manifest records from)."""
        self.todo, self.proofs = list(todo), proofs
        self.workers = max(1, min(self.max_workers, len(self.todo)))
        self.chunk = max(1, min(MAX_CHUNK, len(self.todo) // (self.workers * 8)))
        self.window = self.workers * CHUNKS_PER_WORKER

    def __enter__(self) -> ImageFeed:
        if self.hidden:
            log.info(f"note: {self.input_path}: skipped {len(self.hidden)} hidden file(s) "
                     f"(e.g. {', '.join(self.hidden[:3])})")
        self._stack.enter_context(signals_as_interrupt())
        if self.todo:
            jobs = [(p, self.candidates[p].path) for p in self.todo]
            self._pool = DecodePool(self.workers, self.transform, jobs, self.chunk, self.window, self.stats)
            self._stack.callback(self._stop_pool)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stack.close()

    def _stop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop(self.finished)

    def results(self, stop: threading.Event) -> Iterator[Tuple[int, Optional[np.ndarray], str, Optional[Digest]]]:
        """(position, crop or None, reason, digest) per selected candidate, in order."""
        if self._pool is not None:
            yield from self._pool.results(stop)

    def check_model(self, be: Backend) -> None:
        """The model must take what the transform makes: float32 3 x crop x crop (normalised
        here) or uint8 crop x crop x 3 (the pixels as they are)."""
        c = self.options.crop
        self.uint8 = be.input_dtype == np.uint8
        want = (c, c, 3) if self.uint8 else (3, c, c)
        if tuple(be.input_shape) != want or be.input_dtype not in (np.float32, np.uint8):
            raise UserError(f"{be.describe()}: streamed images are {c}x{c} crops (--crop {c}), given to a "
                            f"model as float32 3x{c}x{c} or uint8 {c}x{c}x3; this model takes something else")

    def reader(self, batch_size: int, be: Backend):
        """The pipeline's `make_reader` for this feed."""
        def make(paths, plan, sample_bytes, free, ready, stop):
            return StreamReader(self, batch_size, be, free, ready, stop)
        return make

    def report(self, summary: Dict, output: str, doc: Optional[dict]) -> None:
        """Add the "stream" section to `summary`; write `failed.txt` in `output`, or remove the
        one an earlier run of this tool left when nothing failed now (`sidecar.replace_failed_list`,
        recorded in the result folder's manifest `doc`)."""
        self.failed.sort()
        st = self.stats
        rate = st.decoded * self.workers / st.seconds if st.seconds > 0 else 0.0
        model_rate = summary.get("phases", {}).get("run", {}).get("throughput_images_per_s", 0.0)
        failed_list = os.path.join(output, formats.FAILED_LIST_NAME)
        doc = {} if doc is None else doc
        sidecar.replace_failed_list(failed_list, [(p, r) for _, p, r in self.failed],
                                    sidecar.failed_list_is_ours(failed_list, doc), doc)
        summary["stream"] = {
            "source": self.source, "workers": self.workers, **self.options.settings(),
            "model_input": "uint8 pixels" if self.uint8 else "float32, normalised by the reader",
            "images_listed": self.total, "images_decoded": st.decoded, "images_failed": len(self.failed),
            "hidden_skipped": len(self.hidden), "failed_file": failed_list if self.failed else None,
            "decode_rate_images_per_s": rate, "decode_seconds": st.seconds,
            "decode_wait_seconds": st.wait, "model_wait_seconds": self.model_wait,
            "model_rate_images_per_s": model_rate,
            "bounded_by": ("decoding" if rate < model_rate else "model") if st.decoded else None,
            "max_images_in_flight": st.max_in_flight,
            "failed": [{"path": p, "reason": r} for _, p, r in self.failed],
            "definitions": STREAM_DEFINITIONS,
        }


class StreamReader(StageThread):
    """The pipeline's reader for streamed images: good crops into batch buffers, in order."""

    def __init__(self, feed: ImageFeed, batch_size: int, be: Backend, free, ready, stop: threading.Event) -> None:
        super().__init__("mocoinfer-stream-reader", stop)
        self.feed, self.batch_size, self.be = feed, batch_size, be
        self.free, self.ready = free, ready
        self.uint8 = be.input_dtype == np.uint8
        self.read_seconds: List[float] = []
        self.prep_seconds: List[float] = []

    def _take_buffer(self):
        t0 = time.perf_counter()
        buf = get_item(self.free, self.stop)
        self.feed.model_wait += time.perf_counter() - t0
        return buf

    def _hand_on(self, buf, n: int, read: float, prep: float) -> None:
        feed = self.feed
        t0 = time.perf_counter()
        start = len(feed.names) - n
        batch = plan_batches(n, self.batch_size, self.be)[0]._replace(start=start)
        if batch.n_run > n:
            buf[n:batch.n_run] = buf[0]
        prep += time.perf_counter() - t0
        feed.plan.append(batch)
        self.read_seconds.append(read)
        self.prep_seconds.append(prep)
        t1 = time.perf_counter()
        put_item(self.ready, (batch, buf), self.stop)
        feed.model_wait += time.perf_counter() - t1

    def work(self) -> None:
        feed = self.feed
        buf, n, read, prep = None, 0, 0.0, 0.0
        waited = feed.stats.wait
        for pos, pixels, reason, digest in feed.results(self.stop):
            # Waiting for the pool is this batch's "read" time, as file reads are on the .bin path.
            read += feed.stats.wait - waited
            prep += feed.stats.wait - waited
            waited = feed.stats.wait
            candidate = feed.candidates[pos]
            if pixels is None:
                feed.failed.append((candidate.index, candidate.path, reason))
                continue
            if buf is None:
                buf = self._take_buffer()
            t0 = time.perf_counter()
            if self.uint8:
                buf[n] = pixels
            else:
                feed.transform.to_normalized(pixels, out=buf[n])
            # Set before the batch is handed on, so before any writer records its result.
            feed.proofs[pos] = digest
            feed.positions.append(pos)
            feed.names.append(candidate.key)
            n += 1
            prep += time.perf_counter() - t0
            if n == self.batch_size:
                self._hand_on(buf, n, read, prep)
                buf, n, read, prep = None, 0, 0.0, 0.0
        if n:
            self._hand_on(buf, n, read, prep)
        feed.finished = True
        put_item(self.ready, None, self.stop)


def open_feed(input_path: str, options: Optional[StreamOptions], output: Optional[str] = None) -> Optional[ImageFeed]:
    """The runner's hook: an `ImageFeed` when `input_path` holds images, None for `.bin` inputs."""
    if not is_image_input(input_path):
        if options is not None and options != StreamOptions():
            log.warning(f"{input_path}: holds .bin files, so --workers, --interpolation, --resize and --crop "
                        "(settings for streamed images) are ignored")
        return None
    return ImageFeed(input_path, options, output)


def summary_line(s: Dict) -> str:
    """The file run's one line with what streaming adds: the decode rate and the bounding side."""
    from .perf import summary_line as file_run_line

    st = s["stream"]
    failed = f", {st['images_failed']} failed" if st["images_failed"] else ""
    if s.get("nothing_to_do"):
        return (f"{s['skipped']} of {s['inputs']} images have proven results in {s['result_dir']}{failed}: "
                "nothing to decode or run (without --resume a rerun runs them again)")
    return (f"{file_run_line(s)}; decoded by {st['workers']} worker{'s' if st['workers'] != 1 else ''} at "
            f"{st['decode_rate_images_per_s']:.1f} img/s{failed}; bounded by {st['bounded_by'] or '-'} "
            f"(model {st['model_rate_images_per_s']:.1f} img/s)")


def report(summary: Dict, skip_bad: bool = False) -> int:
    """Print a streamed run's failures (stderr) and summary line (stdout); the exit status, as
    preprocessing's `report` decides it: bad images fail the stage unless `skip_bad`."""
    st = summary["stream"]
    failures = st["failed"]
    if failures:
        word = "warning" if skip_bad else "error"
        lines = [f"{word}: {len(failures)} image(s) could not be decoded (also listed in {st['failed_file']}):"]
        lines += [f"  {f['path']}: {f['reason']}" for f in failures]
        print("\n".join(lines), file=sys.stderr)
    print(summary_line(summary))
    if failures and not skip_bad:
        raise UserError(f"{len(failures)} input image(s) failed, listed above and in {st['failed_file']}; every "
                        "other image was run; fix or remove them and rerun, or pass --skip-bad to accept the loss")
    if summary["images"] == 0 and not summary.get("skipped"):
        raise UserError(f"{summary['input']}: no image could be decoded")
    return 0

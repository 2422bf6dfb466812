"""Every file format of the pipeline, each read and written in exactly one place.

Each format is defined once, in one submodule of this package; every other module imports the
package (`from . import formats`, `from .formats import read_result`), never a submodule, so
the split below can change without touching any caller.

- `names`: the model input's shape, `natural_key` (the order every stage sorts by) and
  `image_key` (the name that ties labels, .bin files and results together).
- `info`: the info file (get_info.py → run_om_infer.py): lines `index path width height`,
  0-based index.
- `bins`: the preprocessed files (imagenet_torch_preprocess.py): `<image key>.bin`, raw float32
  CHW (or, with `--dtype uint8`, raw uint8 HWC RGB pixels; the size tells which), and
  `failed.txt` beside them: `path<TAB>reason` per input that could not be preprocessed.
- `labels`: the label file (`val_label.txt`): lines `ILSVRC2012_val_00000001.JPEG 65`, 0-based class.
- `results`: the result files (run_om_infer.py → vision_metric_ImageNet.py):
  `<input name>_<k>.txt|bin|npy`, one per image, as Ascend's `benchmark` (k = 1) and
  `ais_bench` (k = 0) write them.
- `perffile`: the perf file (`perf_vision_batchsize_{bs}_device_{id}.txt`, the benchmark's five
  lines) and the pure-inference one.
- `aissummary`: ais_bench's `{result folder}_summary.json` (its form only).
- `summaries`: result.json (the guide's one-line "Overall statistical evaluation"), the JSON
  side files and the run settings file.

Every writer goes through `atomic.atomic_path`: the data lands under a hidden temporary name in
the target folder and is renamed into place, so a reader never sees half a file and an
interrupted stage leaves nothing that a rerun could mistake for finished work. The atomic
helpers and the output policy live in `atomic.py`; the exact txt number parser in `decimals.py`.
"""

from __future__ import annotations

from .aissummary import (
    ais_compute,
    ais_files_info,
    ais_stats,
    ais_summary_doc,
    ais_summary_path,
    ais_throughput,
    check_ais_summary_file,
    write_ais_summary,
)
from .bins import (
    AIS_INPUT_SUFFIXES,
    BIN_DTYPES,
    BIN_SUFFIX,
    DEFAULT_BIN_DTYPE,
    FAILED_LIST_NAME,
    NPY_SUFFIXES,
    bin_file_size,
    bin_name,
    format_failed,
    npy_data_span,
    read_failed,
    write_failed,
)
from .info import InfoEntry, format_info, read_info, write_info
from .labels import format_labels, read_labels
from .names import FLOAT32_BYTES, INPUT_CHANNELS, INPUT_SIZE, image_key, natural_key, shown
from .perffile import format_perf, format_pure_perf, parse_perf, perf_filename, pure_perf_filename
from .results import (
    AIS_STYLE,
    BENCHMARK_STYLE,
    RESULT_FORMATS,
    STYLES,
    ResultFile,
    decode_result,
    encode_ais_result,
    encode_result,
    encode_results,
    is_result_name,
    iter_results,
    list_results,
    read_result,
    result_filename,
    result_key,
    result_stem,
    write_result,
    write_result_bytes,
)
from .summaries import (
    RUN_SETTING_KEYS,
    RUN_SETTINGS_NAME,
    format_accuracy,
    read_json,
    read_result_json,
    read_run_settings,
    result_json_text,
    write_result_json,
    write_run_settings,
)

__all__ = [
    # names
    "INPUT_CHANNELS", "INPUT_SIZE", "FLOAT32_BYTES", "natural_key", "image_key", "shown",
    # info
    "InfoEntry", "format_info", "write_info", "read_info",
    # bins
    "BIN_DTYPES", "DEFAULT_BIN_DTYPE", "bin_file_size", "BIN_SUFFIX", "FAILED_LIST_NAME", "bin_name",
    "format_failed", "write_failed", "read_failed", "NPY_SUFFIXES", "AIS_INPUT_SUFFIXES",
    "npy_data_span",
    # labels
    "read_labels", "format_labels",
    # results
    "RESULT_FORMATS", "BENCHMARK_STYLE", "AIS_STYLE", "STYLES", "result_stem", "encode_ais_result",
    "result_filename", "result_key", "is_result_name", "encode_result", "write_result", "encode_results",
    "write_result_bytes", "decode_result", "read_result", "ResultFile", "list_results", "iter_results",
    # perf
    "perf_filename", "pure_perf_filename", "format_pure_perf", "format_perf", "parse_perf",
    # ais_bench's summary file
    "ais_summary_path", "ais_stats", "ais_compute", "ais_throughput", "ais_files_info", "ais_summary_doc",
    "write_ais_summary", "check_ais_summary_file",
    # summaries
    "format_accuracy", "result_json_text", "write_result_json", "read_result_json", "read_json",
    "RUN_SETTINGS_NAME", "RUN_SETTING_KEYS", "write_run_settings", "read_run_settings",
]

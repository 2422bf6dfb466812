"""The JSON files: result.json (the guide's one-line "Overall statistical evaluation"), the JSON
side files written by `atomic.write_json` (summary.json, result_compare.json), and the run
settings file (`run_settings.json`) that scripts/run_all.sh keeps in its WORK_DIR.
"""

from __future__ import annotations

import json
from typing import Dict, Sequence

import numpy as np

from ..atomic import atomic_write_text, write_json
from ..errors import UserError

# result.json.

def format_accuracy(fraction: float) -> str:
    """The guide's rendering: `str(round(acc * 100, 2)) + '%'` (so 100% is '100.0%').

    The guide's `acc` is a numpy float64, so its round is numpy's (scale, rint, unscale), not
    Python's correctly rounded one; the same is used here so that every string matches.
    """
    return str(float(round(np.float64(fraction) * 100, 2))) + "%"


def result_json_text(n_images: int, n_classes: int, topk_fractions: Sequence[float]) -> str:
    """The guide's result.json, one line, keys in its order."""
    values = [{"key": "Number of images", "value": str(n_images)},
              {"key": "Number of classes", "value": str(n_classes)}]
    values += [{"key": f"Top{i + 1} accuracy", "value": format_accuracy(acc)}
               for i, acc in enumerate(topk_fractions)]
    return json.dumps({"title": "Overall statistical evaluation", "value": values})


def write_result_json(path: str, n_images: int, n_classes: int, topk_fractions: Sequence[float]) -> None:
    atomic_write_text(path, result_json_text(n_images, n_classes, topk_fractions))


def read_result_json(path: str) -> Dict[str, str]:
    """{key: value} of a result.json, e.g. out['Top1 accuracy'] == '67.31%'; a missing or
    malformed one is a one-line error naming it."""
    doc = read_json(path, "result file (step 6 writes it)")
    try:
        return {str(item["key"]): str(item["value"]) for item in doc["value"]}
    except (KeyError, TypeError):
        raise UserError(f"{path}: not a result.json (expected its 'value' list of key/value pairs)") from None


# JSON side files.

def read_json(path: str, what: str) -> dict:
    """A JSON object written by `write_json` (summary.json, result_compare.json, run_settings.json);
    a missing or malformed file is a one-line error naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable {what} ({exc})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: not a {what} (expected a JSON object)")
    return obj


# Run settings.

#: scripts/run_all.sh records the settings its outputs were made with here, in its WORK_DIR.
RUN_SETTINGS_NAME = "run_settings.json"
#: the recorded settings, in the order they are compared and reported.
RUN_SETTING_KEYS = ("BS", "INTERPOLATION", "CKPT", "CKPT_SIZE", "CKPT_SHA256", "VAL_DIR", "LABELS", "MODEL_KIND")


def write_run_settings(path: str, settings: Dict[str, str]) -> None:
    """`{"format": "mocoinfer run settings 1", "settings": {KEY: value}}`, every value a string."""
    write_json(path, {"format": "mocoinfer run settings 1",
                      "settings": {k: str(settings[k]) for k in RUN_SETTING_KEYS}})


def read_run_settings(path: str) -> Dict[str, str]:
    doc = read_json(path, "run settings file")
    settings = doc.get("settings")
    if not isinstance(settings, dict) or any(k not in settings for k in RUN_SETTING_KEYS):
        raise UserError(f"{path}: not a run settings file (expected the keys {', '.join(RUN_SETTING_KEYS)})")
    return {k: str(settings[k]) for k in RUN_SETTING_KEYS}

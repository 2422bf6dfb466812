"""Data folders hold data only (issue 18): the guide's own scripts read what every form writes.

The guide's `vision_metric_ImageNet.py` lists a result folder with `os.listdir` and parses every
entry as a result; ais_bench and the guide's get_info.py read every `.bin` of a preprocessed
folder. So after a run, an interrupted run and a rerun, in every command-line form (the guide's
benchmark line, the own form, ais_bench's, several devices, streamed images), each data folder
must hold data files only, and the guide's algorithm must score the folder as it is.

Oracles: the guide's algorithm (`tests/reference_metric.py`, run on the folder with no filtering)
for result.json, string by string against ours; `os.listdir` for the folder contents.
"""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest

import get_info
import imagenet_torch_preprocess
import run_om_infer
import vision_metric_ImageNet
from mocoinfer.cli import run_main
from tests.reference_metric import guide_metric
from tests.tiny_model import tiny_net

#: an own-form flag: this runner's layout; without one the line is ais_bench's (issue 19)
OWN = ["--device-id", "0"]

N = 7
RESULT_NAME = re.compile(r"^[^.][^/]*_[01]\.txt$")


@pytest.fixture(scope="module")
def guide_dir(tmp_path_factory):
    """The guide's working folder: val/ JPEGs, their labels, prep_dataset/ from preprocessing, the
    info file from get_info.py, and a bs1 ONNX model of the tiny classifier."""
    from PIL import Image

    from mocoinfer.export import export_model

    root = tmp_path_factory.mktemp("guide")
    rng = np.random.default_rng(3)
    (root / "val").mkdir()
    lines = []
    for i in range(N):
        name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        Image.fromarray(rng.integers(0, 255, (260, 300, 3), dtype=np.uint8)).save(root / "val" / name)
        lines.append(f"{name} {int(rng.integers(0, 10))}")
    (root / "val_label.txt").write_text("\n".join(lines) + "\n")
    export_model(tiny_net(), str(root / "moco-v2-bs1.onnx"), batch_size=1)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert run_main(imagenet_torch_preprocess.main, ["./val", "./prep_dataset"]) == 0
        assert run_main(get_info.main, ["bin", "./prep_dataset", "./prep_bin.info", "224", "224"]) == 0
    finally:
        os.chdir(cwd)
    return root


FORMS = {
    "guide": (["-model_type=vision", "-batch_size=1", "-device_id=0", "-input_text_path=./prep_bin.info",
               "-input_width=224", "-input_height=224", "-om_path=./moco-v2-bs1.onnx", "-useDvpp=False",
               "-output_binary=False"], "result/dumpOutput_device0"),
    "own": (["--model", "moco-v2-bs1.onnx", *OWN, "--input", "prep_dataset", "--output", "result"],
            "result/dumpOutput_device0"),
    "ais_bench": (["--model", "moco-v2-bs1.onnx", "--input", "prep_dataset", "--output", "result",
                   "--output_dirname", "out", "--outfmt", "TXT"], "result/out"),
    # ais_bench's several devices: every input on every device, each in its own folder (issue 19)
    "ais_devices": (["--model", "moco-v2-bs1.onnx", "--input", "prep_dataset", "--output", "result",
                     "--output_dirname", "out", "--outfmt", "TXT", "--device", "0,1"], "result/out/device1_1"),
    "devices": (["--model", "moco-v2-bs1.onnx", "--input", "prep_dataset", "--output", "result",
                 "--device-id", "0,1"], "result/dumpOutput_device0"),
    "streamed": (["--model", "moco-v2-bs1.onnx", "--input", "val", "--output", "result"],
                 "result/dumpOutput_device0"),
}


def only_results(folder) -> list:
    """The folder's entries that are not plain result files (none expected)."""
    return [n for n in os.listdir(folder) if not (RESULT_NAME.match(n) and os.path.isfile(os.path.join(folder, n))
                                                   and not os.path.islink(os.path.join(folder, n)))]


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_guides_metric_scores_every_forms_result_folder_as_it_is(guide_dir, tmp_path, monkeypatch, form):
    for name in ("val", "val_label.txt", "prep_dataset", "prep_bin.info", "moco-v2-bs1.onnx"):
        os.symlink(guide_dir / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    argv, folder = FORMS[form]
    for attempt in ("run", "rerun"):
        assert run_main(run_om_infer.main, argv) == 0, attempt
        assert only_results(folder) == [], attempt
        assert len(os.listdir(folder)) == N
        guide = guide_metric(folder, "val_label.txt", str(tmp_path), "guide.json")
        assert run_main(vision_metric_ImageNet.main, [folder, "val_label.txt", str(tmp_path), "result.json"]) == 0
        assert (tmp_path / "result.json").read_text() == guide
        assert f'"Number of images", "value": "{N}"' in guide
    # The preprocessed folder too: .bin files only, nothing of this tool's bookkeeping.
    assert sorted(os.listdir(guide_dir / "prep_dataset")) == sorted(
        f"ILSVRC2012_val_{i + 1:08d}.bin" for i in range(N))


def test_a_folder_an_older_version_wrote_keeps_resuming_and_is_cleaned(guide_dir, tmp_path, monkeypatch):
    """An older version kept its manifest and lock inside the result folder: the rerun reads the
    manifest there once (with --resume nothing is run again: every result proven), writes it beside the folder,
    and the folder then holds results only. Oracle: the manifest's own file list, os.listdir."""
    import json

    from mocoinfer import sidecar

    for name in ("prep_dataset", "moco-v2-bs1.onnx"):
        os.symlink(guide_dir / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    argv, folder = FORMS["own"]
    assert run_main(run_om_infer.main, argv) == 0
    doc = sidecar.read_manifest(folder)
    side = sidecar.manifest_path(folder)
    os.replace(side, os.path.join(folder, sidecar.LEGACY_MANIFEST_NAME))  # as an older version left it
    with open(os.path.join(folder, sidecar.LEGACY_LOCK_NAME), "w") as f:
        json.dump({"pid": 1, "run_id": "1-00000000", "command": "run_om_infer.py"}, f)
    before = {n: os.stat(os.path.join(folder, n)).st_mtime_ns for n in os.listdir(folder) if RESULT_NAME.match(n)}
    assert run_main(run_om_infer.main, argv + ["--resume"]) == 0
    assert only_results(folder) == []
    assert {n: os.stat(os.path.join(folder, n)).st_mtime_ns for n in os.listdir(folder)} == before
    assert sorted(sidecar.read_manifest(folder)["files"]) == sorted(doc["files"])


def test_an_output_inside_the_image_folder_is_no_input_on_the_rerun(guide_dir, tmp_path, monkeypatch):
    """Issue 20, class 8: `--output` inside the image folder worked once, then the rerun read the
    output folder as an image ("is a directory"). Streamed and preprocessed alike: the rerun
    succeeds, proves every result, and no image changed. Oracle: the first run's result files,
    byte for byte, and the images' fingerprints (safety_helpers.tree)."""
    from safety_helpers import tree

    val = tmp_path / "val"
    shutil.copytree(guide_dir / "val", val)
    os.symlink(guide_dir / "moco-v2-bs1.onnx", tmp_path / "m.onnx")
    monkeypatch.chdir(tmp_path)
    images = tree(str(val))
    argv = ["--model", "m.onnx", "--input", "val", "--output", "val/result", "--no-progress"]
    assert run_main(run_om_infer.main, argv) == 0
    res = val / "result" / "dumpOutput_device0"
    first = {n: (res / n).read_bytes() for n in os.listdir(res)}
    assert run_main(run_om_infer.main, argv) == 0
    assert {n: (res / n).read_bytes() for n in os.listdir(res)} == first and len(first) == N
    assert {k: v for k, v in tree(str(val)).items() if not k.startswith(("result", ".result"))} == images
    val2 = tmp_path / "val2"
    shutil.copytree(guide_dir / "val", val2)
    prep = ["val2", "val2/prep"]
    assert run_main(imagenet_torch_preprocess.main, prep) == 0
    assert run_main(imagenet_torch_preprocess.main, prep) == 0
    assert len(os.listdir(val2 / "prep")) == N
    assert {k: v for k, v in tree(str(val2)).items() if not k.startswith(("prep", ".prep"))} == images


def test_files_whose_size_coincides_are_read_as_preprocessing_made_them(guide_dir, tmp_path, monkeypatch, capsys):
    """Issue 20, class 6: float32 224x224 files (602,112 bytes) fed to a float32 3x448x448 model
    are the size of uint8 448x448x3 pixels; the preprocessing record says what they are, so the
    run refuses in one line before any result is written. Oracle: the record (float32, crop 224)
    and the model's input (448); the inputs' fingerprints."""
    import torch
    from safety_helpers import tree

    class Pool448(torch.nn.Module):  # takes 3x448x448: a 2x2 average to 224, then the tiny net
        def __init__(self):
            super().__init__()
            self.net = tiny_net()

        def forward(self, x):
            return self.net(torch.nn.functional.avg_pool2d(x, 2))

    torch.onnx.export(Pool448().eval(), torch.zeros(1, 3, 448, 448), str(tmp_path / "m448.onnx"), dynamo=False,
                      opset_version=11, input_names=["actual_input_1"], output_names=["output1"])
    os.symlink(guide_dir / "prep_dataset", tmp_path / "prep_dataset")
    monkeypatch.chdir(tmp_path)
    before = tree(str(guide_dir / "prep_dataset"))
    assert run_main(run_om_infer.main, ["--model", "m448.onnx", *OWN, "--input", "prep_dataset", "--output", "r"]) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1 and "float32 224x224" in lines[0] and "uint8 448x448" in lines[0], err
    assert tree(str(guide_dir / "prep_dataset")) == before
    assert not os.path.exists("r/dumpOutput_device0") or os.listdir("r/dumpOutput_device0") == []


def test_streamed_images_with_a_device_list_are_refused_in_one_line(guide_dir, tmp_path, monkeypatch, capsys):
    """Issue 20, class 11: what the README says is what the runner does. Oracle: exit 1, one
    error line naming the image folder and the fix, no result folder made."""
    os.symlink(guide_dir / "val", tmp_path / "val")
    os.symlink(guide_dir / "moco-v2-bs1.onnx", tmp_path / "m.onnx")
    monkeypatch.chdir(tmp_path)
    from safety_helpers import tree

    images = tree(str(guide_dir / "val"))
    rc = run_main(run_om_infer.main, ["--model", "m.onnx", "--input", "val", "--output", "r", "--device-id", "0,1"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert tree(str(guide_dir / "val")) == images
    assert rc == 1 and len(err) == 1 and "val" in err[0] and "preprocess them to .bin files" in err[0]
    assert not os.path.exists("r/dumpOutput_device0")


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, '{"format": 1, "tool": "run_om_infer.py", '
                                  '"status": "complete", "settings": {}, "files": {"a_1.txt": 7}}'])
def test_a_manifest_edited_by_hand_proves_nothing_and_raises_nothing(guide_dir, tmp_path, monkeypatch, capsys, text):
    """Issue 20, class 9: a manifest nested too deep for json, or with an entry of the wrong type,
    is ignored with one warning (nothing proven, every input runs again), by the rerun and the
    metric alike; no traceback. Oracle: the rerun's count of inputs run, the metric's result."""
    from mocoinfer import sidecar

    for name in ("prep_dataset", "moco-v2-bs1.onnx", "val_label.txt"):
        os.symlink(guide_dir / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    from safety_helpers import tree

    argv, folder = FORMS["own"]
    inputs = tree(str(guide_dir / "prep_dataset"))
    assert run_main(run_om_infer.main, argv) == 0
    with open(sidecar.manifest_path(folder), "w") as f:
        f.write(text)
    capsys.readouterr()
    assert run_main(vision_metric_ImageNet.main, [folder, "val_label.txt", str(tmp_path), "result.json"]) == 0
    assert run_main(run_om_infer.main, argv) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "ignoring" in err and f"{N} inputs" in out, (out, err)
    assert tree(str(guide_dir / "prep_dataset")) == inputs

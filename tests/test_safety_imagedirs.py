"""Image folders that are not flat, or not only images (issue 20, class 7), and file names that
are not valid UTF-8 (class 9, preprocessing's failed.txt).

- A folder holding images and `.bin` files is refused by every stage that reads a folder
  (preprocessing, get_info in both modes, inference on .bin files, streamed inference), in one
  line naming one file of each kind; nothing is written, no input changes.
- ImageNet's val arranged in class folders (`val/n01440764/ILSVRC2012_val_00000293.JPEG`, as
  torchvision's ImageFolder reads it) preprocesses to the same `.bin` files, byte for byte, as the
  same images in one flat folder; get_info lists `class/file` in natural order; streaming gives
  the flat folder's results; labels keyed by the image's name score them. Two classes holding one
  image name are refused in one line naming both files.
- A name that is not valid UTF-8 is a failure by name (listed, never decoded); failed.txt stays
  UTF-8 text with the bytes written as `\\xff`; get_info names the file in one line.

Oracles: the flat folder's outputs (whose bytes test_preprocess.py holds to torchvision); natural
order by hand; fingerprints of every input before and after (safety_helpers).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image
from safety_helpers import one_line_error, tree

import get_info
import imagenet_torch_preprocess as stage
import run_om_infer
from mocoinfer import decoding, formats, inputs
from mocoinfer.cli import run_main
from mocoinfer.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DUMP = "dumpOutput_device0"
# (class folder, image) as ImageNet's val is kept for ImageFolder; the numbers are chosen so that
# plain string order and natural order differ (n2 < n10, val_9 < val_10).
LAYOUT = [("n10", "ILSVRC2012_val_10.JPEG"), ("n2", "ILSVRC2012_val_9.JPEG"), ("n2", "ILSVRC2012_val_10x.JPEG"),
          ("n10", "ILSVRC2012_val_2.JPEG"), ("n1", "ILSVRC2012_val_7.JPEG")]


def make_images(tmp_path):
    """The same five JPEGs twice: flat in `flat/`, in class folders in `tree/`."""
    rng = np.random.default_rng(3)
    for cls, name in LAYOUT:
        arr = rng.integers(0, 256, (60 + len(name), 70, 3), dtype=np.uint8)
        for path in (tmp_path / "flat" / name, tmp_path / "tree" / cls / name):
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(path, "JPEG", quality=90)
    return str(tmp_path / "flat"), str(tmp_path / "tree")


def run(module, argv, capsys):
    code = run_main(module.main, argv)
    out, err = capsys.readouterr()
    return code, out, err


def files(folder):
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))
            if not n.startswith(".")}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from test_runner import _tiny_net

    from mocoinfer.export import export_model

    path = str(tmp_path_factory.mktemp("m") / "tiny.onnx")
    export_model(_tiny_net(), path, batch_size=1, dynamic=True, verify=False)
    return path


# --------------------------------------------------------------------------- a mix of kinds

def test_a_folder_of_images_and_bin_files_is_refused_by_every_stage(tmp_path, capsys, model):
    """Class: one stray .bin in an image folder made inference take the folder as a .bin folder
    and ignore every JPEG (exit 0); one stray JPEG in a .bin folder was ignored the other way.
    Every reader of a folder refuses the mix, naming one file of each kind, writes nothing."""
    flat, _ = make_images(tmp_path)
    shutil.copy(os.path.join(flat, "ILSVRC2012_val_2.JPEG"), tmp_path / "x.JPEG")
    (tmp_path / "flat" / "stray.bin").write_bytes(b"\0" * formats.bin_file_size())
    prep = tmp_path / "prep"
    prep.mkdir()
    for i in range(2):
        (prep / f"img_{i}.bin").write_bytes(b"\0" * formats.bin_file_size())
    shutil.copy(tmp_path / "x.JPEG", prep / "stray.JPEG")
    out = tmp_path / "out"
    before = tree(str(tmp_path))
    image = os.path.join(flat, "ILSVRC2012_val_2.JPEG")
    for module, argv, folder, img, binary in [
        (stage, [flat, str(out), "--no-progress"], flat, image, "stray.bin"),
        (get_info, ["jpg", flat, str(out) + ".info"], flat, image, "stray.bin"),
        (get_info, ["bin", str(prep), str(out) + ".info", "224", "224"], str(prep), "stray.JPEG", "img_0.bin"),
        (run_om_infer, ["--model", model, "--input", flat, "--output", str(out), "--no-progress"], flat, None,
         "stray.bin"),
        (run_om_infer, ["--model", model, "--input", str(prep), "--output", str(out), "--no-progress"], str(prep),
         "stray.JPEG", "img_"),
    ]:
        code, _, err = run(module, argv, capsys)
        assert code == 1, (module.__name__, folder, err)
        assert one_line_error(err, folder, "both images", binary, img or ".JPEG"), (module.__name__, err)
        assert tree(str(tmp_path)) == before, module.__name__
    with pytest.raises(UserError, match="both images"):
        decoding.is_image_input(flat)
    with pytest.raises(UserError, match="both images"):
        inputs.list_bin_inputs(str(prep))


def test_a_mix_inside_class_folders_is_refused_too(tmp_path, capsys):
    _, tree_dir = make_images(tmp_path)
    (tmp_path / "tree" / "n2" / "old.bin").write_bytes(b"\0" * 8)
    before = tree(str(tmp_path))
    code, _, err = run(stage, [tree_dir, str(tmp_path / "prep"), "--no-progress"], capsys)
    assert code == 1 and one_line_error(err, "both images", "n2/old.bin"), err
    assert tree(str(tmp_path)) == before


def test_other_files_are_no_kind_and_flat_folders_behave_as_before(tmp_path, capsys):
    """A .bin folder may hold failed.txt (preprocessing writes it there); an image folder a
    notes.txt (a failure by name, as before): neither is a mix."""
    flat, _ = make_images(tmp_path)
    (tmp_path / "flat" / "notes.txt").write_text("not an image\n")
    prep = str(tmp_path / "prep")
    code, out, err = run(stage, [flat, prep, "--no-progress"], capsys)
    assert code == 1 and "5 written, 0 already up to date, 1 failed" in out, err
    assert os.path.exists(os.path.join(prep, "failed.txt"))
    code, _, err = run(get_info, ["bin", prep, str(tmp_path / "p.info"), "224", "224"], capsys)
    assert code == 0, err


# --------------------------------------------------------------------------- class folders

def test_class_folders_preprocess_to_the_flat_folders_files(tmp_path, capsys):
    """Oracle: the same images in one flat folder, whose .bin files test_preprocess.py holds to
    torchvision: the same names (the image's, before its first '.') and the same bytes. A rerun
    proves and keeps them; the inputs never change."""
    flat, tree_dir = make_images(tmp_path)
    inputs_before = tree(str(tmp_path))
    for src, out in ((flat, "prep_flat"), (tree_dir, "prep_tree")):
        code, stdout, err = run(stage, [src, str(tmp_path / out), "--no-progress"], capsys)
        assert code == 0 and "5 written, 0 already up to date, 0 failed" in stdout, err
    assert files(tmp_path / "prep_tree") == files(tmp_path / "prep_flat")
    assert sorted(files(tmp_path / "prep_tree")) == sorted(formats.bin_name(n) for _, n in LAYOUT)
    code, stdout, _ = run(stage, [tree_dir, str(tmp_path / "prep_tree"), "--no-progress"], capsys)
    assert code == 0 and "0 written, 5 already up to date" in stdout
    assert {k: v for k, v in tree(str(tmp_path)).items() if k.startswith(("flat", "tree"))} == inputs_before


def test_get_info_lists_class_folders_in_natural_order(tmp_path, capsys):
    """Oracle: the order by hand: classes n1, n2, n10, then files within each naturally."""
    _, tree_dir = make_images(tmp_path)
    info = tmp_path / "val.info"
    code, _, err = run(get_info, ["jpg", tree_dir, str(info)], capsys)
    assert code == 0, err
    paths = [line.split()[1] for line in info.read_text().splitlines()]
    assert paths == [os.path.join(tree_dir, rel) for rel in (
        "n1/ILSVRC2012_val_7.JPEG", "n2/ILSVRC2012_val_9.JPEG", "n2/ILSVRC2012_val_10x.JPEG",
        "n10/ILSVRC2012_val_2.JPEG", "n10/ILSVRC2012_val_10.JPEG")]


def test_streaming_class_folders_gives_the_flat_folders_results_and_labels_score_them(tmp_path, capsys,
                                                                                        model):
    """Streamed inference on the class folders writes the results the flat folder gives; a label
    file naming the images as `class/file` (or the guide's bare names) scores them."""
    import vision_metric_ImageNet as metric

    flat, tree_dir = make_images(tmp_path)
    for src, out in ((flat, "r_flat"), (tree_dir, "r_tree")):
        code, _, err = run(run_om_infer, ["--model", model, "--input", src, "--output", str(tmp_path / out),
                                          "--workers", "1", "--no-progress"], capsys)
        assert code == 0, err
    got = files(tmp_path / "r_tree" / DUMP)
    assert got == files(tmp_path / "r_flat" / DUMP) and len(got) == len(LAYOUT)
    labels = tmp_path / "val_label.txt"
    pred = {n.rsplit("_", 1)[0]: int(np.argmax(formats.read_result(str(tmp_path / "r_tree" / DUMP / n))))
            for n in got}
    labels.write_text("".join(f"{cls}/{name} {pred[formats.image_key(name)]}\n" for cls, name in LAYOUT))
    code, _, err = run(metric, [str(tmp_path / "r_tree" / DUMP), str(labels), str(tmp_path), "result.json"], capsys)
    assert code == 0, err
    assert formats.read_result_json(str(tmp_path / "result.json"))["Top1 accuracy"] == "100.0%"


def test_one_image_name_in_two_classes_is_refused_naming_both(tmp_path, capsys):
    """Results are named by the image's name; two classes holding one name would write one
    .bin (and one result) for both: refused before any work, nothing written."""
    _, tree_dir = make_images(tmp_path)
    shutil.copy(tmp_path / "tree" / "n1" / "ILSVRC2012_val_7.JPEG", tmp_path / "tree" / "n10" / "ILSVRC2012_val_7.jpg")
    before = tree(str(tmp_path))
    for module, argv in ((stage, [tree_dir, str(tmp_path / "prep"), "--no-progress"]),
                         (run_om_infer, ["--model", "m.onnx", "--input", tree_dir, "--output", str(tmp_path / "r")])):
        code, _, err = run(module, argv, capsys)
        assert code == 1 and one_line_error(err, "n1/ILSVRC2012_val_7.JPEG", "n10/ILSVRC2012_val_7.jpg"), err
        assert tree(str(tmp_path)) == before


def test_a_folder_of_files_and_folders_is_still_read_flat(tmp_path, capsys):
    """Only a folder of folders is read as class folders: a folder among images is a bad input,
    as it always was (flat folders keep their behaviour)."""
    flat, _ = make_images(tmp_path)
    (tmp_path / "flat" / "sub").mkdir()
    code, out, err = run(stage, [flat, str(tmp_path / "prep"), "--no-progress"], capsys)
    assert code == 1 and "5 written, 0 already up to date, 1 failed" in out
    assert "sub: is a directory, not an image" in err


# --------------------------------------------------------------------------- names that are not UTF-8

def test_names_that_are_not_utf8_are_failures_by_name_and_failed_txt_stays_text(tmp_path, capsys):
    """Class 9: a good image and a corrupt one whose names hold the byte 0xff (flat, and inside
    a class folder whose own name is not UTF-8): no traceback, every other image written, each
    such file listed in failed.txt (valid UTF-8, the byte written as \\xff), inputs unchanged."""
    flat, tree_dir = make_images(tmp_path)
    good = os.path.join(flat, "ILSVRC2012_val_2.JPEG")
    raw = os.fsencode(flat)
    shutil.copy(good, raw + b"/good_\xff.JPEG")
    with open(raw + b"/bad_\xfe.JPEG", "wb") as f:
        f.write(b"not a jpeg")
    os.mkdir(os.fsencode(tree_dir) + b"/n\xff")
    shutil.copy(good, os.fsencode(tree_dir) + b"/n\xff/x.JPEG")
    before = tree(str(tmp_path))
    for src, n_failed in ((flat, 2), (tree_dir, 1)):
        out = tmp_path / ("prep_" + os.path.basename(src))
        code, stdout, err = run(stage, [src, str(out), "--no-progress"], capsys)
        assert code == 1 and "Traceback" not in err and one_line_error(err, "input file(s) failed"), err
        assert f"5 written, 0 already up to date, {n_failed} failed" in stdout
        text = (out / "failed.txt").read_bytes().decode("utf-8")  # valid UTF-8, or this raises
        assert "not valid UTF-8" in text and "\\x" in text
        assert sorted(files(out)) == sorted([formats.bin_name(n) for _, n in LAYOUT] + ["failed.txt"])
    assert "good_\\xff.JPEG" in (tmp_path / "prep_flat" / "failed.txt").read_text()
    assert tree(str(tmp_path)).keys() >= before.keys()
    assert {k: v for k, v in tree(str(tmp_path)).items() if k in before} == before
    code, _, err = run(get_info, ["jpg", flat, str(tmp_path / "j.info")], capsys)
    assert code == 1 and one_line_error(err, "not valid UTF-8", "bad_\\xfe.JPEG"), err
    assert not (tmp_path / "j.info").exists()

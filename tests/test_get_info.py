"""Stage 4, get_info.py: info files for .bin and JPEG folders, and every way a folder can be wrong.

Oracles: hand-written expected lines (natural order, 0-based) and the sizes the images were made
with.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import get_info as stage
from mocoinfer import formats
from mocoinfer.cli import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_BYTES = 602112


def run_stage(argv, capsys):
    code = run_main(stage.main, argv)
    out, err = capsys.readouterr()
    return code, out, err


def read(path):
    with open(path) as f:
        return f.read()


def make_bins(folder, names, size=BIN_BYTES):
    os.makedirs(folder, exist_ok=True)
    for name in names:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(b"\0" * size)


def make_jpeg(path, width, height, fmt="JPEG", **kw):
    arr = np.random.default_rng(width * height).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, fmt, **kw)


def test_bin_mode_natural_order_zero_based(tmp_path, capsys):
    prep = str(tmp_path / "prep")
    make_bins(prep, ["img10.bin", "img2.bin", "img1.bin"])
    # Not inputs: the preprocess stage's failure list and a killed writer's temporary.
    (tmp_path / "prep" / "failed.txt").write_text("x\ty\n")
    (tmp_path / "prep" / ".img3.bin.tmp123").write_bytes(b"\0")
    info = str(tmp_path / "dataset_prep_bin.info")
    code, out, _ = run_stage(["bin", prep, info, "224", "224"], capsys)
    assert code == 0 and "3 bin entries" in out
    assert read(info) == (f"0 {prep}/img1.bin 224 224\n"
                                 f"1 {prep}/img2.bin 224 224\n"
                                 f"2 {prep}/img10.bin 224 224\n")
    assert formats.read_info(info)[2].path == f"{prep}/img10.bin"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_bin_mode_guide_command_line(tmp_path):
    """The guide's exact form, relative paths kept as given."""
    make_bins(str(tmp_path / "prep_dataset"), ["ILSVRC2012_val_00000002.bin", "ILSVRC2012_val_00000001.bin"])
    res = subprocess.run([sys.executable, os.path.join(ROOT, "get_info.py"), "bin", "./prep_dataset",
                          "./dataset_prep_bin.info", "224", "224"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "dataset_prep_bin.info").read_text() == (
        "0 ./prep_dataset/ILSVRC2012_val_00000001.bin 224 224\n"
        "1 ./prep_dataset/ILSVRC2012_val_00000002.bin 224 224\n")


def test_bin_mode_other_sizes(tmp_path, capsys):
    prep = str(tmp_path / "prep")
    make_bins(prep, ["a.bin"], size=formats.bin_file_size(32, 16))
    info = str(tmp_path / "x.info")
    assert run_stage(["bin", prep, info, "32", "16"], capsys)[0] == 0
    assert read(info) == f"0 {prep}/a.bin 32 16\n"


def test_bin_mode_wrong_sizes_name_the_first_files_and_write_nothing(tmp_path, capsys):
    prep = str(tmp_path / "prep")
    make_bins(prep, [f"ok{i}.bin" for i in range(3)])
    make_bins(prep, [f"short{i}.bin" for i in range(7)], size=1000)
    make_bins(prep, ["empty.bin"], size=0)
    os.mkdir(os.path.join(prep, "dir.bin"))
    info = tmp_path / "x.info"
    info.write_text("old\n")
    code, _, err = run_stage(["bin", prep, str(info), "224", "224"], capsys)
    assert code == 1
    assert "9 of 12 .bin files are not 602112 bytes" in err
    assert "dir.bin (not a regular file)" in err and "empty.bin (0 bytes)" in err
    assert "short0.bin (1000 bytes)" in err and "and 4 more" in err
    assert len(err.strip().splitlines()) == 1
    assert info.read_text() == "old\n"


def test_bin_mode_empty_and_missing_folders(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_stage(["bin", str(tmp_path / "empty"), str(tmp_path / "x.info"), "224", "224"], capsys)
    assert code == 1 and "no .bin files" in err
    code, _, err = run_stage(["bin", str(tmp_path / "nope"), str(tmp_path / "x.info"), "224", "224"], capsys)
    assert code == 1 and "nope: folder not found" in err
    assert not (tmp_path / "x.info").exists()


@pytest.mark.parametrize("argv", [[], ["bin"], ["bin", "prep"], ["bin", "prep", "x.info"],
                                  ["bin", "prep", "x.info", "224"], ["png", "prep", "x.info"],
                                  ["jpg", "val", "x.info", "224", "224"], ["bin", "prep", "x.info", "a", "b"],
                                  ["bin", "prep", "x.info", "0", "224"]])
def test_bad_arguments_give_usage_not_a_traceback(argv, tmp_path):
    res = subprocess.run([sys.executable, os.path.join(ROOT, "get_info.py"), *argv], cwd=tmp_path,
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.startswith("usage: get_info.py") and "Traceback" not in res.stderr


def test_jpg_mode_one_index_sequence_across_extensions(tmp_path, capsys):
    """Oracle: the sizes the files were made with; every spelling of .jpg/.jpeg, nothing else."""
    val = tmp_path / "val"
    val.mkdir()
    sizes = {"a10.JPEG": (50, 40), "a2.jpg": (30, 60), "a3.JPG": (64, 64), "a1.jpeg": (17, 23), "b.Jpg": (9, 8)}
    for name, (w, h) in sizes.items():
        make_jpeg(str(val / name), w, h)
    make_jpeg(str(val / "c.png"), 5, 5, "PNG")
    make_jpeg(str(val / "d.JPEG"), 70, 20, "PNG")  # a PNG behind a .JPEG name still has a size
    exif = Image.Exif()
    exif[0x0112] = 6
    make_jpeg(str(val / "e.jpg"), 40, 10, exif=exif.tobytes())  # stored size, as torchvision sees it
    info = str(tmp_path / "val.info")
    code, out, _ = run_stage(["jpg", str(val), info], capsys)
    assert code == 0 and "7 jpg entries" in out
    lines = read(info).splitlines()
    assert lines == [f"0 {val}/a1.jpeg 17 23", f"1 {val}/a2.jpg 30 60", f"2 {val}/a3.JPG 64 64",
                     f"3 {val}/a10.JPEG 50 40", f"4 {val}/b.Jpg 9 8", f"5 {val}/d.JPEG 70 20",
                     f"6 {val}/e.jpg 40 10"]


def test_jpg_mode_does_not_decode_pixels(tmp_path, capsys):
    """A JPEG cut after its header still has a size: only the header is read."""
    val = tmp_path / "val"
    val.mkdir()
    make_jpeg(str(val / "x.JPEG"), 120, 80)
    data = (val / "x.JPEG").read_bytes()
    (val / "x.JPEG").write_bytes(data[: data.find(b"\xff\xda") + 20])
    info = str(tmp_path / "val.info")
    assert run_stage(["jpg", str(val), info], capsys)[0] == 0
    assert read(info) == f"0 {val}/x.JPEG 120 80\n"


def test_jpg_mode_bad_files_are_named(tmp_path, capsys):
    val = tmp_path / "val"
    val.mkdir()
    make_jpeg(str(val / "good.JPEG"), 20, 20)
    (val / "empty.JPEG").write_bytes(b"")
    (val / "text.jpg").write_text("hello")
    (val / "dir.jpeg").mkdir()
    info = tmp_path / "val.info"
    code, _, err = run_stage(["jpg", str(val), str(info)], capsys)
    assert code == 1 and "3 of 4 images cannot be read" in err
    assert "dir.jpeg (is a directory)" in err and "empty.JPEG (" in err and "text.jpg (" in err
    assert not info.exists()


def test_jpg_mode_empty_folder_and_spaces(tmp_path, capsys):
    (tmp_path / "val").mkdir()
    code, _, err = run_stage(["jpg", str(tmp_path / "val"), str(tmp_path / "x.info")], capsys)
    assert code == 1 and "no .jpg or .jpeg files" in err
    spaced = tmp_path / "my val"
    spaced.mkdir()
    make_jpeg(str(spaced / "a.jpg"), 8, 8)
    code, _, err = run_stage(["jpg", str(spaced), str(tmp_path / "x.info")], capsys)
    assert code == 1 and "white space" in err
    assert not (tmp_path / "x.info").exists()


def test_info_folder_must_exist(tmp_path, capsys):
    make_bins(str(tmp_path / "prep"), ["a.bin"])
    code, _, err = run_stage(["bin", str(tmp_path / "prep"), str(tmp_path / "no" / "x.info"), "224", "224"], capsys)
    assert code == 1 and "does not exist" in err


UINT8_BYTES = 150528  # 224 x 224 x 3 uint8, by hand


def test_bin_mode_accepts_a_uint8_folder_with_the_same_info_format(tmp_path, capsys):
    """Oracle: hand-written lines, the same format as for float32 files."""
    prep = str(tmp_path / "prep")
    make_bins(prep, ["img2.bin", "img10.bin", "img1.bin"], size=UINT8_BYTES)
    info = str(tmp_path / "u8.info")
    code, out, _ = run_stage(["bin", prep, info, "224", "224"], capsys)
    assert code == 0 and "3 bin entries" in out
    assert read(info) == (f"0 {prep}/img1.bin 224 224\n"
                          f"1 {prep}/img2.bin 224 224\n"
                          f"2 {prep}/img10.bin 224 224\n")


def test_bin_mode_mixing_float32_and_uint8_names_one_of_each_and_writes_nothing(tmp_path, capsys):
    prep = str(tmp_path / "prep")
    make_bins(prep, ["a1.bin", "a2.bin"])
    make_bins(prep, ["b1.bin", "b2.bin"], size=UINT8_BYTES)
    info = tmp_path / "x.info"
    code, _, err = run_stage(["bin", prep, str(info), "224", "224"], capsys)
    assert code == 1
    assert "mixes float32 and uint8" in err
    assert "a1.bin is float32" in err and "b1.bin is uint8" in err
    assert len(err.strip().splitlines()) == 1
    assert not info.exists()


def test_bin_mode_wrong_size_message_names_both_types(tmp_path, capsys):
    prep = str(tmp_path / "prep")
    make_bins(prep, ["ok.bin"], size=UINT8_BYTES)
    make_bins(prep, ["bad.bin"], size=UINT8_BYTES - 1)
    code, _, err = run_stage(["bin", prep, str(tmp_path / "x.info"), "224", "224"], capsys)
    assert code == 1
    assert "602112 bytes (3x224x224 float32) or 150528 bytes (224x224x3 uint8)" in err
    assert f"bad.bin ({UINT8_BYTES - 1} bytes)" in err

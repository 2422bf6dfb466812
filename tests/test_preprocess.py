"""Stage 3, imagenet_torch_preprocess.py: bit-exact transform, bad inputs, resume.

Oracle for every pixel: torchvision's `Resize(256, interpolation) → CenterCrop(224) → ToTensor()
→ Normalize(ImageNet)` on `Image.open(p).convert('RGB')`, compared byte for byte with what the
stage writes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import imagenet_torch_preprocess as stage
from mocoinfer import formats
from mocoinfer.cli import run_main
from mocoinfer.sidecar import read_manifest
from mocoinfer.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, normalize_table, resized_size

torch = pytest.importorskip("torch")
T = pytest.importorskip("torchvision.transforms")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_BYTES = 602112


def reference(path: str, interpolation: str = "bicubic", resize: int = 256, crop: int = 224,
              max_size=None) -> bytes:
    """The oracle: torchvision's evaluation transform, as MoCo and ModelZoo apply it."""
    mode = getattr(T.InterpolationMode, interpolation.upper())
    tf = T.Compose([T.Resize(resize, interpolation=mode, max_size=max_size), T.CenterCrop(crop), T.ToTensor(),
                    T.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))])
    return tf(Image.open(path).convert("RGB")).numpy().astype(np.float32).tobytes()


def picture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A photo-like RGB array: smooth gradients with texture, so resizing has real work to do."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    chans = [128 + 90 * np.sin(x / (7 + 3 * c + seed % 5) + c) + 40 * np.cos(y / (11 + c)) for c in range(3)]
    arr = np.stack(chans, -1) + rng.normal(0, 20, (height, width, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


def save(img: Image.Image, path: str, fmt: str, **kw) -> str:
    img.save(path, fmt, **kw)
    return path


def awkward_images(folder: str) -> list:
    """Every kind of input PIL opens that an ImageNet folder may hold, under `.JPEG`-style names."""
    os.makedirs(folder, exist_ok=True)
    rgb = Image.fromarray(picture(500, 375, 1))
    portrait = Image.fromarray(picture(333, 500, 2))
    p = lambda name: os.path.join(folder, name)  # noqa: E731
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90; torchvision ignores it
    rgba = Image.fromarray(np.dstack([picture(300, 260, 3), picture(300, 260, 4)[..., 0]]), "RGBA")
    pal = Image.fromarray(picture(280, 300, 5)).convert("P", palette=Image.Palette.ADAPTIVE)
    gif = Image.fromarray(picture(260, 270, 6)).convert("P")
    files = [
        save(rgb, p("val_01.JPEG"), "JPEG", quality=90),
        save(portrait, p("val_02.JPEG"), "JPEG", quality=85, subsampling=0),
        save(rgb, p("val_03.JPEG"), "JPEG", quality=90, progressive=True),
        save(rgb.convert("L"), p("val_04.JPEG"), "JPEG"),
        save(rgb.convert("CMYK"), p("val_05.JPEG"), "JPEG"),
        save(rgb, p("val_06.JPEG"), "PNG"),  # a PNG behind a .JPEG name
        save(rgb, p("val_07.JPEG"), "JPEG", exif=exif.tobytes()),
        save(rgba, p("val_08.png"), "PNG"),
        save(pal, p("val_09.png"), "PNG"),
        save(pal, p("val_10.png"), "PNG", transparency=3),
        save(rgba.convert("LA"), p("val_11.png"), "PNG"),
        save(rgb.convert("1"), p("val_12.png"), "PNG"),
        save(Image.fromarray(picture(300, 280, 7)[..., 0].astype(np.uint16) * 257), p("val_13.png"), "PNG"),
        save(gif, p("val_14.gif"), "GIF", save_all=True,
             append_images=[Image.fromarray(picture(260, 270, 8)).convert("P")]),
        save(rgb.convert("RGB"), p("val_15.bmp"), "BMP"),
        save(Image.fromarray(picture(256, 256, 9)), p("val_16.JPEG"), "JPEG"),   # already 256: no resize
        save(Image.fromarray(picture(300, 256, 10)), p("val_17.JPEG"), "JPEG"),  # short edge 256: untouched
        save(Image.fromarray(picture(257, 301, 11)), p("val_18.JPEG"), "JPEG"),  # odd sizes, rounding
        save(Image.fromarray(picture(90, 70, 12)), p("val_19.JPEG"), "JPEG"),    # upscaled
        save(Image.fromarray(picture(40, 400, 13)), p("val_20.JPEG"), "JPEG"),   # extreme aspect
        save(Image.fromarray(picture(500, 255, 14)), p("val_21.JPEG"), "JPEG"),  # slight upscale
        save(Image.fromarray(picture(256, 375, 15)), p("val_22.JPEG"), "JPEG"),  # portrait, untouched
        save(Image.fromarray(picture(375, 256, 16)), p("val_23.JPEG"), "JPEG"),  # landscape, untouched
        save(Image.fromarray(picture(301, 301, 17)).convert("RGB"), p("val_24.tif"), "TIFF"),
        save(Image.fromarray(picture(320, 240, 18)), p("val_25.webp"), "WEBP", quality=80),
        # Tall: Pillow 13 runs the vertical pass first for these (see transforms.horizontal_first).
        save(Image.fromarray(picture(300, 900, 19)).convert("P"), p("val_26.JPEG"), "PNG"),
        save(Image.fromarray(picture(260, 600, 20)), p("val_27.JPEG"), "JPEG"),
        save(Image.fromarray(picture(260, 500, 21)), p("val_28.JPEG"), "JPEG"),  # just below the rule's line
    ]
    return files


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("awkward"))
    awkward_images(folder)
    return folder


@pytest.fixture(scope="module")
def oracle(image_dir):
    """{(file name, interpolation): torchvision bytes}, computed once for the module."""
    return {(name, interp): reference(os.path.join(image_dir, name), interp)
            for name in sorted(os.listdir(image_dir)) for interp in ("bilinear", "bicubic")}


def run_stage(argv, capsys=None):
    code = run_main(stage.main, [*argv, "--no-progress"])
    if capsys is None:
        return code, "", ""
    out, err = capsys.readouterr()
    return code, out, err


def run_script(*argv, **kw):
    return subprocess.run([sys.executable, os.path.join(ROOT, "imagenet_torch_preprocess.py"), *argv],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, **kw)


def bins_of(folder: str) -> dict:
    out = {}
    for name in os.listdir(folder):
        if name.endswith(".bin"):
            with open(os.path.join(folder, name), "rb") as f:
                out[name] = f.read()
    return out


# --------------------------------------------------------------------------- the transform

def test_normalize_table_is_torchvision_for_every_uint8_value():
    """Oracle: torchvision ToTensor + Normalize on an image holding all 256 values in each channel."""
    values = np.stack([np.arange(256, dtype=np.uint8)] * 3, -1).reshape(16, 16, 3)
    values[..., 1] = values[..., 1][::-1]
    tv = T.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))(T.ToTensor()(Image.fromarray(values))).numpy()
    table = normalize_table()
    ours = np.stack([table[c][values[..., c]] for c in range(3)])
    assert ours.dtype == np.float32
    assert ours.tobytes() == tv.tobytes()


@pytest.mark.parametrize("size", [(500, 375), (375, 500), (256, 256), (300, 256), (257, 301), (1, 1000),
                                  (1000, 1), (333, 500), (511, 383), (90, 70)])
def test_resized_size_is_torchvision(size):
    """Oracle: torchvision's own output-size rule, with and without max_size."""
    from torchvision.transforms.functional import _compute_resized_output_size

    w, h = size
    assert resized_size(w, h, 256) == tuple(_compute_resized_output_size((h, w), [256])[::-1])
    assert resized_size(w, h, 256, 300) == tuple(_compute_resized_output_size((h, w), [256], 300)[::-1])


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_transform_is_bit_identical_on_every_kind_of_image(image_dir, oracle, interpolation):
    """Oracle: torchvision on each awkward file (modes, formats, EXIF, sizes), byte for byte."""
    tf = EvalTransform(interpolation=interpolation)
    mismatched = [name for name in sorted(os.listdir(image_dir))
                  if tf.from_file(os.path.join(image_dir, name)).tobytes() != oracle[(name, interpolation)]]
    assert mismatched == []


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_split_resize_gives_the_one_call_pixels_on_both_sides_of_the_pass_order_rule(interpolation):
    """Oracle: Pillow's own one-call resize then crop (what torchvision does) on noise of many shapes."""
    tf = EvalTransform(interpolation=interpolation)
    rng = np.random.default_rng(5)
    differ = []
    for width in (230, 257, 300, 375, 500):
        for height in (230, 300, 450, 600, 700, 900, 1000):
            img = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
            split = tf.resized_crop_pixels(img)
            plain = tf.crop_pixels(tf.resize_image(img))
            if not np.array_equal(split, plain):
                differ.append((width, height))
    assert differ == []


def test_pass_order_check_rejects_a_wrong_rule(monkeypatch):
    """A Pillow whose pass order the rule mispredicts must turn the split off, not change bits."""
    from mocoinfer import transforms

    assert transforms.split_resize_is_exact.__wrapped__() is True
    monkeypatch.setattr(transforms, "horizontal_first", lambda *size: True)
    assert transforms.split_resize_is_exact.__wrapped__() is False


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("resize,crop,max_size,size", [
    (200, 224, None, (300, 200)),   # smaller than the crop in height only: zero padding
    (200, 224, None, (200, 200)),   # smaller in both: padded on every side
    (201, 224, None, (301, 200)),   # odd padding: torchvision puts the extra row at the bottom
    (256, 224, 300, (500, 200)),    # max_size caps the long edge
    (256, 256, None, (400, 300)),   # crop equal to the short edge
    (32, 16, None, (47, 33)),       # other models' sizes
])
def test_transform_branches(tmp_path, interpolation, resize, crop, max_size, size):
    """Oracle: torchvision with the same resize, crop and max_size (padding and capping branches)."""
    path = save(Image.fromarray(picture(*size, seed=resize)), str(tmp_path / "x.png"), "PNG")
    tf = EvalTransform(resize=resize, crop=crop, interpolation=interpolation, max_size=max_size)
    assert tf.from_file(path).tobytes() == reference(path, interpolation, resize, crop, max_size)


# --------------------------------------------------------------------------- the stage

@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_stage_writes_torchvision_bytes_for_every_image(image_dir, oracle, tmp_path, capsys, interpolation):
    """Oracle: torchvision bytes per image; the stage on 2 workers, every .bin complete."""
    out = str(tmp_path / "prep")
    code, stdout, _ = run_stage([image_dir, out, "--interpolation", interpolation, "--workers", "2"], capsys)
    assert code == 0
    names = sorted(os.listdir(image_dir))
    assert f"{len(names)} written, 0 already up to date, 0 failed" in stdout
    bins = bins_of(out)
    assert sorted(bins) == sorted(formats.bin_name(n) for n in names)
    for name in names:
        data = bins[formats.bin_name(name)]
        assert len(data) == BIN_BYTES
        assert data == oracle[(name, interpolation)], name
    assert not os.path.exists(os.path.join(out, "failed.txt"))


def test_guide_command_lines(image_dir, oracle, tmp_path):
    """Both guide forms, as whole commands. Oracle: torchvision's Resize(256, BICUBIC) on PIL, as the
    ModelZoo Moco-v2 script the guide runs (ascend-reference.md, "two published variants")."""
    sub = tmp_path / "val"
    sub.mkdir()
    for name in ("val_01.JPEG", "val_02.JPEG", "val_05.JPEG"):
        shutil.copy(os.path.join(image_dir, name), sub / name)
    first = run_script(str(sub), str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    assert "3 written" in first.stdout and "bicubic, resize 256, crop 224" in first.stdout
    second = run_script("--input_img_dir", str(sub), "--output-img-dir", str(tmp_path / "b"))
    assert second.returncode == 0, second.stderr
    assert bins_of(str(tmp_path / "a")) == bins_of(str(tmp_path / "b"))
    assert bins_of(str(tmp_path / "a"))["val_05.bin"] == oracle[("val_05.JPEG", "bicubic")]


def test_usage_errors(tmp_path):
    """Missing or contradictory dirs give usage (exit 2), not a traceback."""
    for argv in ([], [str(tmp_path)], [str(tmp_path), "a", "--output_img_dir", "b"]):
        res = run_script(*argv)
        assert res.returncode == 2 and "usage:" in res.stderr and "Traceback" not in res.stderr


def test_missing_and_empty_input_dirs(tmp_path, capsys):
    code, _, err = run_stage([str(tmp_path / "nope"), str(tmp_path / "out")], capsys)
    assert code == 1 and "nope: input image dir not found" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_stage([str(tmp_path / "empty"), str(tmp_path / "out")], capsys)
    assert code == 1 and "is empty" in err


# --------------------------------------------------------------------------- bad inputs

def bad_folder(tmp_path, image_dir):
    """Three good images and one of each bad kind; returns (folder, {bad name: reason fragment})."""
    folder = tmp_path / "val"
    folder.mkdir()
    for name in ("val_01.JPEG", "val_04.JPEG", "val_06.JPEG"):
        shutil.copy(os.path.join(image_dir, name), folder / name)
    data = (folder / "val_01.JPEG").read_bytes()
    (folder / "val_30_truncated.JPEG").write_bytes(data[: len(data) // 2])
    sos = data.find(b"\xff\xda")
    corrupt = bytearray(data)
    corrupt[sos + 2:sos + 4] = b"\x00\x01"
    (folder / "val_31_corrupt.JPEG").write_bytes(bytes(corrupt))
    (folder / "val_32_empty.JPEG").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "val_33_folder").mkdir()
    return str(folder), {
        "val_30_truncated.JPEG": "truncated",
        "val_31_corrupt.JPEG": "corrupt",
        "val_32_empty.JPEG": "empty file",
        "notes.txt": "not an image",
        "val_33_folder": "directory",
    }


@pytest.mark.parametrize("workers", ["1", "2"])
def test_bad_files_are_all_listed_and_the_rest_written(image_dir, oracle, tmp_path, capsys, workers):
    folder, bad = bad_folder(tmp_path, image_dir)
    out = str(tmp_path / "prep")
    code, stdout, err = run_stage([folder, out, "--workers", workers], capsys)
    assert code == 1
    assert "3 written, 0 already up to date, 5 failed" in stdout
    failed = dict(formats.read_failed(os.path.join(out, "failed.txt")))
    assert sorted(failed) == sorted(os.path.join(folder, n) for n in bad)
    for name, why in bad.items():
        path = os.path.join(folder, name)
        assert why in failed[path], (name, failed[path])
        assert f"{path}: " in err and why in err
    assert "5 input file(s) failed" in err and "failed.txt" in err
    bins = bins_of(out)
    assert sorted(bins) == ["val_01.bin", "val_04.bin", "val_06.bin"]
    for name in ("val_01.JPEG", "val_04.JPEG", "val_06.JPEG"):
        assert bins[formats.bin_name(name)] == oracle[(name, "bicubic")]


def test_skip_bad_is_a_warning_and_a_clean_rerun_clears_failed_txt(image_dir, tmp_path, capsys):
    folder, bad = bad_folder(tmp_path, image_dir)
    out = str(tmp_path / "prep")
    code, stdout, err = run_stage([folder, out, "--skip-bad"], capsys)
    assert code == 0 and "warning: 5 file(s)" in err and "5 failed" in stdout
    assert len(formats.read_failed(os.path.join(out, "failed.txt"))) == 5
    for name in bad:
        path = os.path.join(folder, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    code, stdout, _ = run_stage([folder, out], capsys)
    assert code == 0 and "0 written, 3 already up to date, 0 failed" in stdout
    assert not os.path.exists(os.path.join(out, "failed.txt"))


def test_name_clash_is_an_error_before_any_work(image_dir, tmp_path, capsys):
    folder = tmp_path / "val"
    folder.mkdir()
    shutil.copy(os.path.join(image_dir, "val_01.JPEG"), folder / "a.JPEG")
    shutil.copy(os.path.join(image_dir, "val_08.png"), folder / "a.png")
    shutil.copy(os.path.join(image_dir, "val_02.JPEG"), folder / "b.JPEG")
    out = tmp_path / "prep"
    code, _, err = run_stage([str(folder), str(out)], capsys)
    assert code == 1 and "a.JPEG and a.png → a.bin" in err and "nothing was written" in err
    assert not out.exists() or not os.listdir(out)


def test_all_inputs_bad_is_an_error_even_with_skip_bad(tmp_path, capsys):
    folder = tmp_path / "val"
    folder.mkdir()
    (folder / "a.JPEG").write_bytes(b"")
    code, _, err = run_stage([str(folder), str(tmp_path / "out"), "--skip-bad"], capsys)
    assert code == 1 and "no image could be preprocessed" in err


# --------------------------------------------------------------------------- resume

def test_rerun_skips_complete_bins_redoes_partial_ones_and_keeps_lookalike_temporaries(image_dir, oracle, tmp_path,
                                                                                    capsys):
    folder = tmp_path / "val"
    folder.mkdir()
    names = ["val_01.JPEG", "val_02.JPEG", "val_04.JPEG", "val_18.JPEG"]
    for name in names:
        shutil.copy(os.path.join(image_dir, name), folder / name)
    out = tmp_path / "prep"
    assert run_stage([str(folder), str(out)], capsys)[0] == 0
    # What a crash could leave behind: a short file (not from us: ours are atomic), and a file
    # named like an old-style temporary of a dead process: no run of this tool recorded it, so
    # it is the user's and stays (atomic.py: only a recorded run's temporaries are deleted).
    (out / "val_02.bin").write_bytes(b"\0" * 1000)
    os.unlink(out / "val_04.bin")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / f".val_04.bin.tmp{dead.pid}").write_bytes(b"\0" * 10)
    before = os.stat(out / "val_01.bin").st_mtime_ns
    code, stdout, _ = run_stage([str(folder), str(out)], capsys)
    assert code == 0 and "2 written, 2 already up to date, 0 failed" in stdout
    assert os.stat(out / "val_01.bin").st_mtime_ns == before
    assert sorted(os.listdir(out)) == sorted(
        [formats.bin_name(n) for n in names] + [f".val_04.bin.tmp{dead.pid}"])
    assert all(bins_of(str(out))[formats.bin_name(n)] == oracle[(n, "bicubic")] for n in names)
    code, stdout, _ = run_stage([str(folder), str(out), "--overwrite"], capsys)
    assert code == 0 and "4 written, 0 already up to date" in stdout


def test_rerun_with_other_settings_is_refused_unless_overwrite(image_dir, oracle, tmp_path, capsys):
    folder = tmp_path / "val"
    folder.mkdir()
    shutil.copy(os.path.join(image_dir, "val_01.JPEG"), folder / "val_01.JPEG")
    out = str(tmp_path / "prep")
    assert run_stage([str(folder), out], capsys)[0] == 0
    code, _, err = run_stage([str(folder), out, "--interpolation", "bilinear"], capsys)
    assert code == 1 and "e.g. val_01.bin" in err and "other settings" in err and "--overwrite" in err
    code, _, _ = run_stage([str(folder), out, "--interpolation", "bilinear", "--overwrite"], capsys)
    assert code == 0 and bins_of(out)["val_01.bin"] == oracle[("val_01.JPEG", "bilinear")]


def test_bilinear_outputs_of_an_older_default_are_never_taken_for_the_bicubic_default(image_dir, oracle, tmp_path,
                                                                                       capsys):
    """A folder made bilinear (the default before issue 21), then the guide's line with no flag:
    the default is bicubic, so the bilinear .bin must not count as done. Oracle: torchvision's
    Resize(256, BILINEAR / BICUBIC) bytes; whatever the rerun policy (refuse, or redo), the folder
    never ends up reporting bilinear bytes as the default's output."""
    folder = tmp_path / "val"
    folder.mkdir()
    shutil.copy(os.path.join(image_dir, "val_01.JPEG"), folder / "val_01.JPEG")
    out = str(tmp_path / "prep")
    assert run_stage([str(folder), out, "--interpolation", "bilinear"], capsys)[0] == 0
    assert bins_of(out)["val_01.bin"] == oracle[("val_01.JPEG", "bilinear")]
    assert oracle[("val_01.JPEG", "bilinear")] != oracle[("val_01.JPEG", "bicubic")]
    code, stdout, err = run_stage([str(folder), out], capsys)
    assert "already up to date" not in stdout or "0 already up to date" in stdout
    if code == 0:
        assert bins_of(out)["val_01.bin"] == oracle[("val_01.JPEG", "bicubic")]
        assert read_manifest(out)["settings"]["interpolation"] == "bicubic"
    else:
        assert "interpolation bilinear" in err and "bicubic" in err


@pytest.mark.parametrize("workers,sig", [("1", signal.SIGINT), ("2", signal.SIGTERM)])
def test_interrupted_run_finishes_when_rerun(tmp_path, workers, sig):
    """Oracle: torchvision on the one source image every input is a copy of."""
    folder = tmp_path / "val"
    folder.mkdir()
    src = save(Image.fromarray(picture(1600, 1200, 21)), str(tmp_path / "big.JPEG"), "JPEG", quality=95)
    n = 60
    for i in range(n):
        shutil.copy(src, folder / f"img_{i}.JPEG")
    out = tmp_path / "prep"
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "imagenet_torch_preprocess.py"), str(folder),
                             str(out), "--workers", workers], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and sum(n.endswith(".bin") and not n.startswith(".") for n in os.listdir(out)) >= 3:
            break
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), err
    assert "rerun the same command to resume" in err and "Traceback" not in err
    done = [n for n in os.listdir(out) if n.endswith(".bin") and not n.startswith(".")]
    assert 3 <= len(done) < n
    assert all(os.path.getsize(out / name) == BIN_BYTES for name in done)

    # Only what the run recorded before it stopped is proven and reused; the manifest says the
    # folder is incomplete until a run finishes.
    manifest = read_manifest(str(out))
    assert manifest["status"] == "incomplete" and set(manifest["files"]) <= set(done)
    kept = len(manifest["files"])
    rerun = run_script(str(folder), str(out), "--workers", workers)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{n - kept} written, {kept} already up to date, 0 failed" in rerun.stdout
    assert read_manifest(str(out))["status"] == "complete"
    expected = reference(src)
    final = bins_of(str(out))
    assert len(final) == n and all(data == expected for data in final.values())
    assert not [name for name in os.listdir(out) if name.startswith(".")]  # no lock, manifest or temporary


def test_transform_module_does_not_import_torch():
    """Workers must start cheaply: transforms and the stage's driver need numpy and PIL only."""
    code = ("import sys, mocoinfer.transforms, mocoinfer.preprocess, mocoinfer.getinfo; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_newer_input_is_redone_and_output_inside_input_is_not_an_input(image_dir, oracle, tmp_path, capsys):
    folder = tmp_path / "val"
    folder.mkdir()
    shutil.copy(os.path.join(image_dir, "val_01.JPEG"), folder / "val_01.JPEG")
    shutil.copy(os.path.join(image_dir, "val_02.JPEG"), folder / "val_02.JPEG")
    out = folder / "prep"
    assert run_stage([str(folder), str(out)], capsys)[0] == 0
    # The image is replaced by another: its .bin is now older than it.
    shutil.copy(os.path.join(image_dir, "val_04.JPEG"), folder / "val_01.JPEG")
    future = time.time() + 5
    os.utime(folder / "val_01.JPEG", (future, future))
    code, stdout, _ = run_stage([str(folder), str(out)], capsys)
    assert code == 0 and "1 written, 1 already up to date, 0 failed" in stdout
    assert bins_of(str(out))["val_01.bin"] == oracle[("val_04.JPEG", "bicubic")]


def test_output_dir_may_not_be_the_input_dir(image_dir, tmp_path, capsys):
    folder = tmp_path / "val"
    folder.mkdir()
    shutil.copy(os.path.join(image_dir, "val_01.JPEG"), folder / "val_01.JPEG")
    code, _, err = run_stage([str(folder), str(folder)], capsys)
    assert code == 1 and "output dir is the input dir" in err
    assert os.listdir(folder) == ["val_01.JPEG"]


# --------------------------------------------------------------------------- --dtype uint8

UINT8_BYTES = 150528


def reference_pixels(path: str, interpolation: str = "bicubic", resize: int = 256, crop: int = 224,
                     max_size=None) -> bytes:
    """The uint8 oracle: torchvision's transform up to (not including) ToTensor, as HWC RGB bytes."""
    mode = getattr(T.InterpolationMode, interpolation.upper())
    tf = T.Compose([T.Resize(resize, interpolation=mode, max_size=max_size), T.CenterCrop(crop)])
    return np.asarray(tf(Image.open(path).convert("RGB")), dtype=np.uint8).tobytes()


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_uint8_stage_writes_torchvision_pixels_for_every_image(image_dir, oracle, tmp_path, capsys, interpolation):
    """Oracle: torchvision's Resize → CenterCrop pixels per image, byte for byte (2 workers); and
    normalising those uint8 files gives torchvision's float32 bytes (the uint8 file loses nothing)."""
    out = str(tmp_path / "prep")
    code, stdout, _ = run_stage([image_dir, out, "--interpolation", interpolation, "--workers", "2",
                                 "--dtype", "uint8"], capsys)
    assert code == 0
    names = sorted(os.listdir(image_dir))
    assert f"{len(names)} written" in stdout and "uint8" in stdout
    bins = bins_of(out)
    assert sorted(bins) == sorted(formats.bin_name(n) for n in names)
    tf = EvalTransform(interpolation=interpolation)
    for name in names:
        data = bins[formats.bin_name(name)]
        assert len(data) == UINT8_BYTES == formats.bin_file_size(dtype="uint8")
        assert data == reference_pixels(os.path.join(image_dir, name), interpolation), name
        pixels = np.frombuffer(data, dtype=np.uint8).reshape(224, 224, 3)
        assert tf.to_normalized(pixels).tobytes() == oracle[(name, interpolation)], name


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("resize,crop,max_size,size", [
    (200, 224, None, (300, 200)),   # zero padding in height
    (201, 224, None, (301, 200)),   # odd padding
    (256, 224, 300, (500, 200)),    # max_size caps the long edge
    (256, 224, None, (900, 300)),   # landscape: the split resize path with a column crop
    (32, 16, None, (47, 33)),
])
def test_uint8_pixels_on_transform_branches(tmp_path, interpolation, resize, crop, max_size, size):
    """Oracle: torchvision Resize → CenterCrop with the same settings; the float path is those pixels normalised."""
    path = save(Image.fromarray(picture(*size, seed=resize)), str(tmp_path / "x.png"), "PNG")
    tf = EvalTransform(resize=resize, crop=crop, interpolation=interpolation, max_size=max_size)
    pixels = tf.pixels_from_file(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (crop, crop, 3) and pixels.flags.c_contiguous
    assert pixels.tobytes() == reference_pixels(path, interpolation, resize, crop, max_size)
    assert tf.to_normalized(pixels).tobytes() == reference(path, interpolation, resize, crop, max_size)


def test_uint8_rerun_keeps_complete_files_and_a_dtype_switch_needs_overwrite(image_dir, tmp_path, capsys):
    """Oracle: file sizes (150,528 uint8 / 602,112 float32) and torchvision's pixels after each run."""
    sub = tmp_path / "val"
    sub.mkdir()
    for name in ("val_01.JPEG", "val_04.JPEG"):
        shutil.copy(os.path.join(image_dir, name), sub / name)
    out = str(tmp_path / "prep")
    assert run_stage([str(sub), out, "--dtype", "uint8"], capsys)[0] == 0
    code, stdout, _ = run_stage([str(sub), out, "--dtype", "uint8"], capsys)
    assert code == 0 and "0 written, 2 already up to date" in stdout
    assert bins_of(out)["val_01.bin"] == reference_pixels(str(sub / "val_01.JPEG"))
    # float32 after uint8: other settings, so the folder's files are not reused; without
    # --overwrite the stage refuses (naming the dtype) and leaves the uint8 files as they are.
    before = bins_of(out)
    code, _, stderr = run_stage([str(sub), out], capsys)
    assert code == 1 and "dtype" in stderr and bins_of(out) == before
    code, stdout, _ = run_stage([str(sub), out, "--overwrite"], capsys)
    assert code == 0 and "2 written, 0 already up to date" in stdout
    assert {len(b) for b in bins_of(out).values()} == {BIN_BYTES}


def test_unknown_dtype_is_a_usage_error(tmp_path):
    proc = run_script(str(tmp_path), str(tmp_path / "out"), "--dtype", "float16")
    assert proc.returncode == 2 and "--dtype" in proc.stderr

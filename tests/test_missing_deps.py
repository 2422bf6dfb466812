"""Each root script run by a Python that lacks a package it needs: one line, not a traceback.

Two Pythons are made from the one running the tests, without installing anything:
- "bare": `python -S -s` with no PYTHONPATH, so neither site-packages nor the user's site is on
  the path: the standard library only;
- "no PIL" and "no torch": the same, with PYTHONPATH a temporary folder holding links to this
  environment's numpy and tqdm (and, for "no torch", PIL), nothing else: torch, torchvision,
  onnx and onnxruntime absent.
Oracle for "really missing": `importlib.util.find_spec` run in that same Python returns None
(asserted before each script runs); for the line: the package's name, the Python's path
(sys.executable, which `-S` leaves unchanged) and the fix (`make setup`, `source .venv/bin/activate`)
appear in the one line of stderr, the exit status is 1, and no traceback is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _package_dir(name: str) -> str:
    module = __import__(name)
    return os.path.dirname(os.path.abspath(module.__file__))


@pytest.fixture(scope="module")
def pythons(tmp_path_factory):
    """{name: environment} for the Pythons (the command is `sys.executable -S -s`)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    envs = {"bare": base}
    for name, packages in (("no PIL", ("numpy", "tqdm")), ("no torch", ("numpy", "tqdm", "PIL"))):
        folder = tmp_path_factory.mktemp(name.replace(" ", "_"))
        for package in packages:
            src = _package_dir(package)
            os.symlink(src, folder / package)
            # numpy's and pillow's wheels keep their bundled libraries beside the package
            for libs in (src + ".libs", os.path.join(os.path.dirname(src), "pillow.libs")):
                if os.path.isdir(libs) and not os.path.exists(folder / os.path.basename(libs)):
                    os.symlink(libs, folder / os.path.basename(libs))
        envs[name] = dict(base, PYTHONPATH=str(folder))
    return envs


def _python(env, *args, cwd=ROOT):
    return subprocess.run([sys.executable, "-S", "-s", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def _has(env, package: str) -> bool:
    proc = _python(env, "-c", f"import importlib.util; print(importlib.util.find_spec({package!r}) is not None)")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip() == "True"


def _assert_one_line(proc, script: str, package: str) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith(f"{script}: error: ") and package in line, line
    assert sys.executable in line and "make setup" in line and "source .venv/bin/activate" in line, line


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Arguments the guide's lines take: a folder of one .bin, one image, a model and a result."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "prep").mkdir()
    (d / "prep" / "a.bin").write_bytes(b"\0" * 602112)
    (d / "val").mkdir()
    (d / "val" / "a.JPEG").write_bytes(b"\xff\xd8\xff\xd9")
    (d / "res").mkdir()
    (d / "res" / "a_1.txt").write_text(" ".join(["0.5"] + ["0.1"] * 999) + " \n")
    (d / "labels.txt").write_text("a.JPEG 0\n")
    for name in ("m.onnx", "model_lincls_best.pth.tar"):
        (d / name).write_bytes(b"x")
    return d


# (script, arguments, the package the line must name), for the Python that has nothing.
# The own form (--device-id 0): a .bin folder without an own-form flag is ais_bench's line.
INFER_ARGS = ["--model", "{d}/m.onnx", "--input", "{d}/prep", "--output", "{d}/out", "--device-id", "0"]
BARE = [
    ("pthtar2onnx.py", ["1", "{d}/model_lincls_best.pth.tar"], "torch"),
    ("imagenet_torch_preprocess.py", ["{d}/val", "{d}/out_prep"], "numpy"),
    ("get_info.py", ["bin", "{d}/prep", "{d}/x.info", "224", "224"], "tqdm"),
    ("run_om_infer.py", INFER_ARGS, "numpy"),
    ("vision_metric_ImageNet.py", ["{d}/res", "{d}/labels.txt", "{d}/out_metric", "result.json"], "numpy"),
]


@pytest.mark.parametrize("script,args,package", BARE, ids=[s for s, _, _ in BARE])
def test_a_python_without_numpy_gets_one_line(pythons, inputs, script, args, package):
    env = pythons["bare"]
    assert not _has(env, package) and not _has(env, "numpy")
    proc = _python(env, os.path.join(ROOT, script), *[a.format(d=inputs) for a in args])
    _assert_one_line(proc, script, package)
    assert not os.path.exists(inputs / "out") and not os.path.exists(inputs / "out_prep")


# For the Pythons with numpy and tqdm (and PIL for "no torch") but no torch or onnxruntime.
PARTIAL = [
    ("no PIL", "imagenet_torch_preprocess.py", ["{d}/val", "{d}/out_prep"], "PIL"),
    ("no PIL", "get_info.py", ["jpg", "{d}/val", "{d}/x.info"], "PIL"),
    ("no PIL", "run_om_infer.py", INFER_ARGS, "PIL"),
    ("no torch", "pthtar2onnx.py", ["1", "{d}/model_lincls_best.pth.tar"], "torch"),
    ("no torch", "run_om_infer.py", INFER_ARGS,
     "onnxruntime"),
    ("no torch", "run_om_infer.py",
     ["--model", "{d}/model_lincls_best.pth.tar", "--input", "{d}/prep", "--output", "{d}/out", "--device-id", "0"],
     "torch"),
]


@pytest.mark.parametrize("python,script,args,package", PARTIAL, ids=[f"{s}-{p}" for _, s, _, p in PARTIAL])
def test_a_python_with_numpy_but_without_torch_gets_one_line(pythons, inputs, python, script, args, package):
    env = pythons[python]
    assert _has(env, "numpy") and not _has(env, package) and not _has(env, "torch")
    proc = _python(env, os.path.join(ROOT, script), *[a.format(d=inputs) for a in args])
    _assert_one_line(proc, script, package)
    assert not os.path.exists(inputs / "out") and not os.path.exists(inputs / "out_prep")


def test_the_stages_that_need_only_numpy_run_without_torch(pythons, inputs, tmp_path):
    """Oracle: the metric and get_info's bin mode import neither PIL nor torch: with the "no PIL"
    Python they run to the end (a hand count: 1 result, class 0 first, so top-1 100%; 1 .bin listed)."""
    env = pythons["no PIL"]
    assert not _has(env, "torch") and not _has(env, "PIL")
    proc = _python(env, os.path.join(ROOT, "vision_metric_ImageNet.py"), str(inputs / "res"),
                   str(inputs / "labels.txt"), str(tmp_path), "result.json")
    assert proc.returncode == 0, proc.stderr
    entries = {e["key"]: e["value"] for e in json.loads((tmp_path / "result.json").read_text())["value"]}
    assert entries["Number of images"] == "1" and entries["Top1 accuracy"] == "100.0%"
    proc = _python(env, os.path.join(ROOT, "get_info.py"), "bin", str(inputs / "prep"), str(tmp_path / "x.info"),
                   "224", "224")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "x.info").read_text().split()[:2] == ["0", str(inputs / "prep" / "a.bin")]

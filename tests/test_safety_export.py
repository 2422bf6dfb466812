"""pthtar2onnx.py under the output policy (issue 13): the checkpoint is never replaced, special
outputs are refused, bad arguments and bad weights are one line naming the file.

Oracles: the checkpoint hashed before and after each failing case (safety_helpers); the tensor
named in a message is the one the test corrupted by hand.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess

import pytest
import torch
from safety_helpers import fingerprint, one_line_error, read_only_statvfs, tree

import pthtar2onnx
from mocoinfer import export as export_mod
from mocoinfer.cli import run_main


def run(argv, capsys):
    code = run_main(pthtar2onnx.main, argv)
    out, err = capsys.readouterr()
    return code, out, err


def checkpoint(path, edit=None):
    """main_lincls.py's layout for a random resnet18 (`module.` keys, its own `arch`)."""
    import torchvision

    state = {f"module.{k}": v for k, v in torchvision.models.resnet18(num_classes=10).state_dict().items()}
    if edit:
        edit(state)
    torch.save({"epoch": 1, "arch": "resnet18", "state_dict": state}, str(path))
    return str(path)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return checkpoint(tmp_path_factory.mktemp("ck") / "model_lincls_best.pth.tar")


def test_output_equal_to_the_checkpoint_is_refused_before_loading(ckpt, tmp_path, capsys):
    """Class: an output replaces an input (`--output m.pth.tar` destroyed the checkpoint)."""
    alias = tmp_path / "alias.pth.tar"
    os.link(ckpt, alias)
    before = fingerprint(ckpt)
    for out in (ckpt, str(alias)):
        code, _, err = run(["1", ckpt, "--output", out], capsys)
        assert code == 1 and one_line_error(err, out, "same file as the input", ckpt), err
    assert fingerprint(ckpt) == before


def test_symlink_fifo_and_device_outputs_are_refused(ckpt, tmp_path, capsys):
    """Class: an output that is not a regular file (`--output /dev/null` as root replaced the
    device). A private (1, 3) node stands in for /dev/null."""
    (tmp_path / "real.onnx").write_bytes(b"old")
    os.symlink(tmp_path / "real.onnx", tmp_path / "link.onnx")
    os.mkfifo(tmp_path / "fifo.onnx")
    cases = [("link.onnx", "symbolic link"), ("fifo.onnx", "FIFO")]
    try:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        cases.append(("null", "character device"))
    except PermissionError:
        pass
    before = tree(str(tmp_path))
    for name, needle in cases:
        out = str(tmp_path / name)
        code, _, err = run(["1", ckpt, "--output", out], capsys)
        assert code == 1 and one_line_error(err, out, needle), err
    assert tree(str(tmp_path)) == before


def test_opset_outside_the_exporters_range_is_one_line(ckpt, tmp_path, capsys):
    """Class: arguments not checked (`--opset 999` dumped the TorchScript IR)."""
    low, high = export_mod.supported_opsets()
    for opset in (str(high + 1), "999", str(low - 1)):
        code, _, err = run(["1", ckpt, "--opset", opset, "--output", str(tmp_path / "m.onnx")], capsys)
        assert code == 1 and one_line_error(err, f"--opset {opset}", f"{low} to {high}"), err
        assert "graph(" not in err
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_nan_weight_names_the_checkpoint_the_tensor_and_nan(tmp_path, capsys):
    """Class: names: a NaN was reported against a hidden temporary, without saying NaN."""
    def poison(state):
        state["module.layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
        state["module.fc.bias"][3] = float("inf")

    path = checkpoint(tmp_path / "nan.pth.tar", poison)
    before = fingerprint(path)
    code, _, err = run(["1", path, "--output", str(tmp_path / "m.onnx")], capsys)
    assert code == 1 and one_line_error(err, path, "layer2.0.conv1.weight (1 NaN)", "fc.bias (1 Inf)"), err
    assert fingerprint(path) == before and not (tmp_path / "m.onnx").exists()


def test_a_non_tensor_in_state_dict_is_one_line(tmp_path, capsys):
    """Class: names and encodings (an int inside state_dict was a traceback)."""
    path = checkpoint(tmp_path / "int.pth.tar", lambda s: s.__setitem__("module.epoch_counter", 7))
    code, _, err = run(["1", path, "--output", str(tmp_path / "m.onnx")], capsys)
    assert code == 1 and one_line_error(err, path, "'module.epoch_counter' (int)", "not tensors"), err


def test_full_disk_and_read_only_folder_are_one_line(ckpt, tmp_path, capsys, monkeypatch):
    """Class: resource errors. ENOSPC raised where the exporter writes (its file write), and a
    read-only mount as statvfs reports it (root ignores mode bits); nothing is left behind."""
    def full(model, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(export_mod, "torch_export", full)
    out = str(tmp_path / "m.onnx")
    code, _, err = run(["1", ckpt, "--output", out], capsys)
    assert code == 1 and one_line_error(err, out, "no space left on device"), err
    assert os.listdir(tmp_path) == []
    read_only_statvfs(monkeypatch, str(tmp_path))
    code, _, err = run(["1", ckpt, "--output", out], capsys)
    assert code == 1 and one_line_error(err, str(tmp_path), "read-only file system"), err


def test_a_real_one_megabyte_file_system_is_refused_before_the_export(ckpt, tmp_path, capsys):
    """The room check on a real small tmpfs (needs root and mount rights; skipped otherwise):
    resnet18's ~45 MB of weights do not fit in 1 MB."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = str(mnt / "m.onnx")
        code, _, err = run(["1", ckpt, "--output", out], capsys)
        assert code == 1 and one_line_error(err, str(mnt), "needs about", "free"), err
        assert os.listdir(mnt) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.slow
def test_a_fifo_checkpoint_is_refused_without_opening_it(tmp_path):
    """Class: special files: torch.load would block on a FIFO with no writer (a process with a
    timeout, so a hang fails instead of stalling)."""
    import sys

    fifo = tmp_path / "model.pth.tar"
    os.mkfifo(fifo)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "pthtar2onnx.py", "1", str(fifo), "--output", str(tmp_path / "m.onnx")],
                          cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and one_line_error(proc.stderr, str(fifo), "FIFO"), proc.stderr

"""Stage 5 under the output policy (issue 13): argument ranges, resource errors before the load,
outputs that would replace an input or a special file, the folder lock, the manifest, dotted names.

Oracles: the file system (SHA-256 of every input before and after each failing case, lstat types),
hand counts of what a zero-cost backend was asked to run, hashlib for the manifest's digests, and
a lock really held by this process on another file descriptor.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os

import numpy as np
import pytest
from safety_helpers import one_line_error, read_only_statvfs, tree

from mocoinfer import atomic, sidecar
from mocoinfer.backends import Backend
from mocoinfer.cli import run_main
from mocoinfer.errors import UserError
from mocoinfer.formats import list_results, read_result, result_filename, result_key
from mocoinfer.runner import run_inference, run_pure_inference

#: an own-form flag: this runner's layout; without one the line is ais_bench's (issue 19)
OWN = ["--device-id", "0"]


class Recorder(Backend):
    """Zero-cost backend: output = 2 * input; remembers the batch size of every run call."""

    name = "recorder"

    def __init__(self, batch_size=None, model_path="recorder") -> None:
        super().__init__()
        self.input_shape, self.input_dtype, self.batch_size = (4,), np.dtype(np.float32), batch_size
        self.model_path, self.batches = model_path, []

    def run(self, batch):
        self.batches.append(len(batch))
        self.timing.compute.append(0.0)
        return [batch.reshape(len(batch), -1) * 2.0]


def _bins(folder, names):
    os.makedirs(folder, exist_ok=True)
    data = {}
    for i, n in enumerate(names):
        x = np.arange(4, dtype=np.float32) + 10 * i
        x.tofile(os.path.join(folder, n))
        data[n] = x
    return data


@pytest.fixture
def case(tmp_path):
    """Three inputs and a model file whose bytes the policy must never touch."""
    bins = str(tmp_path / "bins")
    data = _bins(bins, ["a.bin", "b.bin", "c.bin"])
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not really onnx, hashed only")
    return {"root": tmp_path, "bins": bins, "data": data, "model": str(model)}


def _inputs_fingerprint(case):
    return tree(str(case["root"] / "bins")), tree(str(case["root"]), skip=()).get("model.onnx")


def _cli(argv, capsys, monkeypatch=None, never_open=False):
    import run_om_infer

    if never_open:
        def never(*a, **k):
            raise AssertionError("the model must not be loaded for this error")

        monkeypatch.setattr("mocoinfer.onepass.open_backend", never)
    rc = run_main(run_om_infer.main, argv)
    return rc, capsys.readouterr().err


# --------------------------------------------------------------------------- names

def test_dotted_input_names_round_trip(tmp_path):
    """Class: names and encodings. `img.v2.bin` gives `img.v2_1.txt`, which must read back as a
    result (no false "missing result") whose key is the input's image key (`image_key`: before
    the first dot), as the label file keys it. Oracle: the input bytes times 2."""
    data = _bins(str(tmp_path / "bins"), ["img.v2.bin", "a_b.v2.bin", "plain.bin"])
    s = run_inference("recorder", str(tmp_path / "bins"), str(tmp_path / "out"), backend=Recorder(),
                      progress=False)
    assert s["result_files"] == 3 and s["stale_result_files"] == 0
    results, others = list_results(os.path.join(str(tmp_path / "out"), "dumpOutput_device0"))
    assert sorted(r.key for r in results) == ["a_b", "img", "plain"]
    assert others == []  # the manifest lives beside the folder
    for name, x in data.items():
        r = result_filename(name, "txt")
        assert result_key(r) == name.split(".", 1)[0]
        np.testing.assert_array_equal(read_result(str(tmp_path / "out" / "dumpOutput_device0" / r)), x * 2)


# --------------------------------------------------------------------------- argument ranges

@pytest.mark.parametrize("extra,needle", [
    (["--device-id", "-1"], "--device-id -1: device ids are >= 0"),
    (["--threads", "-1"], "--threads must be >= 0"),
    (["--loop", "0"], "--loop must be >= 1"),
    (["--warmup", "-1"], "--warmup >= 0"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
])
def test_argument_ranges_are_checked_before_the_load(case, tmp_path, capsys, monkeypatch, extra, needle):
    """Class: arguments not checked. Each bad range is one line, the model is never loaded, and
    no input changes (hashes before and after)."""
    before = _inputs_fingerprint(case)
    rc, err = _cli(["--model", case["model"], *OWN, "--input", case["bins"], "--output", str(tmp_path / "o"),
                    "--no-progress"] + extra, capsys, monkeypatch, never_open=True)
    assert rc == 1 and one_line_error(err, needle), err
    assert _inputs_fingerprint(case) == before


def test_free_batch_is_capped_to_the_inputs_and_warms_up_at_that_batch(case, tmp_path, capsys):
    """`--batch-size 100000` with 3 inputs on a free batch axis runs (and warms up) at 3, with a
    note; the hand count: one warm-up call and one run call, both of 3."""
    be = Recorder()
    s = run_inference("recorder", case["bins"], str(tmp_path / "o"), backend=be, batch_size=100000, warmup=1,
                      progress=False)
    assert s["batch_size"] == 3 and be.batches == [3, 3]
    assert "capped to 3" in capsys.readouterr().err


def test_batch_memory_is_checked_before_allocating(case, tmp_path, monkeypatch):
    """A batch whose input buffers alone exceed the available memory is refused before anything
    is allocated (MemAvailable simulated at 1 MiB; 100,000 x 16 bytes x buffers is more)."""
    monkeypatch.setattr("mocoinfer.onepass.available_memory", lambda: 1 << 20)
    be = Recorder()
    with pytest.raises(UserError, match=r"--batch-size 100000 needs about [0-9.]+ [kMG]?B of host memory "
                                        r".* only 1\.0 MB is available"):
        run_pure_inference("recorder", backend=be, batch_size=100000, loop=1)
    assert be.batches == []


# --------------------------------------------------------------------------- resource errors

def test_output_that_is_a_file_is_refused_before_the_load(case, tmp_path, capsys, monkeypatch):
    """Class: resource errors. `--output` naming a file: one line naming it, no load, inputs and
    the file unchanged."""
    target = tmp_path / "taken"
    target.write_text("mine")
    before = _inputs_fingerprint(case)
    rc, err = _cli(["--model", case["model"], *OWN, "--input", case["bins"], "--output", str(target)], capsys,
                   monkeypatch, never_open=True)
    assert rc == 1 and one_line_error(err, str(target), "is a file"), err
    assert target.read_text() == "mine" and _inputs_fingerprint(case) == before


def test_read_only_and_full_output_folder_are_refused_before_the_load(case, tmp_path, capsys, monkeypatch):
    """Class: resource errors. Root ignores mode bits, so the read-only mount and the full disk
    are simulated where the policy reads them (statvfs); both are one line before the load."""
    out = tmp_path / "o"
    out.mkdir()
    vfs = read_only_statvfs(monkeypatch, str(tmp_path))
    before = _inputs_fingerprint(case)
    argv = ["--model", case["model"], *OWN, "--input", case["bins"], "--output", str(out)]
    rc, err = _cli(argv, capsys, monkeypatch, never_open=True)
    assert rc == 1 and one_line_error(err, "read-only file system"), err
    vfs.f_flag = vfs.writable_flag
    vfs.f_bavail, vfs.f_frsize = 1, 4096  # 4 kB free; three txt results need ~39 kB
    rc, err = _cli(argv, capsys, monkeypatch, never_open=True)
    assert rc == 1 and one_line_error(err, "result folder needs about", "free"), err
    assert _inputs_fingerprint(case) == before


def test_disk_full_while_writing_results_is_one_line(case, tmp_path, capsys, monkeypatch):
    """ENOSPC raised where a result file is renamed into place (the manifest still writes): one
    line naming the file and the cause, no traceback; the first run wrote no result, so it leaves
    neither a manifest nor the folders it made (issue 21 item 7)."""
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        if dst.endswith("_1.txt"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), dst)
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(atomic.os, "replace", replace)
    monkeypatch.setattr("mocoinfer.onepass.choose_backend", lambda m, n="auto": Recorder)
    monkeypatch.setattr(Recorder, "load", classmethod(lambda cls, path, **k: cls(model_path=path)), raising=False)
    before = _inputs_fingerprint(case)
    rc, err = _cli(["--model", case["model"], *OWN, "--input", case["bins"], "--output", str(tmp_path / "o"),
                    "--no-progress"], capsys)
    assert rc == 1 and one_line_error(err, "no space left on device", "_1.txt"), err
    assert not os.path.lexists(tmp_path / "o")
    assert _inputs_fingerprint(case) == before


# --------------------------------------------------------------------------- outputs vs inputs

def test_summary_that_is_an_input_or_special_file_is_refused(case, tmp_path, capsys, monkeypatch):
    """Class: an output replaces an input / is not a regular file. An info file named
    summary.json in the output folder, then a symlink and a FIFO there: each refused in one line
    before the load, each still what it was."""
    out = tmp_path / "o"
    out.mkdir()
    info = out / "summary.json"
    info.write_text("".join(f"{i} {case['bins']}/{n} 2 2\n" for i, n in enumerate(sorted(case["data"]))))
    before = _inputs_fingerprint(case), info.read_text()
    rc, err = _cli(["--model", case["model"], *OWN, "--input", str(info), "--output", str(out)], capsys, monkeypatch,
                   never_open=True)
    assert rc == 1 and one_line_error(err, "same file as the input"), err
    assert (_inputs_fingerprint(case), info.read_text()) == before
    info.unlink()
    info.symlink_to(tmp_path / "elsewhere.json")
    rc, err = _cli(["--model", case["model"], *OWN, "--input", case["bins"], "--output", str(out)], capsys)
    assert rc == 1 and one_line_error(err, "symbolic link"), err and os.path.islink(info)
    info.unlink()
    os.mkfifo(info)
    rc, err = _cli(["--model", case["model"], *OWN, "--input", case["bins"], "--output", str(out)], capsys)
    assert rc == 1 and one_line_error(err, "FIFO"), err
    assert _inputs_fingerprint(case) == before[0]


def test_result_folder_may_not_be_the_input_folder(case, tmp_path):
    """Results written among the inputs would be read as inputs next time (`_1.bin` is a .bin)."""
    before = _inputs_fingerprint(case)
    with pytest.raises(UserError, match="result folder is the folder of the input"):
        run_inference("recorder", case["bins"], str(tmp_path), backend=Recorder(), outfmt="bin",
                      result_dir=case["bins"], progress=False)
    assert _inputs_fingerprint(case) == before


# --------------------------------------------------------------------------- lock and manifest

def test_a_second_run_into_a_locked_folder_stops_naming_the_first(case, tmp_path, capsys, monkeypatch):
    """Class: no lock. The lock is held here on another descriptor, as a concurrent run would."""
    out = tmp_path / "o"
    out.mkdir()
    held = sidecar.FolderLock(str(out / "dumpOutput_device0"), run_id="1-deadbeef",
                              command="run_om_infer.py --model other.om")
    with held:
        rc, err = _cli(["--model", case["model"], *OWN, "--input", case["bins"], "--output", str(out)], capsys,
                       monkeypatch, never_open=True)
    assert rc == 1 and one_line_error(err, "in use by another run", "other.om"), err
    assert not os.path.exists(out / "dumpOutput_device0" / "a_1.txt")


def test_manifest_records_model_settings_and_each_source(case, tmp_path):
    """Oracle: hashlib over the model file, `os.stat` of each input and result (and hashlib over
    each input, racy here since the test just wrote it); status complete at the end."""
    out = str(tmp_path / "o")
    run_inference(case["model"], case["bins"], out, backend=Recorder(), outfmt="bin", batch_size=2,
                  progress=False)
    doc = sidecar.read_manifest(os.path.join(out, "dumpOutput_device0"))
    with open(case["model"], "rb") as f:
        model_bytes = f.read()
    st = doc["settings"]
    assert doc["status"] == sidecar.COMPLETE and doc["tool"] == "run_om_infer.py" and doc["n_outputs"] == 1
    assert (st["model_size"], st["model_sha256"]) == (len(model_bytes), hashlib.sha256(model_bytes).hexdigest())
    assert (st["backend"], st["outfmt"], st["batch_size"], st["input"]) == ("recorder", "bin", 2,
                                                                           os.path.abspath(case["bins"]))
    assert sorted(doc["files"]) == ["a_1.bin", "b_1.bin", "c_1.bin"]
    for name, x in case["data"].items():
        entry = doc["files"][result_filename(name, "bin")]
        src = os.stat(os.path.join(case["bins"], name))
        res = os.stat(os.path.join(out, "dumpOutput_device0", result_filename(name, "bin")))
        assert entry["source_proof"]["stat"] == [16, src.st_mtime_ns, src.st_ctime_ns, src.st_ino, src.st_dev]
        assert entry["source_proof"]["sha256"] == hashlib.sha256(x.tobytes()).hexdigest()  # written just now: racy
        assert entry["proof"]["stat"] == [16, res.st_mtime_ns, res.st_ctime_ns, res.st_ino, res.st_dev]
        assert entry["size"] == 16
    with open(os.path.join(out, "summary.json")) as f:
        assert json.load(f).get("partial") is None

"""mocoinfer.progress.progress_bar: one progress convention for every stage.

On a terminal it is a tqdm bar; on anything else (a log file, a pipe, pytest's capture, which
the tests here use as the log) it is a plain line every few seconds, `desc: done/total (pct%),
rate unit/s, ETA h:mm:ss`, with a last `..., in h:mm:ss` line where a line was printed before;
`show=False` prints nothing. The interval comes from MOCOINFER_PROGRESS_SECONDS here, made tiny
so that every update prints.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from mocoinfer.progress import LOG_EVERY_S, PROGRESS_SECONDS_ENV, LogLines, log_interval, progress_bar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "0.000001"  # seconds between lines: below any update's distance from the last
LINE = re.compile(r"^(\w[\w ]*): (\d+)/(\d+) \((\d+)%\), (\d+\.\d) (\w+)/s, (ETA|in) (\d+:\d\d:\d\d)$")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def drive(bar, steps: int) -> None:
    """Update by 1 `steps` times, each after a pause longer than the TINY interval."""
    with bar:
        for _ in range(steps):
            time.sleep(0.005)
            bar.update(1)


def test_a_pipe_gets_a_whole_line_per_interval_with_the_counts(capsys, monkeypatch):
    """Oracle: 5 updates of 1, each after a sleep longer than the interval: one line per update
    with done = 1..5 of 5 and its percentage (20% steps), ETA on each, then the last line with
    `in`; no carriage return anywhere."""
    assert not sys.stderr.isatty()  # pytest's capture: what a log file or pipe looks like
    monkeypatch.setenv(PROGRESS_SECONDS_ENV, TINY)
    drive(progress_bar(5, "preprocess", None), 5)
    text = capsys.readouterr().err
    assert "\r" not in text and text.endswith("\n")
    lines = [LINE.match(line) for line in text.splitlines()]
    assert all(lines), text
    assert [(m[1], int(m[2]), int(m[3]), int(m[4]), m[6], m[7]) for m in lines] == [
        ("preprocess", k, 5, 20 * k, "img", "ETA") for k in range(1, 6)] + [("preprocess", 5, 5, 100, "img", "in")]


def test_show_true_is_the_same_as_the_default(capsys, monkeypatch):
    """Oracle: the stages pass True (preprocess, get_info, metric) or None (inference) for
    "shown"; both give the log lines on a pipe, counted as in the test above."""
    monkeypatch.setenv(PROGRESS_SECONDS_ENV, TINY)
    drive(progress_bar(3, "metric", True, unit="file"), 3)
    err = capsys.readouterr().err
    assert [m[2] for m in map(LINE.match, err.splitlines())] == ["1", "2", "3", "3"]
    assert "file/s" in err


def test_no_progress_prints_nothing(capsys, monkeypatch):
    """Oracle: `--no-progress` (show=False) and a run below min_total are silent however small
    the interval; the returned object still counts what it was given (3)."""
    monkeypatch.setenv(PROGRESS_SECONDS_ENV, TINY)
    for bar in (progress_bar(3, "infer", False), progress_bar(3, "get_info", True, min_total=1000)):
        drive(bar, 3)
        assert bar.n == 3
    assert capsys.readouterr().err == ""


def test_a_run_shorter_than_the_interval_prints_nothing(capsys, monkeypatch):
    """Oracle: with the default interval (10 s) a run of a few milliseconds reaches no line, and
    the last line is printed only after a periodic one: stderr stays empty."""
    monkeypatch.delenv(PROGRESS_SECONDS_ENV, raising=False)
    assert log_interval() == LOG_EVERY_S == 10.0
    drive(progress_bar(3, "preprocess", True), 3)
    assert capsys.readouterr().err == ""


def test_the_line_format_worked_by_hand():
    """Oracle, by hand: 12,000 of 50,000 in 101.4 s is 118.3 img/s; the 38,000 left take
    321.1 s, 0:05:21; the last line gives the elapsed time instead."""
    bar = LogLines(50000, "preprocess", "img", io.StringIO(), 10.0)
    bar.n = 12000
    assert bar.format(101.4, final=False) == "preprocess: 12000/50000 (24%), 118.3 img/s, ETA 0:05:21"
    bar.n = 50000
    assert bar.format(3723.9, final=True) == "preprocess: 50000/50000 (100%), 13.4 img/s, in 1:02:03"
    bar.n = 0
    assert bar.format(5.0, final=False) == "preprocess: 0/50000 (0%), 0.0 img/s, ETA unknown"


def test_the_interval_override(monkeypatch):
    """Oracle: the environment's number where it is a positive number, else the constant."""
    for text, want in (("2.5", 2.5), ("0", LOG_EVERY_S), ("-1", LOG_EVERY_S), ("soon", LOG_EVERY_S),
                       ("nan", LOG_EVERY_S), ("", LOG_EVERY_S)):
        monkeypatch.setenv(PROGRESS_SECONDS_ENV, text)
        assert log_interval() == want, text


def test_a_terminal_gets_tqdm(monkeypatch):
    """Oracle: tqdm's own class on a terminal, drawing its bar (`\\r` redraws) with the desc."""
    from tqdm import tqdm

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    bar = progress_bar(4, "infer", None)
    assert isinstance(bar, tqdm)
    drive(bar, 4)
    assert "\r" in term.getvalue() and "infer" in term.getvalue()


def test_the_log_lines_do_not_import_tqdm():
    """Oracle: `sys.modules` of a fresh interpreter whose stderr is a pipe, after a whole bar."""
    code = ("import sys; from mocoinfer.progress import progress_bar\n"
            "with progress_bar(3, 'x', True) as b: b.update(3)\n"
            "print('tqdm' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_the_bar_interfaces_callers_use(capsys, monkeypatch):
    """Oracle: what pipeline.py, devices.py, preprocess.py, info.py and metric.py call:
    `update(n)` with any n, `close()` twice (pipeline's finally after a `with`), and the context
    manager returning the bar itself; 7 + 5 counted as 12."""
    monkeypatch.setenv(PROGRESS_SECONDS_ENV, TINY)
    for show in (None, False):
        with progress_bar(12, "infer on 2 devices", show) as bar:
            time.sleep(0.005)
            bar.update(7)
            time.sleep(0.005)
            bar.update(5)
        bar.close()
        assert bar.n == 12
    lines = capsys.readouterr().err.splitlines()
    assert [m[2] for m in map(LINE.match, lines)] == ["7", "12", "12"]


def test_a_broken_log_does_not_stop_the_work(monkeypatch):
    """Oracle: a closed stderr makes writing raise ValueError; the bar swallows it and counts on."""
    monkeypatch.setenv(PROGRESS_SECONDS_ENV, TINY)
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    bar = progress_bar(2, "infer", None)
    drive(bar, 2)
    assert bar.n == 2


def _jpegs(folder, n: int) -> None:
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(
            os.path.join(folder, f"img{i + 1}.JPEG"), "JPEG")


def test_preprocessing_into_a_log_file_writes_lines_not_bars(tmp_path):
    """Oracle: the stage script run as under nohup (stderr a file) on 6 generated JPEGs: the
    file holds no carriage return (tqdm's bar would redraw with `\\r`, as it did before), only
    whole progress lines, and the last one counts all 6 of 6."""
    _jpegs(str(tmp_path / "val"), 6)
    log_path = tmp_path / "stage.log"
    env = dict(os.environ, **{PROGRESS_SECONDS_ENV: TINY})
    with open(log_path, "w") as log:
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "imagenet_torch_preprocess.py"),
                               str(tmp_path / "val"), str(tmp_path / "prep"), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0
    text = log_path.read_bytes().decode()
    assert "\r" not in text
    lines = [m for m in map(LINE.match, text.splitlines()) if m]
    assert lines and all(m[1] == "preprocess" for m in lines)
    assert (lines[-1][2], lines[-1][3], lines[-1][7]) == ("6", "6", "in")
    assert len(os.listdir(tmp_path / "prep")) >= 6  # the work itself was done


def test_the_metric_stage_reports_to_a_log(tmp_path, capsys, monkeypatch):
    """Oracle: vision_metric_ImageNet.py on 3 txt results with pytest's (non-terminal) stderr:
    before this convention it printed nothing there; now its progress ends with `metric: 3/3`,
    in files."""
    import vision_metric_ImageNet as stage
    from mocoinfer.cli import run_main
    from mocoinfer.formats import encode_result

    monkeypatch.setenv(PROGRESS_SECONDS_ENV, TINY)
    res = tmp_path / "res"
    res.mkdir()
    for i in range(3):
        (res / f"img{i}_1.txt").write_bytes(encode_result(np.eye(10, dtype=np.float32)[i], "txt"))
    (tmp_path / "labels.txt").write_text("".join(f"img{i}.JPEG {i}\n" for i in range(3)))
    assert run_main(stage.main, [str(res), str(tmp_path / "labels.txt"), str(tmp_path / "out"), "r.json"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    last = [m for m in map(LINE.match, err.splitlines()) if m][-1]
    assert (last[1], last[2], last[3], last[6], last[7]) == ("metric", "3", "3", "file", "in")



# --------------------------------------------------------------------------- every stage, into a log

def _stage_log(tmp_path, script, *args, expect_rc=0):
    """Run a root script as under nohup (stderr a file, stdout discarded) with the tiny interval;
    the log's text, after checking the exit status and that no bar (`\\r`) was drawn."""
    log_path = tmp_path / f"{os.path.basename(script)}.log"
    env = dict(os.environ, **{PROGRESS_SECONDS_ENV: TINY})
    with open(log_path, "w") as log:
        proc = subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)],
                              stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT, env=env, timeout=300)
    text = log_path.read_bytes().decode()
    assert proc.returncode == expect_rc, text
    assert "\r" not in text
    return text


def _lines(text, desc):
    return [m for m in map(LINE.match, text.splitlines()) if m and m[1] == desc]


def _tiny_onnx(path, batch_size=2):
    from mocoinfer.export import export_model
    from tests.tiny_model import tiny_net

    export_model(tiny_net(), str(path), batch_size=batch_size)
    return str(path)


def test_get_info_reports_to_a_log(tmp_path):
    """Oracle: a hand count, 1,000 JPEGs (one small image's bytes, copied; 1,000 is where get_info's
    jpg mode starts showing progress): the last line counts 1000 of 1000. (bin mode only reads
    file sizes, a fraction of a second for 50,000 files, and shows none.)"""
    val = tmp_path / "val"
    val.mkdir()
    one = io.BytesIO()
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(one, "JPEG")
    for i in range(1000):
        (val / f"img{i}.JPEG").write_bytes(one.getvalue())
    text = _stage_log(tmp_path, "get_info.py", "jpg", val, tmp_path / "x.info")
    last = _lines(text, "get_info")[-1]
    assert (last[2], last[3], last[7]) == ("1000", "1000", "in")
    assert len((tmp_path / "x.info").read_text().splitlines()) == 1000


def test_inference_and_pure_inference_report_to_a_log(tmp_path):
    """Oracle: a hand count, 5 .bin files through a batch-2 model (inference counts images: 5 of
    5) and 4 timed batches of generated data (pure inference counts batches: 4 of 4)."""
    model = _tiny_onnx(tmp_path / "tiny-bs2.onnx")
    prep = tmp_path / "prep"
    prep.mkdir()
    for i in range(5):
        np.zeros((3, 224, 224), np.float32).tofile(prep / f"img{i}.bin")
    text = _stage_log(tmp_path, "run_om_infer.py", "--model", model, "--input", prep, "--output", tmp_path / "res")
    last = _lines(text, "infer")[-1]
    assert (last[2], last[3], last[7]) == ("5", "5", "in")
    text = _stage_log(tmp_path, "run_om_infer.py", "--model", model, "--pure-data", "zeros", "--loop", "4")
    last = _lines(text, "pure inference")[-1]
    assert (last[2], last[3], last[6], last[7]) == ("4", "4", "batch", "in")


def test_export_reports_its_steps_to_a_log(tmp_path):
    """Oracle: the export's two steps (the checkpoint's load; the export and its verification),
    counted by hand: its last line is `export: 2/2 (100%), ... step/s, in ...`."""
    from mocoinfer.demo import make_standin_checkpoint

    ckpt = make_standin_checkpoint(str(tmp_path / "model_lincls_best.pth.tar"), arch="resnet18")
    text = _stage_log(tmp_path, "pthtar2onnx.py", "1", ckpt, "--output", tmp_path / "m.onnx")
    last = _lines(text, "export")[-1]
    assert (last[2], last[3], last[4], last[6], last[7]) == ("2", "2", "100", "step", "in")
    assert (tmp_path / "m.onnx").is_file()

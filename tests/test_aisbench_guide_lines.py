"""ais_bench as its users run it (issue 19): the 10 ModelZoo guide lines of
shared/docs/ascend-reference.md §3b replayed, and ais_bench's layout, files, summary file,
several devices, reruns and flags.

Each line is the guide's, with the program (`python3 -m ais_bench` → run_om_infer.py), the model
(a tiny classifier exported to ONNX at the guide's batch, or a small one where the guide's is
64) and the input (5 `.bin` files in a folder named as the guide's) swapped. Oracles, cited at
each check, from ais_bench's own source (ait/components/benchmark/ais_bench/infer/):
- `benchmark_process.main`: the result folder `{output}/{output_dirname}` or
  `{output}/time.strftime("%Y_%m_%d-%H_%M_%S")`, `{that}/device{id}_{i}` with several devices;
- `io_oprations.save_tensors_to_file`: `{basename.split('.')[0]}_{k}.{outfmt.lower()}`, padding
  skipped, `summary.add_sample_id_infiles` / `append_sample_id_outfile` (filesinfo);
- `utils.save_data_to_files`: bin `ndarray.tofile`, npy `np.save` of the sample with its batch
  axis, txt `np.savetxt(fmt="%f", newline=" ")` per row then "\\n";
- `summary.Summary.report/record/display`: `{prefix}_summary.json`, its keys, the printed lines,
  throughput = 1000 * batchsize / mean(npu_compute_time_list);
- `benchmark_process.multidevice_run`: `i:{i} device_{id} throughput:...`, `summary throughput:{sum}`;
- `benchmark_process.args_rules`: `--output_dirname` absolute refused, needs `--output`.
PyTorch gives every result value (the export check's tolerance); the guide's metric algorithm
(tests/reference_metric.py) scores each TXT layout, with PyTorch's top-1 as labels (100% by hand).
"""

from __future__ import annotations

import json
import os
import re
import shlex

import numpy as np
import pytest

import run_om_infer
from mocoinfer.cli import run_main
from tests.reference_metric import guide_metric
from tests.tiny_model import tiny_net

N = 5
ATOL, RTOL = 1e-4, 1e-3  # the export check's bound between ONNX Runtime and PyTorch
TIME_STAMP = re.compile(r"^\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d$")
#: summary.Summary: filesinfo (in __init__), args (add_args), then record's keys in its order
SUMMARY_KEYS = ["filesinfo", "args", "NPU_compute_time", "H2D_latency", "D2H_latency", "npu_compute_time_list",
                "throughput", "pid"]
STAT_KEYS = ["min", "max", "mean", "median", "percentile(99%)", "count"]
#: model file of each guide line (its .om name, .onnx here) → the batch it is exported at
MODELS = {"moco-v2-bs1": 1, "resnet50_bs64": 4, "resnet101_bs1": 1, "mobilenet_v2_bs4": 4,
          "se_resnet50_bs8": 8, "pamtri_bs1": 1, "psenet_bs1": 1, "m": 8}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import torch

    from mocoinfer.export import export_model

    root = tmp_path_factory.mktemp("guide_models")
    net = tiny_net()
    for bs in sorted(set(MODELS.values())):
        export_model(net, str(root / f"bs{bs}.onnx"), batch_size=bs)
    data = np.random.default_rng(7).standard_normal((N, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(data)).numpy()
    return {"root": root, "data": data, "ref": ref}


@pytest.fixture
def work(models, tmp_path, monkeypatch):
    """The guide's working folder: each guide's model name, and its input folder of N .bin files."""
    for name, bs in MODELS.items():
        os.symlink(models["root"] / f"bs{bs}.onnx", tmp_path / f"{name}.onnx")
    (tmp_path / "prep_dataset").mkdir()
    for i, x in enumerate(models["data"]):
        x.tofile(tmp_path / "prep_dataset" / f"img{i}.bin")
    for alias in ("prep", "prep_bin"):
        os.symlink("prep_dataset", tmp_path / alias)
    labels = "".join(f"img{i}.JPEG {c}\n" for i, c in enumerate(models["ref"].argmax(1)))
    (tmp_path / "val_label.txt").write_text(labels)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(line: str, capsys):
    """One guide line, `python3 -m ais_bench` and `.om` swapped for run_om_infer.py and `.onnx`."""
    argv = shlex.split(line.replace(".om", ".onnx"))
    rc = run_main(run_om_infer.main, argv)
    out, err = capsys.readouterr()
    return rc, out, err, argv


def _entries(folder) -> list:
    return sorted(os.listdir(folder))


def _check_results(folder, fmt: str, models) -> None:
    """N result files `img{i}_0.{fmt}` (save_tensors_to_file) holding PyTorch's outputs."""
    assert _entries(folder) == [f"img{i}_0.{fmt}" for i in range(N)]
    for i in range(N):
        path = os.path.join(folder, f"img{i}_0.{fmt}")
        if fmt == "txt":  # utils.save_data_to_files: "%f " per value, then "\n"
            with open(path) as f:
                text = f.read()
            assert re.fullmatch(r"(-?\d+\.\d{6} ){10}\n", text), text
            got = np.array(text.split(), dtype=np.float64)
            np.testing.assert_allclose(got, models["ref"][i], atol=ATOL + 1e-6, rtol=RTOL)
        elif fmt == "bin":  # ndarray.tofile of the model's float32 output
            np.testing.assert_allclose(np.fromfile(path, dtype=np.float32), models["ref"][i], atol=ATOL, rtol=RTOL)


def _check_summary(path, argv, folder, fmt: str, batch: int, executions: int) -> dict:
    """`{prefix}_summary.json` as summary.Summary.report writes it."""
    with open(path) as f:
        text = f.read()
    doc = json.loads(text)
    assert "\n" not in text  # json.dump(infodict, f): one line
    assert list(doc) == SUMMARY_KEYS
    assert doc["args"][1:] == argv and doc["args"][0].endswith("run_om_infer.py")  # add_args(sys.argv)
    assert doc["filesinfo"] == {str(i): {"infiles": [os.path.join(argv[argv.index("--input") + 1]
                                                                  if "--input" in argv else _eq(argv, "--input"),
                                                                  f"img{i}.bin")],
                                         "outfiles": [os.path.join(folder, f"img{i}_0.{fmt}")]} for i in range(N)}
    times = np.array(doc["npu_compute_time_list"])
    st = doc["NPU_compute_time"]
    assert list(st) == STAT_KEYS and st["count"] == len(times) == executions
    # Summary.get_list_info over the list, and report's throughput from its mean
    assert st["mean"] == pytest.approx(np.mean(times)) and st["median"] == pytest.approx(np.median(times))
    assert st["percentile(99%)"] == pytest.approx(np.percentile(times, 99))
    assert doc["throughput"] == pytest.approx(1000 * batch / st["mean"])
    for phase in ("H2D_latency", "D2H_latency"):
        assert list(doc[phase]) == STAT_KEYS
    return doc


def _eq(argv, flag: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(flag + "="))


def _check_printed(out: str, batch: int, doc=None) -> None:
    """summary.Summary.display's lines, with the summary file's figures."""
    assert "[INFO] -----------------Performance Summary------------------" in out
    m = re.search(r"\[INFO\] throughput 1000\*batchsize\.mean\((\d+)\)/NPU_compute_time\.mean\(([\d.e-]+)\): "
                  r"([\d.e+-]+)", out)
    assert m and int(m.group(1)) == batch, out
    assert float(m.group(3)) == pytest.approx(1000 * batch / float(m.group(2)))
    assert re.search(r"\[INFO\] NPU_compute_time \(ms\): min = \S+, max = \S+, mean = \S+, median = \S+, "
                     r"percentile\(99%\) = \S+", out)
    assert "H2D_latency" not in out  # only with --display_all_summary
    if doc is not None:
        assert float(m.group(2)) == pytest.approx(doc["NPU_compute_time"]["mean"])


def _score(folder, work) -> None:
    """The guide's metric over the folder as it is: every image, Top1 100% (labels = PyTorch's top-1)."""
    text = guide_metric(str(folder), "val_label.txt", str(work), "guide.json")
    assert f'"Number of images", "value": "{N}"' in text and '"Top1 accuracy", "value": "100.0%"' in text


# The 10 guide lines.

def test_line1_moco_v2(work, models, capsys):
    """--output ./ --output_dirname ./result/: results in ./result, the summary beside it as
    ./result_summary.json (ais_bench: output_prefix + "_summary.json" = ./result/_summary.json
    inside the folder, which the guide's metric would read as a result: the one place this runner
    differs, docs/ais_bench.md)."""
    rc, out, err, argv = _run("--model moco-v2-bs1.om --input ./prep_dataset/ --output ./ "
                              "--output_dirname ./result/ --outfmt TXT --batchsize 1", capsys)
    assert rc == 0, err
    _check_results(work / "result", "txt", models)
    doc = _check_summary(work / "result_summary.json", argv, "./result", "txt", 1, N)
    _check_printed(out, 1, doc)
    _score(work / "result", work)
    assert "note:" not in err  # ais_bench's own flags: only its form reads this line, nothing to say


def test_line2_resnet50(work, models, capsys):
    """A fixed-batch model without --batchsize: its batch in the figure (set_session_options
    get_batchsize); 5 inputs at batch 4 are 2 executions, the padding writes nothing."""
    rc, out, err, argv = _run("--model resnet50_bs64.om --input ./prep_dataset/ --output ./ --output_dirname result "
                              "--outfmt TXT", capsys)
    assert rc == 0, err
    _check_results(work / "result", "txt", models)
    _check_summary(work / "result_summary.json", argv, "./result", "txt", 4, 2)
    _check_printed(out, 4)
    _score(work / "result", work)


def test_line3_resnet101_output_dir_abbreviation(work, models, capsys):
    """`--output_dir` is argparse's abbreviation of --output_dirname (ais_bench's parser allows it)."""
    rc, out, err, argv = _run("--model resnet101_bs1.om --input ./prep_dataset/ --output ./result/ "
                              "--output_dir resnet101_bs1 --outfmt TXT", capsys)
    assert rc == 0, err
    _check_results(work / "result" / "resnet101_bs1", "txt", models)
    assert _entries(work / "result") == [".resnet101_bs1.mocoinfer", "resnet101_bs1", "resnet101_bs1_summary.json"]
    _check_summary(work / "result" / "resnet101_bs1_summary.json", argv, "./result/resnet101_bs1", "txt", 1, N)
    _score(work / "result" / "resnet101_bs1", work)


@pytest.mark.parametrize("line,batch,loops", [
    ("--model resnet101_bs1.om --device 1 --loop 100", 1, 100),  # line 4
    ("--model mobilenet_v2_bs4.om --loop 1000 --batchsize 4", 4, 1000),  # line 6
])
def test_lines4_and_6_performance_keep_nothing(work, capsys, line, batch, loops):
    """No --input: pure inference (main: infileslist of PURE_INFER_FAKE_FILE), --loop executions;
    no --output: output_prefix None, nothing written."""
    before = _entries(work)
    rc, out, err, _ = _run(line, capsys)
    assert rc == 0, err
    _check_printed(out, batch)
    assert _entries(work) == before
    assert "note:" not in err  # the own form needs --input: only ais_bench's reads this line


def test_line5_mobilenet(work, models, capsys):
    """--output ./output --output_dirname subdir: benchmark_process.main's join; the bs4 model's
    5 inputs are 2 executions (io_oprations.get_files_count_per_batch, by hand)."""
    rc, out, err, argv = _run("--model mobilenet_v2_bs4.om --input ./prep_dataset --output ./output "
                              "--output_dirname subdir --outfmt 'TXT' --batchsize 4", capsys)
    assert rc == 0, err
    _check_results(work / "output" / "subdir", "txt", models)
    _check_summary(work / "output" / "subdir_summary.json", argv, "./output/subdir", "txt", 4, 2)
    _check_printed(out, 4)
    _score(work / "output" / "subdir", work)


def test_line7_se_resnet50_time_stamped(work, models, capsys):
    """No --output_dirname: `{output}/%Y_%m_%d-%H_%M_%S` and its summary beside it."""
    rc, out, err, argv = _run("--model=se_resnet50_bs8.om --input=./prep_dataset --output=./ --outfmt=TXT "
                              "--batchsize=8", capsys)
    assert rc == 0, err
    stamped = [n for n in _entries(work) if TIME_STAMP.match(n)]
    assert len(stamped) == 1 and f"{stamped[0]}_summary.json" in _entries(work)
    _check_results(work / stamped[0], "txt", models)
    _check_summary(work / f"{stamped[0]}_summary.json", argv, os.path.join("./", stamped[0]), "txt", 8, 1)
    _score(work / stamped[0], work)


def test_line8_pamtri_bin(work, models, capsys):
    """--outfmt BIN: ndarray.tofile of each float32 output (utils.save_data_to_files); PyTorch's values."""
    rc, out, err, argv = _run("--model pamtri_bs1.om --input ./prep --output ./ --output_dirname res --outfmt BIN "
                              "--device 0 --batchsize 1 --loop 1", capsys)
    assert rc == 0, err
    _check_results(work / "res", "bin", models)
    _check_summary(work / "res_summary.json", argv, "./res", "bin", 1, N)


def test_line9_psenet_defaults(work, models, capsys):
    """ais_bench's README line: BIN by default (--outfmt default "BIN") in a time-stamped folder;
    the line could be read by the own form too, so one line says which layout was chosen."""
    rc, out, err, argv = _run("--model psenet_bs1.om --input ./prep_bin --output ./", capsys)
    assert rc == 0, err
    stamped = [n for n in _entries(work) if TIME_STAMP.match(n)]
    assert len(stamped) == 1
    _check_results(work / stamped[0], "bin", models)
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "ais_bench's command line and layout" in notes[0], err


def test_line10_several_devices_performance(work, capsys):
    """Pure inference on each device (multidevice_run starts main on every device), each
    device's summary, then `i:{i} device_{id} throughput:{t}` and `summary throughput:{sum}`."""
    before = _entries(work)
    rc, out, err, _ = _run("--model m.om --loop=10 --batchsize=8 --device 0,1", capsys)
    assert rc == 0, err
    assert out.count("Performance Summary") == 2
    tps = {int(d): float(t) for d, t in re.findall(r"\[INFO\] i:\d device_(\d) throughput:([\d.e+-]+) ", out)}
    assert sorted(tps) == [0, 1]
    assert re.search(r"\[INFO\] i:0 device_0 throughput:\S+ {17}start_time:\S+ end_time:\S+", out)
    total = float(re.search(r"\[INFO\] summary throughput:([\d.e+-]+)", out).group(1))
    assert total == pytest.approx(sum(tps.values()))
    assert _entries(work) == before


# Several devices with files.

@pytest.mark.parametrize("divide", [False, True])
def test_several_devices_each_get_a_folder(work, models, capsys, divide):
    """Without --divide_input (its default False) every device runs every input into
    `{dir}/device{id}_{i}/`, with `{dir}/device{id}_{i}_summary.json`; with it, the inputs are
    cut as seg_input_data_for_multi_process / utils.list_share do (the first devices one more:
    3 and 2 of 5, by hand)."""
    extra = " --divide_input 1" if divide else ""
    rc, out, err, argv = _run("--model moco-v2-bs1.om --input ./prep_dataset --output ./out --output_dirname r "
                              f"--outfmt TXT --device 0,1 --no-progress{extra}", capsys)
    assert rc == 0, err
    base = work / "out" / "r"
    assert [n for n in _entries(base) if not n.startswith(".")] == [
        "device0_0", "device0_0_summary.json", "device1_1", "device1_1_summary.json"]
    shares = [range(0, 3), range(3, 5)] if divide else [range(N), range(N)]
    for (dev, share) in zip((0, 1), shares):
        folder = base / f"device{dev}_{dev}"
        assert _entries(folder) == [f"img{i}_0.txt" for i in share]
        with open(base / f"device{dev}_{dev}_summary.json") as f:
            doc = json.load(f)
        assert list(doc) == SUMMARY_KEYS and doc["NPU_compute_time"]["count"] == len(share)
        assert [v["outfiles"][0] for v in doc["filesinfo"].values()] == [
            os.path.join("./out/r", f"device{dev}_{dev}", f"img{i}_0.txt") for i in share]
    tps = [float(t) for t in re.findall(r"\[INFO\] i:\d device_\d throughput:([\d.e+-]+) ", out)]
    assert len(tps) == 2 and float(re.search(r"summary throughput:(\S+)", out).group(1)) == pytest.approx(sum(tps))
    if not divide:
        _score(base / "device1_1", work)


# Files.

def test_npy_keeps_the_batch_axis_and_txt_is_savetxt(work, models, capsys):
    """NPY: np.save of the sample with its batch axis, (1, classes), the model's dtype; TXT: the
    same numbers as the BIN run through utils.save_data_to_files' own np.savetxt call."""
    for fmt in ("NPY", "BIN", "TXT"):
        rc, out, err, _ = _run(f"--model moco-v2-bs1.om --input ./prep_dataset --output o --output_dirname {fmt} "
                               f"--outfmt {fmt}", capsys)
        assert rc == 0, err
    for i in range(N):
        arr = np.load(work / "o" / "NPY" / f"img{i}_0.npy")
        assert arr.shape == (1, 10) and arr.dtype == np.float32
        np.testing.assert_allclose(arr[0], models["ref"][i], atol=ATOL, rtol=RTOL)
        import io

        buf = io.BytesIO()
        outdata = np.fromfile(work / "o" / "BIN" / f"img{i}_0.bin", dtype=np.float32).reshape(1, 10)
        for row in outdata:  # utils.save_data_to_files, fmt "%f" for float32
            np.savetxt(buf, np.c_[row], fmt="%f", newline=" ")
            buf.write(b"\n")
        assert (work / "o" / "TXT" / f"img{i}_0.txt").read_bytes() == buf.getvalue()


def test_stem_is_before_the_first_dot_and_upper_case_bin_is_an_input(work, models, capsys):
    """`os.path.basename(f).split('.')[0]` names the result (a.b.bin → a_0); a folder's
    .bin/.BIN files are inputs (utils.get_fileslist_from_dir)."""
    (work / "mixed").mkdir()
    models["data"][0].tofile(work / "mixed" / "a.v2.bin")
    models["data"][1].tofile(work / "mixed" / "b.BIN")
    rc, out, err, _ = _run("--model moco-v2-bs1.om --input mixed --output o --output_dirname d", capsys)
    assert rc == 0, err
    assert _entries(work / "o" / "d") == ["a_0.bin", "b_0.bin"]
    np.testing.assert_allclose(np.fromfile(work / "o" / "d" / "b_0.bin", dtype=np.float32), models["ref"][1],
                               atol=ATOL, rtol=RTOL)


def test_own_and_benchmark_forms_keep_their_files(work, models, capsys):
    """The own form (an own-form flag, or an info file which ais_bench cannot read) keeps the
    benchmark's files: `_1` names, '%.9g ' values (float32 round trip), 1-D npy."""
    (work / "prep.info").write_text("".join(f"{i} prep_dataset/img{i}.bin 224 224\n" for i in range(N)))
    rc, out, err, _ = _run("--model moco-v2-bs1.om --input prep.info --output own", capsys)
    assert rc == 0, err
    assert "is a get_info.py info file, which ais_bench cannot read" in err
    text = (work / "own" / "dumpOutput_device0" / "img0_1.txt").read_text()
    assert np.array(text.split(), dtype=np.float32).tolist() == pytest.approx(models["ref"][0].tolist(), abs=ATOL)
    assert text == "".join(f"{v:.9g} " for v in np.array(text.split(), dtype=np.float32).tolist()) + "\n"
    rc, out, err, _ = _run("--model moco-v2-bs1.om --input prep_dataset --output own2 --device-id 0 --outfmt npy",
                           capsys)
    assert rc == 0, err
    assert np.load(work / "own2" / "dumpOutput_device0" / "img0_1.npy").shape == (10,)


# --output_dirname, time stamps, flags.

@pytest.mark.parametrize("dirname,needle", [("/abs", "an absolute path"), ("../up", "not a folder inside --output"),
                                            ("a/../..", "not a folder inside --output")])
def test_output_dirname_cannot_leave_output(work, capsys, dirname, needle):
    """args_rules refuses an absolute --output_dirname; one that climbs out of --output is refused
    here too (ais_bench would write there). Nothing is made."""
    before = _entries(work)
    rc, out, err, _ = _run(f"--model moco-v2-bs1.om --input prep_dataset --output o --output_dirname {dirname}", capsys)
    assert rc == 1 and needle in err and err.count("\n") == 1, err
    assert _entries(work) == before


def test_output_dirname_with_a_slash_puts_the_summary_beside(work, capsys):
    rc, out, err, _ = _run("--model moco-v2-bs1.om --input prep_dataset --output o --output_dirname dump/", capsys)
    assert rc == 0, err
    assert [n for n in _entries(work / "o") if not n.startswith(".")] == ["dump", "dump_summary.json"]


def test_two_runs_in_one_second_never_share_a_folder(work, capsys, monkeypatch):
    """ais_bench names the folder time.strftime("%Y_%m_%d-%H_%M_%S") and reuses it; here the
    second run, finding its second's folder taken, waits for the next one. The clock is frozen
    on one second for the first try of each run (strftime's calls counted by hand)."""
    import time as time_module

    real = time_module.strftime
    calls = []

    def frozen(fmt, *rest):
        calls.append(fmt)
        if fmt == "%Y_%m_%d-%H_%M_%S" and len([c for c in calls if c == fmt]) <= 2:
            return "2030_01_01-00_00_00"
        return real(fmt, *rest)

    monkeypatch.setattr("mocoinfer.aisform.time.strftime", frozen)
    for _ in range(2):
        rc, out, err, _ = _run("--model moco-v2-bs1.om --input prep_dataset --output o --no-progress", capsys)
        assert rc == 0, err
    stamped = [n for n in _entries(work / "o") if TIME_STAMP.match(n)]
    assert len(stamped) == 2 and "2030_01_01-00_00_00" in stamped
    for name in stamped:
        assert len(os.listdir(work / "o" / name)) == N


def test_harmless_flags_are_accepted_and_others_refused(work, capsys):
    """--profiler 0, --run_mode array, --output_batchsize_axis 0 and the aliases --warmup-count and
    --dym-shape (ais_bench's __main__.get_args spells them) are read; a value that would change
    what this runner does not implement is refused by name."""
    rc, out, err, _ = _run("--model moco-v2-bs1.om --input prep_dataset --output o --output_dirname h --profiler 0 "
                           "--run_mode array --output_batchsize_axis 0 --warmup-count 2 --pipeline 0 --dump false",
                           capsys)
    assert rc == 0, err
    for flags, needle in (("--output_batchsize_axis 1", "--output_batchsize_axis"), ("--dym-shape x:1,3,224,224",
                                                                                     "--dymShape")):
        rc, out, err, _ = _run(f"--model moco-v2-bs1.om --input prep_dataset --output o {flags}", capsys)
        assert rc == 1 and needle in err and "unrecognized" not in err and err.count("\n") == 1, err


def test_batchsize_only_scales_the_figure_on_a_fixed_batch_model(work, capsys):
    """The Moco-v2 guide's perf line passes --batchsize ${bs}: on a bs4 model --batchsize 8 runs at
    4 and the figure is 1000 * 8 / mean (Summary.report uses args.batchsize), with a note."""
    rc, out, err, _ = _run("--model mobilenet_v2_bs4.om --loop 5 --batchsize 8", capsys)
    assert rc == 0, err
    _check_printed(out, 8)
    assert "note: --batchsize 8" in err and "fixed batch of 4" in err


def test_input_without_output_runs_and_keeps_nothing(work, capsys):
    """PAMTRI's and i3d's perf lines: --input without --output runs every input (output_prefix
    None: save_tensors_to_file is not called) and writes nothing."""
    before = _entries(work)
    rc, out, err, _ = _run("--model moco-v2-bs1.om --input ./prep_dataset", capsys)
    assert rc == 0, err
    _check_printed(out, 1)
    assert _entries(work) == before and _entries(work / "prep_dataset") == [f"img{i}.bin" for i in range(N)]


def test_pure_inference_with_output_keeps_its_batch(work, models, capsys):
    """--output without --input: the generated batch's outputs as {ts}/pure_infer_data_0.bin
    (PURE_INFER_FAKE_FILE's name), filesinfo naming it."""
    rc, out, err, argv = _run("--model resnet50_bs64.om --output o", capsys)
    assert rc == 0, err
    stamped = [n for n in _entries(work / "o") if TIME_STAMP.match(n)]
    assert len(stamped) == 1 and _entries(work / "o" / stamped[0]) == ["pure_infer_data_0.bin"]
    assert os.path.getsize(work / "o" / stamped[0] / "pure_infer_data_0.bin") == 4 * 10 * 4  # batch 4, 10 classes
    with open(work / "o" / f"{stamped[0]}_summary.json") as f:
        doc = json.load(f)
    assert doc["filesinfo"] == {"0": {"infiles": ["pure_infer_data"],
                                      "outfiles": [os.path.join("o", stamped[0], "pure_infer_data_0.bin")]}}


def test_help_lists_the_three_forms(capsys):
    """Oracle: the flags each form's parser takes (hand list); compact, as issue 21 asks."""
    assert run_main(run_om_infer.main, ["--help"]) == 0
    out = capsys.readouterr().out
    for needle in ("own form:", "benchmark form:", "ais_bench form", "--output_dirname", "--batch-size",
                   "-om_path=", "--divide_input", "--pure-data"):
        assert needle in out
    assert len(out.splitlines()) <= 30
    assert "--resume" in out and "aisbench" in out and "--help-all" in out


def test_help_all_is_the_own_forms_every_option(capsys):
    """Oracle: the own form's argparse parser (`run_om_infer.parse_args`): every option it defines
    appears in `--help-all`, which exits 0."""
    with pytest.raises(SystemExit) as stop:
        run_om_infer.main(["--help-all"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--batch-size", "--device-id", "--resume", "--overwrite", "--interpolation", "--backend"):
        assert flag in out
    assert "aisbench" in out


# Reruns.


def test_a_rerun_into_the_same_folder_runs_again_and_overwrites(work, models, capsys):
    """ais_bench's README: a rerun into the same --output_dirname overwrites. The rerun computes
    again (a new Performance Summary) and replaces its files; a user's file there is untouched."""
    line = "--model moco-v2-bs1.om --input ./prep_dataset --output ./ --output_dirname result --outfmt TXT"
    rc, out, err, _ = _run(line, capsys)
    assert rc == 0, err
    (work / "result" / "notes.md").write_text("mine")
    first = {n: os.stat(work / "result" / n).st_mtime_ns for n in _entries(work / "result")}
    rc, out, err, _ = _run(line, capsys)
    assert rc == 0, err
    assert "Performance Summary" in out
    now = {n: os.stat(work / "result" / n).st_mtime_ns for n in _entries(work / "result")}
    assert now["notes.md"] == first["notes.md"] and (work / "result" / "notes.md").read_text() == "mine"
    assert all(now[f"img{i}_0.txt"] != first[f"img{i}_0.txt"] for i in range(N))


def test_guides_reuse_one_dirname_across_batch_sizes(work, models, capsys):
    """Guides rerun `--output_dirname result` with another model (bs1 then bs4): the second run
    replaces the first's results (ais_bench overwrites) instead of refusing."""
    for model in ("moco-v2-bs1.om", "mobilenet_v2_bs4.om"):
        rc, out, err, _ = _run(f"--model {model} --input ./prep_dataset --output ./ --output_dirname result "
                               "--outfmt TXT", capsys)
        assert rc == 0, err
        assert "Performance Summary" in out
    with open(work / "result_summary.json") as f:
        assert json.load(f)["NPU_compute_time"]["count"] == 2  # the bs4 run: 2 executions
    _check_results(work / "result", "txt", models)


def test_a_refused_run_leaves_no_time_stamped_folder(work, capsys):
    """A run refused before any result (a missing model) removes the time-stamped folder it made,
    and the bookkeeping beside it: `--output` is as it was (os.listdir)."""
    (work / "o").mkdir()
    rc, out, err, _ = _run("--model none.om --input ./prep_dataset --output o", capsys)
    assert rc == 1 and "model not found" in err, err
    assert os.listdir(work / "o") == []


def test_the_layout_choice_is_one_line_only_where_a_line_reads_both_ways(work, capsys):
    """Hand-listed cases: a folder of .bin files with only shared flags is read both ways (a note,
    ais_bench's layout); an own-form flag decides without a note; `--outfmt txt` (lower case,
    which ais_bench's choices refuse) is the own form's, with a note."""
    rc, out, err, _ = _run("--model moco-v2-bs1.om --input prep_dataset --output a", capsys)
    assert rc == 0 and err.count("note:") == 1 and any(TIME_STAMP.match(n) for n in _entries(work / "a")), err
    rc, out, err, _ = _run("--model moco-v2-bs1.om --input prep_dataset --output b --warmup 1", capsys)
    assert rc == 0 and "note:" not in err and "dumpOutput_device0" in _entries(work / "b"), err
    rc, out, err, _ = _run("--model moco-v2-bs1.om --input prep_dataset --output c --outfmt txt", capsys)
    assert rc == 0 and err.count("note:") == 1 and "dumpOutput_device0" in _entries(work / "c"), err


def test_npy_inputs_are_read_as_their_arrays(work, models, capsys):
    """A folder's .npy/.NPY files are inputs (utils.get_fileslist_from_dir; get_file_content
    np.load's them), with ais_bench's batch axis (1, 3, 224, 224); each gives the result its
    .bin twin gives, byte for byte, and PyTorch's values."""
    (work / "npys").mkdir()
    for i, x in enumerate(models["data"][:2]):
        np.save(work / "npys" / f"img{i}.npy", x[None])
    os.rename(work / "npys" / "img1.npy", work / "npys" / "img1.NPY")
    rc, out, err, _ = _run("--model moco-v2-bs1.om --input npys --output o --output_dirname n", capsys)
    assert rc == 0, err
    rc, out, err, _ = _run("--model moco-v2-bs1.om --input prep_dataset --output o --output_dirname b", capsys)
    assert rc == 0, err
    assert _entries(work / "o" / "n") == ["img0_0.bin", "img1_0.bin"]
    for name in ("img0_0.bin", "img1_0.bin"):
        assert (work / "o" / "n" / name).read_bytes() == (work / "o" / "b" / name).read_bytes()
    np.testing.assert_allclose(np.fromfile(work / "o" / "n" / "img1_0.bin", dtype=np.float32), models["ref"][1],
                               atol=ATOL, rtol=RTOL)

"""Step 0, the environment check: npu-smi parsing, the acl probe, the rows and the exit status.

Oracles: the npu-smi samples in tests/data/npu_smi (real outputs, copied verbatim from
shared/docs/npu-smi-samples.md) read by hand into EXPECTED below; a stand-in `npu-smi` on PATH
that prints a chosen sample (or hangs, crashes, prints garbage); the stand-in `acl` of
tests/fake_acl, whose set_device can be made to fail for chosen ids; hand arithmetic for disk.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys

import pytest

from mocoinfer import envcheck

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "tests", "data", "npu_smi")
FAKE_ACL = os.path.join(ROOT, "tests", "fake_acl")
SCRIPT = os.path.join(ROOT, "scripts", "0_check_env.sh")

# Read by hand from each sample: (card, chip, device id, health, memory used, memory total, bus id).
EXPECTED = {
    "310p3_card6_driver25": [(6, "310P3", 0, "OK", 1839, 21525, "0000:84:00.0")],
    "310p3_two_cards": [(0, "310P3", 0, "OK", 1074, 21534, "0000:82:00.0"),
                        (1, "310P3", 1, "OK", 1070, 21534, "0000:89:00.0")],
    "310_driver23": [(0, "310", 0, "OK", 577, 7759, "0000:01:00.0")],
    "310_4chip_card2048": [(2048, "310", 0, "OK", 2621, 8192, "0000:81:00.0"),
                           (2048, "310", 1, "OK", 2621, 8192, "0000:82:00.0"),
                           (2048, "310", 2, "OK", 2621, 8192, "0000:83:00.0"),
                           (2048, "310", 3, "OK", 2621, 8192, "0000:84:00.0")],
    "310_busid_na": [(0, "310", 0, "OK", 5324, 8192, "NA")],
    "310_cards_112_128": [(112, "310", 0, "OK", 2703, 8192, "0000:07:00.0"),
                          (128, "310", 1, "OK", 2621, 8192, "0000:08:00.0")],
    "910b_driver24": [(0, "910B", 0, "OK", 1197, 13553, "0000:C1:00.0"),
                      (1, "910B", 1, "OK", 2411, 15665, "0000:81:00.0")],
}
DRIVER = {"310p3_card6_driver25": "25.3.rc1", "310_driver23": "23.0.0", "310_4chip_card2048": "20.2.2",
          "310_busid_na": "21.0.3.1", "910b_driver24": "24.1.0"}


def _sample(name: str) -> str:
    with open(os.path.join(SAMPLES, name + ".txt"), encoding="utf-8") as f:
        return f.read()


def _tool(bindir, name: str, body: str) -> None:
    path = bindir / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A host built in tmp_path: PATH = tmp_path/bin + the system tools, no CANN unless asked."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    for var in ("ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME", "FAKE_ACL_FAIL_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PYTHONPATH", "")

    class Host:
        def npu_smi(self, sample: str) -> None:
            _tool(bindir, "npu-smi", f'cat "{os.path.join(SAMPLES, sample + ".txt")}"\n')

        def npu_smi_script(self, body: str) -> None:
            _tool(bindir, "npu-smi", body)

        def cann(self, version: str = "7.0.RC1") -> str:
            """A toolkit as CANN lays it out: set_env.sh, latest/<arch>-linux/..._install.info, atc."""
            toolkit = tmp_path / "Ascend" / "ascend-toolkit"
            info = toolkit / "latest" / "x86_64-linux" / "ascend_toolkit_install.info"
            info.parent.mkdir(parents=True)
            info.write_text(f"package_name=Ascend-cann-toolkit\nversion={version}\narch=x86_64\n")
            (toolkit / "set_env.sh").write_text("# stand-in\n")
            _tool(bindir, "atc", "exit 0\n")
            monkeypatch.setenv("PYTHONPATH", FAKE_ACL)
            return str(toolkit / "set_env.sh")

        def acl_module(self, body: str) -> None:
            """An `acl` module of our own making (failing, crashing or hanging on import)."""
            d = tmp_path / "acl_mod"
            d.mkdir(exist_ok=True)
            (d / "acl.py").write_text(body)
            monkeypatch.setenv("PYTHONPATH", str(d))

        def fail_devices(self, spec: str) -> None:
            monkeypatch.setenv("FAKE_ACL_FAIL_DEVICES", spec)

    return Host()


def _rows(report):
    return {r["item"]: r for r in report["rows"]}


def _collect(tmp_path, **kw):
    kw.setdefault("work_dir", str(tmp_path / "work"))
    kw.setdefault("set_env", str(tmp_path / "no-cann" / "set_env.sh"))
    kw.setdefault("acl_timeout", 60)
    return envcheck.collect(**kw)


# --------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_sample_parses_into_its_devices(name):
    devices = envcheck.parse_npu_smi(_sample(name))
    got = [(d["card"], d["chip"], d["device_id"], d["health"], d["memory_used_mb"], d["memory_total_mb"],
            d["bus_id"]) for d in devices]
    assert got == EXPECTED[name]
    assert envcheck.npu_smi_version(_sample(name)) == DRIVER.get(name)


def test_910b_device_ids_come_from_position_and_hbm_is_read():
    """The 910B sample has no Device column: ids are positions, and HBM-Usage is the second pair."""
    devices = envcheck.parse_npu_smi(_sample("910b_driver24"))
    assert [d["device_id_from"] for d in devices] == ["position (no Device column)"] * 2
    assert [(d["hbm_used_mb"], d["hbm_total_mb"]) for d in devices] == [(1365, 32768), (4, 32768)]
    other = envcheck.parse_npu_smi(_sample("310_4chip_card2048"))
    assert {d["device_id_from"] for d in other} == {"Device column"}
    assert [d["chip_index"] for d in other] == [0, 1, 2, 3]


def test_process_table_rows_are_not_devices():
    """Two running processes (`| 6  0 | 1234 | python | 800 |`) look like a device's two rows;
    they follow the process-table header and must not add a device."""
    process = "| 6       0                     | {}            | python                   | 800        |"
    text = re.sub(r"^\| No running processes found in NPU 6 *\|$",
                  process.format(1234) + "\n" + process.format(5678), _sample("310p3_card6_driver25"), flags=re.M)
    assert "| 1234 " in text and "| 5678 " in text
    assert [d["device_id"] for d in envcheck.parse_npu_smi(text)] == [0]


@pytest.mark.parametrize("text", ["", "garbage\x00\n| | |\n", "| NPU Name | Health |\n| x y | z |\n",
                                  "dcmi module initialize failed. ret is -8005\n"])
def test_unrecognised_output_gives_no_devices(text):
    assert envcheck.parse_npu_smi(text) == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_env_sh_detects_the_same_chip_as_the_parser(name, host, tmp_path):
    """scripts/env.sh's awk and parse_npu_smi must agree on every sample (oracle: EXPECTED)."""
    host.npu_smi(name)
    env = dict(os.environ, CANN_SET_ENV=str(tmp_path / "none"), WORK_DIR=str(tmp_path / "w"))
    env.pop("CHIP_NAME", None)
    proc = subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/env.sh"; printf "%s" "$CHIP_NAME"'],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == EXPECTED[name][0][1] == envcheck.parse_npu_smi(_sample(name))[0]["chip"]


def test_env_sh_survives_a_failing_npu_smi(host, tmp_path):
    host.npu_smi_script("echo 'dcmi module initialize failed' >&2; exit 8\n")
    env = dict(os.environ, CANN_SET_ENV=str(tmp_path / "none"), WORK_DIR=str(tmp_path / "w"))
    env.pop("CHIP_NAME", None)
    proc = subprocess.run(["bash", "-c", f'set -euo pipefail; source "{ROOT}/scripts/env.sh"; echo "[$CHIP_NAME]"'],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --------------------------------------------------------------------------- the whole check, stand-ins

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ascend_host_from_each_sample(name, host, tmp_path):
    """CANN, atc, the stand-in acl and each sample: every listed device opens, --npu passes."""
    host.npu_smi(name)
    set_env = host.cann("7.0.RC1")
    chip = EXPECTED[name][0][1]
    report = _collect(tmp_path, chip_name=chip, set_env=set_env)
    assert [(d["card"], d["chip"], d["device_id"]) for d in report["devices"]] == [e[:3] for e in EXPECTED[name]]
    rows = _rows(report)
    for card, _chip, dev, *_ in EXPECTED[name]:
        row = rows[f"device {dev}"]
        assert row["status"] == "ok", row
        assert f"card {card}," in row["detail"] and "set_device ok" in row["detail"]
    assert rows["CANN version"]["status"] == "ok" and "7.0.RC1" in rows["CANN version"]["detail"]
    assert rows["atc"]["status"] == rows["pyACL (import acl)"]["status"] == rows["CHIP_NAME"]["status"] == "ok"
    assert report["npu_path"] == {"ready": True, "missing": []}
    assert envcheck.exit_code(report, need_npu=True) == 0


def test_four_chip_card_lists_four_devices(host, tmp_path):
    host.npu_smi("310_4chip_card2048")
    report = _collect(tmp_path, chip_name="310", set_env=host.cann())
    assert [(d["card"], d["device_id"]) for d in report["devices"]] == [(2048, 0), (2048, 1), (2048, 2), (2048, 3)]
    assert _rows(report)["npu-smi"]["detail"].startswith("4 device(s) on 1 card(s)")


def test_a_device_that_will_not_open(host, tmp_path):
    """set_device fails for device 2 only: a warning while step 5 uses device 0, missing (and
    --npu fails) when DEVICE_ID=2."""
    host.npu_smi("310_4chip_card2048")
    set_env = host.cann()
    host.fail_devices("2=507033")
    report = _collect(tmp_path, chip_name="310", set_env=set_env, device_id=0)
    rows = _rows(report)
    assert rows["device 2"]["status"] == "warning" and "set_device failed (507033)" in rows["device 2"]["detail"]
    assert [rows[f"device {i}"]["status"] for i in (0, 1, 3)] == ["ok"] * 3
    assert envcheck.exit_code(report, need_npu=True) == 0
    report = _collect(tmp_path, chip_name="310", set_env=set_env, device_id=2)
    assert _rows(report)["device 2"]["status"] == "missing"
    assert report["npu_path"]["missing"] == ["device 2"]
    assert envcheck.exit_code(report, need_npu=True) == 1
    assert envcheck.exit_code(report, need_npu=False) == 0  # the CPU path still runs


def test_device_id_not_listed(host, tmp_path):
    host.npu_smi("310p3_two_cards")
    report = _collect(tmp_path, chip_name="310P3", set_env=host.cann(), device_id=5)
    assert _rows(report)["DEVICE_ID"]["status"] == "missing"
    assert "0, 1" in _rows(report)["DEVICE_ID"]["detail"]


def test_chip_name_against_the_chips_found(host, tmp_path):
    host.npu_smi("310p3_two_cards")
    set_env = host.cann()
    wrong = _rows(_collect(tmp_path, chip_name="310", set_env=set_env))["CHIP_NAME"]
    assert wrong["status"] == "warning" and "310P3" in wrong["detail"]
    unset = _rows(_collect(tmp_path, chip_name="", set_env=set_env))["CHIP_NAME"]
    assert unset["status"] == "missing" and "CHIP_NAME=310P3" in unset["detail"]


@pytest.mark.parametrize("body, why", [
    ("sleep 30\n", "did not answer within 1 s"),
    ("kill -SEGV $$\n", "exited with status"),
    ("echo 'dcmi module initialize failed. ret is -8005'; exit 0\n", "printed no device table"),
    ("head -c 300 /dev/urandom; exit 0\n", "printed no device table"),
])
def test_broken_npu_smi_becomes_a_row(body, why, host, tmp_path):
    host.npu_smi_script(body)
    report = _collect(tmp_path, chip_name="310P3", set_env=host.cann(), npu_smi_timeout=1)
    row = _rows(report)["npu-smi"]
    assert row["status"] == "missing" and why in row["detail"], row
    assert report["devices"] == []
    assert "npu-smi" in report["npu_path"]["missing"]


@pytest.mark.parametrize("body, why", [
    ("raise OSError('libascendcl.so: cannot open shared object file')\n", "libascendcl.so"),
    ("import os\nos.kill(os.getpid(), 11)\n", "exited with status"),
    ("import time\ntime.sleep(30)\n", "did not finish within 3 s"),
])
def test_broken_acl_becomes_a_row(body, why, host, tmp_path):
    """An `import acl` that fails, crashes the interpreter or hangs is one missing row, and the
    devices npu-smi lists are shown as not tried."""
    host.npu_smi("310p3_two_cards")
    set_env = host.cann()
    host.acl_module(body)
    report = _collect(tmp_path, chip_name="310P3", set_env=set_env, acl_timeout=3)
    rows = _rows(report)
    assert rows["pyACL (import acl)"]["status"] == "missing" and why in rows["pyACL (import acl)"]["detail"]
    assert rows["device 0"]["status"] == "warning" and "not tried" in rows["device 0"]["detail"]
    assert envcheck.exit_code(report, need_npu=True) == 1


def test_a_missing_package_blocks_the_cpu_path(host, tmp_path, monkeypatch):
    monkeypatch.setattr(envcheck, "PACKAGES", envcheck.PACKAGES + (
        ("no_such_module_here", "no-such-dist", "1.0", "step 1", "cpu"),
        ("no_such_plotter_here", "no-such-plot", "1.0", "step 7", "optional")))
    report = _collect(tmp_path)
    rows = _rows(report)
    assert rows["no-such-dist"]["status"] == "missing" and "not installed" in rows["no-such-dist"]["detail"]
    assert rows["no-such-plot"]["status"] == "warning"
    assert report["cpu_path"] == {"ready": False, "missing": ["no-such-dist"]}
    assert envcheck.exit_code(report, need_npu=False) == 1  # and no NPU here either


def test_disk_need_for_50000_images(tmp_path, monkeypatch):
    """Hand arithmetic: 3*224*224*4 = 602,112 B (float32), 3*224*224 = 150,528 B (uint8);
    50,000 float32 images alone are 30.1 GB, so 20 GB free is short and 40 GB enough."""
    assert envcheck.FLOAT32_IMAGE_BYTES == 602112 and envcheck.UINT8_IMAGE_BYTES == 150528
    usage = type("U", (), {})
    for free, status in ((20e9, "warning"), (40e9, "ok")):
        usage.free = free
        monkeypatch.setattr(envcheck.shutil, "disk_usage", lambda p: usage)
        row = envcheck.check_disk(str(tmp_path / "not" / "yet"))
        assert row.status == status
        assert f"at {tmp_path}" in row.detail  # the nearest existing folder is measured
        assert "602,112 B" in row.detail and "150,528 B" in row.detail
    usage.free = 20e9  # 50,000 uint8 images are 7.5 GB: enough
    assert envcheck.check_disk(str(tmp_path), image_dtype="uint8").status == "ok"


def test_cpu_row_uses_the_affinity_count():
    from mocoinfer.progress import usable_cpus

    assert envcheck.check_cpus().detail.startswith(f"{usable_cpus()} usable")


# --------------------------------------------------------------------------- the command line

def test_main_json_and_npu_exit(host, tmp_path, capsys):
    host.npu_smi("310_4chip_card2048")
    set_env = host.cann()
    args = ["--json", "--chip-name", "310", "--work-dir", str(tmp_path), "--cann-set-env", set_env]
    assert envcheck.main(args + ["--npu"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(d["card"], d["chip"], d["device_id"]) for d in doc["devices"]] == [(2048, "310", i) for i in range(4)]
    assert doc["exit_code"] == 0 and {r["status"] for r in doc["rows"]} <= {"ok", "warning", "missing"}
    host.fail_devices("0=507033")
    assert envcheck.main(args + ["--npu"]) == 1
    assert json.loads(capsys.readouterr().out)["npu_path"]["missing"] == ["device 0"]


def _script_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in {"CHIP_NAME", "WORK_DIR", "DEVICE_ID", "PYTHONPATH", "ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME"}}
    env.update(PATH="/usr/bin:/bin", PYTHON=sys.executable, CANN_SET_ENV=str(tmp_path / "no-cann" / "set_env.sh"),
               WORK_DIR=str(tmp_path / "work"))
    env.update(extra)
    return env


def test_this_machine_cpu_only(tmp_path):
    """This project's machines have no CANN and no NPU: exit 0, NPU path unavailable and why;
    --npu exits 1; --json says the same; nothing is written to WORK_DIR."""
    proc = subprocess.run([SCRIPT], env=_script_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    assert out[-1].startswith("CPU path ready (")
    assert "; NPU path unavailable (missing " in out[-1] and "pyACL (import acl)" in out[-1]
    assert any(ln.startswith("missing") and "npu-smi not on PATH" in ln for ln in out)
    assert any(ln.startswith("missing") and "No module named 'acl'" in ln for ln in out)
    assert proc.stderr == ""
    proc = subprocess.run([SCRIPT, "--npu", "--json"], env=_script_env(tmp_path), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["devices"] == [] and doc["cpu_path"]["ready"] and not doc["npu_path"]["ready"]
    assert not (tmp_path / "work").exists()


def test_script_passes_the_settings(tmp_path):
    """CHIP_NAME and DEVICE_ID from the environment reach the check (a stand-in npu-smi lists
    devices 0 and 1; DEVICE_ID=7 is not among them)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _tool(bindir, "npu-smi", f'cat "{os.path.join(SAMPLES, "310p3_two_cards.txt")}"\n')
    env = _script_env(tmp_path, PATH=f"{bindir}:/usr/bin:/bin", DEVICE_ID="7", CHIP_NAME="310")
    proc = subprocess.run([SCRIPT, "--json"], env=env, capture_output=True, text=True, timeout=300)
    doc = json.loads(proc.stdout)
    rows = _rows(doc)
    assert "7 is not among" in rows["DEVICE_ID"]["detail"]
    assert rows["CHIP_NAME"]["status"] == "warning" and rows["CHIP_NAME"]["detail"].startswith("310,")
    proc = subprocess.run([SCRIPT, "--bogus"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown argument '--bogus'" in proc.stderr


def test_npu_steps_need_only_requirements_npu(tmp_path):
    """requirements-npu.txt's claim, run: steps 3-6 on an .om through the stand-in acl, with
    torch, torchvision, onnx, onnxruntime and matplotlib made unimportable. Oracle for the
    labels: the stand-in computes output = 2 * (first 1000 input values) + 1, so each image's
    class is the argmax of the first 1000 floats of its .bin, read here with numpy: Top-1 100%."""
    import numpy as np
    from PIL import Image

    with open(os.path.join(ROOT, "requirements-npu.txt"), encoding="utf-8") as f:
        names = [re.split(r"[<>=]", ln.strip())[0] for ln in f if ln.strip() and not ln.startswith("#")]
    assert names == ["numpy", "pillow", "tqdm"]
    block = tmp_path / "block"
    block.mkdir()
    for mod in ("torch", "torchvision", "onnx", "onnxruntime", "matplotlib"):
        (block / f"{mod}.py").write_text(f"raise ImportError('{mod} is not in requirements-npu.txt')\n")
    val = tmp_path / "val"
    val.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (240 + 7 * i, 250, 3), dtype=np.uint8)).save(val / f"img_{i}.JPEG")
    model = tmp_path / "m.om"
    model.write_text(json.dumps({"inputs": [{"name": "actual_input_1", "dims": [1, 3, 224, 224], "dtype": 0}],
                                 "outputs": [{"name": "output1", "dims": [1, 1000], "dtype": 0}]}))
    env = dict(os.environ, PYTHONPATH=f"{block}{os.pathsep}{FAKE_ACL}")
    assert subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True).returncode == 1

    def step(*args):
        proc = subprocess.run([sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    step(os.path.join(ROOT, "imagenet_torch_preprocess.py"), "val", "prep", "--no-progress")
    step(os.path.join(ROOT, "get_info.py"), "bin", "prep", "prep.info", "224", "224")
    step(os.path.join(ROOT, "get_info.py"), "jpg", "val", "jpg.info")
    step(os.path.join(ROOT, "run_om_infer.py"), "--model", "m.om", "--input", "prep.info", "--output", "result")
    labels = {f"img_{i}": int(np.fromfile(tmp_path / "prep" / f"img_{i}.bin", dtype=np.float32)[:1000].argmax())
              for i in range(3)}
    (tmp_path / "val_label.txt").write_text("".join(f"{k}.JPEG {v}\n" for k, v in labels.items()))
    step(os.path.join(ROOT, "vision_metric_ImageNet.py"), "result/dumpOutput_device0/", "val_label.txt", ".",
         "result.json")
    assert '"Top1 accuracy", "value": "100.0%"' in (tmp_path / "result.json").read_text()

"""Stop a real `run_om_infer.py` subprocess mid-way with a signal, then rerun it: the shared
body of the resume tests for `.bin` inputs and for streamed images.

The command runs a slow stand-in backend that appends the size of each batch it runs to the
file named by SLOW_COUNT and sleeps SLOW_DELAY seconds per image, so a test can stop it after a
few results and count exactly what the rerun computes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time

from mocoinfer import sidecar

SLOW_RUNNER = textwrap.dedent('''
    """run_om_infer.py with a slow stand-in backend: each image takes SLOW_DELAY seconds."""
    import os, sys, time
    sys.path.insert(0, {root!r})
    import numpy as np
    from mocoinfer.backends.base import Backend, Probe

    DELAY = float(os.environ["SLOW_DELAY"])
    SHAPE = {shape!r}

    class Slow(Backend):
        name = "slow"

        def __init__(self, path):
            super().__init__()
            self.input_shape, self.input_dtype, self.batch_size = SHAPE, np.dtype(np.float32), None
            self.model_path = path

        @classmethod
        def probe(cls, path):
            return Probe(SHAPE, np.dtype(np.float32), None)

        @classmethod
        def load(cls, path, **kw):
            return cls(path)

        def run(self, batch):
            time.sleep(DELAY * len(batch))
            with open(os.environ["SLOW_COUNT"], "a") as f:
                f.write(f"{{len(batch)}}\\n")
            self.timing.compute.append(DELAY)
            return [{output}]

    import mocoinfer.runner
    mocoinfer.onepass.choose_backend = lambda model, name="auto": Slow
    import run_om_infer
    from mocoinfer.cli import run_main
    sys.exit(run_main(run_om_infer.main, sys.argv[1:]))
''')


def write_slow_runner(path, root: str, shape, output: str) -> None:
    """The stand-in command: `shape` is the per-sample input, `output` the expression (of `batch`)
    the backend returns, e.g. "batch.reshape(len(batch), -1) * 2.0"."""
    with open(path, "w") as f:
        f.write(SLOW_RUNNER.format(root=root, shape=tuple(shape), output=output))


def count_runs(path) -> int:
    """Images the stand-in backend ran, from the SLOW_COUNT file it appends to."""
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(int(line) for line in f if line.strip())


def stop_and_rerun(tmp_path, argv, sig, rc: int, n: int, delay: float):
    """Run `argv` with SLOW_DELAY `delay`, send `sig` once 5 results exist, check the stopped run
    (exit `rc`, one line, results recorded in an incomplete manifest, a partial summary), then
    rerun it at full speed. Returns (the result names the stopped run kept, its partial
    summary, the rerun's CompletedProcess); the rerun must have computed exactly the others."""
    res = tmp_path / "out" / "dumpOutput_device0"
    env = dict(os.environ, SLOW_DELAY=str(delay), SLOW_COUNT=str(tmp_path / "count1"))
    proc = subprocess.Popen(argv, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if res.is_dir() and len([p for p in os.listdir(res) if p.endswith("_1.txt")]) >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == rc, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err, err
    kept = sorted(p for p in os.listdir(res) if p.endswith("_1.txt"))
    assert 5 <= len(kept) < n
    # A result folder holds results only, even after a stop: no temporary, lock or manifest (issue 18).
    assert sorted(os.listdir(res)) == kept
    doc = sidecar.read_manifest(str(res))
    assert doc["status"] == sidecar.INCOMPLETE and sorted(doc["files"]) == kept
    with open(tmp_path / "out" / "summary.json") as f:
        partial = json.load(f)
    assert partial["partial"] is True and partial["images"] == len(kept)
    assert partial["stopped_by"] == ("SIGTERM" if sig == signal.SIGTERM else "SIGINT")

    env = dict(os.environ, SLOW_DELAY="0", SLOW_COUNT=str(tmp_path / "count2"))
    rerun = subprocess.run(argv, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert count_runs(tmp_path / "count2") == n - len(kept)
    assert f"skipped {len(kept)} of {n} inputs" in rerun.stdout
    assert sidecar.read_manifest(str(res))["status"] == sidecar.COMPLETE
    assert all(p.endswith("_1.txt") for p in os.listdir(res)) and len(os.listdir(res)) == n
    return kept, partial, rerun

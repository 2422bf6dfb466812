#!/usr/bin/env python3
"""Benchmark of stage 6: our metric against the guide's vision_metric_ImageNet.py, same files, one run.

`guide_metric` below is a faithful reimplementation of the guide's algorithm (per-element
np.float32 parsing of the first line, full np.argsort(-x), os.listdir order, json.dump in one
line); the tests use it as the string-by-string oracle for result.json.

    .venv/bin/python benchmarks/bench_metric.py                   # 5,000 txt + 50,000 bin
    .venv/bin/python benchmarks/bench_metric.py --txt 10000 --bin 0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def guide_metric(folder: str, annotation: str, json_dir: str, json_name: str, stable: bool = False) -> str:
    """The guide's algorithm; returns the result.json text it writes. stable=True: our tie rule."""
    img_gt_dict = {}
    with open(annotation) as f:
        for line in f.readlines():
            temp = line.strip().split(" ")
            img_gt_dict[temp[0].split(".")[0]] = temp[1]
    count = 0
    n_labels = ""
    count_hit = np.zeros(5)
    for tfile_name in os.listdir(folder):
        count += 1
        temp = tfile_name.split(".")[0]
        img_name = temp.rsplit("_", 1)[0]
        with open(os.path.join(folder, tfile_name)) as f:
            temp = f.readline().strip().split(" ")
        n_labels = len(temp)
        prediction = np.zeros(n_labels, dtype=np.float32)
        for i, prob in enumerate(temp):
            prediction[i] = np.float32(prob)
        gt = img_gt_dict[img_name]
        real_label = int(gt) + 1 if n_labels == 1001 else int(gt)
        sort_index = np.argsort(-prediction, kind="stable" if stable else None)
        for k in range(5):
            if sort_index[k] == real_label:
                count_hit[k] += 1
                break
    accuracy = np.cumsum(count_hit) / count if count else []
    table = {"title": "Overall statistical evaluation", "value": [
        {"key": "Number of images", "value": str(count)},
        {"key": "Number of classes", "value": str(n_labels)}]}
    for i in range(len(accuracy)):
        table["value"].append({"key": f"Top{i + 1} accuracy", "value": str(round(accuracy[i] * 100, 2)) + "%"})
    path = os.path.join(json_dir, json_name)
    with open(path, "w") as writer:
        json.dump(table, writer)
    with open(path) as f:
        return f.read()


def make_dataset(folder: str, n: int, fmt: str, classes: int = 1000, seed: int = 0) -> str:
    """n result files like the benchmark's (`<image>_1.<fmt>`) and a label file; returns its path."""
    from mocoinfer.formats import encode_result

    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    labels = rng.integers(0, classes, n)
    for i in range(n):
        vec = rng.standard_normal(classes).astype(np.float32)
        vec[labels[i]] += rng.uniform(0, 4)
        with open(os.path.join(folder, f"ILSVRC2012_val_{i + 1:08d}_1.{fmt}"), "wb") as f:
            f.write(encode_result(vec, fmt))
    label_file = folder.rstrip("/") + "_labels.txt"
    with open(label_file, "w") as f:
        f.writelines(f"ILSVRC2012_val_{i + 1:08d}.JPEG {lab}\n" for i, lab in enumerate(labels))
    return label_file


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> int:
    from mocoinfer.formats import read_result_json, result_json_text
    from mocoinfer.metric import default_workers, evaluate

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--txt", type=int, default=5000, help="txt result files (default %(default)s)")
    p.add_argument("--bin", type=int, default=50000, help="bin result files (default %(default)s)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.txt:
            folder = os.path.join(tmp, "txt")
            labels = make_dataset(folder, args.txt, "txt")
            evaluate(folder, labels, workers=0)  # warm the page cache for both sides
            t_guide, guide_text = timed(lambda: guide_metric(folder, labels, tmp, "guide.json"))
            guide = read_result_json(os.path.join(tmp, "guide.json"))
            for workers in sorted({0, default_workers(args.txt)}):
                t_ours, res = timed(lambda w=workers: evaluate(folder, labels, workers=w))
                ours = json.loads(result_json_text(res.n_images, res.n_classes, res.fractions))
                same = {v["key"]: v["value"] for v in ours["value"]} == guide
                print(f"txt {args.txt} files, workers={workers}: guide {t_guide:.2f}s, ours {t_ours:.2f}s, "
                      f"speed-up {t_guide / t_ours:.1f}x, result.json identical: {same}")
        if args.bin:
            folder = os.path.join(tmp, "bin")
            labels = make_dataset(folder, args.bin, "bin", seed=1)
            evaluate(folder, labels, workers=0)
            t_ours, res = timed(lambda: evaluate(folder, labels))
            print(f"bin {args.bin} files: ours {t_ours:.2f}s ({args.bin / t_ours:,.0f} images/s), "
                  f"top-1 {res.fractions[0] * 100:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())

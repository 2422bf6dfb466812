#!/usr/bin/env python3
"""The guide's vision_metric_ImageNet.py algorithm, kept as the oracle for stage 6.

`guide_metric` reimplements it faithfully: per-element np.float32 parsing of each file's first
line, a full np.argsort(-x), os.listdir order, the label shift for 1001 classes and json.dump
in one line. tests/test_metric.py compares our result.json with its output string by string;
benchmarks/bench_metric.py runs this file as a whole command, as the guide runs its script:

    python tests/reference_metric.py <result dir> <label file> <json dir> <json name>
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


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


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(f"usage: {sys.argv[0]} <result dir> <label file> <json dir> <json name>")
    guide_metric(*sys.argv[1:5])

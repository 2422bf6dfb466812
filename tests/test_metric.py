"""Stage 6 (vision_metric_ImageNet.py, mocoinfer.metric).

Oracles: a hand count of top-k hits on tiny result sets; per-image argsort and dot products
for the one-pass accuracy and comparison; `np.argsort(-x, kind="stable")` for the
tie rule; `np.float32(token)` for txt parsing; and the guide's own algorithm
(tests/reference_metric.py: guide_metric) for result.json, compared string by string.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import vision_metric_ImageNet as stage
from mocoinfer.cli import run_main
from mocoinfer.errors import UserError
from mocoinfer.formats import encode_result, read_result_json
from mocoinfer.metric import compare, evaluate, iter_matrices, label_ranks, score, topk_indices
from tests.reference_metric import guide_metric


def write_set(folder, vectors, fmt="txt", suffix=1, names=None):
    os.makedirs(folder, exist_ok=True)
    names = names or [f"img{i:03d}" for i in range(len(vectors))]
    for name, vec in zip(names, vectors):
        with open(os.path.join(folder, f"{name}_{suffix}.{fmt}"), "wb") as f:
            f.write(encode_result(np.asarray(vec, np.float32), fmt))
    return names


def write_labels(path, names, labels):
    with open(path, "w") as f:
        f.writelines(f"{n}.JPEG {lab}\n" for n, lab in zip(names, labels))
    return path


def run(argv):
    return run_main(stage.main, [str(a) for a in argv])


def random_set(rng, n, classes=1000):
    labels = rng.integers(0, classes, n)
    vecs = rng.standard_normal((n, classes)).astype(np.float32)
    vecs[np.arange(n), labels] += rng.uniform(0, 3.5, n).astype(np.float32)
    return vecs, labels


# --------------------------------------------------------------------------- tie rule

def tie_matrix(rng, rows=400, cols=12):
    m = rng.integers(0, 4, (rows, cols)).astype(np.float32)  # many ties
    m[rng.random((rows, cols)) < 0.05] = np.nan
    m[rng.random((rows, cols)) < 0.05] = -0.0
    m[rng.random((rows, cols)) < 0.03] = -np.inf
    return m


def test_label_ranks_follow_stable_argsort():
    rng = np.random.default_rng(1)
    m = tie_matrix(rng)
    labels = rng.integers(0, m.shape[1], m.shape[0])
    order = np.argsort(-m, axis=1, kind="stable")
    expected = np.argmax(order == labels[:, None], axis=1)
    np.testing.assert_array_equal(label_ranks(m, labels), expected)


@pytest.mark.parametrize("k", [1, 3, 5, 12])
def test_topk_indices_follow_stable_argsort(k):
    rng = np.random.default_rng(2)
    m = tie_matrix(rng)
    np.testing.assert_array_equal(topk_indices(m, k), np.argsort(-m, axis=1, kind="stable")[:, :k])


def test_tie_hand_count():
    # Label 2 ties with class 0 and class 4 at the top: lower index first → rank 1, so a top-1
    # miss and a top-2 hit; label 4 → rank 2 (after 0 and 2).
    m = np.array([[5, 1, 5, 0, 5, 2], [5, 1, 5, 0, 5, 2]], np.float32)
    np.testing.assert_array_equal(label_ranks(m, np.array([2, 4])), [1, 2])
    np.testing.assert_array_equal(topk_indices(m, 3), [[0, 2, 4], [0, 2, 4]])


# --------------------------------------------------------------------------- result.json vs the guide

def test_result_json_matches_guide_string_by_string(tmp_path):
    rng = np.random.default_rng(4)
    vecs, labels = random_set(rng, 73)
    names = write_set(tmp_path / "res", vecs)
    lab = write_labels(tmp_path / "val_label.txt", names, labels)
    guide = guide_metric(str(tmp_path / "res"), str(lab), str(tmp_path), "guide.json")
    assert run([tmp_path / "res", lab, tmp_path, "result.json"]) == 0
    ours = (tmp_path / "result.json").read_text()
    assert ours == guide
    assert read_result_json(tmp_path / "result.json") == read_result_json(tmp_path / "guide.json")
    res = evaluate(str(tmp_path / "res"), str(lab))
    assert res.n_images == 73 and res.hits[-1] <= 73 and res.n_classes == 1000
    assert json.loads(ours)["value"][2]["key"] == "Top1 accuracy"


def test_hand_count_every_format_and_suffix(tmp_path, capsys):
    # 6 classes; the label's rank per image: 0, 1, 2, 4, 5 → top1 1/5, top2 2/5, top3 3/5, top5 4/5.
    vecs = np.array([[9, 1, 2, 3, 4, 5],       # label 0: rank 0
                     [1, 9, 8, 3, 4, 5],       # label 2: rank 1
                     [7, 9, 8, 3, 4, 5],       # label 0: rank 2
                     [5, 4, 3, 2, 1, 0],       # label 4: rank 4
                     [5, 4, 3, 2, 1, 0]], np.float32)  # label 5: rank 5
    labels = [0, 2, 0, 4, 5]
    folder = tmp_path / "res"
    names = [f"ILSVRC2012_val_{i:08d}" for i in range(1, 6)]
    write_set(folder, vecs[:2], "txt", 1, names[:2])
    write_set(folder, vecs[2:4], "bin", 0, names[2:4])
    write_set(folder, vecs[4:], "npy", 1, names[4:])
    (folder / "summary.json").write_text("{}")
    lab = write_labels(tmp_path / "val_label.txt", names, labels)
    assert run([folder, lab, tmp_path, "result.json"]) == 0
    got = read_result_json(tmp_path / "result.json")
    assert got == {"Number of images": "5", "Number of classes": "6", "Top1 accuracy": "20.0%",
                   "Top2 accuracy": "40.0%", "Top3 accuracy": "60.0%", "Top4 accuracy": "60.0%",
                   "Top5 accuracy": "80.0%"}
    out, err = capsys.readouterr()
    assert "summary.json: not a result file, skipped" in err
    assert "Top1 accuracy      20.0%" in out and "5 of 5 labelled images" in out


def test_all_formats_give_the_guides_json(tmp_path):
    rng = np.random.default_rng(5)
    vecs, labels = random_set(rng, 30, classes=1001)  # 1001 classes: labels shift by one
    labels = np.minimum(labels, 999)
    names = write_set(tmp_path / "txt", vecs, "txt")
    lab = write_labels(tmp_path / "val_label.txt", names, labels)
    guide = guide_metric(str(tmp_path / "txt"), str(lab), str(tmp_path), "guide.json")
    assert read_result_json(tmp_path / "guide.json")["Number of classes"] == "1001"
    for fmt, suffix in (("bin", 0), ("npy", 1), ("txt", 0)):
        write_set(tmp_path / fmt / str(suffix), vecs, fmt, suffix, names)
        assert run([tmp_path / fmt / str(suffix), lab, tmp_path / "out", f"{fmt}.json"]) == 0
        assert (tmp_path / "out" / f"{fmt}.json").read_text() == guide


def test_1001_classes_shift_labels_by_one():
    res = np.zeros((2, 1001), np.float32)
    res[0, 6] = 1  # label 5 → class 6: a hit
    res[1, 5] = 1  # label 5 read without the shift: a miss (rank 1 at best: class 0 ties lower)
    r = label_ranks(res, np.array([5, 5]) + 1)
    assert r[0] == 0 and r[1] > 0


def test_ties_and_100_percent_match_guide_with_stable_sort(tmp_path):
    vecs = np.zeros((8, 10), np.float32)
    vecs[:, 3] = 1.0
    vecs[:, 7] = 1.0           # label 3 ties with 7: lower index wins, a top-1 hit
    names = write_set(tmp_path / "res", vecs)
    lab = write_labels(tmp_path / "l.txt", names, [3] * 8)
    guide = guide_metric(str(tmp_path / "res"), str(lab), str(tmp_path), "g.json", stable=True)
    assert run([tmp_path / "res", lab, tmp_path, "result.json"]) == 0
    assert (tmp_path / "result.json").read_text() == guide
    assert read_result_json(tmp_path / "result.json")["Top1 accuracy"] == "100.0%"


def test_newer_guide_form_both_spellings(tmp_path):
    rng = np.random.default_rng(6)
    vecs, labels = random_set(rng, 5, classes=20)
    names = write_set(tmp_path / "res", vecs)
    lab = write_labels(tmp_path / "l.txt", names, labels)
    assert run(["--folder_davinci_target", tmp_path / "res", "--annotation_file_path", lab,
                "--result_json_path", tmp_path / "a", "--json_file_name", "r.json", "-q"]) == 0
    assert run(["--folder-davinci-target", tmp_path / "res", "--annotation-file-path", lab,
                "--result-json-path", tmp_path / "b", "--json-file-name", "r.json", "-q"]) == 0
    assert (tmp_path / "a" / "r.json").read_text() == (tmp_path / "b" / "r.json").read_text()


def test_pool_reading_equals_in_process(tmp_path):
    rng = np.random.default_rng(7)
    vecs, _ = random_set(rng, 40, classes=50)
    write_set(tmp_path / "res", vecs)
    paths = sorted(str(p) for p in (tmp_path / "res").iterdir())
    a = np.concatenate([m for _, m in iter_matrices(paths, workers=0, chunk=7)])
    b = np.concatenate([m for _, m in iter_matrices(paths, workers=2, chunk=7)])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, vecs)


# --------------------------------------------------------------------------- strictness

@pytest.fixture
def good(tmp_path):
    rng = np.random.default_rng(8)
    vecs, labels = random_set(rng, 6, classes=20)
    names = write_set(tmp_path / "res", vecs)
    lab = write_labels(tmp_path / "val_label.txt", names, labels)
    return tmp_path, tmp_path / "res", lab, names


def expect_error(capsys, argv, pattern, out_dir):
    assert run([*argv, "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and pattern in err[0], err
    assert not (out_dir / "result.json").exists()


def test_errors(good, capsys):
    tmp, res, lab, names = good
    out = tmp / "out"
    expect_error(capsys, [tmp / "nope", lab, out, "result.json"], "result dir not found", out)
    (tmp / "empty").mkdir()
    expect_error(capsys, [tmp / "empty", lab, out, "result.json"], "no result files", out)
    expect_error(capsys, [res, tmp / "nolab.txt", out, "result.json"], "label file not found", out)
    bad = tmp / "bad.txt"
    bad.write_text(f"{names[0]}.JPEG 1\n{names[1]}.JPEG one\n")
    expect_error(capsys, [res, bad, out, "result.json"], "bad.txt:2:", out)
    short = write_labels(tmp / "short.txt", names[:-1], [1] * 5)
    expect_error(capsys, [res, short, out, "result.json"], "no label for 1 result", out)
    big = write_labels(tmp / "big.txt", names, [20] * 6)
    expect_error(capsys, [res, big, out, "result.json"], "out of range for 20-class", out)


def test_allow_missing_labels_excludes_them(good, capsys):
    tmp, res, lab, names = good
    short = write_labels(tmp / "short.txt", names[:-1], [1] * 5)
    assert run([res, short, tmp, "result.json", "--allow-missing-labels"]) == 0
    assert read_result_json(tmp / "result.json")["Number of images"] == "5"
    assert "1 result(s) have no label" in capsys.readouterr().err


def test_coverage_of_labels_without_results(good, capsys):
    tmp, res, lab, names = good
    more = write_labels(tmp / "more.txt", names + ["extra1", "extra2"], [1] * 8)
    assert run([res, more, tmp, "result.json"]) == 0
    assert "6 of 8 labelled images have results" in capsys.readouterr().out


def test_result_errors(good, capsys):
    tmp, res, lab, names = good
    out = tmp / "out"
    write_set(res, [np.zeros(19)], "txt", 1, [names[2]])  # overwrite one with a shorter vector
    expect_error(capsys, [res, lab, out, "result.json"], "differ in length", out)
    write_set(res, [np.zeros(20)], "txt", 1, [names[2]])
    write_set(res, [np.zeros(20)], "bin", 1, [names[3]])
    expect_error(capsys, [res, lab, out, "result.json"], f"two results for image '{names[3]}'", out)
    os.unlink(res / f"{names[3]}_1.bin")
    (res / f"{names[4]}_1.txt").write_text("1 2 x\n")
    expect_error(capsys, [res, lab, out, "result.json"], f"{names[4]}_1.txt: not a valid txt", out)


def test_conflicting_forms_are_rejected(good):
    tmp, res, lab, _ = good
    with pytest.raises(SystemExit):
        stage.parse_args([str(res), str(lab), "--folder_davinci_target", str(tmp)])


# --------------------------------------------------------------------------- comparison

def test_compare_identical_dirs(good):
    tmp, res, lab, names = good
    c = compare(str(res), str(res), str(lab))
    assert c["top1_agreement"] == 1 and c["mean_top5_overlap"] == 1
    assert c["cosine_min"] == pytest.approx(1) and c["max_abs_diff"] == 0 and c["top1_drop"] == 0
    assert c["passed"] and c["images_compared"] == 6


def test_compare_hand_count_and_exit_status(tmp_path, capsys):
    labels = [0, 1, 2, 3]
    ref = np.eye(4, 8, dtype=np.float32) * 5 + np.arange(8, dtype=np.float32) * 0.1
    om = ref.copy()
    om[3] = ref[3] * -1          # image 3: top-1 changes, and drops below the label
    names = write_set(tmp_path / "ref", ref, "bin", 0)
    write_set(tmp_path / "om", om[:3], "txt", 1, names[:3])
    write_set(tmp_path / "om", om[3:], "npy", 1, names[3:])
    write_set(tmp_path / "ref", [np.ones(8)], "bin", 0, ["only_ref"])
    lab = write_labels(tmp_path / "l.txt", names + ["only_ref"], labels + [0])
    argv = [tmp_path / "om", lab, tmp_path, "result.json", "--compare", tmp_path / "ref", "-q"]
    assert run(argv) == stage.EXIT_TOLERANCE
    c = json.loads((tmp_path / "result_compare.json").read_text())
    assert c["images_compared"] == 4 and c["only_in_reference"] == 1
    assert c["top1_agreement"] == 0.75
    assert c["checked_accuracy"]["top1"] == 75.0 and c["reference_accuracy"]["top1"] == 100.0
    assert c["top1_drop"] == 25.0 and not c["passed"]
    assert c["cosine_min"] == pytest.approx(-1) and c["cosine_min_image"] == names[3]
    assert c["max_abs_diff"] == pytest.approx(2 * float(np.abs(ref[3]).max()))
    # Image 3 negated: top-5 {0,1,2,4,5} vs the reference's {3,7,6,5,4} share 2 → (5+5+5+2) / 20.
    assert c["mean_top5_overlap"] == pytest.approx(17 / 20)
    assert (tmp_path / "result.json").exists()
    assert "FAIL" in capsys.readouterr().out
    assert run(argv + ["--tolerance", "30"]) == 0


def test_compare_errors(good, tmp_path):
    tmp, res, lab, names = good
    write_set(tmp / "other", [np.zeros(20)], "bin", 0, ["unrelated"])
    with pytest.raises(UserError, match="no image in common"):
        compare(str(res), str(tmp / "other"), str(lab))
    write_set(tmp / "short", [np.zeros(19)] * 6, "bin", 0, names)
    with pytest.raises(UserError, match="19 values"):
        compare(str(res), str(tmp / "short"), str(lab))


# --------------------------------------------------------------------------- one pass

def partly_shared(tmp_path, n=600, classes=20):
    """Two result dirs over more than two chunks: the reference lacks some images and has extras,
    a few labels are missing, and some checked vectors hold NaN or inf."""
    rng = np.random.default_rng(12)
    vecs, labels = random_set(rng, n, classes)
    ref = vecs + rng.standard_normal(vecs.shape).astype(np.float32)
    vecs[rng.choice(n, 9, replace=False), 3] = np.nan
    vecs[rng.choice(n, 4, replace=False), 5] = np.inf
    names = write_set(tmp_path / "om", vecs, "bin", 0)
    shared = np.ones(n, bool)
    shared[rng.choice(n, 70, replace=False)] = False
    write_set(tmp_path / "ref", ref[shared], "bin", 0, [x for x, s in zip(names, shared) if s])
    write_set(tmp_path / "ref", ref[:3], "bin", 0, ["extra0", "extra1", "extra2"])
    lab = write_labels(tmp_path / "l.txt", names[5:], labels[5:])
    return vecs, ref, labels, names, shared, lab


def stage_score(tmp_path, lab, **kw):
    return score(str(tmp_path / "om"), str(lab), reference_dir=str(tmp_path / "ref"), **kw)


def test_one_pass_figures_match_a_direct_computation(tmp_path):
    # Oracle: every figure recomputed here from the vectors with argsort(-x, kind="stable") and
    # plain float64 dot products, image by image.
    vecs, ref, labels, names, shared, lab = partly_shared(tmp_path)
    acc, c = stage_score(tmp_path, lab, allow_missing_labels=True)
    scored = np.arange(5, len(names))
    ranks = np.array([np.argmax(np.argsort(-vecs[i], kind="stable") == labels[i]) for i in scored])
    assert acc.n_images == scored.size and acc.unlabelled == names[:5]
    assert acc.hits == [int((ranks < k).sum()) for k in range(1, 6)]
    assert acc.nan_results == int(np.isnan(vecs[scored]).any(axis=1).sum())
    both = [i for i in scored if shared[i]]
    a, b = vecs[both], ref[both]
    ta, tb = np.argsort(-a, axis=1, kind="stable")[:, :5], np.argsort(-b, axis=1, kind="stable")[:, :5]
    assert c["images_compared"] == len(both) and c["only_in_reference"] == 3
    assert c["only_in_checked"] == int((~shared).sum()) and c["unlabelled_skipped"] == int(shared[:5].sum())
    assert c["top1_agreement"] == (ta[:, 0] == tb[:, 0]).mean()
    assert c["mean_top5_overlap"] == pytest.approx(np.mean([len(set(x) & set(y)) / 5 for x, y in zip(ta, tb)]))
    fin = np.isfinite(a).all(axis=1)
    a64, b64 = a[fin].astype(np.float64), b[fin].astype(np.float64)
    cos = (a64 * b64).sum(axis=1) / np.linalg.norm(a64, axis=1) / np.linalg.norm(b64, axis=1)
    assert c["nonfinite_images"] == int((~fin).sum())
    assert c["cosine_mean"] == pytest.approx(cos.mean()) and c["cosine_min"] == pytest.approx(cos.min())
    assert c["cosine_min_image"] == names[np.array(both)[fin][np.argmin(cos)]]
    assert c["max_abs_diff"] == np.abs(a64 - b64).max()
    ref_ranks = [np.argmax(np.argsort(-r, kind="stable") == labels[i]) for i, r in zip(both, b)]
    assert c["reference_accuracy"]["top1"] == round(float(np.mean(np.array(ref_ranks) == 0) * 100), 4)


def test_one_pass_equals_separate_evaluate_and_compare_in_process_and_pooled(tmp_path):
    # Oracle: evaluate() and compare() each on their own, in this process; the one pass and the
    # two-worker pool must give the very same numbers, bit for bit.
    *_, lab = partly_shared(tmp_path)
    alone = (evaluate(str(tmp_path / "om"), str(lab), allow_missing_labels=True, workers=0),
             compare(str(tmp_path / "om"), str(tmp_path / "ref"), str(lab), allow_missing_labels=True, workers=0))
    for workers in (0, 2):
        assert stage_score(tmp_path, lab, allow_missing_labels=True, workers=workers) == alone


def test_no_progress_and_its_quiet_alias(good, capsys):
    # Oracle: the same command without the flag; --no-progress and -q change nothing but the bar.
    tmp, res, lab, _ = good
    outputs = []
    for flag in ([], ["--no-progress"], ["-q"], ["--quiet"]):
        assert run([res, lab, tmp / "o", "result.json", *flag]) == 0
        outputs.append(((tmp / "o" / "result.json").read_text(), capsys.readouterr().out))
    assert all(o == outputs[0] for o in outputs)


def test_checked_dir_faults_are_reported_before_the_references(good, capsys):
    # Oracle: the order of the stage before the pass was one: the accuracy (all of the checked
    # dir) first, the comparison after it.
    tmp, res, lab, names = good
    big = write_labels(tmp / "big.txt", names, [1, 1, 1, 20, 1, 1])
    write_set(tmp / "short", [np.zeros(19)] * 6, "bin", 0, names)
    for ref in (tmp / "nope", tmp / "short"):
        expect_error(capsys, [res, big, tmp / "out", "result.json", "--compare", ref], "out of range", tmp / "out")
    expect_error(capsys, [res, lab, tmp / "out", "result.json", "--compare", tmp / "short"], "19 values", tmp / "out")


# --------------------------------------------------------------------------- output policy, manifest (issue 13)

def _runner_folder(tmp_path, n=6):
    """A result folder written by the runner (zero-cost backend: output = the input, a one-hot
    vector of 10 classes per image), its label file (the hot class: Top-1 100% by hand count)."""
    from mocoinfer.backends import Backend
    from mocoinfer.runner import run_inference

    class Echo(Backend):
        name = "echo"

        def __init__(self):
            super().__init__()
            self.input_shape, self.input_dtype, self.model_path = (10,), np.dtype(np.float32), "echo"

        def run(self, batch):
            self.timing.compute.append(0.0)
            return [batch.copy()]

    bins = tmp_path / "bins"
    bins.mkdir()
    names = [f"img{i}" for i in range(n)]
    for i, name in enumerate(names):
        np.eye(10, dtype=np.float32)[i % 10].tofile(bins / f"{name}.bin")
    run_inference("echo", str(bins), str(tmp_path / "out"), backend=Echo(), warmup=0, progress=False)
    lab = write_labels(tmp_path / "val_label.txt", names, [i % 10 for i in range(n)])
    return tmp_path / "out" / "dumpOutput_device0", lab, names


def test_runner_folder_scores_without_warnings_about_its_manifest(tmp_path, capsys):
    res, lab, _ = _runner_folder(tmp_path)
    capsys.readouterr()
    assert run([res, lab, tmp_path, "result.json"]) == 0
    assert capsys.readouterr().err == ""
    assert read_result_json(str(tmp_path / "result.json"))["Top1 accuracy"] == "100.0%"


def test_incomplete_or_mixed_folder_is_refused_unless_allowed(tmp_path, capsys):
    """Class: no lock / mixed folders. A manifest marked incomplete, a result file no manifest
    lists (another run's), a result rewritten since: each refused in one line naming the folder,
    nothing written; --allow-incomplete scores it with a warning."""
    from mocoinfer import sidecar

    res, lab, _ = _runner_folder(tmp_path)
    doc = sidecar.read_manifest(str(res))
    doc["status"] = sidecar.INCOMPLETE
    sidecar.write_manifest(str(res), doc)
    expect_error(capsys, [res, lab, tmp_path / "o", "result.json"], "did not finish", tmp_path / "o")
    assert run([res, lab, tmp_path / "o", "result.json", "--allow-incomplete"]) == 0
    assert "did not finish" in capsys.readouterr().err
    doc["status"] = sidecar.COMPLETE
    sidecar.write_manifest(str(res), doc)
    write_set(res, [np.eye(10)[3]], "txt", 1, ["stranger"])
    expect_error(capsys, [res, lab, tmp_path / "o2", "result.json"], "not written by its run", tmp_path / "o2")
    os.unlink(res / "stranger_1.txt")
    write_set(res, [np.eye(10)[5] * 2.5], "txt", 1, ["img0"])  # same name, another size (2.5 vs 1)
    expect_error(capsys, [res, lab, tmp_path / "o3", "result.json"], "changed since written", tmp_path / "o3")


def test_json_output_never_replaces_the_labels_or_a_result(tmp_path, capsys):
    """Class: an output replaces an input. The json named as the label file, as a result file,
    as a hard link to the labels, or a symlink: one line each, every input's bytes unchanged."""
    from safety_helpers import tree

    res, lab, _ = _runner_folder(tmp_path)
    os.link(lab, tmp_path / "hard.json")
    os.symlink(lab, tmp_path / "soft.json")
    before = tree(str(tmp_path), skip=(".mocoinfer.lock",))
    cases = [([res, lab, tmp_path, "val_label.txt"], "same file as the input"),
             ([res, lab, res, "img1_1.txt"], "same file as the result"),
             ([res, lab, tmp_path, "hard.json"], "same file as the input"),
             ([res, lab, tmp_path, "soft.json"], "symbolic link"),
             ([res, lab, tmp_path, "r.json", "--compare", res, "--compare-json", str(lab)], "same file as the input")]
    for argv, needle in cases:
        assert run(argv) == 1
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert tree(str(tmp_path), skip=(".mocoinfer.lock",)) == before


def test_resource_faults_are_one_line(tmp_path, capsys, monkeypatch):
    """Class: resource errors. The json folder is a file, on a read-only mount (statvfs, as root
    ignores mode bits), or the disk fills while writing (ENOSPC at the rename)."""
    import errno

    from safety_helpers import read_only_statvfs

    from mocoinfer import atomic

    res, lab, _ = _runner_folder(tmp_path)
    (tmp_path / "afile").write_text("x")
    expect_error(capsys, [res, lab, tmp_path / "afile", "result.json"], "is a file", tmp_path / "none")
    read_only_statvfs(monkeypatch, str(tmp_path))
    expect_error(capsys, [res, lab, tmp_path / "ro", "result.json"], "read-only file system", tmp_path / "ro")
    monkeypatch.undo()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "replace", full)
    expect_error(capsys, [res, lab, tmp_path / "full", "result.json"], "no space left on device", tmp_path / "full")


def test_bom_labels_tolerance_and_old_ais_summary(tmp_path, capsys):
    """A label file starting with a UTF-8 BOM scores like one without (hand count: Top-1 100%);
    --tolerance nan or negative is refused; ais_infer's old `sumary.json` inside the folder is
    skipped with a note, not a warning."""
    res, lab, names = _runner_folder(tmp_path)
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + lab.read_bytes())
    (res / "sumary.json").write_text("{}")
    capsys.readouterr()
    assert run([res, bom, tmp_path / "o", "result.json"]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err and "sumary.json" in err and "older ais_infer" in err
    assert read_result_json(str(tmp_path / "o" / "result.json"))["Top1 accuracy"] == "100.0%"
    for bad in ("nan", "-1"):
        with pytest.raises(SystemExit):
            run([res, lab, tmp_path / "o2", "result.json", "--compare", res, "--tolerance", bad])
        assert "--tolerance must be a number >= 0" in capsys.readouterr().err


def test_a_third_argument_ending_in_json_is_the_json_file(tmp_path, monkeypatch):
    """`vision_metric_ImageNet.py res labels ./acc.json` writes the file acc.json, not a folder
    acc.json/ holding result.json. Oracle: the guide's metric (tests/reference_metric.py) on the
    same files; and the guide's four-argument form into a folder whose name ends in .json is kept."""
    rng = np.random.default_rng(16)
    vecs, labels = random_set(rng, 4, classes=10)
    names = write_set(tmp_path / "res", vecs)
    lab = write_labels(tmp_path / "l.txt", names, labels)
    guide = guide_metric(str(tmp_path / "res"), str(lab), str(tmp_path), "g.json", stable=True)
    monkeypatch.chdir(tmp_path)
    assert run([tmp_path / "res", lab, "./acc.json"]) == 0
    assert (tmp_path / "acc.json").is_file() and (tmp_path / "acc.json").read_text() == guide
    assert run([tmp_path / "res", lab, tmp_path / "sub" / "b.JSON"]) == 0
    assert (tmp_path / "sub" / "b.JSON").read_text() == guide
    # With the file name given, the third argument is a folder, as in the guide's line.
    assert run([tmp_path / "res", lab, tmp_path / "d.json", "result.json"]) == 0
    assert (tmp_path / "d.json" / "result.json").read_text() == guide
    # An existing folder of that name stays a folder.
    assert run([tmp_path / "res", lab, tmp_path / "d.json"]) == 0
    assert sorted(os.listdir(tmp_path / "d.json")) == ["result.json"]

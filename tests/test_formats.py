"""The file formats of the mocoinfer/formats/ package, each tested on its own, away from the stages.

Oracles:
- result files (txt): `np.float32(token)` for every token, the guide's metric's own conversion,
  compared bit for bit; malformed files must raise UserError naming the file.
- perf file and pure-inference perf line: the benchmark's sample lines quoted in
  /work/shared/docs/ascend-reference.md, reproduced character for character.
- result.json: the guide's line quoted in the same reference (title, key order, "67.31%").
- info and label files: the line layouts in that reference (`index path width height` numbered
  from 0; `ILSVRC2012_val_00000001.JPEG 65`), written out by hand here.
- failed list, natural order, image/result keys, temporary names: hand-written expected values.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from mocoinfer import atomic, decimals, formats
from mocoinfer.errors import UserError
from mocoinfer.formats import decode_result

# --------------------------------------------------------------------------- txt parsing

def test_txt_parsing_is_exactly_np_float32_of_each_token():
    rng = np.random.default_rng(3)
    v = (rng.standard_normal(3000) * 10.0 ** rng.integers(-8, 6, 3000)).astype(np.float32)
    tokens = [f"{x:.9g}" for x in v] + [f"{x:f}" for x in v] + [repr(float(x)) for x in v]
    tokens += [str(x) for x in v] + [f"{float(x):.17g}" for x in v] + [f"{x:e}" for x in v]
    # Decimal strings just above and below the midpoint of two float32 neighbours: a direct
    # string → float32 conversion and numpy's (through a double) can differ there.
    a = np.float32(1.0)
    for _ in range(20):
        b = np.nextafter(a, np.float32(2))
        mid = (float(a) + float(b)) / 2
        tokens += [repr(mid) + "0000000000001", repr(mid)[:-1] + "49999999999", repr(mid)]
        a = b
    tokens += ["0", "-0.000000", "1e-45", "3.4028235e38", "1E5", "+2.5", ".5", "7."]
    expected = np.array([np.float32(t) for t in tokens])
    got = decode_result((" ".join(tokens) + " \n").encode(), "txt", "x")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("fmt", ["{:.9g}", "{:f}", "{:.3f}", "{:.15f}", "{:.1f}"])
def test_fast_and_fallback_txt_paths_agree_with_np_float32(fmt):
    rng = np.random.default_rng(9)
    v = (rng.standard_normal(2000) * 10.0 ** rng.integers(-3, 5, 2000)).astype(np.float32)
    tokens = [fmt.format(x) for x in v] + ["-0.000000", "0.5", "-123456.789", "1e-45", "-2.5E+3", "+7e0", "inf", "-inf"]
    expected = np.array([np.float32(t) for t in tokens])
    for sep in (" ", "  ", "\t"):  # single spaces take the fast path, others strtod
        got = decode_result((sep.join(tokens) + " \r\n").encode(), "txt", "x")
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("text", [b"1.0 abc 2.0\n", b"1.02.0 3\n", b"1,2,3\n", b"\n", b"1 2\n3 4\n", b"\xff\xfe",
                                  b"1.5-2.5 3.0\n", b"1.5 -\n", b"1.5 --2.0\n", b"1.5 2.0.1\n", b"1.5 - 2.0\n",
                                  b"1.5e 2.0\n", b"1.5 2.0-\n", b"1e5-3 2.0\n", b"1.0 2e5e5\n"])
def test_malformed_txt_is_an_error(text):
    with pytest.raises(UserError, match="x_1.txt"):
        decode_result(text, "txt", "x_1.txt")


_PLAIN_TOKEN = re.compile(rb"-?[0-9]+\.[0-9]+")


def _fast_path_oracle(line: bytes):
    """What `decimals.parse_plain_decimals` must give: float64(token) for each single-space separated
    token when every token is `-?digits.digits` with at most 15 digits, else None (the caller
    then falls back to strtod). Oracle: Python's float(), the correctly rounded strtod."""
    tokens = line.split(b" ")
    if not all(_PLAIN_TOKEN.fullmatch(t) and len(t.replace(b"-", b"")) <= 16 for t in tokens):
        return None
    return np.array([float(t) for t in tokens])


def test_fast_txt_path_is_bit_exact_on_adversarial_tokens():
    """Decimal strings the fast path accepts, chosen where a wrong rounding would show: within
    one unit of the 15th digit of a float32 midpoint (both sides), the largest 15-digit
    mantissas, tiny values with 14 leading zeros, -0.0. Oracle: float(token) in float64 and
    np.float32(token) in float32, bit for bit; the fast path must really be taken."""
    tokens = []
    a = np.float32(0.1)
    for _ in range(60):  # 0.1 up to about 2e7
        b = np.nextafter(a, np.float32(1e9))
        mid = (float(a) + float(b)) / 2
        ip = len(str(int(mid)))
        for digits in {max(1, 15 - ip), max(1, 9 - ip), max(1, 8 - ip)}:
            step = 10.0 ** -digits
            for x in (mid - step, mid, mid + step):
                tokens.append(f"{x:.{digits}f}")
                tokens.append(f"{-x:.{digits}f}")
        a = np.float32(b * np.float32(1.37))
    tokens += ["99999999999999.9", "0.99999999999999", "0.00000000000001", "-0.000000", "0.0",
               "16777217.0", "16777216.5", "3.40282356779733"]
    tokens = [t for t in tokens if len(t.replace("-", "")) <= 16]
    line = " ".join(tokens).encode()
    fast = decimals.parse_plain_decimals(line)
    assert fast is not None
    np.testing.assert_array_equal(fast.view(np.uint64), _fast_path_oracle(line).view(np.uint64))
    got = decode_result(line + b" \n", "txt", "x")
    expected = np.array([np.float32(t) for t in tokens])
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_subnormal_and_17_digit_tokens_fall_back_exactly():
    """Tokens the fast path must refuse (more than 15 digits, subnormal float32 values written
    out in full, 17 significant digits) still give np.float32(token) bit for bit."""
    tiny = np.float32(1e-45) * np.arange(1, 40, dtype=np.float32)
    tokens = [f"{float(x):.60f}" for x in tiny[:5]] + [f"{float(x):.17g}" for x in tiny]
    tokens += [f"{v:.17g}" for v in np.random.default_rng(4).standard_normal(500)]
    tokens += ["0.1000000000000000055511151231257827", "1.00000005960464477539062500000001"]
    line = " ".join(tokens).encode()
    assert decimals.parse_plain_decimals(line) is None
    got = decode_result(line + b"\n", "txt", "x")
    np.testing.assert_array_equal(got.view(np.uint32), np.array([np.float32(t) for t in tokens]).view(np.uint32))


def test_fast_txt_path_accepts_exactly_its_layout():
    """Random lines over the fast path's alphabet (digits, '.', '-', ' '): it returns float(token)
    for every line where each single-space separated token is `-?digits.digits` (at most 15
    digits), and None for every other line. Oracle: a regular expression and float()."""
    rng = np.random.default_rng(12)
    alphabet = np.frombuffer(b"0123456789.- ", dtype=np.uint8)
    weights = np.array([6] * 10 + [3, 1, 3], dtype=float)
    accepted = 0
    for _ in range(6000):
        line = alphabet[rng.choice(alphabet.size, rng.integers(1, 24), p=weights / weights.sum())].tobytes()
        got, want = decimals.parse_plain_decimals(line), _fast_path_oracle(line)
        if want is None:
            assert got is None, line
        else:
            accepted += 1
            assert got is not None and got.tobytes() == want.tobytes(), line
    assert accepted > 100  # the fuzzing reaches the accepting side too


@pytest.mark.parametrize("line", [b"1.5 2", b"1 2.5", b"1..5 2.0", b"1.5 .5", b"1.5 5.", b"-.5 1.0", b"1.5 2-.0",
                                  b"1.5 2.0 ", b" 1.5", b"1.5  2.0", b"1.5 -2.0-", b"1.5.5", b".", b"-", b" ",
                                  b"1.5 --2.0", b"1.5 2.0.", b"1234567890.123456 1.0"])
def test_fast_txt_path_refuses_other_layouts(line):
    """Each is outside `-?digits.digits` single-space separated (or over 15 digits); the fast
    path must leave it to strtod or the error, never guess a value."""
    assert decimals.parse_plain_decimals(line) is None


def test_bin_and_npy_errors():
    with pytest.raises(UserError, match="multiple of 4"):
        decode_result(b"abc", "bin", "x_1.bin")
    with pytest.raises(UserError, match="x_1.npy"):
        decode_result(b"not npy", "npy", "x_1.npy")


# --------------------------------------------------------------------------- failed list

def test_summary_and_failed_list_formats(tmp_path):
    path = str(tmp_path / "failed.txt")
    formats.write_failed(path, [("a b/x.JPEG", "truncated image (image file\nis truncated)")])
    assert (tmp_path / "failed.txt").read_text() == "a b/x.JPEG\ttruncated image (image file is truncated)\n"
    assert formats.read_failed(path) == [("a b/x.JPEG", "truncated image (image file is truncated)")]
    assert formats.bin_name("dir/ILSVRC2012_val_00000001.JPEG") == "ILSVRC2012_val_00000001.bin"




# --------------------------------------------------------------------------- perf files

# The benchmark's perf file as quoted in ascend-reference.md ("Perf file ... five lines").
GUIDE_PERF = ("[e2e] throughputRate: 170.628, latency: 293035\n"
              "[data read] throughputRate: 181.571, moduleLatency: 5.50749\n"
              "[preprocess] throughputRate: 180.466, moduleLatency: 5.5412\n"
              "[infer] throughputRate: 171.595, Interface throughputRate: 247.898, moduleLatency: 5.12562\n"
              "[post] throughputRate: 171.595, moduleLatency: 5.82768\n")


def test_perf_file_is_the_benchmarks_five_lines():
    perf = formats.parse_perf(GUIDE_PERF)
    # ModelZoo's parse.py reads the [infer] line's second number.
    assert perf["infer"]["Interface throughputRate"] == 247.898
    assert list(perf) == ["e2e", "data read", "preprocess", "infer", "post"]
    text = formats.format_perf(
        e2e_rate=perf["e2e"]["throughputRate"], e2e_latency_ms=perf["e2e"]["latency"],
        read_rate=perf["data read"]["throughputRate"], read_latency_ms=perf["data read"]["moduleLatency"],
        pre_rate=perf["preprocess"]["throughputRate"], pre_latency_ms=perf["preprocess"]["moduleLatency"],
        infer_rate=perf["infer"]["throughputRate"], interface_rate=perf["infer"]["Interface throughputRate"],
        infer_latency_ms=perf["infer"]["moduleLatency"],
        post_rate=perf["post"]["throughputRate"], post_latency_ms=perf["post"]["moduleLatency"])
    assert text == GUIDE_PERF
    assert formats.perf_filename(4, 0) == "perf_vision_batchsize_4_device_0.txt"


def test_pure_inference_perf_line_and_name():
    # ascend-reference.md: `PureInfer_perf_of_{om name}_in_device_{id}.txt` holding this line.
    line = "ave_throughputRate = 155.975samples/s, ave_latency = 6.42435ms\n"
    assert formats.format_pure_perf(155.975, 6.42435) == line
    name = "PureInfer_perf_of_moco-v2-atc-bs1_in_device_0.txt"
    assert formats.pure_perf_filename("out/moco-v2-atc-bs1.om", 0) == name


# --------------------------------------------------------------------------- result.json

def test_result_json_is_the_guides_line(tmp_path):
    # ascend-reference.md quotes the line with Top2..Top4 elided: its head and tail are compared.
    fractions = [0.6731, 0.78, 0.83, 0.86, 0.8782]
    text = formats.result_json_text(50000, 1000, fractions)
    assert text.startswith('{"title": "Overall statistical evaluation", "value": [{"key": "Number of images", '
                           '"value": "50000"}, {"key": "Number of classes", "value": "1000"}, '
                           '{"key": "Top1 accuracy", "value": "67.31%"}, ')
    assert text.endswith('{"key": "Top5 accuracy", "value": "87.82%"}]}')
    path = str(tmp_path / "result.json")
    formats.write_result_json(path, 50000, 1000, fractions)
    assert formats.read_result_json(path)["Top3 accuracy"] == "83.0%"
    # The guide's str(round(acc * 100, 2)) + '%': a float's str, so 100% is "100.0%", 1/3 two decimals.
    assert (formats.format_accuracy(1.0), formats.format_accuracy(1 / 3)) == ("100.0%", "33.33%")


# --------------------------------------------------------------------------- info and label files

def test_info_file_round_trip_numbered_from_zero(tmp_path):
    path = str(tmp_path / "x.info")
    assert formats.write_info(path, [("./prep/a.bin", 224, 224), ("./prep/b.bin", 32, 16)]) == 2
    assert (tmp_path / "x.info").read_text() == "0 ./prep/a.bin 224 224\n1 ./prep/b.bin 32 16\n"
    assert formats.read_info(path) == [formats.InfoEntry(0, "./prep/a.bin", 224, 224),
                                       formats.InfoEntry(1, "./prep/b.bin", 32, 16)]


@pytest.mark.parametrize("text,message", [
    ("0 a.bin 224 224\n2 b.bin 224 224\n", "x.info:2: index 2 out of sequence (expected 1)"),
    ("0 my a.bin 224 224\n", "x.info:1: expected 'index path width height'"),
    ("0 a.bin 224 wide\n", "x.info:1: index, width and height must be integers"),
    ("\n\n", "x.info: info file is empty"),
])
def test_info_file_errors_name_the_line(tmp_path, text, message):
    (tmp_path / "x.info").write_text(text)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        formats.read_info(str(tmp_path / "x.info"))
    with pytest.raises(UserError, match="info file not found"):
        formats.read_info(str(tmp_path / "none.info"))


def test_label_file_keys_and_errors(tmp_path):
    path = tmp_path / "val_label.txt"
    path.write_text("ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG 970\n")
    assert formats.read_labels(str(path)) == {"ILSVRC2012_val_00000001": 65, "ILSVRC2012_val_00000002": 970}
    assert formats.format_labels([("ILSVRC2012_val_00000001.JPEG", 65)]) == "ILSVRC2012_val_00000001.JPEG 65\n"
    for text, message in [("a.JPEG 1\na.png 2\n", "val_label.txt:2: image 'a' is labelled twice"),
                          ("a.JPEG -1\n", "val_label.txt:1: label must be >= 0"),
                          ("a.JPEG one\n", "val_label.txt:1: label must be an integer"),
                          ("a.JPEG\n", "val_label.txt:1: expected 'image_name label'")]:
        path.write_text(text)
        with pytest.raises(UserError, match=message):
            formats.read_labels(str(path))


# --------------------------------------------------------------------------- names, keys and order

def test_natural_order():
    names = ["img10.bin", "img2.bin", "img1.bin", "img02.bin", "b.bin", "a10b.bin", "a9b.bin"]
    # By hand: numbers compare by value, equal values fall back to the plain string ("img02" < "img2").
    assert sorted(names, key=formats.natural_key) == ["a9b.bin", "a10b.bin", "b.bin", "img1.bin", "img02.bin",
                                                      "img2.bin", "img10.bin"]


def test_image_and_result_keys():
    # The guide's key: the name before the first '.'; result files add `_<k>` (benchmark 1, ais_bench 0).
    assert formats.image_key("val/ILSVRC2012_val_00000001.JPEG") == "ILSVRC2012_val_00000001"
    assert formats.result_key("ILSVRC2012_val_00000001_1.txt") == "ILSVRC2012_val_00000001"
    assert formats.result_key("ILSVRC2012_val_00000001_0.bin") == "ILSVRC2012_val_00000001"
    assert formats.result_filename("prep/ILSVRC2012_val_00000001.bin", "txt") == "ILSVRC2012_val_00000001_1.txt"
    assert formats.is_result_name("x_0.npy") and not formats.is_result_name("summary.json")
    assert not formats.is_result_name("x.txt")
    with pytest.raises(UserError, match="unknown result format 'csv'"):
        formats.result_filename("a.bin", "csv")


def test_temporary_names_are_hidden_and_name_their_writer(tmp_path):
    target = str(tmp_path / "out.txt")
    with atomic.atomic_path(target) as tmp:
        name = os.path.basename(tmp)
        assert name.startswith(".") and os.path.dirname(tmp) == str(tmp_path)
        assert atomic.temp_owner_pid(tmp) == os.getpid()
        with open(tmp, "w") as f:
            f.write("done")
    assert os.listdir(tmp_path) == ["out.txt"]
    assert atomic.temp_owner_pid(target) is None
    # A failed block leaves neither the temporary nor a target.
    with pytest.raises(RuntimeError), atomic.atomic_path(str(tmp_path / "half.txt")) as tmp:
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == ["out.txt"]


def test_result_files_larger_than_one_read(tmp_path):
    """Oracle: the vector written; 20,000 values make a txt of about 250 kB and a bin of 80 kB,
    more than read_result fetches in one read."""
    v = np.random.default_rng(10).standard_normal(20000).astype(np.float32)
    for fmt in ("txt", "bin", "npy"):
        path = formats.write_result(str(tmp_path), f"big_{fmt}.bin", v, fmt)
        got = formats.read_result(path)
        np.testing.assert_array_equal(got.view(np.uint32), v.view(np.uint32))

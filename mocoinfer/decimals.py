"""The exact parser of the benchmark's txt result numbers: one line of decimal tokens to float32,
bit for bit what the guide's `np.float32(token)` gives (the decimal string to a double, then to
float32), vectorised with numpy because it is the metric's hot path (50,000 files of 1,000
values). `formats.decode_result` is the only caller; it turns a None (not this layout) into the
strict per-token fallback and a malformed line into an error naming the file.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

_POW10 = 10.0 ** np.arange(23)
_DECIMAL_CHARS = b"0123456789.- "
_MAX_EXACT_DIGITS = 15  # every 15-digit integer is exact in a double (< 2**53)


def parse_plain_decimals(line: bytes) -> Optional[np.ndarray]:
    """float64 values of a line of `[-]digits.digits` tokens separated by single spaces, or None.

    The layout `%f` and (mostly) `%.9g` write. numpy parses integers about ten times faster
    than floats, so the dot is dropped and the digits are read as one int64 mantissa per token,
    then divided by 10**(digits after the dot). With at most 15 digits the mantissa and the
    power of ten are exact doubles, so the one division is correctly rounded: bit for bit what
    strtod (and so the guide's np.float32(token)) gives. Any other layout returns None.
    """
    if line.translate(None, _DECIMAL_CHARS):
        return None
    a = np.frombuffer(line, dtype=np.uint8)
    # Dots and spaces, found in one pass: a valid line alternates them, dot space dot ... dot,
    # which also means exactly one dot in every token. Of the allowed bytes only ' ' (32) and
    # '.' (46) give 46 when or-ed with 14 ('-' is 45, digits have bit 16 set).
    marks = np.flatnonzero((a | 14) == 46)
    n = (marks.size + 1) // 2
    if n == 0 or marks.size % 2 == 0:
        return None
    dots = marks[0::2]
    spaces = marks[1::2]
    at = a[marks]
    if not ((at[0::2] == 46).all() and (at[1::2] == 32).all()):
        return None
    starts = np.empty(n, dtype=np.intp)
    starts[0] = 0
    np.add(spaces, 1, out=starts[1:])
    ends = np.empty(n, dtype=np.intp)
    ends[:-1] = spaces
    ends[-1] = a.size
    negative = a[starts] == 45
    frac_digits = ends - dots - 1
    int_digits = dots - starts - negative
    # '-' only at a token's start, at least one digit on each side of the dot, and no more
    # digits than are exact.
    n_negative = np.count_nonzero(negative)
    if (np.minimum(frac_digits, int_digits).min() < 1 or np.count_nonzero(a == 45) != n_negative
            or (int_digits + frac_digits).max() > _MAX_EXACT_DIGITS):
        return None
    mantissa = np.fromstring(line.replace(b".", b""), dtype=np.int64, sep=" ")
    if mantissa.size != n:
        return None
    # Rounding to nearest is symmetric, so the signed division is exact too; only a zero
    # mantissa loses its sign ("-0.000000" is -0.0 to strtod), and is given it back.
    values = mantissa / _POW10[frac_digits]
    if np.count_nonzero(mantissa < 0) != n_negative:
        values[negative & (mantissa == 0)] = -0.0
    return values


def parse_decimals(line: bytes) -> Optional[np.ndarray]:
    """`_parse_plain_decimals`, also when a few tokens carry an exponent (`%.9g` of tiny values).

    Those few are read one by one with float() (correctly rounded, like strtod) and stand in
    as "0.0" for the fast pass; a line of mostly exponents returns None (strtod is faster then).
    """
    if b"e" not in line and b"E" not in line:
        return parse_plain_decimals(line)
    if line.translate(None, b"0123456789.-+eE "):
        return None
    a = np.frombuffer(line, dtype=np.uint8)
    spaces = np.flatnonzero(a == 32)
    e_at = np.flatnonzero((a | 32) == 101)
    if e_at.size * 8 > spaces.size + 1:
        return None
    starts = np.concatenate(([0], spaces + 1))
    ends = np.concatenate((spaces, [a.size]))
    tokens = np.unique(np.searchsorted(starts, e_at, side="right") - 1)
    pieces, values, prev = [], [], 0
    for i in tokens.tolist():
        start, end = int(starts[i]), int(ends[i])
        try:
            values.append(float(line[start:end]))
        except ValueError:
            return None
        pieces += [line[prev:start], b"0.0"]
        prev = end
    pieces.append(line[prev:])
    vec = parse_plain_decimals(b"".join(pieces))
    if vec is None:
        return None
    vec[tokens] = values
    return vec

"""Byte counts in words a user can act on, and the memory this process may still take.

`human_size` never says "0.0 MB": below 1 kB it gives the exact bytes, and `two_sizes` adds the
exact byte counts when two figures would round to the same words ("needs 1.0 MB, only 1.0 MB is
free" tells nothing). `available_memory` is the least of what the kernel says is available, what
this process's cgroup still allows, and what its address-space limit (`ulimit -v`) leaves, so a
stage can refuse a batch before it allocates instead of dying in the allocator.
"""

from __future__ import annotations

import os
import resource
from typing import List, Optional, Tuple

_UNITS = ("kB", "MB", "GB", "TB", "PB")


def human_size(n: float) -> str:
    """`n` bytes as `512 bytes`, `12.3 kB`, `602.1 MB`, `30.1 GB` (decimal units, as `df -H`)."""
    n = max(0, int(n))
    if n < 1000:
        return f"{n} byte{'s' if n != 1 else ''}"
    value = float(n)
    for unit in _UNITS:
        value /= 1000.0
        if value < 999.95 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    return f"{n} bytes"  # not reached


def two_sizes(a: float, b: float) -> Tuple[str, str]:
    """`human_size` of both, with the exact byte counts added when the words would be equal."""
    ha, hb = human_size(a), human_size(b)
    if ha == hb and int(a) != int(b):
        return f"{ha} ({int(a):,} bytes)", f"{hb} ({int(b):,} bytes)"
    return ha, hb


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def _meminfo_available() -> Optional[int]:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> Optional[int]:
    """The memory limit of this process's cgroup less what it uses (v2, else v1), or None."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory.limit_in_bytes", "memory.usage_in_bytes")):
        limit = _read_int(os.path.join("/sys/fs/cgroup", limit_file))
        if limit is None:
            limit = _read_int(os.path.join("/sys/fs/cgroup/memory", limit_file))
            usage = _read_int(os.path.join("/sys/fs/cgroup/memory", usage_file))
        else:
            usage = _read_int(os.path.join("/sys/fs/cgroup", usage_file))
        # cgroup v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages).
        if limit is not None and limit < 1 << 60:
            return max(0, limit - (usage or 0))
    return None


def _address_space_room() -> Optional[int]:
    """RLIMIT_AS (`ulimit -v`) less the address space already mapped, or None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    mapped = 0
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    mapped = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return max(0, soft - mapped)


def available_memory() -> Optional[int]:
    """Bytes this process can still allocate, by the tightest limit known; None when none is."""
    known: List[int] = [v for v in (_meminfo_available(), _cgroup_room(), _address_space_room()) if v is not None]
    return min(known) if known else None

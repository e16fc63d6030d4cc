"""glibc malloc settings for processes that run for days (``streamface ingest``).

A decoded 1080p RGB frame is a 6 MiB buffer, allocated and freed by several
threads many times a second. glibc serves the first such buffer with ``mmap``,
but freeing it raises its mmap threshold to that size, so later frames come from
the threads' heap arenas instead. Those arenas keep what is freed: over hours the
process's RSS creeps up although the memory in use stays flat (heaptrack on a
30-minute, 4-stream live ingest: the heap in use stays at 840 MB from minute 4 on).
A fixed threshold keeps every buffer of at least that size on ``mmap``, handed back
to the system as soon as it is freed.

Nothing happens where the C library is not glibc, or where the user already set
the threshold (``MALLOC_MMAP_THRESHOLD_`` or ``GLIBC_TUNABLES``): theirs wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["DEFAULT_MMAP_THRESHOLD", "fix_mmap_threshold"]

DEFAULT_MMAP_THRESHOLD = 1 << 20  # bytes: frames, crops batches and encoded frames go to mmap

_M_MMAP_THRESHOLD = -3  # mallopt parameter number (malloc.h)


def fix_mmap_threshold(threshold: int = DEFAULT_MMAP_THRESHOLD) -> bool:
    """Serve allocations of at least ``threshold`` bytes from ``mmap`` from now on.

    Parameters
    ----------
    threshold : int, default 1 MiB
        Bytes; glibc accepts at most 32 MiB on 64-bit systems.

    Returns
    -------
    bool
        True when the setting was applied; False off glibc, or when the environment
        already sets the threshold.
    """
    if not 0 < threshold <= 32 << 20:
        raise ValueError(f"threshold: expected 1 byte to 32 MiB, got {threshold!r}")
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, int(threshold)) == 1

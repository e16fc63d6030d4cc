"""``streamface.ops.malloc_tuning``: big buffers go back to the system when freed (glibc)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from streamface.ops.malloc_tuning import fix_mmap_threshold

# In a fresh process: free a 6 MiB buffer twice (glibc then raises its mmap threshold
# to that size), then see whether freeing a third hands its pages back to the system.
PROBE = """
import sys
import numpy as np
from streamface.ops.malloc_tuning import fix_mmap_threshold
applied = fix_mmap_threshold() if sys.argv[1] == "fixed" else None
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
for _ in range(2):
    del_me = np.ones(6 << 20, np.uint8)
    del del_me
frame = np.ones(6 << 20, np.uint8)  # 6 MiB, every page touched
before = rss()
del frame
print(applied, (before - rss()) >> 20)
"""

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="mallopt is glibc's")


def _probe(mode: str, **env) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60,
                         env={**environment, **env}, check=True)
    applied, released = out.stdout.split()
    return applied, int(released)


@glibc
def test_a_freed_frame_goes_back_to_the_system_only_with_the_fixed_threshold():
    assert _probe("default") == ("None", 0)       # kept in the heap by glibc's sliding threshold
    applied, released = _probe("fixed")
    assert applied == "True" and released >= 5    # unmapped at once


@glibc
def test_the_users_own_setting_wins():
    assert _probe("fixed", MALLOC_MMAP_THRESHOLD_="16777216")[0] == "False"
    assert _probe("fixed", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=16777216")[0] == "False"


@pytest.mark.parametrize("threshold", [0, -1, (32 << 20) + 1])
def test_impossible_thresholds_are_refused(threshold):
    with pytest.raises(ValueError, match="threshold"):
        fix_mmap_threshold(threshold)

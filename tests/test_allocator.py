"""aoi.allocator: glibc keeps freed memory in any process that imports aoi (page faults counted)."""

import os
import subprocess
import sys

import pytest

from aoi.allocator import GLIBC_SETTINGS, keep_freed_memory

GLIBC = hasattr(os, "confstr") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
# Allocate, fill and free a block of 64 MB 10 times (malloc, then memset); print the loop's minor page faults.
LOOP = """
import resource
import aoi
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    block = bytes([1]) * 2**26
    del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(**environ) -> int:
    """Minor page faults of `LOOP` in a fresh interpreter whose environment sets no malloc option but ``environ``."""
    clean = {k: v for k, v in os.environ.items() if k not in (*GLIBC_SETTINGS, "GLIBC_TUNABLES")}
    done = subprocess.run([sys.executable, "-c", LOOP], env={**clean, **environ}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_importing_aoi_keeps_freed_blocks_for_the_next_allocation():
    pages = 2**26 // 4096  # one fill of the block faults in 16384 pages of 4 KB
    kept = page_faults()
    returned = page_faults(GLIBC_TUNABLES="glibc.malloc.tcache_count=7")  # a choice of the user's (the default)
    assert returned >= 9 * pages  # glibc's defaults: every fill faults the block in again
    assert kept <= 2 * pages  # kept: the first fill faults it in, the next ones reuse it


def test_a_malloc_setting_in_the_environment_stands():
    for name in (*GLIBC_SETTINGS, "GLIBC_TUNABLES"):
        assert keep_freed_memory({name: "1"}) is False

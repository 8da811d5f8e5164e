"""Keep freed memory in the process: `keep_freed_memory`, applied when aoi is imported.

glibc's malloc serves a block above its mmap threshold (128 KB, raised as such blocks are freed,
up to 32 MB) with a fresh mapping and hands it back to the operating system when it is freed, and
trims the heap's free top above 128 KB. A forward or a training step allocates activations of
tens to hundreds of MB and frees them, so every step faults them in again, 4 KB at a time, zeroed
by the kernel (benchmarks/README.md: an ndigits training run took 1.07 M page faults). Raising
both thresholds to 2 GiB keeps freed blocks in the heap for the next step: the same numbers, fewer
faults, at the price of a process that keeps its peak heap. Any process that imports aoi gets it
(``python -m aoi``, ``./reproduce.sh``, the notebooks' kernels, whether started by papermill or
JupyterLab), unless its environment already sets glibc's malloc options (MALLOC_*_ variables or
GLIBC_TUNABLES): then that choice stands. Elsewhere than glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
KEEP_BYTES = 2**31 - 1  # mallopt takes an int: the largest, 2 GiB
GLIBC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def keep_freed_memory(environ=os.environ) -> bool:
    """Raise glibc's mmap and trim thresholds to `KEEP_BYTES` (see the module docstring); returns
    whether it did (False: not glibc, or the environment ``environ`` sets malloc options itself)."""
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr, or not glibc
        glibc = False
    if not glibc or any(name in environ for name in (*GLIBC_SETTINGS, "GLIBC_TUNABLES")):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))

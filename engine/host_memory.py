"""Letting freed tensor memory be reused on Linux rather than faulted in again on every pass.

PyTorch's CPU tensors come from malloc. glibc serves each block above its mmap threshold with fresh
pages from the kernel and returns them on free, and a worker thread's arena maps large blocks the
same way, so every forward pass touches all of its activations' pages for the first time again: a
U-Net of base width 16 on 512² tiles took 345 000 page faults per 15 tiles, and ran at 2.1 instead
of 2.6 MPix/s on the 2-core test machine (training pays the same). Raising the mmap and trim
thresholds and serving every thread from one arena keeps freed blocks for the next pass; after a
job, `release_freed_memory` gives them back so an idle window holds little. PyTorch's Windows
builds allocate CPU tensors through mimalloc, which keeps large blocks itself (pytorch/pytorch
#102595); other C libraries (macOS, musl) are left as they are.
"""

from __future__ import annotations

import ctypes
import sys
from functools import cache

# mallopt parameters of glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
# Blocks up to this size are kept for reuse, and this much free memory may stay with the process.
KEEP_BYTES = 512 * 1024 * 1024


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    needed = ("mallopt", "malloc_trim", "gnu_get_libc_version")
    return libc if all(hasattr(libc, name) for name in needed) else None


@cache
def keep_freed_memory() -> bool:
    """Tunes glibc's malloc to keep freed blocks for reuse; True where it could (glibc only).

    Call it at the start of the process, before threads allocate (arenas are made lazily).
    """
    libc = _glibc()
    if libc is None:
        return False
    settings = ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, KEEP_BYTES), (M_TRIM_THRESHOLD, KEEP_BYTES))
    return all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)


def release_freed_memory() -> None:
    """Returns the free memory malloc kept to the system (a no-op outside glibc)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)

"""Settings that change the whole process, applied only when a program asks for them.

A library object never calls these behind its caller's back: the command line applies them
at start-up (:func:`tune_process_for_rendering`); a program that embeds vidsr may too.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path

__all__ = ["keep_large_buffers_in_heap", "tune_process_for_rendering", "use_compile_cache"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_MMAP_THRESHOLD_MAX = 32 << 20  # the largest glibc accepts on 64-bit
_TRIM_THRESHOLD = 1 << 30
_INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def tune_process_for_rendering(cache_folder: Path) -> None:
    """Everything vidsr's own commands set up once: steady malloc thresholds and the cache of
    compiled kernels in ``cache_folder``."""
    keep_large_buffers_in_heap()
    use_compile_cache(cache_folder)


@functools.cache
def keep_large_buffers_in_heap() -> bool:
    """Stop glibc from giving every activation buffer its own fresh mmap.

    A network allocates and frees buffers of many MB per frame. glibc's default threshold
    adapts to the history of frees, so one process serves them from the heap and the next
    maps and page-faults them anew on every call: measured 4.2 against 6.5 fps for
    realesr-animevideov3 at 320x180, from run to run of the same command. Fixed thresholds
    make it the fast case every time. A no-op off glibc; returns whether it applied.
    """
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):
        return False


def use_compile_cache(folder: Path) -> None:
    """Keep torch.compile's kernels in ``folder`` (inductor reads the variable, as do its
    compile workers), so the next render with the same network starts faster. A folder the
    user set already is left as it is."""
    os.environ.setdefault(_INDUCTOR_CACHE_ENV, str(folder))

"""The engine's memory: the garbage collector's pauses and the heap given back to the OS."""

from __future__ import annotations

import ctypes
import gc

GC_GEN0_THRESHOLD = 50_000  # allocations between young collections (CPython's default: 700)


def calm_garbage_collector() -> None:
    """Keep the cyclic collector's pauses off the decision path.

    The restored state (up to millions of table rows and pending entries) is moved
    out of the collector's view once, and young collections run less often:
    the loop allocates many short-lived objects but creates almost no cycles.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


def release_freed_memory() -> bool:
    """Give the C heap's free pages back to the operating system; False if it cannot.

    Parsing a large ``bandit_stats.json`` creates millions of short-lived Python
    objects, and each snapshot copies the tables; glibc keeps the heap they
    freed for reuse, which left an engine restored with a million arms at three
    times the memory it holds. ``malloc_trim`` returns it (well under a
    millisecond once trimmed). Where the C library has no ``malloc_trim``
    (musl, macOS) nothing happens.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True

"""Add up integers in pure-Python loops, in independent parts: the tutorial's script.

Run it as ``python compute.py SCHEDULER`` with SCHEDULER one of ``synchronous``,
``threads`` or ``processes`` (dask's own schedulers), or with no argument under
``daskdeploy run compute.py``, which makes every ``.compute()`` use its workers.
"""

import sys
import time

import dask

PARTS = 4
SIZE = 10_000_000  # loop iterations in each part


def compute_part(size):
    """Add up 0, 1, ..., size - 1 one number at a time (pure Python: holds the GIL)."""
    total = 0
    for i in range(size):
        total += i
    return total


def scheduler_in_use(requested):
    """Name the scheduler that .compute() uses: the one asked for, or the default."""
    if requested:
        return requested
    try:
        from distributed import default_client

        workers = len(default_client().nthreads())
    except (ImportError, ValueError):  # no distributed Client: dask's default
        return "threads (dask's default)"
    return f"distributed, {workers} worker{'s' if workers != 1 else ''}"


def main(scheduler=None):
    parts = [dask.delayed(compute_part)(SIZE) for _ in range(PARTS)]
    total = dask.delayed(sum)(parts)
    start = time.perf_counter()
    result = total.compute(scheduler=scheduler)
    elapsed = time.perf_counter() - start
    assert result == PARTS * (SIZE * (SIZE - 1) // 2), result
    print(f"{PARTS} parts in {elapsed:.2f} s ({scheduler_in_use(scheduler)})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)

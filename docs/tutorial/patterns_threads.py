"""What `.compute()` uses when nothing is set up: one thread per CPU, in one process."""

import os
import time

import dask

PARTS = 4
SIZE = 5_000_000


def add_up(size):
    """A pure-Python loop: it holds the GIL the whole time."""
    total = 0
    for i in range(size):
        total += i
    return total


def scheduler_in_use():
    try:
        from distributed import default_client

        return f"distributed, {len(default_client().nthreads())} worker processes"
    except (ImportError, ValueError):  # no distributed Client
        return f"threads, {dask.system.CPU_COUNT} of them in this one process"


if __name__ == "__main__":
    print(f"CPUs this process may use: {len(os.sched_getaffinity(0))}")
    print(f".compute() uses: {scheduler_in_use()}")
    parts = [dask.delayed(add_up)(SIZE) for _ in range(PARTS)]
    for scheduler in ("synchronous", None):
        start = time.perf_counter()
        dask.compute(*parts, scheduler=scheduler)
        took = time.perf_counter() - start
        print(f"{PARTS} parts, {scheduler or 'that scheduler'}: {took:.2f} s")

"""Two results from one input: one dask.compute() call loads it once, two .compute() twice."""

import time

import dask
from distributed import get_task_stream


@dask.delayed
def load(n):
    """Stand-in for reading a large file: slow, and needed by both results."""
    time.sleep(0.5)
    return list(range(n))


def loads_in(stream):
    return sum(1 for task in stream.data if task["key"].startswith("load-"))


if __name__ == "__main__":
    data = load(1_000_000)
    total = dask.delayed(sum)(data)
    largest = dask.delayed(max)(data)

    with get_task_stream() as stream:
        start = time.perf_counter()
        total.compute(), largest.compute()
    took = time.perf_counter() - start
    print(f"two .compute() calls:   load ran {loads_in(stream)} times, {took:.2f} s")

    with get_task_stream() as stream:
        start = time.perf_counter()
        dask.compute(total, largest)
    took = time.perf_counter() - start
    print(f"one dask.compute(a, b): load ran {loads_in(stream)} time,  {took:.2f} s")

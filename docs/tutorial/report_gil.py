"""Pure-Python tasks (they hold the GIL), for the report page: ``daskdeploy run --report``."""

import dask


@dask.delayed
def count_up(n):
    """Add 0, 1, ..., n - 1 one number at a time."""
    total = 0
    for i in range(n):
        total += i
    return total


results = dask.compute(*[count_up(2_000_000) for _ in range(8)])
print(f"{len(results)} tasks, total {sum(results)}")

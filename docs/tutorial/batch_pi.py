"""Estimate pi from random points, in independent parts: the batch-system pages' example.

It holds no cluster code: ``daskdeploy run batch_pi.py`` runs it on this machine,
``daskdeploy run --backend slurm batch_pi.py`` on SLURM worker jobs, and inside an
sbatch job it uses that job's tasks. Each part draws its own points from a fixed seed,
so the estimate is the same wherever it runs.
"""

import dask
import numpy as np

PARTS = 8
POINTS = 1_000_000  # points in each part


def count_inside(seed, points):
    """How many of ``points`` random points in the unit square fall in the quarter circle."""
    rng = np.random.default_rng(seed)
    x, y = rng.random(points), rng.random(points)
    return int(np.count_nonzero(x * x + y * y <= 1.0))


def workers():
    """The number of Dask workers this script's computations run on (0: none)."""
    try:
        from distributed import default_client

        return len(default_client().nthreads())
    except (ImportError, ValueError):  # no distributed Client: dask's threads
        return 0


def main():
    counts = [dask.delayed(count_inside)(seed, POINTS) for seed in range(PARTS)]
    inside = dask.delayed(sum)(counts).compute()
    print(f"pi ~ {4 * inside / (PARTS * POINTS):.4f} from {PARTS * POINTS:,} points")
    print(f"computed by {workers()} Dask worker(s)")


if __name__ == "__main__":
    main()

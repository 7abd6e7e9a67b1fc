"""Mean and spread of sample means: many small independent tasks with dask.delayed.

Each replicate draws n standard normal samples and returns their mean; the
means of all replicates should average about 0 with a standard deviation of
about 1 / sqrt(n).

    python examples/calc_mean.py --replicates 10_000 --n 1_000_000
"""

from __future__ import annotations

import argparse
import math
import time

import dask
import numpy as np

import daskdeploy


def sample_mean(n: int, seed: np.random.SeedSequence) -> float:
    """Return the mean of ``n`` standard normal samples drawn from ``seed``."""
    return float(np.random.default_rng(seed).standard_normal(n).mean())


def calc_means(replicates: int, n: int, seed: int = 0) -> tuple[float, float]:
    """Compute ``replicates`` sample means of ``n`` normals, one task each.

    Replicate ``i`` draws from ``numpy.random.SeedSequence(seed).spawn(replicates)[i]``,
    so the streams are independent and the result does not depend on scheduling.

    Parameters
    ----------
    replicates : int
        Number of replicates (tasks).
    n : int
        Samples per replicate.
    seed : int, default 0
        Root seed.

    Returns
    -------
    mean_of_means : float
        Average of the replicate means.
    std_of_means : float
        Sample standard deviation (``ddof=1``) of the replicate means.
    """
    children = np.random.SeedSequence(seed).spawn(replicates)
    tasks = [dask.delayed(sample_mean)(n, child) for child in children]
    means = np.array(dask.compute(*tasks))
    return float(means.mean()), float(means.std(ddof=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=500, help="number of tasks")
    parser.add_argument("--n", type=int, default=100_000, help="samples per task")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with daskdeploy.deploy() as client:
        print(client)
        start = time.perf_counter()
        mean, std = calc_means(args.replicates, args.n, args.seed)
        elapsed = time.perf_counter() - start
    print(f"mean of {args.replicates:,} means of {args.n:,} samples: {mean:+.3e} (expected 0)")
    print(f"std of the means: {std:.3e} (expected {1 / math.sqrt(args.n):.3e})")
    print(f"elapsed: {elapsed:.2f} s")


if __name__ == "__main__":
    main()

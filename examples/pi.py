"""Estimate pi by Monte Carlo with dask.array.

Draw points uniformly in the unit square; the fraction falling inside the
quarter circle x**2 + y**2 <= 1 tends to pi / 4.

    python examples/pi.py --samples 100_000_000 --chunk 5_000_000
"""

from __future__ import annotations

import argparse
import math
import time

import dask.array as da
import numpy as np
from dask.array.core import normalize_chunks

import daskdeploy


def estimate_pi(samples: int, chunk: int, seed: int = 0) -> float:
    """Estimate pi from ``samples`` random points, in chunks of ``chunk`` points.

    Chunk ``i`` draws its points with ``numpy.random.default_rng(children[i])``
    where ``children = numpy.random.SeedSequence(seed).spawn(number_of_chunks)``,
    so the result depends only on the arguments, not on how chunks are scheduled.

    Parameters
    ----------
    samples : int
        Number of random points.
    chunk : int
        Points per chunk (task); the last chunk may be smaller.
    seed : int, default 0
        Root seed of the chunks' random streams.

    Returns
    -------
    float
        ``4 * inside / samples``.
    """
    points = da.map_blocks(
        _random_points,
        seed,
        chunks=(normalize_chunks(chunk, (samples,))[0], (2,)),
        dtype=float,
        meta=np.empty((0, 2)),
    )
    inside = (points[:, 0] ** 2 + points[:, 1] ** 2 <= 1.0).sum()
    return 4 * int(inside.compute()) / samples


def _random_points(seed: int, block_info: dict) -> np.ndarray:
    """Return chunk ``i`` of the points, drawn from the ``i``-th child of ``seed``."""
    block = block_info[None]
    index, size = block["chunk-location"][0], block["chunk-shape"][0]
    child = np.random.SeedSequence(seed, spawn_key=(index,))  # == SeedSequence(seed).spawn(..)[i]
    return np.random.default_rng(child).random((size, 2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000_000, help="random points")
    parser.add_argument("--chunk", type=int, default=1_000_000, help="points per task")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with daskdeploy.deploy() as client:
        print(client)
        start = time.perf_counter()
        pi = estimate_pi(args.samples, args.chunk, args.seed)
        elapsed = time.perf_counter() - start
    print(f"pi ~ {pi:.6f} (error {pi - math.pi:+.2e}) from {args.samples:,} samples")
    print(f"elapsed: {elapsed:.2f} s")


if __name__ == "__main__":
    main()

"""Estimate pi by Monte Carlo with dask.array.

Draw points uniformly in the unit square; the fraction falling inside the
quarter circle x**2 + y**2 <= 1 tends to pi / 4.

    python examples/pi.py --samples 720_000_000 --chunk 18_000_000

The default chunk, 10 million points (160 MB of coordinates), is a task of about 0.1 s,
as Dask's best practices advise (chunks of 100 MB or more; each task costs up to a
millisecond of overhead, so much smaller tasks spend the time on scheduling).
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

    Each chunk is one task that draws its points and returns only how many fell inside
    the circle, so a few bytes per task travel instead of the points themselves (that
    keeps the dask version as fast as ``multiprocessing.Pool`` doing the same chunks; see
    ``benchmarks/``). Chunk ``i`` draws from
    ``numpy.random.default_rng(numpy.random.SeedSequence(seed).spawn(n)[i])``, so the
    result depends only on the arguments, not on how chunks are scheduled.

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
    sizes = normalize_chunks(chunk, (samples,))[0]
    counts = da.map_blocks(
        _count_block,
        seed,
        sizes,
        chunks=((1,) * len(sizes),),
        dtype=np.int64,
        meta=np.empty((0,), dtype=np.int64),
    )
    return 4 * int(counts.sum().compute()) / samples


_BLOCK = 1 << 16
"""Points drawn at a time inside a task: 1 MiB of buffers, reused, that stay in cache."""


def count_inside(seed: int, index: int, size: int) -> int:
    """Draw chunk ``index`` of ``size`` points and count those inside the quarter circle.

    The whole work of one task, usable without Dask too (``multiprocessing.Pool`` in
    ``benchmarks/scaling.py`` calls it for the same chunks). The points are drawn
    ``_BLOCK`` at a time into the same buffers (the same random stream as drawing them all
    at once): a chunk of millions of points would otherwise allocate hundreds of MB per
    task, and Dask workers hand large freed buffers back to the operating system, so each
    task would page its memory in afresh.
    """
    child = np.random.SeedSequence(seed, spawn_key=(index,))  # == SeedSequence(seed).spawn(..)[i]
    rng = np.random.default_rng(child)
    points = np.empty((min(size, _BLOCK), 2))
    squares = np.empty((2, len(points)))
    within = np.empty(len(points), dtype=bool)
    inside = 0
    for start in range(0, size, _BLOCK):
        n = min(_BLOCK, size - start)
        block, x2, y2 = points[:n], squares[0, :n], squares[1, :n]
        rng.random(out=block)
        np.multiply(block[:, 0], block[:, 0], out=x2)
        np.multiply(block[:, 1], block[:, 1], out=y2)
        np.add(x2, y2, out=x2)
        inside += int(np.count_nonzero(np.less_equal(x2, 1.0, out=within[:n])))
    return inside


def _count_block(seed: int, sizes: tuple[int, ...], block_id: tuple[int, ...]) -> np.ndarray:
    """The block of ``estimate_pi``'s count array at ``block_id``: one count."""
    index = block_id[0]
    return np.array([count_inside(seed, index, sizes[index])], dtype=np.int64)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000_000, help="random points")
    parser.add_argument(
        "--chunk", type=int, default=10_000_000, help="points per task (about 0.1 s each)"
    )
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

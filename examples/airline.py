"""Departure delays in the airline on-time data, with dask.dataframe.

Reads the monthly ASA Data Expo CSVs (bz2, latin1), then computes the largest
departure delay overall and the mean departure delay by destination for one
carrier at one origin airport. Without --data it uses (and if needed prepares)
the NYC 2013 flights of ``daskdeploy data airline``.

    python examples/airline.py --carrier B6 --origin JFK
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import dask
import dask.dataframe as dd
import pandas as pd

import daskdeploy
from daskdeploy.datasets import default_data_dir, prepare_airline

COLUMNS = ["UniqueCarrier", "Origin", "Dest", "DepDelay"]
DTYPES = {"UniqueCarrier": str, "Origin": str, "Dest": str, "DepDelay": "float64"}


def delay_summary(glob: str, carrier: str = "UA", origin: str = "EWR") -> tuple[float, pd.Series]:
    """Compute the maximum departure delay and the mean delay by destination.

    Parameters
    ----------
    glob : str
        Glob (or path) of bz2-compressed Data Expo CSV files.
    carrier : str, default "UA"
        Carrier code (``UniqueCarrier``) for the per-destination means.
    origin : str, default "EWR"
        Origin airport code for the per-destination means.

    Returns
    -------
    max_dep_delay : float
        Largest ``DepDelay`` (minutes) over all flights.
    mean_dep_delay_by_dest : pandas.Series
        Mean ``DepDelay`` of ``carrier``'s flights from ``origin``, indexed by
        ``Dest`` in sorted order.
    """
    flights = dd.read_csv(
        glob,
        compression="bz2",
        encoding="latin1",
        blocksize=None,
        usecols=COLUMNS,
        dtype=DTYPES,
    )
    route = flights[(flights.UniqueCarrier == carrier) & (flights.Origin == origin)]
    max_delay, by_dest = dask.compute(flights.DepDelay.max(), route.groupby("Dest").DepDelay.mean())
    return float(max_delay), by_dest.sort_index()


def _default_data() -> str:
    """Return the glob of the default data, preparing it first if missing."""
    dest = default_data_dir() / "airline"
    if not any(dest.glob("*.csv.bz2")):
        print(f"Preparing the NYC 2013 flights in {dest}, once; the same as:")
        print(f"    daskdeploy data airline {dest}")
        prepare_airline(dest)
    return str(dest / "*.csv.bz2")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="file, directory or glob of CSV.bz2 files")
    parser.add_argument("--carrier", default="UA", help="carrier code, e.g. UA, B6, AA")
    parser.add_argument("--origin", default="EWR", help="origin airport: EWR, JFK or LGA")
    args = parser.parse_args(argv)
    data = args.data / "*.csv.bz2" if args.data and args.data.is_dir() else args.data
    data = str(data) if data else _default_data()

    with daskdeploy.deploy() as client:
        print(client)
        start = time.perf_counter()
        max_delay, by_dest = delay_summary(data, args.carrier, args.origin)
        elapsed = time.perf_counter() - start
    print(f"largest departure delay: {max_delay:.0f} min")
    print(f"mean departure delay of {args.carrier} from {args.origin}, by destination (min):")
    print(by_dest.round(1).to_string())
    print(f"elapsed: {elapsed:.2f} s")


if __name__ == "__main__":
    main()

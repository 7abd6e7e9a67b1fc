"""Smoke run of the whole benchmark at tiny size: it runs, reports every figure, leaves nothing.

It measures the local and mpi backends, which need no daemons: with slurm and allocation
(a private SLURM cluster and four start-up runs) it took ~15 s longer, and with ssh ~15 s
more, in a suite that runs all three for minutes already. ``nox -s bench -- --smoke``
runs all five, and the published full run (docs/benchmarks/) measured them.

``test_sge_benchmark_smoke`` runs ``bench_jobqueue.py --system sge --smoke`` (a private SGE
cell, two N=2 and two N=1 start-ups, ~25 s); SLURM's run of the same code is left to
``bench_slurm.py --smoke``, whose command line is checked here without running it.

The other tests run no benchmark: they check that the run published in docs/benchmarks/
(``run_all.py --from-json ... --publish docs/benchmarks``) and the docs page agree.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from conftest import REPO, require, require_module
from reference_answers import check_pi

SECTIONS = ("startup", "workloads", "scaling", "imports", "workers")
BACKENDS = ("local", "mpi")
FIGURES = ("startup", "workloads", "scaling")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_run_all_smoke(sandbox):
    out = sandbox.root / "results"
    script = REPO / "benchmarks" / "run_all.py"
    command = [sys.executable, str(script), "--smoke", "--backends", ",".join(BACKENDS)]
    result = sandbox.run([*command, "--out", str(out)], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "benchmarks.json").read_text())

    for name in SECTIONS:
        assert "error" not in report[name], report[name]["error"]
    adoption = report["adoption"]
    if "error" in adoption:  # only a clone without the history lacks the baseline
        assert _shallow_clone(), adoption["error"]
    else:
        assert adoption["ratio"] > 0 and adoption["hooks_us"] > 0
        assert any(t["name"].startswith("adoption:") for t in report["targets"])
    startup = report["startup"]
    assert set(startup["backends"]) | set(startup["skipped"]) == set(BACKENDS)
    if os.environ.get("CI"):  # CI has every component: every backend is measured
        assert not startup["skipped"], startup["skipped"]
    assert "local" in startup["backends"]
    assert startup["backends"]["local"]["ratio"]["total"] > 0
    assert report["workloads"]["backends"]["local"]
    assert all(run["ok"] for run in report["workloads"]["backends"]["local"].values())
    assert report["scaling"]["workloads"]["gil"]["correct"]
    assert report["scaling"]["workloads"]["pi"]["consistent"]
    assert report["imports"]["ratio"] > 0
    # Start-up CPU of one worker, ours and raw dask-jobqueue's, on the private SLURM cluster.
    workers = report["workers"]
    assert all(value > 0 for value in workers["worker_cpu"]["medians"].values())
    assert workers["settings"]["nodes"] * workers["settings"]["cpus_per_node"] >= 64

    names = [target["name"] for target in report["targets"]]
    assert any(name.startswith("startup: local") for name in names)
    assert any(name.startswith("imports:") for name in names)
    assert any(name.startswith("workers: slurm start-up CPU") for name in names)
    assert sum(name.startswith("scaling:") for name in names) == 2
    for name in FIGURES:
        png = out / f"{name}.png"
        assert report["figures"][name] == str(png)
        assert png.read_bytes().startswith(PNG_MAGIC)
    # The printed Targets table: a row per target of the JSON, with the JSON's verdict
    # (whether a smoke run meets a target depends on the machine's load: either can be right).
    table = result.stdout.split("\n## Targets\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[0] == "| measure | target | value | result |", table
    rows, verdicts = table[2:], {True: "PASS", False: "MISS", None: "n/a"}
    assert len(rows) == len(report["targets"]) > 0, (rows, report["targets"])
    for row, target in zip(rows, report["targets"], strict=True):
        note = f" ({target['note']})" if target.get("note") else ""
        assert row.startswith(f"| {target['name']} | {target['target']} | "), (row, target)
        assert row.endswith(f" | {verdicts[target['met']]}{note} |"), (row, target)
    sandbox.assert_clean()


def test_sge_benchmark_smoke(sandbox):
    """bench_jobqueue.py --system sge --smoke: both sides on a private SGE cell, every figure."""
    require_module("dask_jobqueue", extra="sge")
    from daskdeploy.testing.sge import unavailable_reason

    require(unavailable_reason(), "a local SGE cell")
    output = sandbox.root / "sge.json"
    script = REPO / "benchmarks" / "bench_jobqueue.py"
    command = [sys.executable, str(script), "--system", "sge", "--smoke", "--no-warmup"]
    result = sandbox.run([*command, "--json", str(output)], timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["system"] == "sge" and report["settings"]["slots"] >= 16
    (entry,) = report["scaling"]
    assert entry["workers"] == 2
    for side in ("daskdeploy", "raw"):
        (run,) = entry["runs"][side]
        assert run["jobs_running"] is not None and len(run["job_ids"]) == 2, run
        assert 0 < run["jobs_listed"] <= run["jobs_running"], run
    assert entry["ratio"]["connected"] > 0 and entry["ratio"]["jobs_running"] > 0
    assert report["worker_cpu"]["ratio"] > 0
    assert {t["workers"] for t in report["targets"]} == {1, 16}
    assert "ratio" in result.stdout and "qstat" in result.stdout
    sandbox.assert_clean()


def test_jobqueue_benchmark_command_lines(bench_modules, capsys):
    """bench_slurm.py is bench_jobqueue.py for SLURM: same options, no --system."""
    bench_slurm, bench_jobqueue = bench_modules
    with pytest.raises(SystemExit) as info:
        bench_slurm.main(["--help"])
    text = capsys.readouterr().out
    assert info.value.code == 0 and "bench_slurm.py" in text
    assert "--nodes" in text and "--system" not in text and "--slots" not in text
    with pytest.raises(SystemExit) as info:
        bench_jobqueue.main(["--system", "sge", "--workers", "1,17"])
    assert info.value.code == 2 and "do not fit" in capsys.readouterr().err
    assert bench_slurm.Runner.__mro__[1] is bench_jobqueue.Runner  # startup.py's raw slurm side


@pytest.fixture
def bench_modules(monkeypatch):
    """benchmarks/bench_slurm.py and bench_jobqueue.py as modules, gone afterwards."""
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])
    before = set(sys.modules)
    yield importlib.import_module("bench_slurm"), importlib.import_module("bench_jobqueue")
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "")).startswith(str(BENCHMARKS)):
            del sys.modules[name]


def _shallow_clone() -> bool:
    import subprocess

    answer = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--is-shallow-repository"],
        capture_output=True,
        text=True,
        check=False,
    )
    return answer.returncode != 0 or answer.stdout.strip() == "true"


# ------------------------------------------------------- the run published in the docs

BENCHMARKS = REPO / "benchmarks"
PAGE = REPO / "docs" / "benchmarks.rst"
PUBLISHED = REPO / "docs" / "benchmarks"
PUBLISHED_JSON = PUBLISHED / "benchmarks.json"
FRAGMENT = PUBLISHED / "results.inc"
PUBLISH_COMMAND = (
    "python benchmarks/run_all.py --from-json benchmarks/results/benchmarks.json "
    "--publish docs/benchmarks"
)


@pytest.fixture
def run_all(monkeypatch):
    """benchmarks/run_all.py as a module; its directory leaves sys.path afterwards."""
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])
    before = set(sys.modules)
    yield importlib.import_module("run_all")
    for name in set(sys.modules) - before:  # run_all, common, ...: not for other tests
        if str(getattr(sys.modules[name], "__file__", "")).startswith(str(BENCHMARKS)):
            del sys.modules[name]


def test_docs_fragment_is_rendered_from_published_json(run_all):
    """The tables on the page are exactly what the published JSON renders to."""
    result = json.loads(PUBLISHED_JSON.read_text())
    rendered = run_all.format_rst(result).encode()
    assert rendered == FRAGMENT.read_bytes(), (
        f"{FRAGMENT.relative_to(REPO)} is not what {PUBLISHED_JSON.relative_to(REPO)} "
        f"renders to: publish again ({PUBLISH_COMMAND})"
    )


def test_published_json_is_a_full_sanitized_run():
    result = json.loads(PUBLISHED_JSON.read_text())
    text = PUBLISHED_JSON.read_text()
    assert str(REPO) not in text
    assert not re.search(r"(?<![\w.<>~])/(home|Users|root|work)/", text)
    assert result["json_path"] == "benchmarks.json"
    assert result["date"]
    assert not result["settings"]["smoke"], "a smoke run measures nothing: publish a full run"
    assert set(result["figures"]) == set(FIGURES)
    assert all(result["figures"][name] == f"{name}.png" for name in FIGURES)


def _page_files(kind: str) -> list[str]:
    """Files the benchmarks page names in ``.. kind::`` directives."""
    return re.findall(rf"^\.\. {kind}:: (\S+)$", PAGE.read_text(), flags=re.MULTILINE)


def test_benchmarks_page_shows_every_published_figure():
    figures = _page_files("figure") + _page_files("image")
    published = json.loads(PUBLISHED_JSON.read_text())["figures"].values()
    assert sorted(figures) == sorted(f"benchmarks/{name}" for name in published)
    for figure in figures:
        assert (PAGE.parent / figure).read_bytes().startswith(PNG_MAGIC), figure
    assert _page_files("include") == ["benchmarks/results.inc"]
    downloads = re.findall(r":download:`[^`<]*<([^>]+)>`", PAGE.read_text())
    assert downloads == ["benchmarks/benchmarks.json"]
    assert all((PAGE.parent / path).is_file() for path in downloads)


def test_publish_again_reproduces_the_docs(run_all, tmp_path, capsys):
    """Publishing the published run again (nothing re-runs) changes no byte."""
    out = tmp_path / "docs"
    result = run_all.main(["--from-json", str(PUBLISHED_JSON), "--publish", str(out)])
    assert result["targets"] and "## Targets" in capsys.readouterr().out
    published = sorted(path.name for path in PUBLISHED.iterdir())
    assert sorted(path.name for path in out.iterdir()) == published
    for name in published:
        assert (out / name).read_bytes() == (PUBLISHED / name).read_bytes(), name


def test_publish_removes_paths_and_dates_the_run(run_all, tmp_path):
    """A run as run_all.py writes it: absolute paths in, none out; no date: file time."""
    results = tmp_path / "results"
    results.mkdir()
    result = json.loads(PUBLISHED_JSON.read_text())
    for name, figure in result["figures"].items():
        shutil.copyfile(PUBLISHED / figure, results / figure)
        result["figures"][name] = str(results / figure)
    result["json_path"] = str(results / "benchmarks.json")
    result["notes"] = [f"log {REPO}/benchmarks/x.log, cache {Path.home()}/.cache/daskdeploy"]
    result.pop("date", None)
    result.pop("date_source", None)  # a run that recorded its date has none
    source = results / "benchmarks.json"
    source.write_text(json.dumps(result))
    os.utime(source, (1_700_000_000, 1_700_000_000))

    written = run_all.publish(source, tmp_path / "docs")

    assert sorted(path.name for path in written) == sorted(
        [*(f"{name}.png" for name in FIGURES), "benchmarks.json", "results.inc"]
    )
    text = (tmp_path / "docs" / "benchmarks.json").read_text()
    assert str(REPO) not in text and str(tmp_path) not in text
    published = json.loads(text)
    assert published["notes"] == ["log <repo>/benchmarks/x.log, cache ~/.cache/daskdeploy"]
    assert published["figures"] == {name: f"{name}.png" for name in result["figures"]}
    assert published["date"] == "2023-11-14T22:13:20+00:00"
    fragment = (tmp_path / "docs" / "results.inc").read_text()
    assert "2023-11-14 22:13 UTC (modification time" in fragment
    assert "<repo>/benchmarks/x.log" in fragment.replace("\\", "")


def test_attach_benchmark_smoke(sandbox):
    """bench_attach.py --backend local --smoke: both ways, the same answer, nothing left."""
    output = sandbox.root / "attach.json"
    script = REPO / "benchmarks" / "bench_attach.py"
    command = [sys.executable, str(script), "--backend", "local", "--smoke", "--workers", "1"]
    result = sandbox.run([*command, "--json", str(output)], timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["same_answer"] and len(report["answer"]) == 1, report["answer"]
    check_pi(report["answer"][0], ["--samples", "2000000", "--chunk", "250000"])  # --smoke's
    assert len(report["fresh_seconds"]) == len(report["attach_seconds"]) == 1
    assert report["startup_ratio"] > 0 and report["import_floor_median"] > 0
    sandbox.assert_clean()

"""Smoke run of the benchmark at tiny size: it runs, reports every figure, leaves nothing."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import REPO, require


def test_local_benchmark_smoke(sandbox):
    output = sandbox.root / "local.json"
    script = REPO / "benchmarks" / "bench_local.py"
    result = sandbox.run(
        [sys.executable, str(script), "--tiny", "--repeats", "1", "--json", str(output)],
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(output.read_text())
    assert report["startup"]["ratio"]["total"] > 0
    assert set(report["gil"]["configs"]) >= {"a", "b", "c"}
    assert "ratio" in result.stdout and "speedup" in result.stdout
    sandbox.assert_clean()


def test_slurm_benchmark_smoke(sandbox):
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is part of daskdeploy[slurm]")
    from daskdeploy.testing.slurm import unavailable_reason

    require(unavailable_reason(), "a local SLURM cluster")
    output = sandbox.root / "slurm.json"
    script = REPO / "benchmarks" / "bench_slurm.py"
    result = sandbox.run(
        [sys.executable, str(script), "--smoke", "--json", str(output)], timeout=180
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(output.read_text())
    assert report["scaling"][0]["workers"] == 2
    assert report["scaling"][0]["ratio"]["connected"] > 0
    assert report["worker_cpu"]["ratio"] > 0
    assert "ratio" in result.stdout
    sandbox.assert_clean()

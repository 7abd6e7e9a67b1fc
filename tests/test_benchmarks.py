"""Smoke run of the benchmark at tiny size: it runs, reports every figure, leaves nothing."""

from __future__ import annotations

import json
import sys

from conftest import REPO


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

"""Smoke run of the whole benchmark at tiny size: it runs, reports every figure, leaves nothing.

It measures every backend but ssh, whose start-up pair (three network-namespace hosts,
daskdeploy and raw) would add ~15 s to a suite that runs ssh for minutes already;
`nox -s bench -- --smoke` runs all five.
"""

from __future__ import annotations

import json
import os
import sys

from conftest import REPO

SECTIONS = ("startup", "workloads", "scaling", "imports")
BACKENDS = ("local", "slurm", "allocation", "mpi")
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

    names = [target["name"] for target in report["targets"]]
    assert any(name.startswith("startup: local") for name in names)
    assert any(name.startswith("imports:") for name in names)
    assert sum(name.startswith("scaling:") for name in names) == 2
    for name in FIGURES:
        png = out / f"{name}.png"
        assert report["figures"][name] == str(png)
        assert png.read_bytes().startswith(PNG_MAGIC)
    assert "## Targets" in result.stdout and ("PASS" in result.stdout or "MISS" in result.stdout)
    sandbox.assert_clean()

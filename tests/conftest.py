"""Shared fixtures: isolated dask config, leftover detection, subprocess helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dask.config
import psutil
import pytest

from daskdeploy.config import ensure_defaults

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
MARKER_VAR = "DASKDEPLOY_TEST_MARKER"


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Give every test its own dask config dir and no DASKDEPLOY_BACKEND from outside."""
    config_dir = tmp_path_factory.mktemp("dask-config")
    monkeypatch.setattr(dask.config, "PATH", str(config_dir))
    monkeypatch.setenv("DASK_CONFIG", str(config_dir))
    monkeypatch.delenv("DASKDEPLOY_BACKEND", raising=False)
    ensure_defaults()
    with dask.config.set({"daskdeploy.profiles": {}}):
        yield config_dir


def processes_with_marker(marker: str) -> list[psutil.Process]:
    """Return live (non-zombie) processes whose environment carries ``marker``."""
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if process.environ().get(MARKER_VAR) == marker and process.status() != "zombie":
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_until_gone(marker: str, timeout: float = 15.0) -> list[psutil.Process]:
    """Wait until no process carries ``marker``; return the stragglers after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = processes_with_marker(marker)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


class Sandbox:
    """Runs daskdeploy commands and scripts in subprocesses that can be audited afterwards.

    Every subprocess gets a unique marker in its environment (inherited by the workers it
    spawns) and a private TMPDIR, so a test can prove that no process and no temporary
    directory outlived the run.
    """

    def __init__(self, root: Path, config_dir: Path):
        self.root = root
        self.tmpdir = root / "tmp"
        self.tmpdir.mkdir()
        self.marker = uuid.uuid4().hex
        self.env = {
            **os.environ,
            MARKER_VAR: self.marker,
            "TMPDIR": str(self.tmpdir),
            "DASK_CONFIG": str(config_dir),
            "PYTHONUNBUFFERED": "1",
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "daskdeploy", *args]

    def run(self, args: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            args,
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    def popen(self, args: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            args,
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def script(self, name: str, source: str) -> Path:
        path = self.root / name
        path.write_text(source)
        return path

    def assert_clean(self, timeout: float = 15.0) -> None:
        """Assert that no marked process survives and the private TMPDIR is empty."""
        left = wait_until_gone(self.marker, timeout)
        for process in left:
            process.kill()
        assert not left, f"processes left running: {[p.cmdline() for p in left]}"
        leftovers = sorted(p.name for p in self.tmpdir.iterdir())
        assert not leftovers, f"files left in TMPDIR: {leftovers}"


@pytest.fixture
def sandbox(tmp_path: Path, isolated_config: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path, isolated_config)
    yield box
    for process in processes_with_marker(box.marker):
        process.kill()

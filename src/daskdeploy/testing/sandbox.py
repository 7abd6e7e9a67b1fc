"""The leftovers sandbox: run deployments in subprocesses and prove nothing outlived them.

A :class:`Sandbox` is a private directory with its own ``TMPDIR``, cache
(``XDG_CACHE_HOME``, where daskdeploy keeps records, credentials and job output) and dask
config, and a unique marker in the environment of every process it starts. Every process
those start inherits the marker (workers, the reaper, SLURM job steps that export the
environment), so after a run :meth:`Sandbox.assert_clean` can prove that no process and
no file of it is left::

    from daskdeploy.testing.sandbox import Sandbox

    def test_nothing_is_left(tmp_path):
        sandbox = Sandbox(tmp_path)
        script = sandbox.script("job.py", "import daskdeploy\\n...")
        result = sandbox.run([sys.executable, str(script)])
        assert result.returncode == 0, result.stderr
        sandbox.assert_clean()

The helpers :func:`processes_with_marker`, :func:`wait_until_gone`, :func:`wait_for` and
:func:`require` are what the checks are made of. Process facts come from :mod:`psutil`.
Importing this module does not import pytest; only :func:`require` uses it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psutil

__all__ = [
    "MARKER_VAR",
    "Sandbox",
    "processes_with_marker",
    "require",
    "wait_for",
    "wait_until_gone",
]

#: The environment variable that carries a sandbox's marker into every process it starts.
MARKER_VAR = "DASKDEPLOY_TEST_MARKER"

T = TypeVar("T")


def processes_with_marker(marker: str) -> list[psutil.Process]:
    """Return the live (non-zombie) processes whose environment carries ``marker``.

    Parameters
    ----------
    marker
        The value of :data:`MARKER_VAR` to look for (a :attr:`Sandbox.marker`).

    Returns
    -------
    list of psutil.Process
        This user's processes only: others' environments cannot be read.
    """
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if process.environ().get(MARKER_VAR) == marker and process.status() != "zombie":
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_until_gone(marker: str, timeout: float = 15.0) -> list[psutil.Process]:
    """Wait until no process carries ``marker``.

    Returns
    -------
    list of psutil.Process
        The processes still carrying it after ``timeout`` seconds (empty when all ended).
    """
    deadline = time.monotonic() + timeout
    while True:
        left = processes_with_marker(marker)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``condition()`` until it returns something true, and return that.

    Raises
    ------
    AssertionError
        After ``timeout`` seconds, naming ``what`` was waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def require(reason: str | None, what: str) -> None:
    """Skip the test when a real component is unavailable; fail instead under CI.

    Parameters
    ----------
    reason
        Why the component is unavailable, or ``None`` when it is available (then nothing
        happens).
    what
        The component, for the message (e.g. ``"a local SLURM cluster"``).

    Notes
    -----
    With the environment variable ``CI`` set, the test fails: a CI run must provide every
    component, and a skipped test there would hide a missing one.
    """
    if reason is None:
        return
    import pytest

    message = f"{what} unavailable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must provide it: see .ci/run)", pytrace=False)
    pytest.skip(message)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Sandbox:
    """Runs daskdeploy commands and scripts in subprocesses that can be audited afterwards.

    Every subprocess gets a unique marker in its environment (inherited by the workers it
    spawns), a private ``TMPDIR``, cache directory and dask config, so a test can prove
    that no process and no file outlived the run.

    Parameters
    ----------
    root
        A directory the sandbox owns (pytest's ``tmp_path``), created if missing; scripts
        are written and run there.
    config_dir
        The dask config directory (``DASK_CONFIG``) of the subprocesses; by default a new
        empty ``root/config``.
    cache_dirs
        The directories under ``<cache>/daskdeploy`` that :meth:`assert_clean` requires
        empty; by default every one of them (records included).

    Attributes
    ----------
    root, tmpdir, cache_dir
        The sandbox, its ``TMPDIR`` and its ``XDG_CACHE_HOME``.
    marker
        The value of :data:`MARKER_VAR` in the environment of its processes.
    env
        The environment its subprocesses get: this process's, plus the above. Add to it
        before starting a subprocess (e.g. ``SLURM_CONF``).
    """

    def __init__(
        self,
        root: Path,
        config_dir: Path | None = None,
        *,
        cache_dirs: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmpdir = self.root / "tmp"
        self.tmpdir.mkdir()
        self.cache_dir = self.root / "cache"
        self.cache_dir.mkdir()
        if config_dir is None:
            config_dir = self.root / "config"
            config_dir.mkdir(exist_ok=True)
        self.config_dir = Path(config_dir)
        self.cache_dirs = None if cache_dirs is None else tuple(cache_dirs)
        self.marker = uuid.uuid4().hex
        self.env = {
            **os.environ,
            MARKER_VAR: self.marker,
            "TMPDIR": str(self.tmpdir),
            "XDG_CACHE_HOME": str(self.cache_dir),
            "DASK_CONFIG": str(self.config_dir),
            "PYTHONUNBUFFERED": "1",
        }

    def command(self, *args: str) -> list[str]:
        """The command line of ``daskdeploy ARGS...`` with this Python."""
        return [sys.executable, "-m", "daskdeploy", *args]

    def run(
        self, args: list[str], timeout: float = 120, **kwargs: Any
    ) -> subprocess.CompletedProcess:
        """Run ``args`` in the sandbox to its end; return its status and captured output."""
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
        """Start ``args`` as a terminal would: SIGINT at its default, so Ctrl-C works.

        (A shell running the tests in the background may have left SIGINT ignored, and
        ignored signals are inherited.) Its stdout and stderr are pipes, in text mode.
        """
        return subprocess.Popen(
            args,
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint,
        )

    def script(self, name: str, source: str) -> Path:
        """Write ``source`` to ``root/name``; return its path."""
        path = self.root / name
        path.write_text(source)
        return path

    def deployments(self, timeout: float = 60) -> dict[str, dict[str, Any]]:
        """What ``daskdeploy ls --json`` lists from inside the sandbox, by deployment id.

        Note that it lists this user's deployments from outside the sandbox too (their
        jobs and tagged processes): look up the ids you started.
        """
        result = self.run(self.command("ls", "--json"), timeout=timeout)
        assert result.returncode == 0, result.stderr
        return {entry["id"]: entry for entry in json.loads(result.stdout)}

    def record(self, deployment_id: str) -> Path | None:
        """The record file of a live deployment started in the sandbox, if there is one.

        Cheaper than :meth:`deployments` (no subprocess): the owner writes it when the
        deployment starts, and its teardown or ``daskdeploy cleanup`` removes it.
        """
        path = self.cache_dir / "daskdeploy" / "deployments" / f"{deployment_id}.json"
        return path if path.exists() else None

    def processes(self) -> list[psutil.Process]:
        """The live processes that carry this sandbox's marker."""
        return processes_with_marker(self.marker)

    def leftover_files(self) -> list[Path]:
        """Files left in the sandbox's ``TMPDIR`` and daskdeploy cache directories."""
        left = sorted(self.tmpdir.iterdir())
        cache = self.cache_dir / "daskdeploy"
        if self.cache_dirs is None:
            shared = sorted(p for p in cache.iterdir() if p.is_dir()) if cache.exists() else []
        else:
            shared = [cache / kind for kind in self.cache_dirs]
        for directory in shared:
            if directory.exists():
                left += sorted(directory.iterdir())
        return left

    def assert_clean(self, timeout: float = 15.0) -> None:
        """Assert that no marked process survives and no file is left.

        Waits up to ``timeout`` seconds for the processes to end; those left then are
        killed (so the next test starts clean) and named in the failure. Files: the
        private ``TMPDIR`` must be empty, and so must the daskdeploy cache directories
        (see ``cache_dirs``).
        """
        left = wait_until_gone(self.marker, timeout)
        commands = []
        for process in left:
            try:
                commands.append(process.cmdline())
                process.kill()
            except psutil.Error:
                continue
        assert not left, f"processes left running: {commands}"
        files = self.leftover_files()
        shown = [str(path.relative_to(self.root)) for path in files]
        assert not files, f"files left in the sandbox: {shown}"

    def kill_all(self) -> None:
        """Kill every process that carries the marker (a test's final clean-up)."""
        for process in self.processes():
            try:
                process.kill()
            except psutil.Error:
                continue

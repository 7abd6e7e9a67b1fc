"""A worked example of a daskdeploy backend: ``dask scheduler`` and ``dask worker`` processes.

The backend ``subprocess`` starts a scheduler and N workers as plain child processes of
the script, on this machine's loopback interface, with TLS credentials made for the one
deployment. It is small on purpose, and real: the contract suite
(:mod:`daskdeploy.testing.contract`) runs it in daskdeploy's own tests.

Register it from a package's ``pyproject.toml``::

    [project.entry-points."daskdeploy.backends"]
    subprocess = "subprocess_backend:SubprocessBackend"
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

from daskdeploy.backends.base import Availability, Backend, Running, StartContext
from daskdeploy.credentials import write_private
from daskdeploy.errors import DeploymentError
from daskdeploy.options import Option, ResolvedOptions, duration_seconds

LOOPBACK = "127.0.0.1"


class SubprocessBackend(Backend):
    """A scheduler and workers as child processes on this machine (an example)."""

    name = "subprocess"
    kind = "cluster"
    summary = "dask scheduler + dask worker child processes on loopback (example)"
    extra_options: ClassVar[tuple[Option, ...]] = (
        Option(
            "start_timeout",
            duration_seconds,
            "Seconds the scheduler gets to start and write its address.",
        ),
    )
    # Our own option needs a default; the common ``workers`` gets one too (null would
    # mean "the backend decides").
    defaults: ClassVar[dict[str, object]] = {"workers": 2, "start_timeout": 30}

    def available(self) -> Availability:
        """The ``dask scheduler``/``dask worker`` programs come with distributed."""
        try:
            import distributed.cli.dask_worker  # noqa: F401
        except ImportError as exc:
            return Availability.missing(f"distributed's command line is missing ({exc})")
        return Availability.ok()

    def describe(self, options: ResolvedOptions) -> str:
        """What start() would start (``daskdeploy run --dry-run``)."""
        return (
            f"dask scheduler + {options['workers']} dask worker process(es) x "
            f"{options['threads_per_worker']} thread(s) on {LOOPBACK}, "
            f"{'TLS' if options['tls'] else 'plain TCP'}."
        )

    def start(self, options: ResolvedOptions, context: StartContext) -> Running:
        """Start the scheduler, wait for its address, start the workers."""
        scratch = context.scratch_dir
        tls: list[str] = []
        security = None
        if options["tls"]:  # credentials that only this deployment holds
            credentials = write_private(context.deployment_id, scratch)
            security = credentials.security()
            tls = credentials.worker_arguments()  # the same flags for dask scheduler
        started: list[subprocess.Popen[bytes]] = []
        log = (scratch / "processes.log").open("ab")
        # Their temporary files (the scheduler's too) go to the scratch directory, which
        # daskdeploy removes at close. The environment also carries the deployment's tag
        # (DASKDEPLOY_DEPLOYMENT_ID), which is how `daskdeploy cleanup` finds them.
        env = {**os.environ, "DASK_TEMPORARY_DIRECTORY": str(scratch)}

        def spawn(*args: str) -> None:
            # Its own session: a Ctrl-C in the terminal reaches the script, whose
            # teardown stops the workers in order, not the workers directly.
            started.append(
                subprocess.Popen(
                    [sys.executable, "-m", *args],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    cwd=scratch,
                    env=env,
                    start_new_session=True,
                )
            )

        def stop() -> None:  # the workers first, then the scheduler
            _terminate(started[1:])
            _terminate(started[:1])
            log.close()

        try:
            scheduler_file = scratch / "scheduler.json"
            dashboard = ["--dashboard-address", f"{LOOPBACK}:0"]
            spawn(
                "distributed.cli.dask_scheduler",
                *("--host", LOOPBACK, "--port", "0", "--scheduler-file", str(scheduler_file)),
                *(["--protocol", "tls", *tls] if tls else []),
                *(dashboard if options["dashboard"] else ["--no-dashboard"]),
            )
            info = _wait_for_scheduler(scheduler_file, started[0], options["start_timeout"])
            for number in range(options["workers"]):
                spawn(
                    "distributed.cli.dask_worker",
                    info["address"],
                    *("--name", f"{context.deployment_id}-{number}"),
                    *("--nthreads", str(options["threads_per_worker"])),
                    *("--memory-limit", str(options["memory_per_worker"] or "auto")),
                    *("--local-directory", str(scratch), "--no-dashboard", *tls),
                )
        except BaseException:  # leave nothing running that we started
            stop()
            raise
        port = info.get("services", {}).get("dashboard")
        return Running(
            address=info["address"],
            security=security,
            expected_workers=options["workers"],
            dashboard_link=f"http://{LOOPBACK}:{port}/status" if port else None,
            stop=[stop],
        )


def _wait_for_scheduler(path: Path, process: subprocess.Popen[bytes], timeout: float) -> dict:
    """The scheduler file's content once the scheduler wrote it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DeploymentError(
                f"dask scheduler exited with status {process.returncode}; see its log"
            )
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):  # not written yet, or half-written
            time.sleep(0.05)
    raise DeploymentError(f"dask scheduler wrote no address within {timeout:g} s")


def _terminate(processes: list[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    """SIGTERM ``processes``, wait for them to exit; SIGKILL those still there after
    ``grace`` seconds."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

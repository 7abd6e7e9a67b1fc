"""The contract suite: the tests every daskdeploy backend, built-in or not, runs against itself.

Subclass :class:`BackendContract` in a test module, name the backend, and say how its
scripts run and with which options when the defaults (plain ``python``, no options) do
not fit::

    from daskdeploy.testing.contract import BackendContract


    class TestMyBackendContract(BackendContract):
        backend = "mybackend"

pytest then runs four tests on real deployments, each in a
:class:`~daskdeploy.testing.sandbox.Sandbox`:

``test_deploys_runs_a_workload_and_leaves_nothing``
    A script deploys, computes a sum on the workers, closes. The sum must equal NumPy's
    here; the workers must be the ``expected_workers`` the backend promised; afterwards
    no process, file, record (what ``daskdeploy ls`` lists) or leftover (see
    :meth:`BackendContract.contract_leftovers`) may remain.
``test_scales_when_it_can``
    In the same run: a backend whose :class:`~daskdeploy.backends.base.Running` is
    ``scalable`` grows by one worker through ``client.cluster.scale()`` and computes the
    sum again; any other keeps exactly its fixed set of workers.
``test_bad_option_is_refused_fast_and_leaves_nothing``
    An unknown option and a bad value each raise :class:`~daskdeploy.OptionError`
    naming the option, within :attr:`BackendContract.refuse_bound` seconds, starting
    nothing.
``test_killed_client_is_cleaned_up``
    The process holding the client dies by ``kill -9``; within
    :attr:`BackendContract.kill_bound` seconds the deployment's reaper has ended
    everything it started, and ``daskdeploy ls --json`` does not list it.

The first two share one run (one deployment per backend, not two). With the plugin
:mod:`daskdeploy.testing.faults` enabled, the last two are cases of the fault table
(``bad input`` and ``kill -9 of the client``) in the backend's column.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest

from .faults import fault_case, record_fault_time
from .sandbox import MARKER_VAR, Sandbox, processes_with_marker, require, wait_for

__all__ = ["BackendContract", "LifecycleRun", "ScriptRunner"]

#: Deploys, computes ``sum(i*i for i in range(size))`` with dask.array, scales when the
#: backend can, closes; prints what it saw as one ``CONTRACT <json>`` line.
LIFECYCLE_SCRIPT = """\
import json, sys, time

import daskdeploy


def main():
    backend, options_file, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(options_file) as handle:
        options = json.load(handle)
    import dask.array as da

    seen = {}
    began = time.monotonic()
    with daskdeploy.deploy(backend, **{"quiet": True, **options}) as client:
        seen["deploy_seconds"] = time.monotonic() - began
        seen["id"] = client.deployment.id
        running = client.deployment.running
        seen["scalable"] = running.scalable
        seen["expected_workers"] = running.expected_workers
        seen["workers"] = len(client.scheduler_info(n_workers=-1)["workers"])
        numbers = da.arange(size, chunks=max(1, size // 8), dtype="int64")
        seen["total"] = int(client.compute((numbers * numbers).sum()).result())
        if running.scalable:
            began = time.monotonic()
            client.cluster.scale(seen["workers"] + 1)
            client.wait_for_workers(seen["workers"] + 1, timeout=120)
            seen["scale_seconds"] = time.monotonic() - began
            seen["scaled_workers"] = len(client.scheduler_info(n_workers=-1)["workers"])
            seen["scaled_total"] = int(client.compute((numbers * numbers).sum()).result())
        began = time.monotonic()
    seen["close_seconds"] = time.monotonic() - began
    print("CONTRACT", json.dumps(seen), flush=True)


if __name__ == "__main__":
    main()
"""

#: Deploys and holds the client until it is killed; says ``READY <id> <pid>`` first.
HOLD_SCRIPT = """\
import json, os, sys, time

import daskdeploy


def main():
    backend, options_file = sys.argv[1], sys.argv[2]
    with open(options_file) as handle:
        options = json.load(handle)
    client = daskdeploy.deploy(backend, **{"quiet": True, **options})
    assert client.submit(sum, [1, 2]).result() == 3
    print("READY", client.deployment.id, os.getpid(), flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
"""


@dataclass(frozen=True)
class ScriptRunner:
    """How to run a Python script where a backend belongs.

    Attributes
    ----------
    prefix
        The command before the script's path: ``(sys.executable,)`` for backends that
        start their workers from anywhere; e.g. ``("mpiexec", "-n", "4", python)`` or
        ``("salloc", "-n", "2", python)`` for backends that run inside a launcher or a
        job.
    env
        Variables to add to the script's environment.
    """

    prefix: tuple[str, ...] = (sys.executable,)
    env: Mapping[str, str] = field(default_factory=dict)

    def command(self, script: Path, *args: str) -> list[str]:
        """The command line that runs ``script`` with ``args``."""
        return [*self.prefix, str(script), *args]


@dataclass
class LifecycleRun:
    """What the shared deploy-compute-scale-close run saw.

    Attributes
    ----------
    returncode, stdout, stderr
        Of the script's command.
    seen
        What the script printed about its deployment (``id``, ``workers``,
        ``expected_workers``, ``scalable``, ``total``, ``scaled_workers``, ...).
    seconds
        The whole run, start to end.
    processes, files, listed, outside
        What was left after it: marked processes, files in the sandbox, whether the
        deployment's record (what ``daskdeploy ls`` lists) is still there, leftovers the
        backend's system still has.
    """

    returncode: int
    stdout: str
    stderr: str
    seen: dict[str, Any]
    seconds: float
    processes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    listed: bool = False
    outside: list[str] = field(default_factory=list)

    def explain(self) -> str:
        """The run's output, for failure messages."""
        return f"status {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


class _Output:
    """Drains a process's stdout and stderr in threads; stdout lines go to a queue."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._drain, args=(process.stdout, self.stdout, True)),
            threading.Thread(target=self._drain, args=(process.stderr, self.stderr, False)),
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def _drain(self, stream: Any, into: list[str], queued: bool) -> None:
        for line in stream:
            into.append(line)
            if queued:
                self.lines.put(line)
        if queued:
            self.lines.put(None)

    def wait_line(self, prefix: str, timeout: float) -> str | None:
        """The first stdout line starting with ``prefix``; ``None`` at end of output."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} line after {timeout} s") from None
            if line is None or line.startswith(prefix):
                return line

    def join(self) -> str:
        """Wait for the end of both streams; return what stdout and stderr said."""
        for thread in self._threads:
            thread.join(timeout=10)
        return f"stdout:\n{''.join(self.stdout)}\nstderr:\n{''.join(self.stderr)}"


def _commands(processes: list[psutil.Process]) -> list[str]:
    commands = []
    for process in processes:
        try:
            commands.append(" ".join(process.cmdline()[:4]))
        except psutil.Error:  # it ended between listing and asking
            continue
    return commands


class BackendContract:
    """The contract suite: subclass it as ``Test...`` and set :attr:`backend`.

    Override the ``contract_*`` fixtures (methods with the same name, scope and, for the
    class-scoped ones, ``@classmethod`` below ``@pytest.fixture``) to give the backend
    what it needs; they may request any other fixture, e.g. a session-scoped one that
    starts a real cluster.

    Attributes
    ----------
    backend
        The registry name of the backend under test.
    workload_size
        How many numbers the workload sums (their squares, as ``int64``).
    run_bound
        Seconds one script (deploy, compute, close) may take at most.
    refuse_bound
        Seconds within which a bad option must be refused.
    kill_bound
        Seconds from ``kill -9`` of the client to nothing left.
    """

    backend: ClassVar[str]
    workload_size: ClassVar[int] = 1_000_000
    run_bound: ClassVar[float] = 180.0
    refuse_bound: ClassVar[float] = 5.0
    kill_bound: ClassVar[float] = 60.0

    # ----------------------------------------------------------------- fixtures to override

    @pytest.fixture(scope="class")
    @classmethod
    def contract_backend(cls) -> Any:
        """The :class:`~daskdeploy.backends.base.Backend` under test, from the registry.

        Fails when the registry does not know :attr:`backend`. A backend of kind
        ``"cluster"`` that is not available here is skipped (failed under ``CI``); an
        in-place one is asked inside its runner instead. Override it to register the
        backend first, or to start what it needs.
        """
        from daskdeploy.registry import available_backends, get_backend

        backend = get_backend(cls.backend)
        if backend.kind == "cluster":
            status = available_backends()[cls.backend]
            require(None if status else status.reason, f"the {cls.backend} backend")
        return backend

    @pytest.fixture(scope="class")
    @classmethod
    def contract_options(cls) -> dict[str, Any]:
        """Deploy options every script passes (JSON-able); none by default.

        E.g. ``{"workers": 2}``, or the hosts and connect options of an SSH backend.
        ``quiet`` is true unless given.
        """
        return {}

    @pytest.fixture(scope="class")
    @classmethod
    def contract_runner(cls) -> ScriptRunner:
        """How scripts run where the backend belongs: plain ``python`` by default."""
        return ScriptRunner()

    @pytest.fixture(scope="class")
    @classmethod
    def contract_leftovers(cls, contract_backend: Any) -> Callable[[str], list[str]]:
        """A function of a deployment id that names what of it is left outside this
        machine's processes and files (batch jobs, processes on other hosts).

        By default the backend's own :meth:`~daskdeploy.backends.base.Backend.find_leftovers`
        (what ``daskdeploy ls`` and ``cleanup`` use). Where the test can look
        independently (the job system, the hosts themselves), override it to do so.
        """

        def leftovers(deployment_id: str) -> list[str]:
            search = contract_backend.find_leftovers(deployment_id, {})
            found = search.found.get(deployment_id, [])
            return [f"{item.id} {item.state}".strip() for item in found]

        return leftovers

    @pytest.fixture(scope="class")
    @classmethod
    def contract_bad_options(cls) -> list[tuple[dict[str, Any], str]]:
        """Bad options and the option name the error must mention.

        By default an unknown option and a wrong type for ``workers``; extend the list
        with bad values of the backend's own options.
        """
        return [({"no_such_option": 1}, "no_such_option"), ({"workers": "many"}, "workers")]

    @pytest.fixture
    def contract_sandbox(
        self, tmp_path: Path, contract_runner: ScriptRunner, contract_options: dict[str, Any]
    ) -> Iterator[Sandbox]:
        """A fresh :class:`~daskdeploy.testing.sandbox.Sandbox` with the runner's
        environment; what it left running is killed at the end."""
        box = Sandbox(tmp_path / "sandbox")
        box.env.update(contract_runner.env)
        yield box
        box.kill_all()

    # ------------------------------------------------------------------------ the shared run

    @pytest.fixture(scope="class")
    @classmethod
    def contract_lifecycle(
        cls,
        tmp_path_factory: pytest.TempPathFactory,
        contract_backend: Any,
        contract_options: dict[str, Any],
        contract_runner: ScriptRunner,
        contract_leftovers: Callable[[str], list[str]],
    ) -> Iterator[LifecycleRun]:
        """Run the lifecycle script once for the class's tests; see what it left."""
        box = Sandbox(tmp_path_factory.mktemp(f"contract-{cls.backend}"))
        box.env.update(contract_runner.env)
        try:
            yield cls._lifecycle(box, contract_options, contract_runner, contract_leftovers)
        finally:
            box.kill_all()

    @classmethod
    def _lifecycle(
        cls,
        box: Sandbox,
        options: dict[str, Any],
        runner: ScriptRunner,
        leftovers: Callable[[str], list[str]],
    ) -> LifecycleRun:
        script = box.script("lifecycle.py", LIFECYCLE_SCRIPT)
        options_file = box.script("options.json", json.dumps(options))
        began = time.monotonic()
        command = runner.command(script, cls.backend, str(options_file), str(cls.workload_size))
        result = box.run(command, timeout=cls.run_bound)
        seconds = time.monotonic() - began
        line = next((ln for ln in result.stdout.splitlines() if ln.startswith("CONTRACT ")), "")
        seen = json.loads(line.split(" ", 1)[1]) if line else {}
        run = LifecycleRun(result.returncode, result.stdout, result.stderr, seen, seconds)
        print(f"\ncontract: {cls.backend}: deploy, compute, scale, close: {seconds:.1f} s {seen}")
        deployment_id = seen.get("id")
        if deployment_id is None:
            return run

        def nothing_left() -> bool:
            run.processes = _commands(box.processes())
            run.outside = leftovers(deployment_id)
            return not run.processes and not run.outside

        # The owner's close ended everything; allow its last processes to exit.
        with contextlib.suppress(AssertionError):
            wait_for(nothing_left, 15, "nothing left")
        box.kill_all()
        run.files = [str(path.relative_to(box.root)) for path in box.leftover_files()]
        # Its record (what ``daskdeploy ls`` lists) is among the files; checked apart.
        run.listed = box.record(deployment_id) is not None
        return run

    # ------------------------------------------------------------------------------ the tests

    def test_deploys_runs_a_workload_and_leaves_nothing(
        self, contract_lifecycle: LifecycleRun
    ) -> None:
        """Deploy, compute the exact sum NumPy computes, close: nothing is left."""
        import numpy as np

        run = contract_lifecycle
        assert run.returncode == 0 and run.seen, run.explain()
        numbers = np.arange(self.workload_size, dtype=np.int64)
        assert run.seen["total"] == int((numbers * numbers).sum()), run.seen
        assert run.seen["expected_workers"] >= 1, run.seen
        assert run.seen["workers"] == run.seen["expected_workers"], run.seen
        assert not run.processes, f"processes left after close: {run.processes}"
        assert not run.outside, f"left outside this machine's processes: {run.outside}"
        assert not run.files, f"files left after close: {run.files}"
        assert not run.listed, f"the record of {run.seen['id']} is left (daskdeploy ls lists it)"

    def test_scales_when_it_can(self, contract_lifecycle: LifecycleRun) -> None:
        """A scalable deployment grows by a worker and computes on; a fixed one stays so."""
        import numpy as np

        run = contract_lifecycle
        assert run.returncode == 0 and run.seen, run.explain()
        if not run.seen["scalable"]:
            # Running.scalable is False: the set of workers is fixed by the launch
            # (ranks, tasks, hosts); daskdeploy run tells scripts their scale() is not
            # applied. The deployment got exactly the workers it promised.
            assert "scaled_workers" not in run.seen
            assert run.seen["workers"] == run.seen["expected_workers"], run.seen
            print(f"\ncontract: {self.backend}: a fixed set of {run.seen['workers']} workers")
            return
        numbers = np.arange(self.workload_size, dtype=np.int64)
        assert run.seen["scaled_workers"] == run.seen["workers"] + 1, run.seen
        assert run.seen["scaled_total"] == int((numbers * numbers).sum()), run.seen
        print(f"\ncontract: {self.backend}: one more worker in {run.seen['scale_seconds']:.1f} s")

    @fault_case("bad input")
    def test_bad_option_is_refused_fast_and_leaves_nothing(
        self,
        request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch,
        contract_backend: Any,
        contract_options: dict[str, Any],
        contract_bad_options: list[tuple[dict[str, Any], str]],
        contract_sandbox: Sandbox,
    ) -> None:
        """Each bad option raises OptionError naming it, fast, and starts nothing.

        Runs in this process (options are checked before anything starts, wherever the
        backend runs), with the sandbox's ``TMPDIR``, cache and marker.
        """
        import daskdeploy

        box = contract_sandbox
        monkeypatch.setenv("TMPDIR", str(box.tmpdir))
        monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
        monkeypatch.setenv("XDG_CACHE_HOME", str(box.cache_dir))
        monkeypatch.setenv(MARKER_VAR, box.marker)
        before = {child.pid for child in psutil.Process().children(recursive=True)}
        longest = 0.0
        for bad, name in contract_bad_options:
            options = {"quiet": True, **contract_options, **bad}
            began = time.monotonic()
            with pytest.raises(daskdeploy.OptionError) as refused:
                daskdeploy.deploy(self.backend, **options).close()
            seconds = time.monotonic() - began
            longest = max(longest, seconds)
            assert f"'{name}'" in str(refused.value), (bad, str(refused.value))
            assert seconds < self.refuse_bound, f"{bad} refused only after {seconds:.1f} s"
        started = [
            child for child in psutil.Process().children(recursive=True) if child.pid not in before
        ]
        assert not started, f"processes started: {_commands(started)}"
        box.assert_clean(timeout=1)
        record_fault_time(request.node, longest, f"{len(contract_bad_options)} refused")

    @fault_case("kill -9 of the client")
    def test_killed_client_is_cleaned_up(
        self,
        request: pytest.FixtureRequest,
        contract_options: dict[str, Any],
        contract_runner: ScriptRunner,
        contract_leftovers: Callable[[str], list[str]],
        contract_sandbox: Sandbox,
    ) -> None:
        """``kill -9`` of the process that deployed: the reaper ends everything.

        Nothing is left within :attr:`kill_bound` seconds: no marked process (the
        reaper's clean-up included), no leftover outside, no file, and ``daskdeploy ls``
        does not list the deployment.
        """
        box = contract_sandbox
        script = box.script("hold.py", HOLD_SCRIPT)
        options_file = box.script("options.json", json.dumps(contract_options))
        process = box.popen(contract_runner.command(script, self.backend, str(options_file)))
        output = _Output(process)
        try:
            line = output.wait_line("READY", self.run_bound)
            if line is None:
                process.wait(timeout=10)
                pytest.fail(f"the script did not deploy: {output.join()}")
            _, deployment_id, pid = line.split()
            assert box.record(deployment_id), f"no record of the live {deployment_id}"
            os.kill(int(pid), signal.SIGKILL)
            killed = time.monotonic()
            process.wait(timeout=self.kill_bound)  # the runner's launcher, if any, ends too

            def nothing_left() -> bool:
                if processes_with_marker(box.marker) or box.record(deployment_id):
                    return False
                return not contract_leftovers(deployment_id)

            try:
                wait_for(nothing_left, self.kill_bound, "nothing left of the deployment")
            except AssertionError as timed_out:
                left = _commands(box.processes()) + contract_leftovers(deployment_id)
                left += [f"record {deployment_id}"] if box.record(deployment_id) else []
                seconds = time.monotonic() - killed
                record_fault_time(request.node, seconds, f"left: {left}", over=True)
                message = f"{seconds:.1f} s after kill -9, still there: {left}"
                raise AssertionError(message) from timed_out
            seconds = time.monotonic() - killed
            listed = box.deployments()
            assert deployment_id not in listed, listed[deployment_id]
            box.assert_clean(timeout=1)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            output.join()
        print(f"\ncontract: {self.backend}: kill -9 of the client to nothing left {seconds:.2f} s")
        record_fault_time(request.node, seconds, "to nothing left (reaper)")

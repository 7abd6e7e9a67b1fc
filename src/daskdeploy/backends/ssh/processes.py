"""The remote scheduler and workers of the ``ssh`` backend, over the hosts' open connections.

distributed's ``SSHCluster`` opens a new SSH connection for every scheduler and worker
entry, runs ``uname`` over it, and starts the workers' Pythons only once the scheduler is
up. Here every process is a further session of the one connection
:class:`~.hosts.HostConnections` opened (and checked) per host, and :class:`HostsCluster`
opens those connections, then starts the workers' Pythons at the same time as the
scheduler: they import distributed meanwhile and read the scheduler's address from their
standard input once it is known. It ends everything on the hosts over the same
connections when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from distributed import SpecCluster
from distributed.deploy.spec import ProcessInterface

from ..shared import worker_processes
from .hosts import HostConnections

__all__ = ["HostsCluster", "RemoteScheduler", "RemoteWorkers"]

logger = logging.getLogger(__name__)

#: Seconds the remote processes get, at close, to exit by themselves before they are ended.
CLOSE_GRACE = 3.0


class HostsCluster(SpecCluster):
    """A :class:`~distributed.SpecCluster` whose processes run on :class:`HostConnections`.

    The hosts are connected to, checked and prepared before the scheduler starts (a
    :class:`~daskdeploy.DeploymentError` from there propagates as it is); at close,
    after the processes were told to stop, each host gets :data:`CLOSE_GRACE` seconds,
    then what is left is ended and the deployment's directory removed.
    """

    def __init__(
        self, hosts: HostConnections, workers: Mapping[Any, dict[str, Any]], **kwargs: Any
    ) -> None:
        self.hosts = hosts
        #: Worker entries whose process was started before the scheduler, by name.
        self._early: dict[Any, RemoteWorkers] = {}
        self._worker_classes = {name: spec["cls"] for name, spec in workers.items()}
        workers = {name: {**spec, "cls": self._worker} for name, spec in workers.items()}
        try:
            super().__init__(workers=workers, **kwargs)
        except BaseException:
            # SpecCluster leaves its event-loop thread running when the start fails.
            with contextlib.suppress(Exception):
                self.sync(self._close)
            self._loop_runner.stop()
            raise

    def _worker(self, scheduler: str, name: Any, **options: Any) -> RemoteWorkers:
        """The worker entry ``name`` (what SpecCluster calls its spec's ``cls`` for)."""
        worker = self._early.pop(name, None)
        if worker is None:
            worker = self._worker_classes[name](scheduler, name=name, **options)
        worker.scheduler = scheduler
        return worker

    async def _start(self) -> None:
        if not self.hosts.opened:
            await self.hosts.open()
            for name, spec in self.worker_spec.items():
                self._early[name] = self._worker_classes[name](None, name=name, **spec["options"])
            await asyncio.gather(*(worker.begin() for worker in self._early.values()))
        await super()._start()

    async def _close(self) -> None:
        try:
            await super()._close()
        finally:
            early, self._early = list(self._early.values()), {}
            for worker in early:  # the scheduler never started
                await worker.close()
            await self.hosts.close(grace=CLOSE_GRACE)


class _RemoteProcess(ProcessInterface):
    """One ``python -m distributed.cli.dask_spec`` on a host, in a session of its connection.

    The process inherits ``config`` (as distributed's SSH classes pass it: in
    ``DASK_INTERNAL_INHERIT_CONFIG``) plus ``file_config(directory)``, the config naming
    the private files in its host's deployment directory, which is also its
    ``local_directory``: both are known once the host has been prepared.
    """

    def __init__(
        self,
        hosts: HostConnections,
        address: str,
        config: Mapping[str, Any],
        file_config: Callable[[str], Mapping[str, Any]],
        kwargs: dict,
    ) -> None:
        super().__init__()
        self.hosts = hosts
        self.host = address
        self.address = address
        self.config = config
        self.file_config = file_config
        self.kwargs = dict(kwargs)
        self.proc: Any = None

    #: What the process is, in messages.
    role = "process"

    def _options(self) -> dict[str, Any]:
        """The process's keyword arguments, in the host's deployment directory."""
        return {**self.kwargs, "local_directory": self.hosts.directories[self.host]}

    def _config(self) -> dict[str, Any]:
        import dask.config

        config = copy.deepcopy(dict(self.config))
        dask.config.set(self.file_config(self.hosts.directories[self.host]), config=config)
        return config

    async def _launch(
        self, python_arguments: list[str], environment: Mapping[str, str] | None = None
    ) -> None:
        """Start ``python *python_arguments`` on the host with the inherited config and
        ``environment``."""
        import dask.config

        command = " ".join(
            [
                "env",
                f"DASK_INTERNAL_INHERIT_CONFIG={dask.config.serialize(self._config())}",
                *(shlex.quote(f"{name}={value}") for name, value in (environment or {}).items()),
                shlex.join([self.hosts.python, *python_arguments]),
            ]
        )
        self.proc = await self.hosts.connection(self.host).create_process(command)

    async def _ready(self, ready: str, count: int) -> list[str]:
        """The first ``count`` lines the process logs holding ``ready``."""
        found: list[str] = []
        said: list[str] = []
        while len(found) < count:
            line = await self.proc.stderr.readline()
            if not line.strip():
                raise RuntimeError(
                    f"The {self.role} on {self.host} exited before it started; it said: "
                    + (" | ".join(said[-5:]) or "nothing")
                )
            said.append(line.strip())
            logger.debug(line.strip())
            if ready in line:
                found.append(line)
        return found

    async def close(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):  # the session may have ended already
                self.proc.kill()  # a signal request, where sshd honours it
            self.proc.close()
        await super().close()


class RemoteScheduler(_RemoteProcess):
    """The scheduler, on its host; its address is known once :meth:`start` returns."""

    role = "scheduler"

    async def start(self) -> None:
        spec = {"cls": "distributed.Scheduler", "opts": self._options()}
        await self._launch(["-m", "distributed.cli.dask_spec", "--spec", json.dumps(spec)])
        (line,) = await self._ready("Scheduler at:", 1)
        self.address = line.split("Scheduler at:")[1].strip()
        await super().start()


#: What a workers' Python runs: ``distributed.cli.dask_spec`` with the scheduler's address
#: read from standard input, so that it can start (and import distributed) before the
#: scheduler's address is known. Without an address (the scheduler never started) it exits.
_WAIT_FOR_SCHEDULER = (
    "import sys; from distributed.cli.dask_spec import main; "
    "address = sys.stdin.readline().strip(); "
    "address and main([address, *sys.argv[1:]], prog_name='dask-spec')"
)


class RemoteWorkers(_RemoteProcess):
    """``n_workers`` workers (of ``worker_class``, a nanny by default) in one process tree
    on a host. SpecCluster passes the scheduler's address and the entry's name;
    :meth:`begin` may start the Python before the address is known."""

    role = "workers"

    def __init__(
        self,
        scheduler: str | None,
        hosts: HostConnections,
        address: str,
        config: Mapping[str, Any],
        file_config: Callable[[str], Mapping[str, Any]],
        kwargs: dict,
        worker_class: str = "distributed.Nanny",
        name: Any = None,
    ) -> None:
        super().__init__(hosts, address, config, file_config, kwargs)
        self.scheduler = scheduler
        self.name = name
        self.worker_class = worker_class
        self.n_workers = self.kwargs.pop("n_workers", 1)

    async def begin(self) -> None:
        """Start the workers' Python; it waits for the scheduler's address."""
        if self.proc is None:
            options = self._options()
            environment = None
            if self.worker_class == "distributed.Nanny":
                # Each nanny forks its worker from its loaded Python (see worker_processes).
                preload = list(options.get("preload_nanny") or [])
                options["preload_nanny"] = [*preload, worker_processes.NANNY_PRELOAD]
                environment = worker_processes.environment()
            spec = {i: {"cls": self.worker_class, "opts": options} for i in range(self.n_workers)}
            await self._launch(["-c", _WAIT_FOR_SCHEDULER, "--spec", json.dumps(spec)], environment)

    async def start(self) -> None:
        await self.begin()
        with contextlib.suppress(OSError):  # it exited already: _ready says what it said
            self.proc.stdin.write(f"{self.scheduler}\n")
        await self._ready("worker at", self.n_workers)
        await super().start()

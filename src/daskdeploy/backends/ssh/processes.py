"""The remote scheduler and workers of the ``ssh`` backend, over the hosts' open connections.

distributed's ``SSHCluster`` opens a new SSH connection for every scheduler and worker
entry and runs ``uname`` over it before starting the process. Here every process is a
further session of the one connection :class:`~.hosts.HostConnections` opened (and
checked) per host, and :class:`HostsCluster` opens those connections before the scheduler
starts and ends everything on the hosts over them when it closes.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from distributed import SpecCluster
from distributed.deploy.spec import ProcessInterface

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

    def __init__(self, hosts: HostConnections, **kwargs: Any) -> None:
        self.hosts = hosts
        try:
            super().__init__(**kwargs)
        except BaseException:
            # SpecCluster leaves its event-loop thread running when the start fails.
            with contextlib.suppress(Exception):
                self.sync(self._close)
            self._loop_runner.stop()
            raise

    async def _start(self) -> None:
        if not self.hosts.opened:
            await self.hosts.open()
        await super()._start()

    async def _close(self) -> None:
        try:
            await super()._close()
        finally:
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

    def _options(self) -> dict[str, Any]:
        """The process's keyword arguments, in the host's deployment directory."""
        return {**self.kwargs, "local_directory": self.hosts.directories[self.host]}

    def _config(self) -> dict[str, Any]:
        import dask.config

        config = copy.deepcopy(dict(self.config))
        dask.config.set(self.file_config(self.hosts.directories[self.host]), config=config)
        return config

    async def _launch(self, arguments: list[str], ready: str, count: int) -> list[str]:
        """Start the process; return the first ``count`` lines holding ``ready``."""
        import dask.config

        command = " ".join(
            [
                "env",
                f"DASK_INTERNAL_INHERIT_CONFIG={dask.config.serialize(self._config())}",
                shlex.join([self.hosts.python, "-m", "distributed.cli.dask_spec", *arguments]),
            ]
        )
        self.proc = await self.hosts.connection(self.host).create_process(command)
        found: list[str] = []
        said: list[str] = []
        while len(found) < count:
            line = await self.proc.stderr.readline()
            if not line.strip():
                raise RuntimeError(
                    f"{type(self).__name__} on {self.host} exited before it started; it said: "
                    + (" | ".join(said[-5:]) or "nothing")
                )
            said.append(line.strip())
            logger.debug(line.strip())
            if ready in line:
                found.append(line)
        return found

    async def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # a signal request, where sshd honours it; close ends the rest
            self.proc.close()
        await super().close()


class RemoteScheduler(_RemoteProcess):
    """The scheduler, on its host; its address is known once :meth:`start` returns."""

    async def start(self) -> None:
        spec = {"cls": "distributed.Scheduler", "opts": self._options()}
        (line,) = await self._launch(["--spec", json.dumps(spec)], "Scheduler at:", 1)
        self.address = line.split("Scheduler at:")[1].strip()
        await super().start()


class RemoteWorkers(_RemoteProcess):
    """``n_workers`` workers (of ``worker_class``, a nanny by default) in one process tree
    on a host; SpecCluster passes the scheduler's address and the entry's name."""

    def __init__(
        self,
        scheduler: str,
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

    async def start(self) -> None:
        options = self._options()
        spec = {i: {"cls": self.worker_class, "opts": options} for i in range(self.n_workers)}
        await self._launch(
            [self.scheduler, "--spec", json.dumps(spec)], "worker at", self.n_workers
        )
        await super().start()

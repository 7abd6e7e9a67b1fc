"""A named deployment as a :class:`distributed.deploy.Cluster`, from any process.

``NamedCluster("analysis")`` (or ``NamedCluster.from_name``, as dask-ctl calls it)
connects to the deployment's scheduler with its TLS credentials and behaves like the
cluster object a script would have made: ``repr``, ``scheduler_info``, ``dashboard_link``,
``get_client()``, ``wait_for_workers``, and ``scale``/``adapt`` carried out by the
deployment's supervisor. ``close()`` closes this view only; :meth:`NamedCluster.down`
ends the deployment.

:func:`discover` is the ``dask_cluster_discovery`` entry point dask-ctl looks for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from distributed.core import rpc
from distributed.deploy.cluster import Cluster

from . import control
from .names import READY, NamedDeployment, list_named, require_running

__all__ = ["NamedCluster", "discover", "security_of"]


def security_of(found: NamedDeployment) -> Any:
    """The :class:`distributed.Security` that reaches ``found``'s scheduler.

    Raises
    ------
    DeploymentError
        The credentials cannot be read: named deployments are for the user who started
        them (the files are mode 0600).
    """
    from distributed import Security

    from ..errors import DeploymentError

    tls = found.record.named.get("tls")
    if not tls:
        return Security()
    for path in (tls["ca"], tls["cert"], tls["key"]):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise DeploymentError(
                f"Cannot read the TLS credentials of deployment {found.name!r} ({path}: "
                f"{exc.strerror}). Only the user who started it can attach to it; if that "
                f"is you, the files were removed: end it with `daskdeploy down "
                f"{found.name}` and start it again."
            ) from None
    return Security(
        require_encryption=True,
        tls_ca_file=tls["ca"],
        tls_client_cert=tls["cert"],
        tls_client_key=tls["key"],
    )


class NamedCluster(Cluster):
    """A running named deployment, seen from this process.

    Parameters
    ----------
    name
        The deployment's name, as given to ``daskdeploy up``.
    asynchronous
        Use from a running event loop (``await NamedCluster(name, asynchronous=True)``).
    loop
        The event loop to use.

    Raises
    ------
    DeploymentError
        No such deployment runs, or it cannot be reached; the message says why.
    """

    def __init__(self, name: str, asynchronous: bool = False, loop: Any = None) -> None:
        self.named = require_running(name)
        self.security = security_of(self.named)
        super().__init__(asynchronous=asynchronous, loop=loop, quiet=True, name=name)
        self._name = "NamedCluster"
        self.scheduler_comm = rpc(
            self.named.address, connection_args=self.security.get_connection_args("client")
        )
        if not asynchronous:
            self._loop_runner.start()
            try:
                self.sync(self._start)
            except OSError as exc:
                self.close()
                from ..errors import DeploymentError

                raise DeploymentError(
                    f"Deployment {name!r} ({self.named.id}) does not answer at "
                    f"{self.named.address}: {exc}. `daskdeploy ls` shows its state; "
                    f"`daskdeploy logs {name}` its log."
                ) from None

    @classmethod
    def from_name(cls, name: str, loop: Any = None, asynchronous: bool = False) -> NamedCluster:
        """The running deployment called ``name`` (dask-ctl's constructor by name)."""
        return cls(name, asynchronous=asynchronous, loop=loop)

    def __await__(self) -> Any:
        async def started() -> NamedCluster:
            if self.status.name == "created":
                await self._start()
            return self

        return started().__await__()

    async def _start(self) -> None:
        await super()._start()
        # The scheduler's cluster metadata names the supervisor's cluster object; here
        # it is the deployment's name.
        self._cluster_info.update(name=self.named.name, type="daskdeploy.NamedCluster")

    async def _sync_cluster_info(self) -> None:
        """The supervisor's cluster object keeps the scheduler's cluster metadata."""

    @property
    def dashboard_link(self) -> str:
        """The deployment's dashboard, as it announced it (``distributed.dashboard.link``)."""
        return self.named.dashboard_link or super().dashboard_link

    def _request(self, action: str, **arguments: Any) -> str:
        def log_event(topic: str, message: Any) -> Any:
            return self.sync(self.scheduler_comm.log_event, topic=topic, msg=message)

        def get_events(topic: str) -> Any:
            return self.sync(self.scheduler_comm.events, topic=topic)

        return control.request(log_event, get_events, action, **arguments)

    def scale(  # type: ignore[override]
        self, n: int = 0, jobs: int = 0, memory: Any = None, cores: Any = None
    ) -> None:
        """Ask the deployment to run ``n`` workers (or ``jobs`` batch jobs)."""
        self._request("scale", n=n, jobs=jobs, memory=memory, cores=cores)

    def adapt(self, minimum: int = 0, maximum: int | None = None, **kwargs: Any) -> None:  # type: ignore[override]
        """Ask the deployment to adapt between ``minimum`` and ``maximum`` workers."""
        if maximum is None:
            raise ValueError("adapt() on a named deployment needs maximum=N")
        self._request("adapt", minimum=minimum, maximum=maximum)

    def down(self) -> None:
        """End the deployment: its supervisor stops every worker and the scheduler."""
        self._request("down")
        self.close()


async def discover() -> AsyncIterator[tuple[str, type[NamedCluster]]]:
    """Yield ``(name, NamedCluster)`` for every ready named deployment (dask-ctl's hook)."""
    for found in await asyncio.to_thread(list_named):
        if found.state == READY:
            yield found.name, NamedCluster

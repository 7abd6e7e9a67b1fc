"""A live deployment and the Client that owns it.

:class:`Deployment` records what was started (backend, options, scratch directory, the
backend's :class:`~daskdeploy.backends.base.Running` handle) and holds a stack of
clean-up steps. :meth:`Deployment.teardown` runs them last-in first-out; it is idempotent
and resumable, so an interrupted teardown (a second Ctrl-C) is finished by the exit hook.

:class:`DeployedClient` is a real :class:`distributed.Client` whose ``close()`` (and
``with`` block exit) also tears the deployment down.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import Client
from distributed.objects import SchedulerInfo

from . import lifecycle
from .backends.base import Running
from .options import ResolvedOptions

if TYPE_CHECKING:
    from .report.efficiency import EfficiencyMeter, EfficiencyReport

__all__ = ["DeployedClient", "Deployment"]

logger = logging.getLogger(__name__)


def fresh_scheduler_info(
    client: Client, n_workers: int, cached: Callable[..., Any], **kwargs: Any
) -> Any:
    """Fetch the scheduler's identity and return that answer, not the client's cache.

    ``cached`` is distributed's own ``scheduler_info``, used for asynchronous clients and
    clients that are not connected, where it returns the cached copy without fetching.
    """
    if client.asynchronous or client.status not in ("running", "connecting"):
        return cached(n_workers=n_workers, **kwargs)
    try:
        fetched = SchedulerInfo(client.sync(client.scheduler.identity, n_workers=n_workers))
    except OSError:  # as distributed: keep the last known identity
        return client._scheduler_identity
    client._scheduler_identity = fetched
    return fetched


@dataclass(eq=False)
class Deployment:
    """What one :func:`daskdeploy.deploy` call started, and how to take it down.

    Attributes
    ----------
    id
        Unique deployment id (``dd-`` plus hex); jobs, processes and directories carry it.
    backend
        Name of the backend that started it.
    options
        The validated options, with their sources.
    scratch_dir
        Private directory of this deployment, removed at teardown.
    running
        The backend's handle (scheduler address, cluster object, security), once started.
    """

    id: str
    backend: str
    options: ResolvedOptions
    scratch_dir: Path
    running: Running | None = None
    client: DeployedClient | None = None
    started_at: float = field(default_factory=time.monotonic, repr=False)
    ready_after: float | None = None
    meter: EfficiencyMeter | None = field(default=None, repr=False)
    _cleanups: list[tuple[str, Callable[[], Any]]] = field(default_factory=list, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    closed: bool = False

    @property
    def scheduler_address(self) -> str | None:
        """Address of the scheduler, or ``None`` before it started."""
        return self.running.address if self.running else None

    @property
    def dashboard_link(self) -> str | None:
        """Dashboard URL, or ``None`` if no dashboard runs."""
        return self.running.dashboard_link if self.running else None

    def add_cleanup(self, description: str, step: Callable[[], Any]) -> None:
        """Register a clean-up step; steps run last-registered first at teardown."""
        with self._lock:
            self._cleanups.append((description, step))

    def attach(self, running: Running) -> None:
        """Record the backend's handle and register its stop steps."""
        self.running = running
        for step in running.stop:
            self.add_cleanup(f"stop {self.backend} backend", step)
        if running.cluster is not None:
            self.add_cleanup(f"close {type(running.cluster).__name__}", running.cluster.close)
        if running.stop_workers is not None:
            self.add_cleanup("stop the workers", running.stop_workers)

    def measure(self) -> EfficiencyMeter:
        """Start measuring CPU efficiency from now on; returns the running meter.

        ``meter.report()`` then gives an :class:`~daskdeploy.report.efficiency.EfficiencyReport`
        for the time since this call. With the ``report`` option (``daskdeploy run
        --report``) a meter starts when the workers have connected and its report is
        printed to stderr when the deployment closes.

        Raises
        ------
        RuntimeError
            The deployment has no connected client.
        """
        from .report.efficiency import EfficiencyMeter

        if self.client is None or self.closed:
            raise RuntimeError(f"Deployment {self.id} has no connected client to measure.")
        return EfficiencyMeter(
            self.client, label=f"{self.id} on {self.backend}", startup_seconds=self.ready_after
        ).start()

    def efficiency(self) -> EfficiencyReport:
        """The CPU-efficiency report since the deployment's workers connected.

        Needs the ``report`` option (``deploy(..., report=True)``); otherwise start a
        meter at the point you choose with :meth:`measure`.

        Raises
        ------
        RuntimeError
            No meter runs because the ``report`` option is off.
        """
        if self.meter is None:
            raise RuntimeError(
                "No efficiency measurement runs for this deployment: deploy with "
                "report=True (daskdeploy run --report), or call deployment.measure() "
                "and then meter.report()."
            )
        return self.meter.report()

    def print_report(self) -> None:
        """Print the efficiency report to stderr, once, if a meter runs."""
        meter, self.meter = self.meter, None
        if meter is None:
            return
        try:
            text = meter.stop().format()
        except Exception as exc:
            text = f"daskdeploy: no CPU-efficiency report: {exc}"
        print(text, file=sys.stderr, flush=True)

    def teardown(self) -> None:
        """Close the client and run every clean-up step; safe to call more than once.

        A failing step is logged and the remaining steps still run.
        """
        with self._lock:
            client = self.client
            if client is not None and client.status == "running":
                self.print_report()
            if client is not None and client.status not in ("closed", "newly-created"):
                try:
                    Client.close(client)
                except Exception as exc:
                    logger.warning("Closing the client of %s failed: %s", self.id, exc)
            while self._cleanups:
                description, step = self._cleanups[-1]
                try:
                    step()
                except Exception as exc:
                    logger.warning("Clean-up step %r of %s failed: %s", description, self.id, exc)
                finally:
                    self._cleanups.pop()
            if not self.closed:
                self.closed = True
                lifecycle.unregister(self)

    def shape(self) -> str:
        """``"2 workers x 1 thread"``: the workers as started (before any rescaling)."""
        workers = self.running.expected_workers if self.running else 0
        threads = self.options.get("threads_per_worker")
        if self.running and self.running.threads_per_worker:
            threads = self.running.threads_per_worker
        return (
            f"{workers} worker{'s' if workers != 1 else ''} x "
            f"{threads} thread{'s' if threads != 1 else ''}"
        )

    def summary(self) -> str:
        """One line: backend, workers and threads, scheduler and dashboard addresses."""
        text = f"daskdeploy: {self.id} on {self.backend}: {self.shape()}"
        if self.running and self.running.sizing_note:
            text += f" ({self.running.sizing_note})"
        if self.scheduler_address:
            text += f", scheduler {self.scheduler_address}"
        if self.dashboard_link:
            text += f", dashboard {self.dashboard_link}"
        return text

    def announce(self) -> None:
        """Print :meth:`summary` to stderr unless the ``quiet`` option is set."""
        logger.info(self.summary())
        if not self.options.get("quiet"):
            print(self.summary(), file=sys.stderr, flush=True)
        warning = self._plain_tcp_warning()
        if warning:
            # Printed, and logged below WARNING: Python's last-resort handler would
            # otherwise print it a second time when the program configured no logging.
            logger.info(warning)
            print(warning, file=sys.stderr, flush=True)

    def _plain_tcp_warning(self) -> str | None:
        """The warning due when this deployment runs on plain TCP (``tls=False``).

        Due for every backend whose default is TLS, and for any scheduler listening
        beyond loopback; not on loopback for a backend whose packaged default is plain
        TCP (a cluster on this machine only).
        """
        address = self.scheduler_address or ""
        if self.options.get("tls", True) or not address.startswith("tcp://"):
            return None
        from distributed.comm import get_address_host

        from .config import backend_defaults
        from .credentials import plain_tcp_warning
        from .network import is_loopback

        loopback = is_loopback(get_address_host(address))
        if loopback and backend_defaults(self.backend).get("tls", True) is False:
            return None
        return plain_tcp_warning(self.backend, address, loopback)


class DeployedClient(Client):
    """A :class:`distributed.Client` bound to a :class:`Deployment`.

    Use it like any Client. Closing it (``close()``, leaving a ``with`` block) also stops
    everything the deployment started, unless it is a secondary client that joined a
    deployment owned by ``daskdeploy run``.

    Attributes
    ----------
    deployment
        The :class:`Deployment` this client belongs to.
    """

    deployment: Deployment
    _owns_deployment: bool = False

    @classmethod
    def for_deployment(cls, deployment: Deployment, *, owner: bool) -> DeployedClient:
        """Connect a client to a started deployment (the owner tears it down at close)."""
        running = deployment.running
        assert running is not None, "deployment has not started"
        target = running.cluster if owner and running.cluster is not None else running.address
        client = cls(
            target,
            security=running.security,
            set_as_default=True,
        )
        client.deployment = deployment
        client._owns_deployment = owner
        if owner:
            deployment.client = client
        else:  # close joined clients before the cluster goes, or they log reconnect errors
            deployment.add_cleanup("close a client that joined", client.close)
        return client

    @property
    def dashboard_link(self) -> str | None:
        """Link to the deployment's dashboard (as the backend reports it), if one runs."""
        deployment = getattr(self, "deployment", None)
        if deployment is not None and deployment.running is not None:
            return deployment.dashboard_link
        return super().dashboard_link

    def scheduler_info(self, n_workers: int = -1, **kwargs: Any) -> Any:
        """Basic information about the scheduler and its workers, fetched now.

        Same as :meth:`distributed.Client.scheduler_info`, except that a synchronous call
        returns the answer it fetched. distributed's returns its cached copy, which the
        client's own background poll (every ``distributed.client.scheduler-info-interval``,
        asking for no workers) can overwrite between the fetch and the return, so
        ``len(client.scheduler_info()["workers"])`` sometimes says 0 on a busy machine.

        Parameters
        ----------
        n_workers : int
            How many workers to describe; ``-1`` (the default) for all of them.
        **kwargs
            Accepted for compatibility with :meth:`distributed.Client.scheduler_info`.

        Returns
        -------
        distributed.objects.SchedulerInfo
            The scheduler's identity: ``"workers"``, ``"address"``, ``"services"``, ...
        """
        return fresh_scheduler_info(self, n_workers, super().scheduler_info, **kwargs)

    def close(self, timeout: Any = None) -> Any:
        """Close the client and, if it owns its deployment, tear the deployment down."""
        if self._owns_deployment and getattr(self, "deployment", None) is not None:
            self.deployment.print_report()
        try:
            if timeout is None:
                return super().close()
            return super().close(timeout=timeout)
        finally:
            if self._owns_deployment and getattr(self, "deployment", None) is not None:
                self.deployment.teardown()

    def shutdown(self) -> None:
        """Shut down the scheduler and workers, then tear the deployment down."""
        try:
            super().shutdown()
        finally:
            if self._owns_deployment and getattr(self, "deployment", None) is not None:
                self.deployment.teardown()

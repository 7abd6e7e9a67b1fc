"""Adoption: the clusters and schedulers a script makes for itself run on the deployment.

Under ``daskdeploy run`` a script that was written for a laptop sets up Dask its own way:
``Client()``, ``LocalCluster(n_workers=4)`` and ``Client(cluster)``,
``SLURMCluster(...).scale(4)``, ``SSHCluster(...)``, ``dask_mpi.initialize()``,
``dask.config.set(scheduler="processes")`` or ``compute(scheduler="threads")``. While the
script runs, :func:`adopting` makes each of these resolve to the deployment the command
started, and prints one line per adoption naming what the script asked for and what it
got. ``Client("tcp://...")`` with an address, ``Client(scheduler_file=...)`` and the
``"sync"``/``"single-threaded"`` scheduler (a debugging choice) are left alone.

With adoption off (``daskdeploy run --no-adopt``, option ``adopt=false``) the script keeps
its own clusters; each is still noted, on stderr and in the efficiency report, so a run
whose deployment sat idle says why.

Outside ``daskdeploy run`` nothing is patched: ``deploy()`` in a script behaves as before.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..deployment import DeployedClient, Deployment
    from .cluster import AdoptedCluster

__all__ = ["Adoption", "adopting", "current", "paused"]

logger = logging.getLogger(__name__)

Mode = Literal["adopt", "observe"]

_lock = threading.RLock()
_current: Adoption | None = None
_paused = threading.local()


class Adoption:
    """What one ``daskdeploy run`` adopts (or, with adoption off, observes) for its script.

    Parameters
    ----------
    deployment
        The deployment the command started.
    mode
        ``"adopt"``: the script's clusters and schedulers become the deployment;
        ``"observe"``: they run as the script wrote them and are only noted.

    """

    def __init__(self, deployment: Deployment, mode: Mode) -> None:
        self.deployment = deployment
        self.mode = mode
        self._said: set[str] = set()
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()

    def adopted_client(self, client: Any) -> None:
        """Remember a client the script made for the deployment, to close it at the end."""
        self._clients.add(client)

    def close_clients(self) -> None:
        """Close the script's clients before the deployment goes (no reconnect noise)."""
        for client in list(self._clients):
            if client.status not in ("closed", "closing", "newly-created"):
                try:
                    client.close()
                except Exception as exc:  # the deployment's teardown goes on regardless
                    logger.debug("Closing a client of the script failed: %s", exc)

    @property
    def client(self) -> DeployedClient:
        """The deployment's own client (the one ``daskdeploy run`` holds)."""
        client = self.deployment.client
        if client is None:  # pragma: no cover - a running deployment always has one
            raise RuntimeError(f"Deployment {self.deployment.id} has no client.")
        return client

    def shape(self) -> str:
        """``"local, 2 workers x 1 thread"``: the backend and its workers, as started."""
        return f"{self.deployment.backend}, {self.deployment.shape()}"

    def stand_in(self, request: str, wishes: dict[str, Any]) -> AdoptedCluster:
        """The deployment, as the cluster ``request`` (e.g. ``"LocalCluster(n_workers=4)"``)."""
        from .cluster import AdoptedCluster, how_to_apply, not_applied

        unapplied = not_applied(
            request.partition("(")[0], wishes, self.deployment.backend, self.deployment.options
        )
        if unapplied:
            self.say(
                f"not applied: the script's {', '.join(text for text, _ in unapplied)}; "
                f"this deployment's workers were set by the command line. For them, run "
                f"with {how_to_apply(unapplied)}"
            )
        return AdoptedCluster(self, request, wishes)

    def note(self, request: str, *, once: bool = False) -> None:
        """Say on stderr where ``request`` runs (once per text if ``once``); with adoption
        off, the efficiency report names it too."""
        with _lock:
            if once and request in self._said:
                return
            self._said.add(request)
        meter = self.deployment.meter
        if self.mode == "adopt":
            self.say(f"the script's {request} runs on this deployment ({self.shape()})")
        else:
            if meter is not None:
                meter.script_clusters.append(request)
            self.say(
                f"the script's {request} runs on its own: adoption is off (--no-adopt), "
                f"so this deployment's workers do not see its tasks"
            )

    def say(self, sentence: str) -> None:
        """Print ``daskdeploy: <sentence>.`` on stderr unless the deployment is quiet."""
        if not self.deployment.options.get("quiet"):
            print(f"daskdeploy: {sentence}.", file=sys.stderr, flush=True)


def current() -> Adoption | None:
    """The adoption in force for this thread, or ``None`` (outside a run, or paused)."""
    if getattr(_paused, "depth", 0):
        return None
    return _current


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Let this thread make real clusters and clients while a run adopts (daskdeploy's own)."""
    _paused.depth = getattr(_paused, "depth", 0) + 1
    try:
        yield
    finally:
        _paused.depth -= 1


@contextlib.contextmanager
def adopting(deployment: Deployment, *, enabled: bool = True) -> Iterator[Adoption]:
    """Adopt (or, with ``enabled=False``, observe) what the script makes for itself.

    Installs the hooks of :mod:`daskdeploy.adoption.hooks` for the duration of the
    ``with`` block and removes them afterwards. One run at a time per process. Unless
    the user configured dask's ``temporary-directory``, it points into the deployment's
    scratch directory meanwhile, so a cluster the script keeps (adoption off) leaves no
    ``dask-scratch-space`` behind either.
    """
    global _current
    import dask.config

    from . import hooks

    adoption = Adoption(deployment, "adopt" if enabled else "observe")
    with _lock:
        if _current is not None:
            raise RuntimeError("Another daskdeploy run already adopts in this process.")
        _current = adoption
    remove = hooks.install()
    scratch = {}
    if not dask.config.get("temporary-directory", None):
        scratch = {"temporary-directory": str(deployment.scratch_dir)}
    try:
        with dask.config.set(scratch):
            yield adoption
    finally:
        adoption.close_clients()
        remove()
        with _lock:
            _current = None

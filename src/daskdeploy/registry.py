"""The one registry of backends: the built-ins plus the ``daskdeploy.backends`` entry points.

Backends are imported only when first asked for, so ``import daskdeploy`` stays cheap and
a backend whose optional dependencies are missing (or whose module fails to import) is
reported by :func:`available_backends` instead of breaking the others.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from .backends.base import Availability, Backend
from .errors import UnknownBackendError, closest_match_hint

if TYPE_CHECKING:
    from .backends.shared.layout import TaskResources

__all__ = [
    "BUILTIN_BACKENDS",
    "DEFAULT_BACKEND",
    "ENTRY_POINT_GROUP",
    "BackendStatus",
    "available_backends",
    "backend_names",
    "get_backend",
    "loaded_backends",
    "task_resources",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "daskdeploy.backends"

#: What ``backend="auto"`` picks when no backend detects its environment.
DEFAULT_BACKEND = "local"

#: Built-in backends, as ``"module:Class"`` import paths, in ``auto`` detection order.
BUILTIN_BACKENDS: dict[str, str] = {
    "local": "daskdeploy.backends.local:LocalBackend",
    "slurm": "daskdeploy.backends.slurm.backend:SlurmBackend",
    "sge": "daskdeploy.backends.sge.backend:SGEBackend",
    "pbs": "daskdeploy.backends.pbs.backend:PBSBackend",
    "lsf": "daskdeploy.backends.lsf.backend:LSFBackend",
    "htcondor": "daskdeploy.backends.htcondor.backend:HTCondorBackend",
    "oar": "daskdeploy.backends.oar.backend:OARBackend",
    "moab": "daskdeploy.backends.moab.backend:MoabBackend",
    # Before allocation: `srun --mpi=pmi2` and `mpiexec` inside a job are MPI runs.
    "mpi": "daskdeploy.backends.mpi.backend:MPIBackend",
    "allocation": "daskdeploy.backends.slurm.allocation:AllocationBackend",
    "batchjob": "daskdeploy.backends.jobqueue.batchjob:BatchJobBackend",
    "ssh": "daskdeploy.backends.ssh.backend:SSHBackend",
}


@dataclass(frozen=True)
class BackendStatus:
    """One row of :func:`available_backends`: can this backend run here, and why not.

    True in a boolean context when the backend is available.
    """

    name: str
    available: bool
    reason: str
    kind: str
    summary: str

    def __bool__(self) -> bool:
        return self.available


@cache
def _entry_point_targets() -> dict[str, str]:
    from importlib.metadata import entry_points

    targets: dict[str, str] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in BUILTIN_BACKENDS:
            logger.warning(
                "Ignoring entry point %r for backend %r: a built-in backend has that name.",
                entry.value,
                entry.name,
            )
            continue
        targets[entry.name] = entry.value
    return targets


def _targets() -> dict[str, str]:
    return {**BUILTIN_BACKENDS, **_entry_point_targets()}


def backend_names() -> list[str]:
    """Return the names of all registered backends, built-ins first."""
    return list(_targets())


@cache
def _load(name: str) -> Backend:
    target = _targets()[name]
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    backend = getattr(module, attribute)
    if isinstance(backend, type):
        backend = backend()
    if not isinstance(backend, Backend):
        raise TypeError(f"{target} is not a daskdeploy.backends.base.Backend")
    if name not in BUILTIN_BACKENDS:
        from .config import defaults_beside, register_backend_defaults

        # A plugin that extends a backend starts from that backend's packaged defaults, so
        # an option the backend gains later has a value in the plugin too.
        inherited: dict = {}
        for base in reversed(type(backend).__mro__[1:]):
            if issubclass(base, Backend) and base is not Backend:
                inherited.update(defaults_beside(f"{base.__module__}:{base.__qualname__}"))
        own = backend.defaults if backend.defaults is not None else defaults_beside(target)
        register_backend_defaults(name, {**inherited, **own})
    return backend


def get_backend(name: str) -> Backend:
    """Return the backend registered as ``name``.

    Raises
    ------
    UnknownBackendError
        If no backend has that name (the message lists the known ones), or if its
        module fails to import (the message gives the import error).
    """
    targets = _targets()
    if name not in targets:
        raise UnknownBackendError(
            f"Unknown backend {name!r}.{closest_match_hint(name, targets)} "
            f"Known backends: {', '.join(targets)}."
        )
    try:
        return _load(name)
    except Exception as exc:
        raise UnknownBackendError(
            f"Backend {name!r} ({targets[name]}) failed to load: {type(exc).__name__}: {exc}. "
            f"Reinstall the package that provides it, or choose another backend."
        ) from exc


def loaded_backends() -> Iterator[Backend]:
    """Every registered backend that loads, in registry order, each loaded when reached.

    One that fails to load is skipped (``daskdeploy backends`` reports it): it cannot
    detect its environment, add commands or have left anything behind.
    """
    for name in _targets():
        try:
            yield get_backend(name)
        except UnknownBackendError as exc:
            logger.debug("Skipping backend %s: %s", name, exc)


def available_backends() -> dict[str, BackendStatus]:
    """Tell, for every registered backend, whether it can run here and if not, why.

    Returns
    -------
    dict
        Backend name to :class:`BackendStatus` (truthy when available), built-ins first.

    Examples
    --------
    >>> import daskdeploy
    >>> bool(daskdeploy.available_backends()["local"])
    True
    """
    statuses: dict[str, BackendStatus] = {}
    for name in _targets():
        try:
            backend = _load(name)
        except Exception as exc:
            statuses[name] = BackendStatus(
                name, False, f"failed to load: {type(exc).__name__}: {exc}", "?", ""
            )
            continue
        try:
            availability = backend.available()
        except Exception as exc:  # a broken check must not hide the other backends
            availability = Availability.missing(
                f"availability check failed: {type(exc).__name__}: {exc}"
            )
        statuses[name] = BackendStatus(
            name, availability.available, availability.reason, backend.kind, backend.summary
        )
    return statuses


def task_resources(environ: Mapping[str, str]) -> TaskResources | None:
    """The CPUs and memory of each task of the batch job ``environ`` belongs to, if any.

    Asks every backend (:meth:`~daskdeploy.backends.base.Backend.task_resources`) in
    registry order; the first that recognises the job answers. ``None`` outside a job.
    """
    for backend in loaded_backends():
        try:
            resources = backend.task_resources(environ)
        except Exception as exc:  # a broken backend must not hide the others' answer
            logger.debug("task_resources: skipping backend %s: %s", backend.name, exc)
            continue
        if resources is not None:
            return resources
    return None

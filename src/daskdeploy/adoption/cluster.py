"""The object a script gets when it asks for a cluster under ``daskdeploy run``.

:class:`AdoptedCluster` stands in for the ``LocalCluster``/``SLURMCluster``/``SSHCluster``
the script constructed. It *is* the deployment: ``Client(cluster)`` connects to the
deployment's scheduler with its credentials; ``scale``, ``adapt`` and
``wait_for_workers`` act on the deployment where its backend can resize (``scalable``)
and say so where it cannot (a fixed set of workers); ``close()`` and leaving a ``with``
block end the script's use of it, not the deployment, which ends with the run. Anything
else is looked up on the deployment's own cluster object, so e.g.
``cluster.scheduler.workers`` works on local as it would on a ``LocalCluster``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed.deploy import Cluster

    from ..backends.base import Running
    from . import Adoption

__all__ = ["AdoptedCluster", "call_text", "not_applied"]

_NOT_DELEGATED = frozenset({"loop"})  # each client of the script runs its own event loop


def call_text(name: str, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> str:
    """The call as the script wrote it, e.g. ``LocalCluster(n_workers=4)`` (values shortened).

    Examples
    --------
    >>> call_text("LocalCluster", (), {"n_workers": 4, "ip": "*"})
    "LocalCluster(n_workers=4, ip='*')"
    """
    parts = [_short(value) for value in args]
    parts += [f"{key}={_short(value)}" for key, value in (kwargs or {}).items()]
    return f"{name}({', '.join(parts)})"


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: What a script's cluster keyword means in daskdeploy's options. ``LocalCluster`` and
#: ``Client`` keywords; the ``processes`` of ``LocalCluster`` is a bool, like local's option.
_LOCAL_WISHES = {
    "n_workers": "workers",
    "threads_per_worker": "threads_per_worker",
    "memory_limit": "memory_per_worker",
    "processes": "processes",
}
#: dask-jobqueue keywords (old names included), for the batch-system backends.
_JOBQUEUE_WISHES: dict[str, str | tuple[str, ...]] = {
    "n_workers": "workers",
    "cores": "cores",
    "processes": "processes",
    "memory": "memory",
    "walltime": "walltime",
    "queue": ("queue", "partition"),
    "account": "account",
    "project": ("project", "account"),
    "job_cpu": "cores",
    "job_mem": "memory",
    "resource_spec": "resource_spec",
    "job_extra": "job_extra_directives",
    "job_extra_directives": "job_extra_directives",
    "header_skip": "job_directives_skip",
    "job_directives_skip": "job_directives_skip",
    "env_extra": "job_script_prologue",
    "job_script_prologue": "job_script_prologue",
    "extra": "worker_extra_args",
    "worker_extra_args": "worker_extra_args",
    "interface": "interface",
    "local_directory": "local_directory",
    "log_directory": "log_directory",
    "python": "python",
    "death_timeout": "death_timeout",
    "nanny": "nanny",
}
#: ``SSHCluster`` keywords.
_SSH_WISHES = {
    "hosts": "hosts",
    "connect_options": "connect_options",
    "remote_python": "remote_python",
}
#: A keyword that maps to several options means the first the backend has: dask-jobqueue's
#: ``queue`` is a partition where the backend says so, and ``project`` is the old name of
#: ``account`` except where the batch system has projects of its own.


def not_applied(
    cluster: str, wishes: dict[str, Any], backend: str, options: dict[str, Any]
) -> list[tuple[str, str]]:
    """The script's cluster keywords that ask for something the deployment does not have.

    Returns ``(keyword=value as written, the daskdeploy option that gives it)`` pairs, e.g.
    ``("memory='8GB'", "memory=8GB")``: the deployment's workers were started with the
    command's options before the script ran, so these keywords change nothing. Keywords
    without a daskdeploy option of ``backend`` (``scheduler_options``, ``silence_logs``,
    ...) and values the deployment already has are left out.

    Examples
    --------
    >>> not_applied("SLURMCluster", {"queue": "gpu", "cores": 1}, "slurm",
    ...             {"partition": None, "cores": 1, "processes": 1})
    [("queue='gpu'", 'partition=gpu')]
    """
    if cluster in ("LocalCluster", "Client"):
        table = _LOCAL_WISHES
    elif cluster == "SSHCluster":
        table = _SSH_WISHES
    else:
        table = _JOBQUEUE_WISHES
    found = []
    for keyword, value in wishes.items():
        names = table.get(keyword, ())
        option = next(
            (name for name in ((names,) if isinstance(names, str) else names) if name in options),
            None,
        )
        if option is None or option not in options or value is None:
            continue
        have = options[option]
        if keyword == "processes" and isinstance(value, bool) != isinstance(have, bool):
            continue  # LocalCluster's processes=True is not a job's number of processes
        if _same(value, have):
            continue
        found.append((f"{keyword}={_short(value)}", f"{option}={_option_text(value)}"))
    return found


def _same(value: Any, have: Any) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(have, (list, tuple)):
        return [str(item) for item in value] == [str(item) for item in have]
    return str(value) == str(have)


def _option_text(value: Any) -> str:
    """A value as ``daskdeploy run --option`` reads it back (``[a,b]`` lists)."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(item) for item in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def how_to_apply(unapplied: list[tuple[str, str]]) -> str:
    """``daskdeploy run`` options that give what :func:`not_applied` found, shell-quoted."""
    import shlex

    parts = []
    for _, assignment in unapplied:
        key, _, value = assignment.partition("=")
        if key == "workers":
            parts.append(f"--workers {shlex.quote(value)}")
        else:
            parts.append(f"-o {shlex.quote(assignment)}")
    return " ".join(parts)


class AdoptedCluster:
    """A cluster the script asked for, resolved to the ``daskdeploy run`` deployment.

    Parameters
    ----------
    adoption
        The run's :class:`~daskdeploy.adoption.Adoption`.
    request
        The script's call, e.g. ``"LocalCluster(n_workers=4)"``.
    wishes
        The keyword arguments of that call (``processes`` is used by ``scale(jobs=)``).
    """

    def __init__(self, adoption: Adoption, request: str, wishes: dict[str, Any]) -> None:
        self._adoption = adoption
        self._request = request
        self._wishes = wishes
        self._closed = False

    # -- what a Client needs to connect ------------------------------------------------

    @property
    def scheduler_address(self) -> str:
        """The deployment's scheduler address."""
        return self._adoption.deployment.scheduler_address or ""

    @property
    def security(self) -> Any:
        """The deployment's :class:`distributed.Security` (its TLS credentials), if any."""
        return self._running.security

    @property
    def status(self) -> Any:
        """``Status.running`` until the script calls :meth:`close`."""
        from distributed.core import Status

        return Status.closed if self._closed else Status.running

    @property
    def name(self) -> str:
        """The deployment id."""
        return self._adoption.deployment.id

    @property
    def dashboard_link(self) -> str | None:
        """The deployment's dashboard URL, or ``None`` if it runs none."""
        return self._adoption.deployment.dashboard_link

    @property
    def scheduler_info(self) -> dict[str, Any]:
        """The scheduler's identity: workers, their threads and memory (as on a Cluster)."""
        return self._adoption.client.scheduler_info(n_workers=-1)

    # -- sizing ----------------------------------------------------------------------

    def scale(
        self, n: int | None = None, jobs: int = 0, memory: Any = None, cores: Any = None
    ) -> None:
        """Resize the deployment where its backend can; say so where it cannot."""
        given = {"jobs": jobs or None, "memory": memory, "cores": cores}
        asked = call_text(
            "scale", () if n is None else (n,), {k: v for k, v in given.items() if v is not None}
        )
        real = self._scalable("cluster." + asked)
        if real is None:
            return
        if "jobs" in inspect.signature(real.scale).parameters:
            real.scale(n=n, jobs=jobs, memory=memory, cores=cores)
        else:
            if jobs:
                n = jobs * int(self._wishes.get("processes") or 1)
            real.scale(n=n or 0, memory=memory, cores=cores)
        backend = self._adoption.deployment.backend
        self._adoption.say(f"the script's cluster.{asked} resizes this deployment ({backend})")

    def adapt(self, *args: Any, **kwargs: Any) -> Any:
        """Let the deployment adapt to the load where its backend can; say so where not."""
        asked = call_text("adapt", args, kwargs)
        real = self._scalable("cluster." + asked)
        if real is None:
            return None
        backend = self._adoption.deployment.backend
        self._adoption.say(f"the script's cluster.{asked} adapts this deployment ({backend})")
        return real.adapt(*args, **kwargs)

    def wait_for_workers(self, n_workers: int = 1, timeout: float | None = None) -> None:
        """Wait for ``n_workers``; a fixed deployment with fewer returns at once, saying so."""
        fixed = not self._running.scalable
        have = len(self._adoption.client.scheduler_info(n_workers=-1).get("workers", {}))
        if fixed and n_workers > have:
            self._adoption.say(
                f"the script waits for {n_workers} workers; this deployment has a fixed "
                f"{have} ({self._shape}), so it does not wait"
            )
            return
        self._adoption.client.wait_for_workers(n_workers, timeout=timeout)

    def _scalable(self, asked: str) -> Cluster | None:
        real = self._real
        if self._running.scalable and real is not None:
            return real
        self._adoption.say(
            f"the script's {asked} is not applied: this deployment ({self._shape}) has a "
            f"fixed set of workers; choose their number with `daskdeploy run --workers N`"
        )
        return None

    # -- what a jobqueue cluster shows ---------------------------------------------------

    def job_script(self) -> str:
        """The deployment's job script (batch-job backends), or a comment saying what starts it."""
        real = self._real
        if real is not None and hasattr(real, "job_script"):
            return real.job_script()
        from ..registry import get_backend

        deployment = self._adoption.deployment
        what = get_backend(deployment.backend).describe(deployment.options)
        return f"# daskdeploy: no job script; this {deployment.backend} deployment runs: {what}\n"

    # -- lifetime ------------------------------------------------------------------------

    def close(self, timeout: Any = None) -> None:
        """End the script's use of the cluster; the deployment ends with the run."""
        self._closed = True

    def __enter__(self) -> AdoptedCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> AdoptedCluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __await__(self) -> Any:
        async def started() -> AdoptedCluster:
            return self

        return started().__await__()

    def __repr__(self) -> str:
        return (
            f"{self._request} -> daskdeploy {self.name} ({self._shape}, "
            f"scheduler {self.scheduler_address})"
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in _NOT_DELEGATED or name.startswith("_adoption"):
            raise AttributeError(name)
        real = self._real
        if real is not None and hasattr(real, name):
            return getattr(real, name)
        raise AttributeError(
            f"{self._request} runs on daskdeploy deployment {self.name} "
            f"({self._shape}), whose cluster has no attribute {name!r}. Run the script "
            f"with `daskdeploy run --no-adopt` to keep its own cluster."
        )

    # -- helpers -------------------------------------------------------------------------

    @property
    def _running(self) -> Running:
        running = self._adoption.deployment.running
        assert running is not None, "an adopted deployment has started"
        return running

    @property
    def _real(self) -> Cluster | None:
        return self._running.cluster

    @property
    def _shape(self) -> str:
        return self._adoption.shape()

"""The contract every backend implements.

A backend is one small class. daskdeploy resolves and validates its options, then calls
:meth:`Backend.start`, which starts whatever runs the scheduler and workers and returns a
:class:`Running` handle. daskdeploy creates the :class:`distributed.Client`, waits for
the workers, and at close calls :attr:`Running.stop`.

There are two kinds of backend:

``"cluster"``
    Cluster starters start processes somewhere (this machine, batch jobs, remote hosts)
    and hand back a scheduler address.
``"in-place"``
    In-place runners run inside a job that already holds the resources and fan out
    inside it. Their :meth:`Backend.detect` recognises that environment, which is how
    ``backend="auto"`` picks them.

Beyond starting, a backend answers for what it leaves behind. The processes a
deployment starts on this machine carry its id in their environment and its files live
under known names, so generic code finds and ends those; what lives elsewhere (batch
jobs, processes on remote hosts) only the backend can find and end, through
:meth:`Backend.find_leftovers` and :meth:`Backend.end_leftovers`, which ``daskdeploy
ls``, ``daskdeploy cleanup`` and the reaper call. A backend may also add commands to the
``daskdeploy`` command line (:meth:`Backend.cli_commands`).
"""

from __future__ import annotations

import abc
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..options import COMMON_OPTIONS, Option, ResolvedOptions

if TYPE_CHECKING:
    import click
    from distributed import Security
    from distributed.deploy import Cluster

    from ..records import DeploymentRecord
    from .shared.layout import TaskResources

logger = logging.getLogger(__name__)

__all__ = [
    "Availability",
    "Backend",
    "LaunchCommand",
    "Leftover",
    "LeftoverCleanup",
    "LeftoverSearch",
    "Running",
    "StartContext",
    "dashboard_link",
]


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and if not, why and how to fix it.

    True in a boolean context when the backend is available.
    """

    available: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.available

    @classmethod
    def ok(cls, reason: str = "") -> Availability:
        """An available backend, with an optional note (e.g. the detected environment)."""
        return cls(True, reason)

    @classmethod
    def missing(cls, reason: str) -> Availability:
        """An unavailable backend; ``reason`` says what is missing and how to get it."""
        return cls(False, reason)


@dataclass(frozen=True)
class StartContext:
    """What daskdeploy gives a backend to start with.

    Attributes
    ----------
    deployment_id
        Unique id of this deployment (``dd-`` plus hex); tag jobs and processes with it.
    scratch_dir
        A private directory (mode 0700) for this deployment, removed at close. Use it for
        worker spill space, scheduler files and credentials.
    """

    deployment_id: str
    scratch_dir: Path


@dataclass
class Running:
    """Handle of a started backend.

    Attributes
    ----------
    address
        Scheduler address the client connects to.
    cluster
        The :class:`distributed.deploy.Cluster` object, if the backend has one; the client
        is attached to it (``client.cluster``) so ``scale``/``adapt`` work.
    security
        :class:`distributed.Security` the client must use, if any.
    expected_workers
        Number of workers to wait for before :func:`daskdeploy.deploy` returns.
    dashboard_link
        Dashboard URL, or ``None`` when no dashboard runs.
    stop
        Callables run at close, last registered first, after the client and the cluster
        are closed.
    stop_workers
        Called at close after the client is closed and before the cluster closes: stops
        the workers at once, without waiting for tasks nobody waits for any more (see
        :func:`daskdeploy.backends.shared.nannies.stop_workers_through_nannies`).
    check
        Called about once a second while daskdeploy waits for the workers; raises
        :class:`~daskdeploy.DeploymentError` as soon as the wait is known to be hopeless
        (e.g. the job system refused the jobs).
    diagnose
        Returns text that explains missing workers (e.g. jobs pending and why); appended
        to the time-out message.
    threads_per_worker
        Threads each worker got, when the backend chose them itself (e.g. from the job's
        ``--cpus-per-task``); ``None`` means the ``threads_per_worker`` option holds.
    scalable
        True when ``cluster.scale()``/``adapt()`` can change the number of workers
        (a local cluster, batch jobs); False for a fixed set (an allocation's tasks, MPI
        ranks, SSH hosts). Scripts run by ``daskdeploy run`` are told when their ``scale`` cannot
        apply.
    sizing_note
        Why the workers and threads are what they are, when the backend chose them from
        its environment (e.g. "4 CPUs per task: one single-threaded worker per
        CPU"); shown in the start-up line.
    record
        What ``daskdeploy cleanup`` needs to end this deployment from another process
        when its owner died without tearing it down (e.g. the SSH hosts, connect options
        and remote directories). Stored in the deployment's record file
        (``~/.cache/daskdeploy/deployments/<id>.json``), so it must be JSON-serialisable
        and hold no secrets (no passwords, passphrases or key objects).
    """

    address: str
    cluster: Cluster | None = None
    security: Security | None = None
    expected_workers: int = 0
    dashboard_link: str | None = None
    stop: list[Callable[[], Any]] = field(default_factory=list)
    stop_workers: Callable[[], Any] | None = None
    check: Callable[[], None] | None = None
    diagnose: Callable[[], str] | None = None
    threads_per_worker: int | None = None
    scalable: bool = False
    sizing_note: str | None = None
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LaunchCommand:
    """How to start a program as many processes under a launcher (e.g. ``mpiexec -n 6``).

    Attributes
    ----------
    args
        The full command line: the launcher, its arguments, then the program.
    environment
        Variables to add to the launcher's environment.
    notes
        Sentences worth telling the user before launching (e.g. a different ``mpiexec``
        on ``PATH``).
    """

    args: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Leftover:
    """One thing a deployment left beyond this machine's processes and files.

    Attributes
    ----------
    id
        What names it where it lives: a batch job id, a host name.
    state
        Its state, when the system it lives in says (e.g. ``"PENDING"``).
    detail
        Its JSON-able form for ``daskdeploy ls --json``; ``None`` gives
        ``{"id": ..., "state": ...}``.
    """

    id: str
    state: str = ""
    detail: Any = None

    def to_json(self) -> Any:
        """The JSON-able form listed by ``daskdeploy ls --json``."""
        return self.detail if self.detail is not None else {"id": self.id, "state": self.state}


@dataclass
class LeftoverSearch:
    """What :meth:`Backend.find_leftovers` found.

    Attributes
    ----------
    found
        Leftovers by deployment id.
    problems
        What got in the way of looking (e.g. a failing ``squeue``), one sentence each.
    """

    found: dict[str, list[Leftover]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class LeftoverCleanup:
    """What :meth:`Backend.end_leftovers` did.

    Attributes
    ----------
    done
        What was ended, as short phrases for the clean-up summary (e.g. ``"cancelled 2
        batch jobs"``).
    errors
        What could not be ended, one sentence each, saying what is left.
    """

    done: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Backend(abc.ABC):
    """Base class of daskdeploy backends.

    Subclasses set :attr:`name`, :attr:`kind`, :attr:`summary` and :attr:`extra_options`
    and implement :meth:`start`. Module-level imports of heavy optional packages are not
    allowed: import them inside :meth:`start` (and check for them in :meth:`available`).
    Backends register a subclass under the entry point group ``daskdeploy.backends``
    (the built-ins are listed in :mod:`daskdeploy.registry`). Their options' defaults
    come from :attr:`defaults`, else from a YAML file beside the backend's module
    (``mybackend.py`` → ``mybackend.yaml``, as the built-ins do); the shared options
    default to the packaged ``common`` values.
    """

    name: ClassVar[str]
    kind: ClassVar[Literal["cluster", "in-place"]] = "cluster"
    summary: ClassVar[str] = ""
    extra_options: ClassVar[tuple[Option, ...]] = ()
    defaults: ClassVar[dict[str, Any] | None] = None
    #: What ``workers=None`` gives on this backend (e.g. ``"one per core"``), shown in
    #: the help of its ``workers`` option.
    default_workers: ClassVar[str] = ""
    #: Command lines shown under "Examples" in ``daskdeploy run --help``.
    run_examples: ClassVar[tuple[str, ...]] = ()
    #: Key under which ``daskdeploy ls --json`` lists this backend's leftovers (e.g.
    #: ``"batch_jobs"``); ``None`` when it leaves nothing beyond local processes and files.
    leftovers_key: ClassVar[str | None] = None

    @classmethod
    def options(cls) -> tuple[Option, ...]:
        """All options this backend accepts: the common ones, then its own."""
        common = COMMON_OPTIONS
        if cls.default_workers:
            common = tuple(
                dataclasses.replace(
                    option, help=f"Number of worker processes (null: {cls.default_workers})."
                )
                if option.name == "workers"
                else option
                for option in common
            )
        return common + cls.extra_options

    def available(self) -> Availability:
        """Say whether this backend can run here; the default is yes."""
        return Availability.ok()

    def detect(self) -> bool:
        """Return True when the current process runs where this backend belongs.

        ``backend="auto"`` picks the first backend that detects its environment, else
        ``local``. Cluster starters normally keep the default, False.
        """
        return False

    def validate(self, options: ResolvedOptions) -> None:
        """Reject combinations of option values that cannot work together.

        Called by :func:`daskdeploy.plan` after each value was checked on its own; raise
        :class:`~daskdeploy.OptionError` saying what to change. The default accepts all.
        """
        return None

    def check_scale(self, options: ResolvedOptions, workers: int) -> None:
        """Refuse ``workers`` workers when this machine or site cannot hold them.

        Called before a running deployment of these ``options`` is asked to scale to
        ``workers`` (``daskdeploy scale``, a named deployment's ``scale()``/``adapt()``);
        backends that check the start's numbers call it from :meth:`validate` or
        :meth:`check` too. Raise :class:`~daskdeploy.OptionError` (or
        :class:`~daskdeploy.DeploymentError` when the site said no) naming the numbers
        and the fix. The default accepts all.
        """
        return None

    def describe(self, options: ResolvedOptions) -> str:
        """Return a human-readable account of what :meth:`start` would start.

        Shown by ``daskdeploy run --dry-run``; starts nothing.
        """
        return ""

    def submit_supervisor(
        self, options: ResolvedOptions, command: str, deployment_id: str, directory: Path
    ) -> str | None:
        """Submit ``command`` (one shell command line) as a one-process batch job.

        Used by ``daskdeploy up --scheduler-in-job``, for sites that forbid long-running
        processes on login nodes: the named deployment's supervisor (and so its
        scheduler) then runs in a job of this backend's batch system, sized as one
        worker job of ``options``, with its output in ``directory``, and named after
        ``deployment_id`` (``<id>-up``: not the worker jobs' name, which the teardown
        cancels). Returns the job id; ``None`` (the default) when this backend has no
        batch system.
        """
        return None

    def supervisor_alive(self, deployment_id: str) -> bool:
        """Whether the job :meth:`submit_supervisor` submitted is still queued or running."""
        return False

    def cancel_supervisor(self, deployment_id: str) -> None:
        """Cancel that job (its supervisor gets SIGTERM and tears the deployment down)."""
        return None

    def time_limit(self, options: ResolvedOptions) -> float | None:
        """Seconds after which these options' workers are ended by the platform, if any.

        A named deployment (``daskdeploy up``) ends itself then, and ``daskdeploy ls``
        says when. ``None`` (the default): no limit.
        """
        return None

    def check(self, options: ResolvedOptions) -> str | None:
        """Ask the resource manager whether it would accept this deployment; start nothing.

        Returns its answer as text, or ``None`` when the backend has nothing to ask.
        Raises :class:`~daskdeploy.DeploymentError` naming what would be rejected.
        """
        return None

    def launch_command(self, options: ResolvedOptions, program: list[str]) -> LaunchCommand | None:
        """Return how to launch ``program`` as this backend's processes, if it must be.

        In-place runners whose processes are started by a launcher (``mpiexec``) return
        the command that starts ``program`` (a ``daskdeploy run`` command line) under it
        when this process was not started that way; ``daskdeploy run`` then runs that
        command instead of deploying here. ``None`` (the default): deploy here.
        """
        return None

    def task_resources(self, environ: Mapping[str, str]) -> TaskResources | None:
        """The CPUs and memory of each task of the job ``environ`` belongs to, if any.

        A backend that knows a batch system's job environment answers for processes
        running as that job's tasks; an in-place runner started inside such a job (MPI
        ranks launched by the batch system) sizes its workers by it, through
        :func:`daskdeploy.registry.task_resources`, without knowing the batch system.
        ``None`` (the default): not a job of this backend's kind.
        """
        return None

    def cli_commands(self) -> Sequence[click.Command]:
        """Commands this backend adds to the ``daskdeploy`` command line; none by default.

        Called when the command line is built; import :mod:`click` and anything the
        commands need inside this method, not at module level.
        """
        return ()

    def find_leftovers(
        self, deployment_id: str | None, records: Mapping[str, DeploymentRecord]
    ) -> LeftoverSearch:
        """Find what deployments left where only this backend can look (jobs, hosts).

        Called by ``daskdeploy ls`` and ``daskdeploy cleanup`` (and so by the reaper) in
        a process other than the deployment's owner, which may be dead. Processes on this
        machine that carry the deployment's tag and its local files are found by
        daskdeploy itself; implement this for anything else. Must return within seconds
        and never raise for an unreachable system: put the cause in
        :attr:`LeftoverSearch.problems`.

        Parameters
        ----------
        deployment_id
            The one deployment to look for, or ``None`` for every deployment of this user.
        records
            The records of live deployments by id (:attr:`Running.record` is in
            ``record.data``). A record naming this backend means its leftovers are
            expected, so a failing look is worth a problem.

        Returns
        -------
        LeftoverSearch
            Leftovers by deployment id. The default finds none.
        """
        return LeftoverSearch()

    def end_leftovers(
        self,
        deployment_id: str,
        record: DeploymentRecord | None,
        found: Sequence[Leftover],
    ) -> LeftoverCleanup:
        """End what :meth:`find_leftovers` found of one deployment; never raise.

        Called after the deployment's owner was ended, before its local processes and
        files are. ``found`` may be empty while ``record`` says the backend started
        things (the look failed, or they are gone): end what the record names.
        Every step needs a deadline; the whole should take seconds.
        """
        return LeftoverCleanup()

    def describe_leftovers(self, found: Sequence[Leftover]) -> str:
        """A few words for ``daskdeploy ls``, e.g. ``"2 batch jobs"``."""
        return f"{len(found)} {self.name} leftover{'s' if len(found) != 1 else ''}"

    @abc.abstractmethod
    def start(self, options: ResolvedOptions, context: StartContext) -> Running:
        """Start the scheduler and workers and return a :class:`Running` handle.

        If it raises, it must leave nothing running that it started; daskdeploy removes
        the scratch directory.
        """


def dashboard_link(cluster: Cluster) -> str | None:
    """The loopback URL of the dashboard served by ``cluster``'s scheduler, if it runs one.

    Formatted by dask config ``distributed.dashboard.link`` (default
    ``{scheme}://{host}:{port}/status``), so a JupyterHub's jupyter-server-proxy template
    such as ``{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status`` gives a link that works there.
    """
    port = getattr(getattr(cluster.scheduler, "http_server", None), "port", None)
    if not port:
        return None
    from distributed.utils import format_dashboard_link

    try:
        return format_dashboard_link("127.0.0.1", port)
    except (KeyError, IndexError, ValueError) as exc:  # a variable the template names is unset
        logger.warning(
            "dask config distributed.dashboard.link cannot be filled in here (%s: %s); "
            "the dashboard link is the plain one.",
            type(exc).__name__,
            exc,
        )
        return f"http://127.0.0.1:{port}/status"

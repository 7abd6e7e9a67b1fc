"""The ``mpi`` backend: Dask inside an MPI run, the way dask-mpi lays it out.

The user starts N copies of the script (``mpiexec -n N python script.py``, or
``srun --mpi=pmi2 python script.py`` in a job), or lets ``daskdeploy run --backend mpi
-n WORKERS script.py`` start ``mpiexec -n WORKERS+2`` for them. When the copies call
``deploy()``, rank 0 becomes the scheduler, rank 1 returns with the client and runs the
rest of the script, the other ranks become workers (see
:class:`~daskdeploy.backends.shared.ranks.Roles`; worlds of 2 and 1 work too). Each worker rank
runs one single-threaded worker, or, in a SLURM job with ``--cpus-per-task`` N, N of them
in processes of their own (see :func:`_worker_layout`).

What it does beyond ``dask_mpi.initialize()``:

* no blocking MPI call anywhere: the scheduler's address travels as a message awaited
  with a deadline, so a rank that failed early becomes an error, not a hang;
* the scheduler and workers listen on 127.0.0.1 when every rank is on one machine,
  otherwise on the address facing the other ranks (never on all interfaces), and the
  dashboard stays on 127.0.0.1 at a free port;
* at the end the script's rank sends its exit status to every rank; they close their
  server at once (no 30 s connect time-out), remove their files, meet at a barrier with
  a deadline and exit with that status, and the shutdown's connection noise is not shown.
  A rank that does not arrive in time gets the whole run aborted, so nothing lingers;
* a world of 1 under a launcher that started several ranks (mpi4py and the launcher from
  different MPI implementations) is refused with the launcher to use instead, and under
  Open MPI's ``mpirun`` the mpi4py wheel is pointed at Open MPI's library.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import time
from typing import Any, ClassVar

from ... import lifecycle, scratch
from ...credentials import CA_FILE, CERT_FILE, KEY_FILE, Credentials
from ...errors import BackendUnavailableError, DeploymentError, OptionError
from ...network import LOOPBACK, address_facing
from ...options import DEATH_TIMEOUT, Option, ResolvedOptions, text, text_list
from ..base import Availability, Backend, LaunchCommand, Running, StartContext
from ..shared.layout import TaskLayout, layout_for
from ..shared.ranks import (
    Roles,
    drop_closed_connection_noise,
    quiet_serving_logs,
    scheduler_here,
    serve_scheduler,
    serve_workers,
)
from . import launchers
from .world import TAG_ADDRESS, TAG_FAILED, TAG_HELLO, TAG_STATUS

__all__ = ["MPIBackend"]

logger = logging.getLogger(__name__)

_STATUS_WAIT = 10.0  # seconds a serving rank waits for the script's status after its server ended
_EXIT_DEADLINE = 10.0  # seconds for every rank to reach the final barrier before an abort
_FAILED_START_DEADLINE = 2.0  # the same when the start failed (maybe for a missing rank)
_ADDRESS_MARGIN = 15.0  # seconds beyond `timeout` for rank 0 to start the scheduler
_CLOSE_GRACE = 5.0  # seconds a server gets to close once told to

_served = False  # this process's world already served a deployment


class MPIBackend(Backend):
    """Scheduler on rank 0, the script on rank 1, workers on the other ranks."""

    name = "mpi"
    kind = "in-place"
    summary = "under mpiexec/srun: rank 0 scheduler, rank 1 your script, other ranks workers"
    run_examples: ClassVar[tuple[str, ...]] = (
        "daskdeploy run --backend mpi -n 4 my_analysis.py  # mpiexec -n 6: 4 workers",
    )
    default_workers = "one per available core"
    extra_options: ClassVar[tuple[Option, ...]] = (
        Option(
            "launcher",
            text,
            "Launcher `daskdeploy run` starts when not already under one, e.g. 'srun' or "
            "'mpirun.openmpi' (null: the mpiexec installed next to this Python, else PATH's).",
            nullable=True,
        ),
        Option(
            "launcher_args",
            text_list,
            "More launcher arguments, e.g. ['--mpi=pmi2'] for srun or ['-host', 'a,b'].",
        ),
        Option(
            "interface",
            text,
            "Network interface for the scheduler and workers, e.g. 'ib0' (null: loopback "
            "when all ranks share a machine, else the address facing the other ranks).",
            nullable=True,
        ),
        Option(
            "scheduler_host",
            text,
            "Address the scheduler listens on (null: chosen as for interface).",
            nullable=True,
        ),
        DEATH_TIMEOUT,
    )

    def available(self) -> Availability:
        """Available in a process started by an MPI launcher, with mpi4py installed."""
        if importlib.util.find_spec("mpi4py") is None:
            return Availability.missing(
                "mpi4py is not installed. Install the MPI extra: pip install "
                "'daskdeploy[mpi]' (mpi4py and MPICH from PyPI, no compiler needed)."
            )
        launch = launchers.launch_from_environ()
        if launch is None:
            return Availability.missing(_not_launched_reason())
        size = f"{launch.size} ranks" if launch.size else "ranks"
        return Availability.ok(f"rank {launch.rank} of {size} started by {launch.launcher}")

    def detect(self) -> bool:
        """Recognise a process started by an MPI launcher with more than one rank."""
        launch = launchers.launch_from_environ()
        return launch is not None and (launch.size is None or launch.size > 1)

    def validate(self, options: ResolvedOptions) -> None:
        """Under a launcher the world decides the workers; refuse a contradicting count.

        ``workers`` counts Dask workers. A world whose worker ranks run several worker
        processes each (a SLURM task of several CPUs) may be asked for fewer than it
        makes, as long as every worker rank keeps at least one: the last one runs fewer.
        """
        launch = launchers.launch_from_environ()
        if launch is None or not launch.size or options["workers"] is None:
            return
        roles, layout, wanted = Roles(launch.size), _worker_layout(options), options["workers"]
        most = roles.dask_workers(layout)
        if not most - layout.processes < wanted <= most:
            detail = ""
            if layout.processes > 1:
                detail = (
                    f" ({roles.worker_ranks} worker rank(s) x {layout.processes} worker "
                    f"processes: {layout.reason})"
                )
            raise OptionError(
                f"workers={wanted}, but {launch.launcher} started {launch.size} ranks, which "
                f"make {most} worker(s) (one rank runs the scheduler and one your script). "
                f"Launch with -n {_ranks_for(wanted, layout)}, or drop workers.{detail}"
            )

    def describe(self, options: ResolvedOptions) -> str:
        """Say which rank does what, or which launcher ``daskdeploy run`` would start."""
        launch = launchers.launch_from_environ()
        layout = _worker_layout(options)
        if launch is not None and launch.size:
            roles = Roles(launch.size)
            return (
                f"{launch.size} ranks started by {launch.launcher}: {roles.layout()}; "
                f"{_workers_text(roles.dask_workers(layout, options['workers']), layout)}."
            )
        workers = _default_workers(options)
        ranks = _ranks_for(workers, layout)
        return (
            f"{ranks} MPI ranks: {Roles(ranks).layout()}; {_workers_text(workers, layout)}. "
            f"`daskdeploy run` starts them with the launcher below; deploy() itself must run "
            f"under one."
        )

    def launch_command(self, options: ResolvedOptions, program: list[str]) -> LaunchCommand | None:
        """``mpiexec -n WORKERS+2 PROGRAM`` when this process is not an MPI rank yet."""
        if launchers.launch_from_environ() is not None:
            return None
        launcher = launchers.find_mpiexec(options["launcher"])
        if launcher is None:
            wanted = options["launcher"] or "mpiexec"
            raise BackendUnavailableError(
                f"No MPI launcher {wanted!r} found (looked next to {sys.executable} and on "
                f"PATH). Install one with pip install 'daskdeploy[mpi]' (the mpich wheel "
                f"brings mpiexec), or set the launcher option to its path."
            )
        ranks = _ranks_for(_default_workers(options), _worker_layout(options))
        family = launchers.launcher_family(launcher)
        environment = (
            launchers.open_mpi_root_environment(ranks) if family == launchers.OPEN_MPI else {}
        )
        return LaunchCommand(
            [launcher, "-n", str(ranks), *options["launcher_args"], *program],
            environment,
            _path_launcher_notes(launcher, family) if not options["launcher"] else [],
        )

    def start(self, options: ResolvedOptions, context: StartContext) -> Running:
        """Take this rank's role: return the client's :class:`Running`, or serve and exit."""
        global _served
        from .world import join_world

        if _served:
            raise DeploymentError(
                "This MPI run already served a deployment, and its other ranks have exited. "
                "Keep one deploy() client open for the whole script."
            )
        world = join_world(
            launchers.launch_from_environ(), options["timeout"], leftovers=(context.scratch_dir,)
        )
        _served = True
        roles = Roles(world.size)
        role = roles.of(world.rank)
        layout = _worker_layout(options)
        if role == "all":
            from ..shared.ranks import single_process

            return single_process(
                options, context, layout, roles.dask_workers(layout, options["workers"])
            )
        if role == "scheduler":
            _serve_scheduler_rank(world, roles, options, context)
        if role == "scheduler+client":
            try:
                host = _agree_on_listen_host(world, options)
            except Exception:
                _finish(world, 1, client_side=True, deadline=_FAILED_START_DEADLINE)
                raise
            return _start_scheduler_and_client(world, options, context, host, layout)
        world.send(Roles.scheduler_rank, TAG_HELLO, {"rank": world.rank, "host": _hostname()})
        if role == "worker":
            _serve_worker_rank(world, roles, options, context, layout)
        return _start_client(world, roles, options, context, layout)


def _worker_layout(options: ResolvedOptions) -> TaskLayout:
    """The workers of each worker rank.

    When the ranks run as the tasks of a batch job that a backend recognises
    (:func:`daskdeploy.registry.task_resources`; a SLURM job with ``--cpus-per-task``),
    the in-place rule (:func:`~daskdeploy.backends.shared.layout.layout_for`): unless
    ``threads_per_worker`` is set, one single-threaded worker process per CPU of the
    rank's task, sharing its memory. Elsewhere one worker per rank, as the options say
    (memory ``None``: Dask's ``auto``).
    """
    from ...registry import task_resources

    resources = task_resources(os.environ)
    if resources is not None:
        return layout_for(resources, options)
    return TaskLayout(1, options["threads_per_worker"], options["memory_per_worker"])


def _ranks_for(workers: int, layout: TaskLayout) -> int:
    """Ranks to launch for ``workers`` Dask workers: the worker ranks, the scheduler's and
    the script's."""
    return layout.tasks_for(workers) + 2


def _workers_text(workers: int, layout: TaskLayout) -> str:
    text = f"{workers} worker(s) x {layout.threads} thread(s)"
    return f"{text} ({layout.reason})" if layout.reason else text


def _hostname() -> str:
    return socket.gethostname()


def _default_workers(options: ResolvedOptions) -> int:
    """The workers asked for, else one per core this process may use (affinity, cgroup)."""
    from dask.system import CPU_COUNT

    return options["workers"] or max(1, CPU_COUNT)


def _not_launched_reason() -> str:
    tasks = launchers.srun_tasks()
    if tasks and tasks > 1:
        return (
            f"this srun step runs {tasks} tasks without MPI. Start them with "
            f"`srun --mpi=pmi2 ...` (MPICH from pip install mpich; `srun --mpi=list` shows "
            f"what your SLURM offers), or use the allocation backend, which needs no MPI."
        )
    return (
        "this process was not started by an MPI launcher (no PMI_RANK, OMPI_COMM_WORLD_RANK "
        "or PMIX_RANK in its environment). Start the script with `mpiexec -n 4 python "
        "script.py`, or let `daskdeploy run --backend mpi -n 2 script.py` start it."
    )


def _path_launcher_notes(launcher: str, family: str | None) -> list[str]:
    """Warn when the ``mpiexec`` on PATH is another MPI than the one daskdeploy starts."""
    import shutil

    on_path = shutil.which("mpiexec")
    if not on_path or os.path.realpath(on_path) == os.path.realpath(launcher):
        return []
    path_family = launchers.launcher_family(on_path)
    if path_family is None or family is None or path_family == family:
        return []
    return [
        f"note: the mpiexec on your PATH ({on_path}) is {path_family}, but the one installed "
        f"with this Python is {family}; daskdeploy starts {launcher}, which matches mpi4py "
        f"here. Use that one (or `daskdeploy run`) when you launch by hand: mixing MPI "
        f"implementations gives ranks that each run alone, or an abort."
    ]


# ---------------------------------------------------------------------------- all ranks


def _collect_hosts(world: Any, timeout: float) -> list[str]:
    """On the scheduler's rank: the host name of every other rank (they say hello).

    Raises DeploymentError when some never do."""
    hosts: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while len(hosts) < world.size - 1:
        hello = world.poll(TAG_HELLO)
        if hello is not None:
            hosts[hello["rank"]] = hello["host"]
            continue
        if time.monotonic() > deadline:
            missing = sorted(set(range(1, world.size)) - set(hosts))
            error = (
                f"ranks {missing} did not call deploy() within {timeout:g} s (every rank "
                f"must; a rank that failed earlier shows its error above)"
            )
            raise DeploymentError(f"The MPI scheduler rank gave up: {error}.")
        time.sleep(0.005)
    return list(hosts.values())


def _agree_on_listen_host(world: Any, options: ResolvedOptions) -> str:
    """On rank 0: the address to listen on; on failure every other rank hears why."""
    try:
        return _listen_host(options, _collect_hosts(world, options["timeout"]))
    except Exception as exc:
        world.send_to_all(TAG_ADDRESS, {"error": str(exc)})
        raise


def _listen_host(options: ResolvedOptions, hosts: list[str]) -> str:
    if options["scheduler_host"]:
        return options["scheduler_host"]
    if options["interface"]:
        from distributed.utils import get_ip_interface

        return get_ip_interface(options["interface"])
    here = _hostname()
    others = [host for host in hosts if host != here]
    return address_facing(others) if others else LOOPBACK


def _address_message(
    address: str, dashboard_port: int | None, credentials: Credentials | None
) -> dict[str, Any]:
    """What rank 0 tells every rank: where the scheduler is, and the TLS credentials.

    The credentials travel as MPI messages, between the processes of this run only, and
    each rank writes them into its own private scratch directory.
    """
    message: dict[str, Any] = {
        "address": address,
        "dashboard_port": dashboard_port,
        "host": _hostname(),
    }
    if credentials is not None:
        message["tls"] = credentials.files()
    return message


def _new_credentials(options: ResolvedOptions, context: StartContext) -> Credentials | None:
    return Credentials.generate(context.deployment_id) if options["tls"] else None


def _write_security(credentials: Credentials | None, context: StartContext) -> Any:
    """Write ``credentials`` into this rank's scratch directory; their Security."""
    if credentials is None:
        return None
    return credentials.write(context.scratch_dir / "tls").security()


def _security(message: dict[str, Any], context: StartContext) -> Any:
    """This rank's :class:`distributed.Security` from rank 0's message (None: plain TCP)."""
    files = message.get("tls")
    if files is None:
        return None
    return _write_security(Credentials(files[CA_FILE], files[CERT_FILE], files[KEY_FILE]), context)


def _dashboard_port(scheduler: Any) -> int | None:
    return getattr(getattr(scheduler, "http_server", None), "port", None)


def _finish(
    world: Any, status: int, *, client_side: bool, deadline: float = _EXIT_DEADLINE
) -> bool:
    """The end of every rank: deliver the status (client), meet the others, let MPI go.

    Returns whether every rank arrived in time. The script's rank aborts the run when
    they did not, so a stuck rank cannot outlive it.
    """
    if client_side:
        world.send_to_all(TAG_STATUS, status)
    world.flush(_CLOSE_GRACE)
    arrived = world.barrier(deadline)
    if not arrived and client_side:
        print(
            f"daskdeploy: not every MPI rank finished within {deadline:g} s of the "
            f"script's end; aborting the MPI run so that none is left behind.",
            file=sys.stderr,
            flush=True,
        )
        world.abort(status or 1)
    world.close()
    return arrived


def _end_serving_rank(world: Any, context: StartContext, status: int) -> None:
    """Leave a serving rank: files gone, status awaited, barrier, then exit with it.

    A normal exit, not ``os._exit``: MPICH's transport cleans up at process exit, and
    skipping that got other ranks of the run killed.
    """
    scratch.remove_scratch_dir(context.scratch_dir)
    _finish(world, status, client_side=False)
    raise SystemExit(status)


def _status_from_client(world: Any, roles: Roles, already: list[int]) -> int:
    if already:
        return already[0]
    deadline = time.monotonic() + _STATUS_WAIT
    while time.monotonic() < deadline:
        status = world.poll(TAG_STATUS, roles.client_rank)
        if status is not None:
            return int(status)
        time.sleep(0.01)
    return 1  # the script's rank never said how it ended: it failed or vanished


def _stop_when_status_arrives(world: Any, roles: Roles) -> tuple[list[int], Any]:
    received: list[int] = []

    def stop_requested() -> bool:
        if not received:
            status = world.poll(TAG_STATUS, roles.client_rank)
            if status is not None:
                received.append(int(status))
        return bool(received)

    return received, stop_requested


# --------------------------------------------------------------------------- scheduler


def _serve_scheduler_rank(
    world: Any, roles: Roles, options: ResolvedOptions, context: StartContext
) -> None:
    """Rank 0 of 3 or more: run the scheduler until the script ends; never returns."""
    quiet_serving_logs()
    try:
        host = _agree_on_listen_host(world, options)
    except Exception as exc:
        print(f"daskdeploy: MPI rank 0: {exc}", file=sys.stderr, flush=True)
        _end_serving_rank(world, context, 1)
    received, stop_requested = _stop_when_status_arrives(world, roles)
    started: list[bool] = []
    credentials = _new_credentials(options, context)
    security = _write_security(credentials, context)

    def publish(scheduler: Any) -> None:
        started.append(True)
        world.send_to_all(
            TAG_ADDRESS,
            _address_message(scheduler.address, _dashboard_port(scheduler), credentials),
        )

    import asyncio

    try:
        asyncio.run(
            serve_scheduler(
                host=host,
                dashboard=options["dashboard"],
                timeout=options["timeout"],
                on_started=publish,
                stop_requested=stop_requested,
                grace=_CLOSE_GRACE,
                security=security,
            )
        )
    except Exception as exc:
        if started:
            raise
        world.send_to_all(TAG_ADDRESS, {"error": f"the scheduler failed to start on {host}: {exc}"})
    _end_serving_rank(world, context, _status_from_client(world, roles, received))


# ------------------------------------------------------------------------------ worker


def _serve_worker_rank(
    world: Any,
    roles: Roles,
    options: ResolvedOptions,
    context: StartContext,
    layout: TaskLayout,
) -> None:
    """A worker rank: connect to the scheduler, serve until the script ends; never returns.

    Runs the rank's share of ``workers`` (see :meth:`TaskLayout.processes_in`).
    """
    quiet_serving_logs()
    received, stop_requested = _stop_when_status_arrives(world, roles)
    try:
        message = _scheduler_address(world, options)
    except DeploymentError as exc:
        message = {"error": str(exc)}
    if "error" not in message:
        address = message["address"]
        import asyncio

        try:
            asyncio.run(
                serve_workers(
                    address=address,
                    host=_worker_host(options, address),
                    processes=layout.processes_in(
                        roles.worker_index(world.rank), options["workers"]
                    ),
                    threads=layout.threads,
                    memory=layout.memory,
                    name=f"rank-{world.rank}",
                    local_directory=context.scratch_dir,
                    death_timeout=options["death_timeout"],
                    stop_requested=stop_requested,
                    grace=_CLOSE_GRACE,
                    security=_security(message, context),
                )
            )
        except Exception as exc:
            world.send(
                roles.client_rank,
                TAG_FAILED,
                {"rank": world.rank, "host": _hostname(), "error": f"{type(exc).__name__}: {exc}"},
            )
    _end_serving_rank(world, context, _status_from_client(world, roles, received))


def _scheduler_address(world: Any, options: ResolvedOptions) -> dict[str, Any]:
    """Rank 0's message: the scheduler's address and host, or why there is none.

    Waits longer than rank 0 waits for the other ranks' hellos (``timeout``), so that
    rank 0's explanation of a missing rank arrives before this rank gives up.
    """
    return world.receive(
        TAG_ADDRESS,
        options["timeout"] + _ADDRESS_MARGIN,
        source=Roles.scheduler_rank,
        waiting_for="the scheduler's address from rank 0",
    )


def _worker_host(options: ResolvedOptions, scheduler_address: str) -> str:
    """Where a worker listens: the interface asked for, else this host's address on the
    route to the scheduler (loopback next to a loopback scheduler).

    Never ``None``: distributed would then listen on every interface, and so would the
    worker's plain-HTTP metrics server, which follows the worker's address.
    """
    if options["interface"]:
        from distributed.utils import get_ip_interface

        return get_ip_interface(options["interface"])
    from distributed.comm import get_address_host

    return address_facing([get_address_host(scheduler_address)])


# ------------------------------------------------------------------------------ client


def _client_stop(world: Any) -> Any:
    def stop() -> None:
        _finish(world, lifecycle.exit_status_hint(), client_side=True)

    return stop


def _failed_workers(world: Any, roles: Roles) -> Any:
    def check() -> None:
        failure = world.poll(TAG_FAILED)
        if failure is not None:
            raise DeploymentError(
                f"The worker on MPI rank {failure['rank']} ({failure['host']}) failed to "
                f"start: {failure['error']}"
            )

    return check


def _start_client(
    world: Any, roles: Roles, options: ResolvedOptions, context: StartContext, layout: TaskLayout
) -> Running:
    """Rank 1 of 3 or more: wait for the scheduler's address; the caller waits for workers."""
    drop_closed_connection_noise()
    stop = _client_stop(world)
    try:
        message = _scheduler_address(world, options)
    except BaseException:
        _finish(world, 1, client_side=True, deadline=_FAILED_START_DEADLINE)
        raise
    if "error" in message:
        # The ranks that are alive end at once on rank 0's error; a missing one never will.
        _finish(world, 1, client_side=True, deadline=_FAILED_START_DEADLINE)
        raise DeploymentError(f"MPI rank 0 could not start the scheduler: {message['error']}")
    same_host = message["host"] == _hostname()
    port = message.get("dashboard_port")
    if port and not same_host:
        logger.info("The dashboard is on %s at port %s (rank 0's host).", message["host"], port)
    return Running(
        address=message["address"],
        security=_security(message, context),
        expected_workers=roles.dask_workers(layout, options["workers"]),
        threads_per_worker=layout.threads,
        sizing_note=layout.reason,
        dashboard_link=f"http://127.0.0.1:{port}/status" if port and same_host else None,
        stop=[stop],
        check=_failed_workers(world, roles),
    )


def _start_scheduler_and_client(
    world: Any, options: ResolvedOptions, context: StartContext, host: str, layout: TaskLayout
) -> Running:
    """Rank 0 of 2: the scheduler in this process, the script here, the worker on rank 1."""
    roles = Roles(world.size)
    drop_closed_connection_noise()
    credentials = _new_credentials(options, context)
    try:
        security = _write_security(credentials, context)
        running = scheduler_here(
            options,
            context,
            host,
            layout,
            roles.dask_workers(layout, options["workers"]),
            stop=[_client_stop(world)],
            security=security,
        )
    except Exception as exc:
        world.send_to_all(TAG_ADDRESS, {"error": f"the scheduler failed to start: {exc}"})
        _finish(world, 1, client_side=True, deadline=_FAILED_START_DEADLINE)
        raise
    world.send_to_all(TAG_ADDRESS, _address_message(running.address, None, credentials))
    running.check = _failed_workers(world, roles)
    return running

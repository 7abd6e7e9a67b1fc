"""The ``ssh`` backend: a scheduler and workers on hosts reached over SSH (asyncssh).

Like ``dask-ssh --scheduler HOST HOST1 HOST1 HOST2`` or ``--hostfile .hosts``: the first
host runs the scheduler, every further line is one worker. What daskdeploy adds to
distributed's SSHCluster:

* a preflight of every host at once, with a connect timeout, naming the host and cause
  (unreachable, refused, silent port, key refused, unknown host key, no distributed or a
  different version) within seconds, before anything starts;
* addresses that work across hosts: the scheduler binds the address it was given as its
  host and each worker binds its own host's address, so hosts without a default route do
  not fall back to 127.0.0.1; a loopback scheduler with remote workers is refused;
* nothing left behind: close stops every remote process, and the scheduler ends itself
  when the client disconnects (also when the client is killed), taking its workers along.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import sys
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any, ClassVar

from ...credentials import CredentialFiles, Credentials
from ...errors import OptionError
from ...network import is_loopback
from ...options import (
    DEATH_TIMEOUT,
    Option,
    ResolvedOptions,
    duration_seconds,
    text,
    text_list,
    whole_number,
)
from ..base import (
    Availability,
    Backend,
    Running,
    StartContext,
)
from ..shared.nannies import stop_workers_through_nannies
from ..shared.scheduler_watch import preload_text
from .hosts import (
    end_remote_deployment,
    install_private_files,
    plan_hosts,
    preflight,
    read_hostfile,
    recordable_connect_options,
)
from .leftovers import HostLeftovers

__all__ = ["SSHBackend"]

logger = logging.getLogger(__name__)


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(
            f"expected a mapping of asyncssh.connect arguments such as "
            f"{{'port': 22, 'username': 'me'}}, got {value!r}"
        )
    return dict(value)


#: Top-level dask config sections the remote scheduler and workers inherit. distributed's
#: SSH classes pass the whole config in an environment variable set on the remote command
#: line; other sections (tokens of other tools, a password in
#: ``daskdeploy.ssh.connect_options``) stay in this process.
REMOTE_CONFIG_SECTIONS = (
    "distributed",
    "temporary-directory",
    "array",
    "dataframe",
    "optimization",
    "tokenize",
)


@contextlib.contextmanager
def _only_config_for_remote_processes() -> Iterator[None]:
    """While the remote processes start, this process's dask config holds only
    :data:`REMOTE_CONFIG_SECTIONS` (changed in place: distributed reads the global dict)."""
    import dask.config

    saved = copy.deepcopy(dask.config.config)
    kept = {key: value for key, value in saved.items() if key in REMOTE_CONFIG_SECTIONS}
    dask.config.config.clear()
    dask.config.config.update(copy.deepcopy(kept))
    try:
        yield
    finally:
        dask.config.config.clear()
        dask.config.config.update(saved)


class SSHBackend(HostLeftovers, Backend):
    """Scheduler on the first host, workers on the others, all started over SSH."""

    name = "ssh"
    kind = "cluster"
    summary = "scheduler and workers on hosts reached over SSH (asyncssh)"
    run_examples: ClassVar[tuple[str, ...]] = (
        "daskdeploy run --backend ssh --option hostfile=.hosts my_analysis.py",
    )
    default_workers = "one per host-list entry after the first"
    extra_options: ClassVar[tuple[Option, ...]] = (
        Option(
            "hosts",
            text_list,
            "Hosts: the first runs the scheduler, each further entry one worker slot "
            "(repeat a host for more workers there).",
            nullable=True,
        ),
        Option(
            "hostfile",
            text,
            "File with one host per line, as `srun hostname > .hosts` or "
            "`daskdeploy hostfile` writes it (instead of hosts).",
            nullable=True,
        ),
        Option("workers_per_host", whole_number(1), "Workers started for each host entry."),
        Option(
            "remote_python",
            text,
            "Python on the remote hosts (null: the same path as this Python).",
            nullable=True,
        ),
        Option(
            "connect_options",
            _mapping,
            "asyncssh.connect arguments: port, username, client_keys, known_hosts, ...",
        ),
        Option(
            "connect_timeout",
            duration_seconds,
            "Seconds to wait for each host's SSH answer before giving up.",
        ),
        Option(
            "interface",
            text,
            "Network interface the scheduler and workers bind, e.g. 'ib0' (null: the "
            "address each host was given by).",
            nullable=True,
        ),
        DEATH_TIMEOUT,
    )

    def available(self) -> Availability:
        """Available when asyncssh is installed."""
        if importlib.util.find_spec("asyncssh") is None:
            return Availability.missing(
                "asyncssh is not installed. Install it with: pip install 'daskdeploy[ssh]'"
            )
        return Availability.ok()

    def validate(self, options: ResolvedOptions) -> None:
        """Exactly one of hosts and hostfile; a usable host list; no workers option."""
        _host_list(options)
        if options["workers"] is not None:
            raise OptionError(
                "The ssh backend takes its worker count from the host list (one worker per "
                "entry after the first, times workers_per_host); drop the workers option."
            )

    def describe(self, options: ResolvedOptions) -> str:
        """Say which host runs what."""
        plan = plan_hosts(_host_list(options), options["workers_per_host"])
        workers = ", ".join(f"{host} x{count}" for host, count in plan.workers.items())
        return f"scheduler on {plan.scheduler}; {plan.total_workers} worker(s): {workers}."

    def start(self, options: ResolvedOptions, context: StartContext) -> Running:
        """Check every host, then start the scheduler and workers over SSH."""
        import dask
        import distributed
        from distributed import SpecCluster
        from distributed.deploy.ssh import Scheduler as SSHScheduler
        from distributed.deploy.ssh import Worker as SSHWorker

        plan = plan_hosts(_host_list(options), options["workers_per_host"])
        python = options["remote_python"] or sys.executable
        connect = {
            "connect_timeout": options["connect_timeout"],
            **options["connect_options"],
        }
        remote_tmp = preflight(plan.distinct_hosts, connect, python, distributed.__version__)
        # One private directory per host for scheduler and worker files and credentials,
        # removed at close. Its path is the same on every host: the remote processes take
        # the credentials' paths from one inherited dask config.
        temporary = set(remote_tmp.values())
        base = temporary.pop().rstrip("/") if len(temporary) == 1 else "/tmp"
        remote_dir = f"{base}/daskdeploy-{context.deployment_id}"
        remote_dirs = dict.fromkeys(plan.distinct_hosts, remote_dir)
        security, remote_config, credentials = None, {}, None
        if options["tls"]:
            credentials = Credentials.generate(context.deployment_id)
            security = credentials.write(context.scratch_dir / "tls").security()
            remote_files = CredentialFiles(PurePosixPath(remote_dir, "tls"))
            remote_config = remote_files.config()
        scheduler_kwargs: dict[str, Any] = {
            "port": 0,
            "dashboard": options["dashboard"],
            "dashboard_address": "127.0.0.1:0",
            "preload": [preload_text(max(options["timeout"], 30.0))],
            "local_directory": remote_dirs[plan.scheduler],
            "protocol": "tls://" if security is not None else None,
        }
        scheduler_kwargs.update(_bind(options, plan.scheduler))
        workers = {
            index: {
                "cls": SSHWorker,
                "options": {
                    "address": host,
                    "connect_options": connect,
                    "remote_python": python,
                    "worker_class": "distributed.Nanny",
                    "kwargs": {
                        "n_workers": count,
                        "nthreads": options["threads_per_worker"],
                        "memory_limit": options["memory_per_worker"] or "auto",
                        "death_timeout": options["death_timeout"],
                        "dashboard": False,
                        "local_directory": remote_dirs[host],
                        **_bind(options, host),
                    },
                },
            }
            for index, (host, count) in enumerate(plan.workers.items())
        }

        def end_remote() -> None:
            _end_remote(remote_dirs, connect, options["connect_timeout"], context.deployment_id)

        try:
            if credentials is not None:
                install_private_files(
                    plan.distinct_hosts,
                    str(remote_files.directory),
                    credentials.files(),
                    connect,
                    python,
                    options["connect_timeout"],
                )
            # distributed's SSH processes inherit this process's dask config, which tells
            # them (by path, on their host) which credentials to use.
            with _only_config_for_remote_processes(), dask.config.set(remote_config):
                cluster = SpecCluster(
                    workers=workers,
                    scheduler={
                        "cls": SSHScheduler,
                        "options": {
                            "address": plan.scheduler,
                            "connect_options": connect,
                            "remote_python": python,
                            "kwargs": scheduler_kwargs,
                        },
                    },
                    name=context.deployment_id,
                    silence_logs="warning",
                    security=security,
                )
        except BaseException:
            end_remote()
            raise
        return Running(
            address=cluster.scheduler_address,
            cluster=cluster,
            security=security,
            expected_workers=plan.total_workers,
            # The dashboard listens on the scheduler host's loopback: reach it by a tunnel.
            dashboard_link=None,
            stop=[end_remote],
            stop_workers=lambda: stop_workers_through_nannies(cluster),
            record={
                "remote_dirs": remote_dirs,
                "connect_options": recordable_connect_options(connect),
            },
        )


def _host_list(options: ResolvedOptions) -> list[str]:
    hosts, hostfile = options["hosts"], options["hostfile"]
    if (hosts is None) == (hostfile is None):
        raise OptionError(
            "Give the ssh backend either hosts=[scheduler, worker, ...] or hostfile=PATH "
            "(one of the two)."
        )
    try:
        listed = list(hosts) if hosts is not None else read_hostfile(hostfile)
        plan_hosts(listed, 1)
    except ValueError as exc:
        origin = "" if hosts is not None else f" in hostfile {hostfile}"
        raise OptionError(f"Unusable host list{origin} for the ssh backend: {exc}.") from None
    if is_loopback(listed[0]) and not all(is_loopback(host) for host in listed):
        raise OptionError(
            f"The scheduler host {listed[0]!r} is this machine's loopback, which the remote "
            f"workers cannot reach. List the scheduler by an address the workers can reach."
        )
    return listed


def _bind(options: ResolvedOptions, host: str) -> dict[str, str]:
    """Where a remote process listens: the interface asked for, else its host's address."""
    if options["interface"]:
        return {"interface": options["interface"]}
    return {"host": host}


def _end_remote(
    directories: dict[str, str], connect: dict[str, Any], timeout: float, deployment_id: str
) -> None:
    """At close: give the remote processes 3 s to exit, end any left, remove the dirs."""
    failed = end_remote_deployment(
        directories, connect, timeout, f"daskdeploy-{deployment_id}", grace=3.0
    )
    if failed:
        logger.warning(
            "Could not end daskdeploy's processes or remove its directory on %s",
            "; ".join(f"{host} ({directories[host]}): {cause}" for host, cause in failed.items()),
        )

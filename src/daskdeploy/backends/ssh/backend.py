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

import copy
import importlib.util
import logging
import sys
from collections.abc import Mapping
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
    HostConnections,
    end_remote_deployment,
    plan_hosts,
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


def _remote_config() -> dict[str, Any]:
    """This process's dask config, only :data:`REMOTE_CONFIG_SECTIONS` (a copy)."""
    import dask.config

    return {
        key: copy.deepcopy(value)
        for key, value in dask.config.config.items()
        if key in REMOTE_CONFIG_SECTIONS
    }


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
        import distributed

        from .processes import HostsCluster, RemoteScheduler, RemoteWorkers

        plan = plan_hosts(_host_list(options), options["workers_per_host"])
        connect = {
            "connect_timeout": options["connect_timeout"],
            **options["connect_options"],
        }
        security, files, file_config = None, {}, _no_files
        if options["tls"]:
            credentials = Credentials.generate(context.deployment_id)
            security = credentials.write(context.scratch_dir / "tls").security()
            files = credentials.files()

            def file_config(directory: str) -> dict[str, Any]:
                return CredentialFiles(PurePosixPath(directory, hosts.file_directory)).config()

        # One connection per host, checked, holding the deployment's private directory
        # (under the host's temporary directory, removed at close).
        hosts = HostConnections(
            plan.distinct_hosts,
            connect,
            options["remote_python"] or sys.executable,
            distributed.__version__,
            f"daskdeploy-{context.deployment_id}",
            files,
            options["connect_timeout"],
        )
        remote = _remote_config()

        def process(host: str, kwargs: dict[str, Any]) -> dict[str, Any]:
            return {
                "hosts": hosts,
                "address": host,
                "config": remote,
                "file_config": file_config,
                "kwargs": kwargs,
            }

        scheduler_kwargs: dict[str, Any] = {
            "port": 0,
            "dashboard": options["dashboard"],
            "dashboard_address": "127.0.0.1:0",
            "preload": [preload_text(max(options["timeout"], 30.0))],
            "protocol": "tls://" if security is not None else None,
            **_bind(options, plan.scheduler),
        }
        workers = {
            index: {
                "cls": RemoteWorkers,
                "options": process(
                    host,
                    {
                        "n_workers": count,
                        "nthreads": options["threads_per_worker"],
                        "memory_limit": options["memory_per_worker"] or "auto",
                        "death_timeout": options["death_timeout"],
                        "dashboard": False,
                        **_bind(options, host),
                    },
                ),
            }
            for index, (host, count) in enumerate(plan.workers.items())
        }
        cluster = HostsCluster(
            hosts,
            workers=workers,
            scheduler={
                "cls": RemoteScheduler,
                "options": process(plan.scheduler, scheduler_kwargs),
            },
            name=context.deployment_id,
            silence_logs="warning",
            security=security,
        )

        def end_remote() -> None:
            # The cluster's close ended everything over its connections; this is for the
            # hosts where that failed.
            left = {host: hosts.directories[host] for host in hosts.failed}
            if left:
                _end_remote(left, connect, options["connect_timeout"], context.deployment_id)

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
                "remote_dirs": dict(hosts.directories),
                "connect_options": recordable_connect_options(connect),
            },
        )


def _no_files(directory: str) -> dict[str, Any]:
    return {}


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

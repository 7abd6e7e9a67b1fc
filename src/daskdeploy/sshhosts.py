"""SSH hosts for the ``ssh`` backend: host lists, hostfiles, and a preflight of every host.

The preflight connects to every distinct host at once, with a connect timeout, and asks
the remote Python for its distributed version, so an unreachable host, a key that is not
accepted, a port that never speaks SSH or a Python without distributed is reported by
host and cause within seconds, before any scheduler or worker starts.
"""

from __future__ import annotations

import asyncio
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import DeploymentError

__all__ = ["HostPlan", "plan_hosts", "preflight", "read_hostfile"]


def read_hostfile(path: str | Path) -> list[str]:
    """Read one host per line (blank lines and ``#`` comments skipped); repeats are kept.

    Raises
    ------
    ValueError
        When the file is missing, unreadable or lists no host.
    """
    try:
        text = Path(path).expanduser().read_text()
    except OSError as exc:
        raise ValueError(f"cannot read the hostfile {str(path)!r}: {exc.strerror}") from None
    hosts = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    hosts = [host for host in hosts if host]
    if not hosts:
        raise ValueError(f"the hostfile {str(path)!r} lists no host")
    return hosts


class HostPlan:
    """Where the scheduler and the workers go.

    The first host runs the scheduler; every further line is one worker slot (times
    ``workers_per_host``), so a host listed twice gets twice the workers.
    """

    def __init__(self, scheduler: str, workers: dict[str, int]) -> None:
        self.scheduler = scheduler
        self.workers = workers

    @property
    def total_workers(self) -> int:
        return sum(self.workers.values())

    @property
    def distinct_hosts(self) -> list[str]:
        return list(dict.fromkeys([self.scheduler, *self.workers]))


def plan_hosts(hosts: Sequence[str], workers_per_host: int) -> HostPlan:
    """Split a host list into the scheduler host and worker counts per host.

    >>> plan = plan_hosts(["a", "b", "b", "c"], 2)
    >>> plan.scheduler, plan.workers
    ('a', {'b': 4, 'c': 2})
    """
    if len(hosts) < 2:
        raise ValueError(
            "list the scheduler's host first, then at least one worker host (repeat the "
            "first host to run workers there too)"
        )
    counts = Counter(hosts[1:])
    workers = {host: counts[host] * workers_per_host for host in dict.fromkeys(hosts[1:])}
    return HostPlan(hosts[0], workers)


_VERSION_PROBE = "import distributed, sys; print(distributed.__version__, sys.version.split()[0])"


async def _probe(host: str, options: Mapping[str, Any], python: str) -> str:
    import asyncssh

    async with asyncssh.connect(host, **options) as connection:
        result = await connection.run(
            f"{shlex.quote(python)} -c {shlex.quote(_VERSION_PROBE)}", check=False
        )
    if result.exit_status != 0:
        said = str(result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"the remote Python {python!r} cannot import distributed ({said[0]})")
    return str(result.stdout).split()[0]


def _cause(exc: BaseException, options: Mapping[str, Any]) -> str:
    import asyncssh

    port = options.get("port", 22)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return (
            f"no SSH answer within {options.get('connect_timeout')} s on port {port} "
            f"(a firewall, or something that is not sshd, on that port?)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused on port {port} (no sshd listening there?)"
    if isinstance(exc, asyncssh.PermissionDenied):
        return (
            f"authentication failed as {options.get('username') or 'the current user'} "
            f"(check client_keys / your SSH agent and the host's authorized_keys)"
        )
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return (
            f"its host key is not trusted: {exc} (add it to known_hosts, e.g. by one `ssh` "
            f"to the host, or pass connect_options known_hosts)"
        )
    if isinstance(exc, RuntimeError):
        return str(exc)
    if isinstance(exc, OSError) and "Name or service" in str(exc):
        return f"unknown host name ({exc})"
    return f"{type(exc).__name__}: {exc}"


def preflight(
    hosts: Sequence[str], options: Mapping[str, Any], python: str, local_version: str
) -> dict[str, str]:
    """Check every host at once; return each host's distributed version.

    Raises
    ------
    DeploymentError
        Naming every host that failed and why.
    """

    async def check_all() -> list[Any]:
        return await asyncio.gather(
            *(_probe(host, options, python) for host in hosts), return_exceptions=True
        )

    results = asyncio.run(check_all())
    problems = []
    versions = {}
    for host, result in zip(hosts, results, strict=True):
        if isinstance(result, BaseException):
            problems.append(f"  {host}: {_cause(result, options)}")
        elif result != local_version:
            problems.append(
                f"  {host}: distributed {result} there, {local_version} here; install the same "
                f"version on every host (or point remote_python at a matching environment)"
            )
        else:
            versions[host] = result
    if problems:
        raise DeploymentError("SSH hosts not usable, nothing was started:\n" + "\n".join(problems))
    return versions

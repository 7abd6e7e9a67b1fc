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

__all__ = [
    "HostPlan",
    "plan_hosts",
    "preflight",
    "read_hostfile",
    "remove_remote_directories",
]


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


_VERSION_PROBE = (
    "import distributed, tempfile; print(distributed.__version__, tempfile.gettempdir())"
)


async def _probe(host: str, options: Mapping[str, Any], python: str) -> tuple[str, str]:
    import asyncssh

    async with asyncssh.connect(host, **options) as connection:
        result = await connection.run(
            f"{shlex.quote(python)} -c {shlex.quote(_VERSION_PROBE)}", check=False
        )
    if result.exit_status != 0:
        said = str(result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"the remote Python {python!r} cannot import distributed ({said[0]})")
    version, tmp = str(result.stdout).split(maxsplit=1)
    return version, tmp.strip()


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
    """Check every host at once; return each host's temporary directory.

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
    temporary_directories = {}
    for host, result in zip(hosts, results, strict=True):
        if isinstance(result, BaseException):
            problems.append(f"  {host}: {_cause(result, options)}")
        elif result[0] != local_version:
            problems.append(
                f"  {host}: distributed {result[0]} there, {local_version} here; install the "
                f"same version on every host (or point remote_python at a matching environment)"
            )
        else:
            temporary_directories[host] = result[1]
    if problems:
        raise DeploymentError("SSH hosts not usable, nothing was started:\n" + "\n".join(problems))
    return temporary_directories


def remove_remote_directories(
    directories: Mapping[str, str], options: Mapping[str, Any], timeout: float
) -> list[str]:
    """Run ``rm -rf`` on every host for its directory; return the hosts where it failed."""
    import asyncssh

    async def remove(host: str, path: str) -> None:
        quoted = shlex.quote(path)
        # Wait (up to 5 s) for the host's scheduler/worker processes, whose command lines
        # name the directory, to exit: one still closing would recreate files in it.
        script = (
            f"for i in 1 2 3 4 5 6 7 8 9 10; do pgrep -f {quoted} >/dev/null || break; "
            f"sleep 0.5; done; rm -rf -- {quoted}"
        )
        async with asyncssh.connect(host, **options) as connection:
            await connection.run(script, check=True)

    async def remove_all() -> list[Any]:
        jobs = (asyncio.wait_for(remove(h, p), timeout + 6) for h, p in directories.items())
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(remove_all())
    return [
        host
        for host, result in zip(directories, results, strict=True)
        if isinstance(result, BaseException)
    ]

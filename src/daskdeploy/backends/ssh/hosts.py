"""SSH hosts for the ``ssh`` backend: host lists, hostfiles, and a preflight of every host.

The preflight connects to every distinct host at once, with a connect timeout, and asks
the remote Python for its distributed version, so an unreachable host, a key that is not
accepted, a port that never speaks SSH or a Python without distributed is reported by
host and cause within seconds, before any scheduler or worker starts.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import DeploymentError

__all__ = [
    "HostPlan",
    "end_remote_deployment",
    "plan_hosts",
    "preflight",
    "read_hostfile",
    "recordable_connect_options",
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
        """Workers over all hosts."""
        return sum(self.workers.values())

    @property
    def distinct_hosts(self) -> list[str]:
        """Every host once, the scheduler's first, in the order they were listed."""
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


# Reads the installed version without importing distributed (0.2 s instead of ~1 s per
# host): the workers' own start-up reports an installation too broken to import.
_VERSION_PROBE = (
    "import importlib.metadata as m, tempfile; "
    "print(m.version('distributed'), tempfile.gettempdir())"
)


async def _probe(host: str, options: Mapping[str, Any], python: str) -> tuple[str, str]:
    import asyncssh

    async with asyncssh.connect(host, **options) as connection:
        result = await connection.run(
            f"{shlex.quote(python)} -c {shlex.quote(_VERSION_PROBE)}", check=False
        )
    if result.exit_status != 0:
        said = str(result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(
            f"the remote Python {python!r} could not report its distributed version; set "
            f"remote_python to a Python with distributed installed (it said: {said[0]})"
        )
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


_WRITE_PRIVATE_FILES = """\
import json, os, sys
os.umask(0o077)
directory, files = sys.argv[1], json.load(sys.stdin)
os.makedirs(directory, mode=0o700, exist_ok=True)
os.chmod(directory, 0o700)
for name, text in files.items():
    path = os.path.join(directory, name)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(text)
"""


def install_private_files(
    hosts: Sequence[str],
    directory: str,
    files: Mapping[str, str],
    options: Mapping[str, Any],
    python: str,
    timeout: float,
) -> None:
    """Write ``files`` (name to text), ``0600`` in ``directory`` (``0700``), on every host.

    The contents travel on the SSH channel's standard input, never on a command line
    (which every user of the host could read with ``ps``).

    Raises
    ------
    DeploymentError
        Naming every host where writing failed and why.
    """
    import asyncssh

    command = shlex.join([python, "-c", _WRITE_PRIVATE_FILES, directory])
    payload = json.dumps(dict(files))

    async def install(host: str) -> None:
        async with asyncssh.connect(host, **options) as connection:
            result = await connection.run(command, input=payload, check=False)
        if result.exit_status != 0:
            said = str(result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"could not write {directory}: {said[0]}")

    async def install_all() -> list[Any]:
        jobs = (asyncio.wait_for(install(host), timeout + 5) for host in hosts)
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(install_all())
    problems = [
        f"  {host}: {_cause(result, options)}"
        for host, result in zip(hosts, results, strict=True)
        if isinstance(result, BaseException)
    ]
    if problems:
        raise DeploymentError(
            "Could not install the TLS credentials, nothing was started:\n" + "\n".join(problems)
        )


_SECRET_WORDS = ("password", "passphrase", "secret", "token")


def recordable_connect_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The connect options worth writing into a deployment record: simple values only.

    Passwords, passphrases and other secrets are dropped, and so is every value that is
    not a string, number, boolean, ``None`` or a list of strings (key objects, agents,
    callbacks), so the record can be JSON and holds nothing secret. ``daskdeploy cleanup``
    connects with what is left (paths of keys, user name, port, known_hosts).
    """
    kept: dict[str, Any] = {}
    for name, value in options.items():
        if any(word in name.lower() for word in _SECRET_WORDS):
            continue
        if value is None or isinstance(value, str | int | float | bool):
            kept[name] = value
        elif isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            kept[name] = list(value)
    return kept


def end_remote_deployment(
    directories: Mapping[str, str],
    options: Mapping[str, Any],
    timeout: float,
    tag: str,
    grace: float = 0.0,
) -> dict[str, str]:
    """On every host: end the processes whose command line holds ``tag``, remove the directory.

    The remote schedulers and workers of a deployment name their directory
    (``<tmp>/daskdeploy-<id>``) on their command lines. They get ``grace`` seconds to exit
    on their own (a normal close has told them to), then SIGTERM, then SIGKILL 3 s later
    (a worker busy in a pure-Python task does not stop sooner), then the directory goes:
    one still closing would recreate files in it. Hosts are handled at once, each within
    ``timeout`` seconds for connecting plus ``grace`` plus 10 s.

    Used at close (``grace`` a few seconds) and by ``daskdeploy cleanup`` of a deployment
    whose client died (no grace).

    Returns
    -------
    dict
        Host to cause, for the hosts where it failed.
    """
    import asyncssh

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", tag):
        raise ValueError(f"unsafe process tag {tag!r}")
    pattern = shlex.quote(tag)
    waits = " ".join(str(i) for i in range(max(0, round(grace / 0.25))))
    wait_first = (
        f"for i in {waits}; do pgrep -f {pattern} >/dev/null || break; sleep 0.25; done; "
        if waits
        else ""
    )

    async def end(host: str, path: str) -> None:
        # The script goes to `sh -s` on standard input: a command line holding the tag
        # (or the directory, which holds it) would be matched by pkill and killed itself,
        # and would keep pgrep on this or another host (sharing a process table) waiting.
        script = (
            f"{wait_first}pkill -TERM -f {pattern}; for i in 1 2 3 4 5 6; do "
            f"pgrep -f {pattern} >/dev/null || break; sleep 0.5; done; "
            f"pkill -KILL -f {pattern}; rm -rf -- {shlex.quote(path)}; true\n"
        )
        async with asyncssh.connect(host, **options) as connection:
            await connection.run("sh -s", input=script, check=True)

    async def end_all() -> list[Any]:
        jobs = (asyncio.wait_for(end(h, p), timeout + grace + 10) for h, p in directories.items())
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(end_all())
    return {
        host: _cause(result, options)
        for host, result in zip(directories, results, strict=True)
        if isinstance(result, BaseException)
    }

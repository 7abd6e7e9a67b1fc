"""SSH hosts for the ``ssh`` backend: host lists, hostfiles, and one connection per host.

:class:`HostConnections` connects to every distinct host at once, with a connect timeout,
and asks the remote Python for its distributed version (writing the deployment's private
files in the same remote command), so an unreachable host, a key that is not accepted, a
port that never speaks SSH or a Python without distributed is reported by host and cause
within seconds, before any scheduler or worker starts. The same connections then carry
the scheduler and workers, and the clean-up at close.
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
    "HostConnections",
    "HostPlan",
    "end_remote_deployment",
    "plan_hosts",
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


# One remote Python per host, before anything starts: it reports the installed distributed
# version without importing distributed (0.2 s instead of ~1 s per host: the workers' own
# start-up reports an installation too broken to import) and the host's temporary
# directory, and, when the version matches, writes the files it reads from standard input
# (never from a command line, which every user of the host could read with ``ps``),
# ``0600`` in a ``0700`` directory under that temporary directory.
_PREPARE = """\
import importlib.metadata as m, json, os, sys, tempfile
version, tmp = m.version("distributed"), tempfile.gettempdir()
print(version, tmp, flush=True)
wanted, name, files = sys.argv[1], sys.argv[2], json.load(sys.stdin)
if version != wanted or not files:
    sys.exit(0)
directory = os.path.join(tmp, name)
try:
    os.umask(0o077)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    for file, text in files.items():
        path = os.path.join(directory, file)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write(text)
except OSError as exc:
    print(f"could not write {directory}: {exc.strerror}", file=sys.stderr)
    sys.exit(3)
"""
_WRITE_FAILED = 3  # exit status of _PREPARE when the files could not be written


class _InstallError(RuntimeError):
    """The files could not be written on a host (the check itself passed)."""

    def __init__(self, message: str, tmp: str) -> None:
        super().__init__(message)
        self.tmp = tmp


def _last_line(result: Any) -> str:
    said = str(result.stderr or result.stdout).strip().splitlines()[-1:]
    return said[0] if said else "no output"


async def _probe(
    connection: Any, python: str, local_version: str, subdirectory: str, files: Mapping[str, str]
) -> tuple[str, str]:
    """Run :data:`_PREPARE` on ``connection``; return the remote version and temporary dir."""
    command = shlex.join([python, "-c", _PREPARE, local_version, subdirectory])
    result = await connection.run(command, input=json.dumps(dict(files)), check=False)
    if result.exit_status == _WRITE_FAILED:
        raise _InstallError(_last_line(result), str(result.stdout).split(maxsplit=1)[-1].strip())
    if result.exit_status != 0 or not str(result.stdout).strip():
        raise RuntimeError(
            f"the remote Python {python!r} could not report its distributed version; set "
            f"remote_python to a Python with distributed installed (it said: "
            f"{_last_line(result)})"
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


class HostConnections:
    """One SSH connection per host for a deployment's whole life.

    :meth:`open` connects to every host at once, with the connect timeout, and on each runs
    one remote Python that checks the distributed version and writes the deployment's
    private files (:data:`_PREPARE`). The scheduler and workers are then started as further
    sessions of the same connections (:mod:`.processes`), and :meth:`close` ends what is
    left on each host and removes its directory over them too: no host is connected to
    twice. Its coroutines run on the event loop of the cluster that starts the processes.

    Parameters
    ----------
    hosts
        Every host once.
    options
        ``asyncssh.connect`` arguments (``connect_timeout`` included).
    python
        The remote Python.
    local_version
        distributed's version here; every host must have the same.
    tag
        The name of the deployment's directory under each host's temporary directory
        (``daskdeploy-<id>``); its processes carry it on their command lines.
    files
        Name to text of the private files written into ``<tag>/tls`` (none: no files).
    timeout
        Seconds for each host to connect; the remote check gets 10 s more.
    """

    def __init__(
        self,
        hosts: Sequence[str],
        options: Mapping[str, Any],
        python: str,
        local_version: str,
        tag: str,
        files: Mapping[str, str],
        timeout: float,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", tag):
            raise ValueError(f"unsafe directory name {tag!r}")
        self.hosts = list(hosts)
        self.options = dict(options)
        self.python = python
        self.local_version = local_version
        self.tag = tag
        self.files = dict(files)
        self.timeout = timeout
        #: Host to its deployment directory, known once :meth:`open` has run.
        self.directories: dict[str, str] = {}
        #: Hosts :meth:`close` could not clean up, with the cause.
        self.failed: dict[str, str] = {}
        self._connections: dict[str, Any] = {}
        self.opened = False

    def connection(self, host: str) -> Any:
        """The open ``asyncssh`` connection to ``host``."""
        return self._connections[host]

    @property
    def file_directory(self) -> str:
        """Where the private files go, relative to a host's deployment directory."""
        return "tls"

    async def _prepare(self, host: str) -> tuple[str, str]:
        import asyncssh

        connection = await asyncssh.connect(host, **self.options)
        self._connections[host] = connection
        subdirectory = f"{self.tag}/{self.file_directory}" if self.files else self.tag
        return await _probe(connection, self.python, self.local_version, subdirectory, self.files)

    async def open(self) -> None:
        """Connect to, check and prepare every host at once.

        Raises
        ------
        DeploymentError
            Naming every host that failed and why; every connection is closed again and
            nothing is left on the hosts.
        """
        self.opened = True
        jobs = (asyncio.wait_for(self._prepare(host), self.timeout + 10) for host in self.hosts)
        results = await asyncio.gather(*jobs, return_exceptions=True)
        problems, unwritable = [], []
        for host, result in zip(self.hosts, results, strict=True):
            if isinstance(result, _InstallError):
                unwritable.append(f"  {host}: {result}")
                self.directories[host] = f"{result.tmp.rstrip('/')}/{self.tag}"  # partly written
            elif isinstance(result, BaseException):
                problems.append(f"  {host}: {_cause(result, self.options)}")
            elif result[0] != self.local_version:
                problems.append(
                    f"  {host}: distributed {result[0]} there, {self.local_version} here; "
                    f"install the same version on every host (or point remote_python at a "
                    f"matching environment)"
                )
            else:
                self.directories[host] = f"{result[1].rstrip('/')}/{self.tag}"
        if problems or unwritable:
            await self.close()
            if problems:
                raise DeploymentError(
                    "SSH hosts not usable, nothing was started:\n" + "\n".join(problems)
                )
            raise DeploymentError(
                "Could not install the TLS credentials, nothing was started:\n"
                + "\n".join(unwritable)
            )

    async def close(self, grace: float = 0.0) -> None:
        """End the deployment's processes and remove its directory on every host, then
        disconnect; hosts where that failed are in :attr:`failed`."""
        hosts = [host for host in self.directories if host in self._connections]
        jobs = (
            asyncio.wait_for(
                _end_over(self._connections[host], self.tag, self.directories[host], grace),
                grace + 10,
            )
            for host in hosts
        )
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for host, result in zip(hosts, results, strict=True):
            if isinstance(result, BaseException):
                self.failed[host] = _cause(result, self.options)
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close()
        await asyncio.gather(
            *(connection.wait_closed() for connection in connections), return_exceptions=True
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

    async def end(host: str, path: str) -> None:
        async with asyncssh.connect(host, **options) as connection:
            await _end_over(connection, tag, path, grace)

    async def end_all() -> list[Any]:
        jobs = (asyncio.wait_for(end(h, p), timeout + grace + 10) for h, p in directories.items())
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(end_all())
    return {
        host: _cause(result, options)
        for host, result in zip(directories, results, strict=True)
        if isinstance(result, BaseException)
    }


async def _end_over(connection: Any, tag: str, path: str, grace: float) -> None:
    """On ``connection``'s host: end the processes whose command line holds ``tag`` (after
    ``grace`` seconds to exit by themselves), then remove ``path``."""
    pattern = shlex.quote(tag)
    waits = " ".join(str(i) for i in range(max(0, round(grace / 0.25))))
    wait_first = (
        f"for i in {waits}; do pgrep -f {pattern} >/dev/null || break; sleep 0.25; done; "
        if waits
        else ""
    )
    # The script goes to `sh -s` on standard input: a command line holding the tag (or the
    # directory, which holds it) would be matched by pkill and killed itself, and would keep
    # pgrep on this or another host (sharing a process table) waiting.
    script = (
        f"{wait_first}pkill -TERM -f {pattern}; for i in 1 2 3 4 5 6; do "
        f"pgrep -f {pattern} >/dev/null || break; sleep 0.5; done; "
        f"pkill -KILL -f {pattern}; rm -rf -- {shlex.quote(path)}; true\n"
    )
    await connection.run("sh -s", input=script, check=True)

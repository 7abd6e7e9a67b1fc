"""Several real SSH "hosts" on one Linux machine.

:class:`LocalSSHHosts` creates ``namespaces`` network namespaces joined by a private bridge,
each with one address of a random ``10.2xx.y.0/24`` subnet on its interface ``eth0`` and
no default route, and runs a private ``sshd`` inside every namespace (plus, optionally,
one on ``127.0.0.1`` in the machine's own namespace), all on the same high port, with
one host key, key-only root login and a fresh client key. The hosts share the machine's
file system, users, processes (one PID namespace) and host name: only the network
differs. :meth:`LocalSSHHosts.stop` kills everything that runs inside the namespaces or in
a session of the loopback ``sshd`` and removes namespaces, bridge and files again. It
needs root, Linux, and the Debian packages ``openssh-server`` (``sshd``, ``ssh``,
``ssh-keygen``), ``iproute2`` (``ip``) and ``util-linux`` (``nsenter``);
:func:`unavailable_reason` says why it cannot run when it cannot.

The project's tests use it, and so can anyone who wants to try the SSH backend on a
laptop::

    python -m daskdeploy.testing.ssh --namespaces 3

prints the host addresses, the port and a ready ``ssh`` command line, and keeps the hosts
up until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import random
import re
import secrets
import selectors
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..processes import same_process, start_ticks
from . import _system
from ._harness import DaemonHarness, StartError, serve
from ._system import find_processes, free_ports, kill_processes
from ._system import search_path as _search_path
from ._system import which as _which

__all__ = ["MARKER_VAR", "LocalSSHHosts", "cleanup_stale", "main", "unavailable_reason"]

REQUIRED_BINARIES = ("sshd", "ssh", "ssh-keygen", "ip", "nsenter")

#: Environment variable (set to the harness's root directory) that every ``sshd`` of the
#: harness puts into its sessions (``SetEnv``), so that :meth:`LocalSSHHosts.stop` finds
#: processes started over SSH even after they were re-parented to init.
MARKER_VAR = "DASKDEPLOY_LOCAL_SSH"

#: Name of the (only) network interface inside every namespace.
INTERFACE = "eth0"

_NETNS_DIR = "/run/netns"
_SSHD_PRIVSEP_DIR = "/run/sshd"
_BRIDGE_NF_SYSCTL = "/proc/sys/net/bridge/bridge-nf-call-iptables"
_SUBNET_SECOND_OCTETS = (200, 250)  # subnets are picked from 10.200.0.0/16 ... 10.250.0.0/16
_MAX_NAMESPACES = 250  # .2 ... .251 of a /24; also keeps veth names ("dv" + 8 + "-" + 3) short
_TERM_GRACE = 2.0  # seconds between SIGTERM and SIGKILL in stop()
_OWNER_FILE = "owner"
_KEX_ALGORITHMS = (
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
)


def _root_password_locked() -> bool:
    """True when root's password field starts with ``!``.

    OpenSSH without PAM (``UsePAM no``) refuses every login, keys included, to an account
    whose password is locked that way ("User root not allowed because account is locked").
    Debian's default ``*`` is fine.
    """
    try:
        with open("/etc/shadow") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name == "root":
                    return rest.startswith("!")
    except OSError:
        pass
    return False


def unavailable_reason() -> str | None:
    """Say why local SSH hosts cannot be started on this machine.

    Returns
    -------
    str or None
        ``None`` when :meth:`LocalSSHHosts.start` can work here; otherwise one sentence
        naming what is missing (Linux, root, or which programs) and how to install it.
    """

    def locked_root() -> list[str]:
        if os.geteuid() != 0 or not _root_password_locked():
            return []
        return [
            "root's password is locked ('!' in /etc/shadow), so sshd without PAM refuses "
            "root logins (unlock with \"usermod -p '*' root\")"
        ]

    return _system.unavailable_reason(
        "Local SSH hosts",
        f"Local SSH hosts need Linux (this is {sys.platform}).",
        REQUIRED_BINARIES,
        "apt-get install openssh-server iproute2",
        locked_root,
    )


# --------------------------------------------------------------------------- processes


def _free_port() -> int:
    """Pick a free TCP port on 127.0.0.1."""
    return free_ports(1)[0]


def _used_networks(table: str = "all") -> list[ipaddress.IPv4Network]:
    """Return the IPv4 prefixes routed in this network namespace (default route excluded)."""
    result = subprocess.run(
        [_which("ip") or "ip", "-4", "route", "show", "table", table],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    networks = []
    for line in result.stdout.splitlines():
        words = line.split()
        if words and words[0] in ("broadcast", "local", "unicast", "multicast"):
            words = words[1:]
        if not words or words[0] == "default":
            continue
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.IPv4Network(words[0], strict=False))
    return networks


def _pick_subnet() -> ipaddress.IPv4Network:
    """Pick a random ``10.X.Y.0/24`` (X in 200..250) that overlaps no route of this host."""
    used = _used_networks()
    low, high = _SUBNET_SECOND_OCTETS
    rng = random.SystemRandom()
    for _ in range(200):
        net = ipaddress.IPv4Network(f"10.{rng.randint(low, high)}.{rng.randint(0, 255)}.0/24")
        if not any(net.overlaps(other) for other in used):
            return net
    raise StartError(f"found no free /24 in 10.{low}.0.0/16 ... 10.{high}.0.0/16", [])


def _namespace_pids(namespaces: Iterable[str]) -> set[int]:
    """Pids of the processes in the named network namespaces (``ip netns pids``).

    psutil knows nothing of namespaces; ``ip`` compares every process's network namespace
    with ``/run/netns/NAME``. A namespace that does not exist (any more) has none.
    """
    lines = "".join(f"netns pids {ns}\n" for ns in namespaces)
    if not lines:
        return set()
    try:
        result = subprocess.run(
            [_which("ip") or "ip", "-force", "-batch", "-"],
            input=lines,
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError):
        return set()
    return {int(word) for word in result.stdout.split() if word.isdigit()}


def _find_processes(
    root: Path | None, namespaces: Iterable[str], tree_root: int | None
) -> dict[int, str]:
    """Running processes of the hosts living in ``root``: ``{pid: arguments}``.

    Those are processes in one of the network namespaces ``namespaces``, processes whose
    environment carries ``MARKER_VAR=root``, and ``tree_root`` (the loopback sshd) with
    all its descendants; never this process or its ancestors.
    """
    return find_processes(
        marker=(MARKER_VAR, str(root)) if root is not None else None,
        members=_namespace_pids(namespaces),
        trees=[tree_root] if tree_root is not None else [],
    )


def _delete_network(links: list[str], namespaces: list[str]) -> None:
    """Delete network devices and namespaces; missing ones are no error."""
    lines = [f"link del {link}" for link in links] + [f"netns del {ns}" for ns in namespaces]
    if not lines:
        return
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        subprocess.run(
            [_which("ip") or "ip", "-force", "-batch", "-"],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


def cleanup_stale(directory: str | os.PathLike[str] = "/tmp") -> list[Path]:
    """Remove what :class:`LocalSSHHosts` left behind in processes that died unstopped.

    A process killed with SIGKILL (or ending through ``os._exit``) cannot stop its hosts:
    its ``sshd``'s die with it, but the namespaces, bridge, root directory and processes
    started over SSH stay. Every default root (``DIRECTORY/ddssh-*``) records its owner
    (pid and start time) and its namespaces and links; this kills the processes of every
    root whose owner is gone, deletes its namespaces and links and removes it. Hosts of
    living processes are left alone. :meth:`LocalSSHHosts.start` calls it.

    Parameters
    ----------
    directory : str or os.PathLike
        Where default roots are created.

    Returns
    -------
    list of Path
        The roots cleaned up.
    """
    cleaned = []
    for owner_file in sorted(Path(directory).glob(f"ddssh-*/{_OWNER_FILE}")):
        root = owner_file.parent
        try:
            owner, started, namespaces, links = _read_owner(owner_file)
        except (OSError, ValueError):
            continue
        if same_process(owner, started):
            continue  # its owner lives
        kill_processes(lambda r=root, n=namespaces: _find_processes(r, n, None), grace=0)
        _delete_network(links, namespaces)
        shutil.rmtree(root, ignore_errors=True)
        cleaned.append(root)
    return cleaned


def _write_owner(root: Path, namespaces: list[str], links: list[str]) -> None:
    """Record this process as the owner of ``root`` and what to delete when it is gone."""
    pid = os.getpid()
    text = f"{pid} {start_ticks(pid)}\n{' '.join(namespaces)}\n{' '.join(links)}\n"
    tmp = root / f"{_OWNER_FILE}.tmp"
    tmp.write_text(text)
    tmp.replace(root / _OWNER_FILE)


def _read_owner(path: Path) -> tuple[int, int | None, list[str], list[str]]:
    """Owner pid and start ticks (None if unknown), namespaces and links of a root."""
    owner, namespaces, links = [*path.read_text().splitlines(), "", ""][:3]
    pid, started = owner.split()
    ticks = None if started == "None" else int(started)
    return int(pid), ticks, namespaces.split(), links.split()


class _SilentListener:
    """A TCP listener on 127.0.0.1 that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.setblocking(False)
        self.port = int(self._sock.getsockname()[1])
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name=f"silent-port-{self.port}", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not sel.select(timeout=0.1):
                    continue
                with contextlib.suppress(OSError):
                    conn, _ = self._sock.accept()
                    self._conns.append(conn)  # held open, never read or written

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in [*self._conns, self._sock]:
            with contextlib.suppress(OSError):
                conn.close()
        self._conns = []


# --------------------------------------------------------------------------- hosts


class LocalSSHHosts(DaemonHarness):
    """SSH hosts on this machine: one ``sshd`` per network namespace, plus one on loopback.

    The namespaces hang off a bridge ``ddb<hex8>`` in the machine's own namespace, which
    holds address ``.1`` of the subnet (so this machine reaches every host directly), and
    reach each other over it. Inside a namespace there is ``lo`` and :data:`INTERFACE`
    (``eth0``) with the host's address, and *no default route*: software that finds "its"
    address through the default route (as dask's ``get_ip()`` does) falls back to
    127.0.0.1 there, so callers must pass ``interface="eth0"`` or the host address.

    Every ``sshd`` listens on the same :attr:`port`, uses one shared host key, allows only
    root with the key :attr:`client_key` (no PAM, no passwords) and sets
    :data:`MARKER_VAR` in its sessions. Files (keys, ``known_hosts``, ``sshd_config`` and
    log per host, pid files) live under ``root``, which :meth:`stop` removes.

    Everything else is shared with the machine: file system, users, processes (a process
    started over SSH on one host is visible and killable from every other one) and the
    host name (``hostname`` prints the same everywhere; ``hostname -I`` differs).

    Parameters
    ----------
    namespaces : int
        Number of namespace hosts (0 ... 250).
    loopback : bool
        Also run an ``sshd`` on ``127.0.0.1`` in this machine's own namespace.
    root : str or os.PathLike, optional
        A directory that must not exist or be empty, without whitespace, ``%`` or ``"``;
        default: a fresh ``/tmp/ddssh-XXXXXXXX`` at every :meth:`start`.

    Attributes
    ----------
    hosts : list of str
        IPv4 addresses of the namespace hosts, e.g. ``["10.213.7.2", "10.213.7.3"]``
        (empty until started and after :meth:`stop`).
    namespaces : list of str
        Names of their network namespaces (``/run/netns/<name>``), in the same order.
    loopback : str or None
        ``"127.0.0.1"`` when a loopback ``sshd`` was asked for, else None.
    port : int
        The port every ``sshd`` listens on (0 until started).
    network : str or None
        The subnet of the namespace hosts, e.g. ``"10.213.7.0/24"``.

    Notes
    -----
    The ``sshd`` processes are told to die with the *thread* that called :meth:`start`
    (``PR_SET_PDEATHSIG``), so call it from a thread that outlives the hosts (not from a
    short-lived worker thread). A process killed with SIGKILL (or ending in ``os._exit``)
    cannot clean up: its namespaces (``ip netns list``), bridge, root directory and the
    processes started over SSH stay until the next :meth:`start` (or
    :func:`cleanup_stale`) removes them; that only works for default roots.

    Examples
    --------
    >>> with LocalSSHHosts(namespaces=2) as ssh_hosts:  # doctest: +SKIP
    ...     ssh_hosts.ssh(ssh_hosts.hosts[0], "hostname -I").stdout
    '10.213.7.2 \\n'
    """

    #: Name of the (only) network interface inside every namespace.
    interface = INTERFACE

    _label = "LocalSSHHosts"
    _not_started = "the LocalSSHHosts are not started"
    _root_prefix = "ddssh-"
    _daemon_title = "sshd for {name}"
    # Another process may grab the port, or pick the same subnet, meanwhile.
    _clashes = ("Address already in use", "subnet clash")

    def __init__(
        self,
        namespaces: int = 3,
        loopback: bool = True,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        if not 0 <= namespaces <= _MAX_NAMESPACES:
            raise ValueError(f"namespaces must be between 0 and {_MAX_NAMESPACES}")
        if namespaces == 0 and not loopback:
            raise ValueError("nothing to start: namespaces=0 and loopback=False")
        super().__init__(root)  # self._procs: by "loopback" or namespace name
        if self._root_arg is not None and re.search(r'[\s%"]', str(self._root_arg)):
            raise ValueError(f'root {str(self._root_arg)!r} must not contain whitespace, % or "')
        self._count = namespaces
        self.loopback: str | None = "127.0.0.1" if loopback else None
        self.hosts: list[str] = []
        self.namespaces: list[str] = []
        self.port = 0
        self.network: str | None = None
        self._bridge: str | None = None
        self._veths: list[str] = []
        self._silent: _SilentListener | None = None

    # ------------------------------------------------------------------ properties

    @property
    def client_key(self) -> Path:
        """The client's private key (ed25519, no passphrase, mode 0600); ``.pub`` beside it."""
        return self.root / "client_key"

    @property
    def known_hosts(self) -> Path:
        """A ``known_hosts`` file with every host's key at ``[address]:port``."""
        return self.root / "known_hosts"

    @property
    def all_hosts(self) -> list[str]:
        """:attr:`hosts` followed by :attr:`loopback` when there is one."""
        return [*self.hosts, *([self.loopback] if self.loopback and self._root else [])]

    def __repr__(self) -> str:
        where = f"port={self.port} {self._root}" if self._root is not None else "stopped"
        return f"<LocalSSHHosts hosts={self.all_hosts} {where}>"

    # ------------------------------------------------------------------ clients

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``asyncssh.connect(host, **options)`` to any host.

        Returns
        -------
        dict
            ``port``, ``username`` (``"root"``), ``client_keys`` (the key's path) and
            ``known_hosts`` (the path of :attr:`known_hosts`).
        """
        return {
            "port": self.port,
            "username": "root",
            "client_keys": [str(self.client_key)],
            "known_hosts": str(self.known_hosts),
        }

    def ssh_command(self, host: str, command: str | None = None) -> list[str]:
        """The ``ssh`` command line that runs ``command`` on ``host`` (login when None).

        It reads no ``ssh_config`` (``-F none``), checks the host key strictly against
        :attr:`known_hosts` and never prompts.
        """
        args = [
            _which("ssh") or "ssh",
            "-F",
            "none",
            "-i",
            str(self.client_key),
            "-p",
            str(self.port),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            f"root@{host}",
        ]
        return args if command is None else [*args, command]

    def ssh(self, host: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a shell command on ``host`` through the ``ssh`` program.

        ``ssh`` waits until the remote command *and everything holding its stdout/stderr*
        ends: start background processes as ``nohup CMD >/dev/null 2>&1 &``.

        Parameters
        ----------
        host : str
            One of :attr:`all_hosts`.
        command : str
            A command line for root's login shell on the host.
        timeout : float
            Seconds before :class:`subprocess.TimeoutExpired` is raised.

        Returns
        -------
        subprocess.CompletedProcess
            With text ``stdout`` and ``stderr``; the return code (255 for an SSH error) is
            not checked.
        """
        return subprocess.run(
            self.ssh_command(host, command),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def netns_prefix(self, host: str) -> list[str]:
        """Command prefix that runs a local program inside ``host``'s network namespace.

        Returns
        -------
        list of str
            ``["nsenter", "--net=/run/netns/NAME"]`` for a namespace host, ``[]`` for the
            loopback host.
        """
        if self.loopback is not None and host == self.loopback:
            return []
        try:
            namespace = self.namespaces[self.hosts.index(host)]
        except ValueError:
            raise ValueError(f"{host!r} is not one of {self.all_hosts}") from None
        return [_which("nsenter") or "nsenter", f"--net={_NETNS_DIR}/{namespace}"]

    def silent_port(self) -> int:
        """A port on 127.0.0.1 that accepts TCP connections but never speaks.

        The listener starts at the first call and closes at :meth:`stop`; an SSH client
        without a connect time-out hangs on it (asyncssh: ~120 s by default).

        Returns
        -------
        int
            The port number.
        """
        with self._lock:
            if self._root is None:
                raise RuntimeError("the LocalSSHHosts are not started")
            if self._silent is None:
                self._silent = _SilentListener()
            return self._silent.port

    def remote_processes(self, pattern: str) -> list[int]:
        """Running processes on the hosts whose command line contains ``pattern``.

        A process is on the hosts when it runs in one of the namespaces, descends from the
        loopback ``sshd`` or carries :data:`MARKER_VAR` (every SSH session does, and its
        children inherit it unless they clear their environment). The ``sshd`` daemons
        themselves count too. Zombies do not.

        Parameters
        ----------
        pattern : str
            A substring of the arguments joined by spaces, e.g. ``"sleep 1000"``.

        Returns
        -------
        list of int
            Sorted pids.
        """
        found = []
        for pid, args in self._harness_processes().items():
            if pattern in args:
                found.append(pid)
        return sorted(found)

    def _harness_processes(self) -> dict[int, str]:
        """Running processes belonging to the hosts: ``{pid: arguments joined by spaces}``."""
        loopback = self._procs.get("loopback")
        return _find_processes(
            self._root,
            self.namespaces,
            loopback.pid if loopback is not None and loopback.poll() is None else None,
        )

    # ------------------------------------------------------------------ start

    def start(self, timeout: float = 30.0) -> LocalSSHHosts:
        """Create the namespaces and bridge, start every ``sshd`` and wait until all work.

        It is ready when ``ssh HOST true`` succeeds for every host from this machine and,
        with two or more namespaces, from the first namespace to the second (when a
        firewall drops bridged traffic, ``net.bridge.bridge-nf-call-iptables`` is set to 0
        with a :class:`RuntimeWarning`). Leftovers of processes that died without stopping
        their hosts are removed first (:func:`cleanup_stale`).

        ``timeout`` (seconds, for the whole start-up), the result (``self``, so that
        ``hosts = LocalSSHHosts().start()`` works) and the ``RuntimeError`` on failure are
        those of :meth:`DaemonHarness.start <daskdeploy.testing._harness.DaemonHarness.start>`.
        """
        return super().start(timeout)

    def _unavailable(self) -> str | None:
        return unavailable_reason()

    def _make_root(self, given: Path | None) -> Path:
        """Remove what dead owners left (:func:`cleanup_stale`), then make a 0700 root."""
        with contextlib.suppress(OSError):
            cleanup_stale()
        root = super()._make_root(given)
        root.chmod(0o700)
        _write_owner(root, [], [])
        return root

    def _run(
        self, args: list[str], deadline: float, what: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        remaining = max(1.0, min(15.0, deadline - time.monotonic()))
        try:
            result = subprocess.run(
                [_which(args[0]) or args[0], *args[1:]],
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=remaining,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StartError(f"{what} timed out", []) from None
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise StartError(f"{what} failed (code {result.returncode}): {detail}", [])
        return result

    def _start(self, deadline: float) -> None:
        root = self.root
        for key in ("host_key", "client_key"):
            self._run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"{key}@ddssh",
                    "-f",
                    str(root / key),
                ],
                deadline,
                "ssh-keygen",
            )
        self.client_key.chmod(0o600)
        (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
        (root / "log").mkdir(mode=0o700)
        self.port = _free_port()
        if self._count:
            self._create_network(deadline)
        os.makedirs(_SSHD_PRIVSEP_DIR, mode=0o755, exist_ok=True)  # sshd's privsep chroot
        self._write_configs(deadline)
        host_key = (root / "host_key.pub").read_text().split()
        (root / "known_hosts").write_text(
            "".join(f"[{h}]:{self.port} {host_key[0]} {host_key[1]}\n" for h in self.all_hosts)
        )
        sshd = _which("sshd") or "/usr/sbin/sshd"
        targets = [
            (ns, [_which("nsenter") or "nsenter", f"--net={_NETNS_DIR}/{ns}"], host)
            for ns, host in zip(self.namespaces, self.hosts, strict=True)
        ]
        if self.loopback is not None:
            targets.append(("loopback", [], self.loopback))
        for name, prefix, _ in targets:
            config, log = root / f"sshd-{name}.conf", root / "log" / f"sshd-{name}.log"
            self._start_sshd(name, [*prefix, sshd, "-D", "-f", str(config), "-E", str(log)])
        for name, _, host in targets:
            self._wait_accepting(name, host, deadline)
        self._check_logins(deadline)

    def _create_network(self, deadline: float) -> None:
        tag = secrets.token_hex(4)
        net = _pick_subnet()
        addresses = list(net.hosts())  # .1 ... .254
        gateway = addresses[0]
        self.network = str(net)
        self._bridge = f"ddb{tag}"
        self.namespaces = [f"dd{tag}-{k}" for k in range(1, self._count + 1)]
        self._veths = [f"dv{tag}-{k}" for k in range(1, self._count + 1)]
        self.hosts = [str(addresses[k]) for k in range(1, self._count + 1)]
        inet = f"{net.prefixlen}"
        lines = [f"netns add {ns}" for ns in self.namespaces]
        lines += [
            f"link add {self._bridge} type bridge",
            f"addr add {gateway}/{inet} dev {self._bridge}",
            f"link set {self._bridge} up",
        ]
        for ns, veth in zip(self.namespaces, self._veths, strict=True):
            lines += [
                f"link add {veth} type veth peer name {INTERFACE} netns {ns}",
                f"link set {veth} master {self._bridge} up",
            ]
        _write_owner(self.root, self.namespaces, [*self._veths, self._bridge])
        self._run(
            ["ip", "-batch", "-"],
            deadline,
            "creating namespaces and bridge",
            stdin="\n".join(lines) + "\n",
        )
        for ns, host in zip(self.namespaces, self.hosts, strict=True):
            inner = [
                "link set lo up",
                f"addr add {host}/{inet} dev {INTERFACE}",
                f"link set {INTERFACE} up",
            ]
            self._run(
                ["ip", "-n", ns, "-batch", "-"],
                deadline,
                f"configuring {ns}",
                stdin="\n".join(inner) + "\n",
            )
        # A concurrent instance may have picked the same subnet between check and use.
        routes = [n for n in _used_networks("main") if n.overlaps(net)]
        if len(routes) != 1:
            raise StartError(f"subnet clash: {net} is routed more than once", [])

    def _sshd_config(self, name: str, listen: str, penalties: bool) -> str:
        root = self.root
        lines = [
            f"# {name}: written by daskdeploy.testing.ssh",
            f"ListenAddress {listen}",
            f"Port {self.port}",
            "AddressFamily inet",
            f"HostKey {root}/host_key",
            f"PidFile {root}/sshd-{name}.pid",
            f"AuthorizedKeysFile {root}/authorized_keys",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "MaxSessions 100",
            "MaxStartups 100:30:200",
            "MaxAuthTries 10",
            "LoginGraceTime 30",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "AllowTcpForwarding yes",
            "LogLevel INFO",
            # The post-quantum default (sntrup761x25519 in OpenSSH 9.x) costs ~0.13 s of CPU
            # per connection on a small VM; these tests need speed, not secrecy.
            "KexAlgorithms " + ",".join(_KEX_ALGORITHMS),
            f"SetEnv {MARKER_VAR}={root}",
            "Subsystem sftp internal-sftp",
        ]
        if penalties:
            # OpenSSH >= 9.8 refuses a source address for a while after failed or silent
            # connections: tests that provoke failures on purpose would lock themselves out.
            lines.append("PerSourcePenalties no")
        return "\n".join(lines) + "\n"

    def _write_configs(self, deadline: float) -> None:
        root = self.root
        listens = dict(zip(self.namespaces, self.hosts, strict=True))
        if self.loopback is not None:
            listens["loopback"] = self.loopback
        penalties = True
        first = next(iter(listens))
        for name, listen in listens.items():
            path = root / f"sshd-{name}.conf"
            path.write_text(self._sshd_config(name, listen, penalties))
            if name != first:
                continue
            check = [_which("sshd") or "/usr/sbin/sshd", "-t", "-f", str(path)]
            result = subprocess.run(check, capture_output=True, text=True, timeout=15)
            if result.returncode != 0 and "PerSourcePenalties" in result.stderr:
                penalties = False  # OpenSSH < 9.8 does not know the option (nor need it)
                path.write_text(self._sshd_config(name, listen, penalties))
                result = subprocess.run(check, capture_output=True, text=True, timeout=15)
            if result.returncode != 0:
                raise StartError(f"sshd -t rejects {path}: {result.stderr.strip()}", [])

    def _start_sshd(self, name: str, args: list[str]) -> None:
        env = dict(os.environ, PATH=_search_path())
        self._spawn(name, args, env, self.root / "log" / f"sshd-{name}.out")

    def _wait_accepting(self, name: str, host: str, deadline: float) -> None:
        """Wait until ``host:port`` greets with an SSH banner (not just accepts TCP)."""

        def greets() -> bool:
            try:
                with socket.create_connection((host, self.port), timeout=0.5) as sock:
                    sock.settimeout(max(0.2, min(2.0, deadline - time.monotonic())))
                    return sock.recv(64).startswith(b"SSH-")
            except OSError:
                return False

        self._wait(f"sshd on {host}:{self.port}", greets, deadline, [name])

    def _login_probes(self) -> list[tuple[str, list[str]]]:
        """``ssh ... true`` command lines: to every host, and from one namespace to another.

        One namespace-to-namespace login is enough: all of them cross the same bridge, so a
        firewall that drops bridged traffic drops it for every pair.
        """

        def login(host: str) -> list[str]:
            args = self.ssh_command(host, "true")
            args[args.index("ConnectTimeout=10")] = "ConnectTimeout=5"
            return args

        probes = [(f"ssh to {host}", login(host)) for host in self.all_hosts]
        if len(self.hosts) > 1:
            host, other = self.hosts[0], self.hosts[1]
            probes.append(
                (
                    f"ssh from {host} to {other}",
                    [*self.netns_prefix(host), *login(other)],
                )
            )
        return probes

    def _run_probes(self, deadline: float) -> list[str]:
        """Run every login probe at once; return a description of each failure."""
        started: list[tuple[str, Any, subprocess.Popen[bytes]]] = []
        with contextlib.ExitStack() as files:
            try:
                for what, args in self._login_probes():
                    out = files.enter_context(tempfile.TemporaryFile())
                    proc = subprocess.Popen(
                        args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
                    )
                    started.append((what, out, proc))
                while any(proc.poll() is None for _, _, proc in started):
                    self._check_alive()  # a dead sshd is reported at once, with its log
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.02)
                failures = []
                for what, out, proc in started:
                    if proc.poll() is None:
                        failures.append(f"{what}: timed out")
                    elif proc.returncode != 0:
                        out.seek(0)
                        text = out.read().decode(errors="replace").strip()
                        failures.append(f"{what}: {text}")
                return failures
            finally:
                for _, _, proc in started:
                    if proc.poll() is None:
                        proc.kill()
                    proc.wait()

    def _check_logins(self, deadline: float) -> None:
        unblocked = False
        failures: list[str] = []
        for _ in range(3):
            failures = self._run_probes(deadline)
            if not failures:
                return
            between = all(" from " in failure for failure in failures)
            if between and not unblocked and self._unblock_bridge():
                unblocked = True
                continue
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        detail = "; ".join(failures)
        if all(" from " in failure for failure in failures):
            detail += (
                " (this machine reaches every host but the namespaces do not reach each "
                "other: does a firewall drop bridged traffic?)"
            )
        raise StartError(f"SSH logins failed: {detail}", list(self._procs))

    @staticmethod
    def _unblock_bridge() -> bool:
        """Stop bridged traffic from passing iptables (whose FORWARD chain may drop it).

        Sets the machine-wide ``net.bridge.bridge-nf-call-iptables`` to 0 and warns; it is
        not set back (other bridges created meanwhile may depend on it). Returns whether it
        was changed.
        """
        try:
            with open(_BRIDGE_NF_SYSCTL) as f:
                if f.read().strip() != "1":
                    return False
            with open(_BRIDGE_NF_SYSCTL, "w") as f:
                f.write("0\n")
        except OSError:
            return False
        warnings.warn(
            "LocalSSHHosts: namespaces did not reach each other over the bridge; set "
            "net.bridge.bridge-nf-call-iptables=0 (it stays so)",
            RuntimeWarning,
            stacklevel=4,
        )
        return True

    def _log_files(self, name: str) -> list[Path]:
        """The log of sshd ``name`` and the file holding its stdout/stderr."""
        return [self.root / "log" / f"sshd-{name}.log", self.root / "log" / f"sshd-{name}.out"]

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """Kill everything on the hosts, delete namespaces and bridge, remove ``root``.

        Every process inside one of the namespaces (``sshd``, sessions, whatever they
        started), the loopback ``sshd`` and its descendants, and every process carrying
        this harness's :data:`MARKER_VAR` gets SIGTERM, then SIGKILL after 2 s. Then the
        veths, the bridge and the namespaces go, and the silent port closes. Idempotent,
        every wait is bounded; also runs at interpreter exit if not called.
        """
        super().stop()

    def _has_state(self) -> bool:
        return super()._has_state() or bool(self.namespaces)

    def _forget(self) -> None:
        self.hosts = []
        self.namespaces = []
        self._veths = []
        self._bridge = None
        self.network = None
        self.port = 0

    def _shutdown(self) -> None:
        if self._silent is not None:
            self._silent.close()
            self._silent = None
        own = list(self._procs.values())

        def find() -> list[int]:
            for proc in own:
                proc.poll()  # reap our own children so that they stop counting as running
            pids = set(self._harness_processes())
            return sorted(pids | {p.pid for p in own if p.poll() is None})

        kill_processes(find, grace=_TERM_GRACE)
        for proc in own:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
        links = [*self._veths, *([self._bridge] if self._bridge else [])]
        _delete_network(links, self.namespaces)


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    """Run local SSH hosts until SIGINT or SIGTERM (``python -m ...testing.ssh``).

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (``--namespaces``, ``--no-loopback``; see ``--help``);
        default ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m daskdeploy.testing.ssh",
        description="Run SSH hosts (an sshd in each of N network namespaces, plus one on "
        "127.0.0.1) on this machine until Ctrl-C. Needs root and "
        "`apt-get install openssh-server iproute2`.",
    )
    parser.add_argument(
        "--namespaces", type=int, default=3, help="number of namespace hosts (default 3)"
    )
    parser.add_argument("--no-loopback", action="store_true", help="no sshd on 127.0.0.1")
    args = parser.parse_args(argv)

    def announce(hosts: LocalSSHHosts) -> list[str]:
        example = [
            "ssh",
            "-i",
            str(hosts.client_key),
            "-p",
            str(hosts.port),
            "-o",
            f"UserKnownHostsFile={hosts.known_hosts}",
            f"root@{hosts.all_hosts[0]}",
        ]
        return [
            f"hosts: {' '.join(hosts.all_hosts)}",
            f"port: {hosts.port}",
            shlex.join(example),
            f"# key {hosts.client_key}, known_hosts {hosts.known_hosts}; namespaces "
            f"{' '.join(hosts.namespaces) or '(none)'} on {hosts.network or '-'} with no "
            "default route; Ctrl-C here stops the hosts.",
        ]

    serve(
        parser,
        unavailable_reason(),
        lambda: LocalSSHHosts(namespaces=args.namespaces, loopback=not args.no_loopback).start(),
        announce,
    )


if __name__ == "__main__":
    main()

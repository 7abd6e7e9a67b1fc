"""A real, throwaway Son of Grid Engine (SGE) cell on localhost.

:class:`LocalSGE` builds a private ``SGE_ROOT`` under a short directory (symlinks to the
Debian installation plus a cell ``default`` of its own: bootstrap file, Berkeley DB spool,
global configuration), starts one ``sge_qmaster`` and one ``sge_execd`` on free ports,
adds this host as submit host, the parallel environment ``smp`` and the queue ``all.q``
with ``slots`` slots, and makes the scheduler run every second. :meth:`LocalSGE.stop`
deletes every job, ends the daemons, the shepherds and every job process, and removes the
directory. It needs root and the Debian packages ``gridengine-master``,
``gridengine-exec`` and ``gridengine-client`` (installed with the debconf answer that
keeps them from configuring a cell of their own); :func:`unavailable_reason` says why it
cannot run when it cannot.

Every SGE client (``qsub``, ``qstat``, ``qdel``, dask-jobqueue's ``SGECluster``) must see
the cell's :attr:`LocalSGE.environ` (``SGE_ROOT``, ``SGE_CELL``, ``SGE_QMASTER_PORT``,
``SGE_EXECD_PORT``). From a shell::

    python -m daskdeploy.testing.sge --slots 4

prints the ``export`` line and keeps the cell up until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import random
import shlex
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from .. import processes
from . import _system
from ._harness import DaemonHarness, StartError, serve
from ._system import find_processes, free_ports, kill_processes
from ._system import search_path as _search_path
from ._system import which as _which

__all__ = ["MARKER_VAR", "LocalSGE", "main", "unavailable_reason"]

SERVER_BINARIES = ("sge_qmaster", "sge_execd", "sge_shepherd")
CLIENT_BINARIES = ("qsub", "qstat", "qdel", "qconf")
REQUIRED_BINARIES = SERVER_BINARIES + CLIENT_BINARIES

#: The command that installs the packages without letting them configure a cell.
INSTALL_COMMAND = (
    "echo 'gridengine-common shared/gridengineconfig boolean false' | debconf-set-selections"
    " && apt-get install gridengine-master gridengine-exec gridengine-client"
)

#: Environment variable set (to the cell's root) in both daemons and so, since SGE jobs
#: inherit the execution daemon's environment, in every shepherd and job process, so that
#: :meth:`LocalSGE.stop` can find them.
MARKER_VAR = "DASKDEPLOY_LOCAL_SGE"

#: The user the daemons switch to (Debian's gridengine-common creates it).
ADMIN_USER = "sgeadmin"

# What Debian installs: the real programs, the spool tools and the templates.
_SGE_LIB = Path("/usr/lib/gridengine")
_SGE_SHARE = Path("/usr/share/gridengine")
_SGE_VAR = Path("/var/lib/gridengine")
_SPOOLINIT = _SGE_LIB / "spoolinit"
_SPOOLDEFAULTS = _SGE_LIB / "spooldefaults"
_BOOTSTRAP = _SGE_SHARE / "default-bootstrap"
_CONFIGURATION = _SGE_SHARE / "default-configuration"
_COMPLEXES = _SGE_SHARE / "util" / "resources" / "centry"
_USERSETS = _SGE_SHARE / "util" / "resources" / "usersets"
_LINKED = ("util", "utilbin", "bin", "lib")
_REQUIRED_FILES = (
    _SPOOLINIT,
    _SPOOLDEFAULTS,
    _BOOTSTRAP,
    _CONFIGURATION,
    _COMPLEXES,
    _USERSETS,
    *(_SGE_VAR / name for name in _LINKED),
)

# The variables that point SGE clients at a cell or change what they print; the caller's
# must not leak into commands meant for the private cell.
_SGE_ENV_PREFIXES = ("SGE_", "__SGE_")
# The daemons' environment, which every job inherits: that of a boot-time service.
_DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _missing_pieces() -> list[str]:
    """Problems :func:`_system.unavailable_reason` does not look for (Linux only)."""
    problems = []
    # The install command is named once, with the missing programs if any.
    said = any(_which(name) is None for name in REQUIRED_BINARIES)
    hint = "" if said else f' (install with "{INSTALL_COMMAND}")'
    missing = [str(path) for path in _REQUIRED_FILES if not path.exists()]
    if missing:
        problems.append(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    try:
        pwd.getpwnam(ADMIN_USER)
    except KeyError:
        problems.append(f"user {ADMIN_USER} is missing")
    if problems and hint:
        problems[-1] += hint
    host = socket.gethostname()
    try:
        socket.gethostbyname(host)
    except OSError:
        problems.append(f"this host's name {host!r} does not resolve (add it to /etc/hosts)")
    return problems


def unavailable_reason() -> str | None:
    """Say why a local SGE cell cannot be started on this machine.

    Returns
    -------
    str or None
        ``None`` when :meth:`LocalSGE.start` can work here; otherwise one sentence naming
        what is missing (root, Linux, SGE programs or files, the ``sgeadmin`` user, a
        resolvable host name) and the command that installs the packages, debconf answer
        included.
    """
    return _system.unavailable_reason(
        "A local SGE cell",
        f"A local SGE cell needs Linux (this is {sys.platform}).",
        REQUIRED_BINARIES,
        INSTALL_COMMAND,
        _missing_pieces,
    )


# --------------------------------------------------------------------------- files


def _set_keys(text: str, values: dict[str, str]) -> str:
    """SGE's ``key value`` lines of ``text`` with ``values`` put in (missing keys appended)."""
    lines = []
    todo = dict(values)
    for line in text.splitlines():
        words = line.split(None, 1)
        if words and words[0] in todo:
            key = words[0]
            line = f"{key:<24} {todo.pop(key)}"
        lines.append(line)
    lines += [f"{key:<24} {value}" for key, value in todo.items()]
    return "\n".join(lines) + "\n"


def _program(name: str) -> str:
    """Where to run SGE program (or any program) ``name`` from."""
    if "/" not in name and os.access(_SGE_LIB / name, os.X_OK):
        return str(_SGE_LIB / name)
    return _which(name) or name


def _reverse_names(host: str) -> list[str]:
    """``localhost`` and the names the addresses of ``host`` map back to."""
    names = ["localhost"]
    try:
        addresses = socket.gethostbyname_ex(host)[2]
    except OSError:
        addresses = []
    for address in addresses:
        try:
            name, aliases, _ = socket.gethostbyaddr(address)
        except OSError:
            continue
        names += [n for n in (name, *aliases) if n not in names]
    return names


def _port_taken(port: int) -> bool:
    """Whether something listens on (or holds) TCP ``port`` of any local address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError:
            return True
    return False


def _cell_processes(root: Path, members: list[int]) -> list[int]:
    """Running processes of the cell in ``root``: daemons, shepherds, jobs.

    A process belongs to it when its environment carries ``MARKER_VAR=root`` (daemons and,
    inherited through the execution daemon, shepherds and jobs), one of its arguments is
    a path under ``root`` (job scripts), or it is one of ``members``.
    """
    prefix = str(root).rstrip("/") + "/"
    return list(find_processes(marker=(MARKER_VAR, str(root)), argument=prefix, members=members))


# --------------------------------------------------------------------------- cell


class LocalSGE(DaemonHarness):
    """A real SGE cell on localhost: one ``sge_qmaster``, one ``sge_execd``, one queue.

    Everything (the cell's configuration, the qmaster's Berkeley DB spool, the execution
    daemon's spool, job scripts, the jobs' temporary directories, messages files) lives
    under ``root``, which is the cell's ``SGE_ROOT`` and which :meth:`stop` removes. The
    daemons run as ``sgeadmin`` in the foreground (``SGE_ND=1``), each a child process in
    its own session, so a terminal's Ctrl-C does not reach them. Jobs inherit the
    execution daemon's environment, which is that of a boot-time service (a fixed
    ``PATH``, none of the caller's variables), plus :data:`MARKER_VAR`.

    The cell: this host is admin, submit and execution host; queue :attr:`queue`
    (``all.q``) has ``slots`` slots, no load thresholds and the parallel environment
    :attr:`pe` (``smp``: ``$pe_slots``, ``control_slaves TRUE``, so ``qrsh -inherit``
    works in its jobs); the scheduler runs every second; ``min_uid``/``min_gid`` are 0
    so that root may run jobs. As in any SGE cell, a job's output goes to
    ``$HOME/<name>.o<id>`` of the submitting user unless ``-o``/``-e``/``-cwd`` say
    otherwise, and scripts start as ``/bin/sh`` (``shell_start_mode posix_compliant``,
    ignoring ``#!``) unless ``-S`` names a shell. A job's temporary directory
    (``root/tmp/<job>.<task>.all.q``) is in ``TMP``; ``TMPDIR``, though in the job's
    environment file, does not reach batch jobs here (it is dropped on the way, as glibc
    drops it for programs that changed users; ``qrsh -inherit`` tasks do get it).

    Parameters
    ----------
    slots : int
        Slots of the queue (and of the PE); may exceed the machine's cores.
    root : str or os.PathLike, optional
        A directory that must not exist or be empty, without whitespace; default: a
        fresh ``/tmp/ddsge-XXXXXXXX`` at every :meth:`start`.

    Attributes
    ----------
    queue : str
        The queue's name, ``"all.q"``.
    pe : str
        The parallel environment's name, ``"smp"``.
    cell : str
        The cell's name (``SGE_CELL``), ``"default"``.
    slots : int
        The queue's slots.
    host : str
        This host's name as the cell knows it.
    qmaster_port, execd_port : int or None
        The daemons' TCP ports while running.

    Examples
    --------
    >>> with LocalSGE(slots=4) as sge:  # doctest: +SKIP
    ...     sge.run("qsub", "-b", "y", "-o", "/dev/null", "-j", "y", "sleep", "5").stdout
    'Your job 1 ("sleep") has been submitted\\n'
    """

    queue = "all.q"
    pe = "smp"
    cell = "default"

    _label = "LocalSGE"
    _not_started = "the LocalSGE cell is not started"
    _root_prefix = "ddsge-"
    _root_mode = 0o755

    def __init__(self, slots: int = 8, root: str | os.PathLike[str] | None = None) -> None:
        if slots < 1:
            raise ValueError("slots must be positive")
        self.slots = slots
        self.host = socket.gethostname()
        self.qmaster_port: int | None = None
        self.execd_port: int | None = None
        super().__init__(root)
        if self._root_arg is not None and any(c.isspace() for c in str(self._root_arg)):
            raise ValueError(f"root {str(self._root_arg)!r} must not contain whitespace")

    # ------------------------------------------------------------------ properties

    @property
    def environ(self) -> dict[str, str]:
        """The variables every SGE client needs for this cell.

        ``SGE_ROOT``, ``SGE_CELL``, ``SGE_QMASTER_PORT`` and ``SGE_EXECD_PORT``: export
        them to ``qsub``, ``qstat``, dask-jobqueue and so on.

        Raises
        ------
        RuntimeError
            When the cell is not started.
        """
        root = self.root
        return {
            "SGE_ROOT": str(root),
            "SGE_CELL": self.cell,
            "SGE_QMASTER_PORT": str(self.qmaster_port),
            "SGE_EXECD_PORT": str(self.execd_port),
        }

    def __repr__(self) -> str:
        where = str(self._root) if self._root is not None else "stopped"
        return f"<LocalSGE {self.queue}@{self.host} slots={self.slots} {where}>"

    # ------------------------------------------------------------------ clients

    def env(self) -> dict[str, str]:
        """A whole environment for an SGE client subprocess of this cell.

        Returns
        -------
        dict
            The caller's environment without its ``SGE_*`` variables, ``PATH`` extended
            by the sbin directories, and :attr:`environ`.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SGE_ENV_PREFIXES)}
        env["PATH"] = _search_path()
        env.update(self.environ)
        return env

    def run(
        self, *args: str, input: str | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run an SGE client command (``qsub``, ``qstat``, ``qdel``, ...) against this cell.

        It runs in the current directory with :meth:`env`. SGE's programs run directly
        from ``/usr/lib/gridengine``: Debian's wrappers in ``/usr/bin`` (what ``PATH``
        finds) only set ``SGE_ARCH`` first, which costs ~0.1 s a call.

        Parameters
        ----------
        *args : str
            The command and its arguments, e.g. ``"qsub", "-b", "y", "hostname"``.
        input : str, optional
            Text for its standard input (``qsub`` reads a script from it when given no
            file); default: none (``/dev/null``).
        timeout : float
            Seconds before :class:`subprocess.TimeoutExpired` is raised.

        Returns
        -------
        subprocess.CompletedProcess
            With text ``stdout`` and ``stderr``; the return code is not checked.
        """
        if not args:
            raise ValueError("run() needs a command")
        command = [_program(args[0]), *args[1:]]
        return subprocess.run(
            command,
            env=self.env(),
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def jobs(self) -> list[dict[str, str]]:
        """List the cell's jobs, of every user (pending, running, being deleted, ...).

        Returns
        -------
        list of dict
            One dict per job, array tasks listed one by one (``qstat -g d``), with keys
            ``id`` (``"7"``, or ``"6.2"`` for task 2 of array job 6: what ``qdel``
            takes), ``name``, ``state`` (SGE's letters: ``qw``, ``hqw``, ``r``, ``t``,
            ``dr``, ``Eqw``, ...), ``owner``, ``queue`` (``all.q@host``, empty while
            pending) and ``slots``. Finished jobs are not listed.

        Raises
        ------
        RuntimeError
            When ``qstat`` fails or prints no XML.
        """
        result = self.run("qstat", "-u", "*", "-g", "d", "-xml")
        if result.returncode != 0:
            raise RuntimeError(f"qstat failed: {(result.stderr or result.stdout).strip()}")
        try:
            tree = ET.fromstring(result.stdout)
        except ET.ParseError as exc:
            raise RuntimeError(f"qstat printed no XML ({exc}): {result.stdout[:200]!r}") from exc
        jobs = []
        for entry in tree.iter("job_list"):

            def text(tag: str, entry: ET.Element = entry) -> str:
                return (entry.findtext(tag) or "").strip()

            task = text("tasks")
            jobs.append(
                {
                    "id": f"{text('JB_job_number')}.{task}" if task else text("JB_job_number"),
                    "name": text("JB_name"),
                    "state": text("state"),
                    "owner": text("JB_owner"),
                    "queue": text("queue_name"),
                    "slots": text("slots"),
                }
            )
        return jobs

    def qstat_text(self) -> str:
        """Plain ``qstat -u '*'`` output (for test logs); its error output when it fails."""
        result = self.run("qstat", "-u", "*")
        if result.returncode != 0:
            return f"qstat failed ({result.returncode}): {result.stderr.strip()}"
        return result.stdout

    def _job_count(self, timeout: float = 10) -> int | None:
        """How many jobs ``qstat`` lists, or None when it cannot tell."""
        try:
            result = self.run("qstat", "-u", "*", timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if result.returncode != 0:
            return None
        # Two header lines ("job-ID ..." and dashes) precede the jobs; none when empty.
        return sum(1 for line in result.stdout.splitlines()[2:] if line.strip())

    def wait_for_no_jobs(self, timeout: float = 30) -> bool:
        """Wait until ``qstat -u '*'`` lists no job at all.

        Parameters
        ----------
        timeout : float
            Upper bound in seconds.

        Returns
        -------
        bool
            True when the cell became empty, False at timeout (or when the qmaster never
            answered).
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if self._job_count(timeout=max(1.0, min(10.0, remaining))) == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    # ------------------------------------------------------------------ start

    def _unavailable(self) -> str | None:
        return unavailable_reason()

    def _log_files(self, name: str) -> list[Path]:
        """The daemon's messages file(s) and the file holding its stdout/stderr."""
        root = self.root
        if name == "sge_qmaster":
            own = [root / "spool" / "qmaster" / "messages"]
        else:
            own = sorted((root / "spool" / "execd").glob("*/messages"))
        return [*own, root / "log" / f"{name}.out"]

    def _admin_env(self) -> dict[str, str]:
        return {
            "PATH": _DAEMON_PATH,
            "LANG": "C.UTF-8",
            "HOME": "/",
            "SGE_ROOT": str(self.root),
            "SGE_CELL": self.cell,
        }

    def _as_admin(self, *args: str | os.PathLike[str]) -> None:
        """Run a spool tool as the admin user (the owner of the spool), as Debian does."""
        command = [str(arg) for arg in args]
        try:
            result = subprocess.run(
                command,
                env=self._admin_env(),
                cwd=self.root,
                user=ADMIN_USER,
                group=ADMIN_USER,
                extra_groups=[],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StartError(f"{shlex.join(command)} timed out", []) from exc
        if result.returncode != 0:
            output = (result.stderr + result.stdout).strip()
            raise StartError(f"{shlex.join(command)} failed: {output}", [])

    def _write_files(self) -> None:
        """The private SGE_ROOT: links to Debian's files, the cell, an initialised spool."""
        root = self.root
        root.chmod(0o755)  # the daemons run as sgeadmin; job users read the cell
        for name in _LINKED:
            (root / name).symlink_to(_SGE_VAR / name)
        common = root / self.cell / "common"
        spool = root / "spool"
        for sub in (common, spool / "qmaster", spool / "execd", spool / "db", root / "conf"):
            sub.mkdir(mode=0o755, parents=True)
        (root / "log").mkdir(mode=0o755)
        # Every job's temporary directory is <tmpdir>/<job>.<task>.<queue>: a private
        # tmpdir keeps two cells' job 1 from sharing (and deleting) /tmp/1.1.all.q.
        (root / "tmp").mkdir()
        (root / "tmp").chmod(0o1777)

        (common / "bootstrap").write_text(
            _set_keys(
                _BOOTSTRAP.read_text(),
                {
                    "admin_user": ADMIN_USER,
                    "spooling_method": "berkeleydb",
                    "spooling_lib": "libspoolb",
                    "spooling_params": str(spool / "db"),
                    "qmaster_spool_dir": str(spool / "qmaster"),
                },
            )
        )
        (common / "act_qmaster").write_text(self.host + "\n")
        # The host name may resolve to 127.0.0.1, whose reverse lookup is "localhost":
        # without this alias every client is refused ("client IP resolved to host name
        # localhost"). Likewise for any other reverse name of the host's addresses.
        aliases = [name for name in _reverse_names(self.host) if name != self.host]
        if aliases:
            (common / "host_aliases").write_text(f"{self.host} {' '.join(aliases)}\n")
        gid_base = 20000 + 100 * random.randrange(400)  # job tracking groups, per cell
        configuration = root / "conf" / "global"
        configuration.write_text(
            _set_keys(
                _CONFIGURATION.read_text(),
                {
                    "execd_spool_dir": str(spool / "execd"),
                    "mailer": "/bin/true",
                    "min_uid": "0",
                    "min_gid": "0",
                    "gid_range": f"{gid_base}-{gid_base + 99}",
                    # Jobs as plain, not login, shells: a login shell sources the
                    # profile, and a profile that takes a lock (pyenv's rehash) left by
                    # a job killed mid-way makes every later job wait 60 s for it.
                    "login_shells": "none",
                },
            )
        )
        admin = pwd.getpwnam(ADMIN_USER)
        for path in (root / self.cell, common, *common.iterdir(), spool, *spool.iterdir()):
            os.chown(path, admin.pw_uid, admin.pw_gid)
        # What Debian's /usr/share/gridengine/scripts/init_cluster does.
        self._as_admin(_SPOOLINIT, "berkeleydb", "libspoolb", spool / "db", "init")
        self._as_admin(_SPOOLDEFAULTS, "configuration", configuration)
        self._as_admin(_SPOOLDEFAULTS, "complexes", _COMPLEXES)
        self._as_admin(_SPOOLDEFAULTS, "usersets", _USERSETS)
        self._as_admin(_SPOOLDEFAULTS, "managers", ADMIN_USER)

    def _start_daemon(self, name: str) -> None:
        env = self._admin_env()
        env.update(self.environ)
        env["SGE_ND"] = "1"  # stay in the foreground, our child
        env[MARKER_VAR] = str(self.root)
        command = [_which(name) or name]
        self._spawn(name, command, env, self.root / "log" / f"{name}.out")

    def _qconf(self, deadline: float, *args: str) -> str:
        """Run ``qconf``; raise :class:`StartError` when it fails."""
        remaining = max(1.0, deadline - time.monotonic())
        try:
            result = self.run("qconf", *args, timeout=min(15.0, remaining))
        except subprocess.TimeoutExpired as exc:
            raise StartError(f"qconf {shlex.join(args)} timed out", ["sge_qmaster"]) from exc
        if result.returncode != 0:
            output = (result.stderr + result.stdout).strip()
            raise StartError(f"qconf {shlex.join(args)} failed: {output}", ["sge_qmaster"])
        return result.stdout

    def _qmaster_up(self, deadline: float) -> bool:
        """Our qmaster wrote its pid file (it has its port) and answers ``qconf``."""
        proc = self._procs["sge_qmaster"]
        pid_file = self.root / "spool" / "qmaster" / "qmaster.pid"
        try:
            if int(pid_file.read_text().split()[0]) != proc.pid:
                return False
        except (OSError, ValueError, IndexError):
            return False
        try:
            result = self.run(
                "qconf", "-sh", timeout=max(0.5, min(3.0, deadline - time.monotonic()))
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def _queue_up(self, deadline: float) -> bool:
        """The queue instance on this host exists and is not in state ``u`` (unknown)."""
        try:
            result = self.run(
                "qstat",
                "-f",
                "-q",
                self.queue,
                "-xml",
                timeout=max(0.5, min(3.0, deadline - time.monotonic())),
            )
        except subprocess.TimeoutExpired:
            return False
        if result.returncode != 0:
            return False
        try:
            tree = ET.fromstring(result.stdout)
        except ET.ParseError:
            return False
        queues = list(tree.iter("Queue-List"))
        return bool(queues) and all("u" not in (q.findtext("state") or "") for q in queues)

    def _configure(self, deadline: float) -> None:
        """Submit host, PE, queue and a scheduler that runs every second."""
        conf = self.root / "conf"
        self._qconf(deadline, "-as", self.host)
        (conf / "pe").write_text(
            _set_keys(
                "",
                {
                    "pe_name": self.pe,
                    "slots": str(self.slots),
                    "user_lists": "NONE",
                    "xuser_lists": "NONE",
                    "start_proc_args": "NONE",
                    "stop_proc_args": "NONE",
                    "allocation_rule": "$pe_slots",
                    "control_slaves": "TRUE",
                    "job_is_first_task": "TRUE",
                    "urgency_slots": "min",
                    "accounting_summary": "TRUE",
                    "qsort_args": "NONE",
                },
            )
        )
        self._qconf(deadline, "-Ap", str(conf / "pe"))
        (conf / "queue").write_text(
            _set_keys(
                self._qconf(deadline, "-sq"),  # the template queue
                {
                    "qname": self.queue,
                    "hostlist": self.host,
                    "slots": str(self.slots),
                    "pe_list": self.pe,
                    "load_thresholds": "NONE",
                    "tmpdir": str(self.root / "tmp"),
                },
            )
        )
        self._qconf(deadline, "-Aq", str(conf / "queue"))
        (conf / "scheduler").write_text(
            _set_keys(
                self._qconf(deadline, "-ssconf"),
                {
                    "schedule_interval": "0:0:1",
                    "flush_submit_sec": "1",
                    "flush_finish_sec": "1",
                    "job_load_adjustments": "NONE",
                    "load_adjustment_decay_time": "0:0:0",
                },
            )
        )
        self._qconf(deadline, "-Msconf", str(conf / "scheduler"))

    def start(self, timeout: float = 30.0) -> LocalSGE:
        """Build the cell, start both daemons and wait until the queue is up (~1-3 s).

        ``timeout`` (seconds, for the whole start-up), the result (``self``, so that
        ``sge = LocalSGE().start()`` works) and the ``RuntimeError`` on failure are those
        of :meth:`DaemonHarness.start <daskdeploy.testing._harness.DaemonHarness.start>`.
        """
        return super().start(timeout)

    def _start(self, deadline: float) -> None:
        self.qmaster_port, self.execd_port = free_ports(2)
        self._write_files()
        # A qmaster whose port is taken does not exit: it retries silently, without a pid
        # file, while qconf talks to whoever has the port. Make that a (retried) clash.
        for port in (self.qmaster_port, self.execd_port):
            if _port_taken(port):
                raise StartError(f"port {port}: Address already in use", [])
        self._start_daemon("sge_qmaster")
        self._wait(
            "sge_qmaster to answer `qconf -sh`",
            lambda: self._qmaster_up(deadline),
            deadline,
            ["sge_qmaster"],
        )
        self._configure(deadline)
        self._start_daemon("sge_execd")
        self._wait(
            f"queue {self.queue}@{self.host} to come up",
            lambda: self._queue_up(deadline),
            deadline,
            ["sge_qmaster", "sge_execd"],
        )

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """Stop every job and both daemons and remove ``root``; idempotent.

        Has the execution daemon kill every job and exit (``qconf -kej HOST``) while
        the qmaster runs, SIGKILLs the qmaster (a graceful ``qconf -km`` takes ~10 s
        and a throwaway cell needs none) and reaps both daemons, SIGKILLs anything of
        the cell still running (found by :data:`MARKER_VAR` in its environment, a path
        under ``root`` in its arguments, or descent from the execution daemon) and
        removes ``root``. Every wait is bounded; it takes ~0.1 s. Also runs at
        interpreter exit if not called.
        """
        super().stop()

    def _alive(self, name: str) -> bool:
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def _shutdown(self) -> None:
        root = self._root
        execd = self._procs.get("sge_execd")
        if execd is not None and execd.poll() is None and self._alive("sge_qmaster"):
            # The execution daemon kills every job (each in a process group of its own)
            # and exits, in ~0.05 s: quicker than qdel, whose kill of a job still being
            # transferred to the execd can take seconds.
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.run("qconf", "-kej", self.host, timeout=10).returncode == 0:
                    execd.wait(5)
        members = []
        if execd is not None and execd.poll() is None:
            members = processes.children(execd.pid, recursive=True)
        # SIGKILL: a graceful qmaster shutdown takes ~10 s, an execd's SIGTERM 2 s, and
        # a throwaway cell needs neither.
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        if root is not None:
            # Shepherds and jobs are not our children (they run in sessions of their
            # own): SIGKILL whatever is left of them, such as a shepherd that was being
            # started when the execd went.
            kill_processes(lambda: _cell_processes(root, members), grace=0, kill_wait=5.0)

    def _forget(self) -> None:
        self.qmaster_port = self.execd_port = None


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    """Run a local SGE cell until SIGINT or SIGTERM (``python -m ...testing.sge``).

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (``--slots``; see ``--help``); default ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m daskdeploy.testing.sge",
        description="Run a real Son of Grid Engine cell (sge_qmaster, sge_execd, queue "
        "all.q, PE smp) on localhost until Ctrl-C. Needs root and "
        f"`{INSTALL_COMMAND}`.",
    )
    parser.add_argument("--slots", type=int, default=8, help="slots of all.q (default 8)")
    args = parser.parse_args(argv)

    def announce(cell: LocalSGE) -> list[str]:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in cell.environ.items())
        return [
            f"export {exports}",
            f"# queue {cell.queue}@{cell.host} with {cell.slots} slots, PE '{cell.pe}': run "
            "the export line in another shell, then e.g. "
            "`qsub -b y -o /dev/null -j y sleep 60; qstat`; Ctrl-C here stops the cell.",
        ]

    serve(parser, unavailable_reason(), lambda: LocalSGE(slots=args.slots).start(), announce)


if __name__ == "__main__":
    main()

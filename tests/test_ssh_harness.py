"""The local SSH harness (daskdeploy.testing.ssh) against real sshd's in network namespaces."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import daskdeploy.testing.ssh as ssh_harness
from conftest import require_module
from daskdeploy.testing.ssh import MARKER_VAR, LocalSSHHosts, cleanup_stale, unavailable_reason

REASON = unavailable_reason()
if REASON is not None and not os.environ.get("CI"):
    pytest.skip(REASON, allow_module_level=True)

try:
    import asyncssh
except ImportError:  # pragma: no cover - asyncssh is part of daskdeploy[ssh]
    asyncssh = None


@pytest.fixture
def needs_asyncssh() -> None:
    """Skip without asyncssh, but fail under CI (conftest.require_module)."""
    require_module("asyncssh", extra="ssh")


@pytest.fixture(scope="module", autouse=True)
def _require_local_ssh() -> None:
    """On CI missing local SSH hosts are a failure, not a skip."""
    if REASON is not None:
        pytest.fail(REASON, pytrace=False)


@pytest.fixture(scope="module")
def hosts() -> Iterator[LocalSSHHosts]:
    with LocalSSHHosts(namespaces=3, loopback=True) as started:
        yield started


# --------------------------------------------------------------------------- helpers


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def _link_names() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True)
    return {line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines()}


def _processes_mentioning(text: str) -> list[int]:
    """Running processes with ``text`` in their arguments (sshd's carry the root path)."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            args = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if text in args and _running(process.pid):
            found.append(process.pid)
    return found


def _assert_all_gone(root: Path, namespaces: list[str], links: list[str]) -> None:
    assert not root.exists()
    assert not _processes_mentioning(str(root))
    assert not set(namespaces) & _netns_names()
    assert not set(links) & _link_names()


# --------------------------------------------------------------------------- tests


def test_layout(hosts: LocalSSHHosts) -> None:
    assert len(hosts.hosts) == len(set(hosts.hosts)) == 3
    assert hosts.loopback == "127.0.0.1"
    assert hosts.all_hosts == [*hosts.hosts, "127.0.0.1"]
    assert hosts.network is not None
    assert all(re.fullmatch(r"10\.2[0-5]\d\.\d+\.\d+", host) for host in hosts.hosts)
    assert all(host.rsplit(".", 1)[0] == hosts.network.rsplit(".", 1)[0] for host in hosts.hosts)
    assert set(hosts.namespaces) <= _netns_names()
    assert all(len(name) <= 15 for name in _link_names())
    assert 1024 < hosts.port < 65536
    assert hosts.root.stat().st_mode & 0o777 == 0o700
    assert hosts.client_key.stat().st_mode & 0o777 == 0o600
    assert hosts.client_key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    known = hosts.known_hosts.read_text().splitlines()
    assert [line.split()[0] for line in known] == [f"[{h}]:{hosts.port}" for h in hosts.all_hosts]
    assert all(line.split()[1] == "ssh-ed25519" for line in known)
    assert hosts.connect_options() == {
        "port": hosts.port,
        "username": "root",
        "client_keys": [str(hosts.client_key)],
        "known_hosts": str(hosts.known_hosts),
    }


def test_each_host_has_its_own_address(hosts: LocalSSHHosts) -> None:
    for host in hosts.all_hosts:
        result = hosts.ssh(host, "hostname -I; echo ---; ip -4 route; echo ---; whoami")
        assert result.returncode == 0, result.stderr
        addresses, routes, user = result.stdout.split("---\n")
        assert host in addresses.split() or host == "127.0.0.1"
        assert user.strip() == "root"
        if host in hosts.hosts:
            assert addresses.split() == [host]  # nothing but its own address
            assert "default" not in routes  # a host without a default route
            assert f"dev {hosts.interface}" in routes
    loopback = hosts.ssh("127.0.0.1", "ip -4 -o addr show lo")
    assert "127.0.0.1" in loopback.stdout


def test_namespaces_reach_each_other(hosts: LocalSSHHosts) -> None:
    first, second, third = hosts.hosts
    # The ssh program run inside the first namespace logs in to the second host.
    result = subprocess.run(
        [*hosts.netns_prefix(first), *hosts.ssh_command(second, "hostname -I")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [second]
    # A process started over SSH on the third host connects to the first one's sshd.
    probe = (
        f"import socket; s = socket.create_connection(({first!r}, {hosts.port})); "
        "print(s.recv(64).decode().strip(), s.getsockname()[0])"
    )
    result = hosts.ssh(third, f"python3 -c {shlex.quote(probe)}")
    assert result.returncode == 0, result.stderr
    banner, source = result.stdout.rsplit(maxsplit=1)
    assert banner.startswith("SSH-2.0-")
    assert source == third
    assert hosts.netns_prefix("127.0.0.1") == []
    with pytest.raises(ValueError, match="not one of"):
        hosts.netns_prefix("192.0.2.99")


@pytest.mark.usefixtures("needs_asyncssh")
def test_asyncssh_connects_with_connect_options(hosts: LocalSSHHosts) -> None:
    async def run(host: str) -> str:
        async with asyncssh.connect(host, **hosts.connect_options()) as conn:
            result = await conn.run(f"echo ok; echo ${MARKER_VAR}", check=True, timeout=20)
            return str(result.stdout)

    async def run_all() -> list[str]:
        return await asyncio.gather(*(run(host) for host in hosts.all_hosts))

    for output in asyncio.run(asyncio.wait_for(run_all(), 60)):
        assert output.split() == ["ok", str(hosts.root)]


@pytest.mark.usefixtures("needs_asyncssh")
def test_silent_port_times_out(hosts: LocalSSHHosts) -> None:
    port = hosts.silent_port()
    assert hosts.silent_port() == port
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recv(1)  # accepted, but nothing is ever said

    async def attempt() -> None:
        options = dict(hosts.connect_options(), port=port)
        async with asyncssh.connect("127.0.0.1", connect_timeout=2, **options):
            pass

    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):  # asyncssh's connect_timeout, after 2 s
        asyncio.run(asyncio.wait_for(attempt(), 10))
    assert 1.5 < time.monotonic() - started < 3.5


def test_remote_processes_and_stop_and_restart() -> None:
    bystander = subprocess.Popen(["sleep", "1000"])  # a local process, not on any host
    try:
        first = LocalSSHHosts(namespaces=2, loopback=True)
        started = time.monotonic()
        first.start()
        start_time = time.monotonic() - started
        root, namespaces = first.root, list(first.namespaces)
        links = [f"ddb{namespaces[0][2:10]}", *(f"dv{ns[2:]}" for ns in namespaces)]
        assert set(links) <= _link_names()
        host = first.hosts[1]
        for where, seconds in ((host, 1000), ("127.0.0.1", 1001)):
            result = first.ssh(where, f"nohup sleep {seconds} >/dev/null 2>&1 &", timeout=15)
            assert result.returncode == 0, result.stderr
        in_namespace = first.remote_processes("sleep 1000")
        on_loopback = first.remote_processes("sleep 1001")
        assert len(in_namespace) == 1 and bystander.pid not in in_namespace
        assert len(on_loopback) == 1
        netns = os.stat(f"/run/netns/{namespaces[1]}").st_ino
        assert os.stat(f"/proc/{in_namespace[0]}/ns/net").st_ino == netns
        sshds = first.remote_processes(str(root))
        assert len(sshds) == 3  # one listener per host
        first.silent_port()

        started = time.monotonic()
        first.stop()
        stop_time = time.monotonic() - started
        assert not any(_running(pid) for pid in in_namespace + on_loopback + sshds)
        assert _running(bystander.pid)
        _assert_all_gone(root, namespaces, links)
        assert first.hosts == [] and first.namespaces == [] and not first.running
        first.stop()  # idempotent

        with LocalSSHHosts(namespaces=1, loopback=False) as second:
            assert second.all_hosts == second.hosts and second.loopback is None
            result = second.ssh(second.hosts[0], "echo again")
            assert result.stdout.strip() == "again", result.stderr
        print(f"start (2 namespaces + loopback) {start_time:.2f} s, stop {stop_time:.2f} s")
        assert start_time < 10 and stop_time < 5
    finally:
        bystander.kill()
        bystander.wait()


KILLED_OWNER = """
import os, signal
from daskdeploy.testing.ssh import LocalSSHHosts
hosts = LocalSSHHosts(namespaces=1).start()
for host, seconds in ((hosts.hosts[0], 1002), ("127.0.0.1", 1003)):
    hosts.ssh(host, f"nohup sleep {seconds} >/dev/null 2>&1 &")
print(hosts.root, hosts.namespaces[0], flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_cleanup_after_owner_was_killed() -> None:
    result = subprocess.run(
        [sys.executable, "-c", KILLED_OWNER], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    root_text, namespace = result.stdout.split()
    root = Path(root_text)
    tag = namespace[2:10]
    time.sleep(0.2)  # the sshd's get SIGTERM as their parent dies
    assert root.exists() and namespace in _netns_names()  # left behind ...
    assert not _processes_mentioning(str(root))  # ... but not the daemons
    sleepers = _processes_mentioning("sleep 100")
    assert len(sleepers) >= 2
    assert root in cleanup_stale()
    assert not any(_running(pid) for pid in sleepers)
    _assert_all_gone(root, [namespace], [f"ddb{tag}", f"dv{tag}-1"])


def test_failed_start_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    tag = "feedf00d"
    monkeypatch.setattr(ssh_harness, "_free_port", lambda: busy.getsockname()[1])
    monkeypatch.setattr(ssh_harness.secrets, "token_hex", lambda n: tag)
    root = Path(tempfile.mkdtemp(prefix="ddssh-test-", dir="/tmp")) / "r"
    try:
        broken = LocalSSHHosts(namespaces=1, root=root)
        with pytest.raises(RuntimeError, match="Address already in use") as info:
            broken.start(timeout=20)
        assert "sshd-loopback.log" in str(info.value)
        assert not broken.running and broken.hosts == []
        _assert_all_gone(root, [f"dd{tag}-1"], [f"ddb{tag}", f"dv{tag}-1"])
    finally:
        busy.close()
        root.parent.rmdir()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to start"):
        LocalSSHHosts(namespaces=0, loopback=False)
    with pytest.raises(ValueError, match="between"):
        LocalSSHHosts(namespaces=-1)
    with pytest.raises(ValueError, match="whitespace"):
        LocalSSHHosts(root="/tmp/a b")
    (tmp_path / "x").write_text("")
    with pytest.raises(RuntimeError, match="not empty"):
        LocalSSHHosts(root=tmp_path).start()
    with pytest.raises(RuntimeError, match="not started"):
        LocalSSHHosts().silent_port()


def test_command_line(tmp_path: Path) -> None:
    errors = tmp_path / "stderr"
    with open(errors, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daskdeploy.testing.ssh", "--namespaces", "1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()])
    reader.start()
    try:
        printed: list[str] = []
        while not printed or not printed[-1].startswith("ssh "):
            try:
                printed.append(lines.get(timeout=30))
            except queue.Empty:
                pytest.fail(f"no ssh line within 30 s: {printed} {errors.read_text()}")
        assert printed[0].startswith("hosts: 10.")
        assert printed[1].startswith("port: ")
        command = shlex.split(printed[-1])
        key = Path(command[command.index("-i") + 1])
        command[-1:-1] = ["-F", "none", "-o", "BatchMode=yes"]
        result = subprocess.run(
            [*command, "echo", "hi"], capture_output=True, text=True, timeout=30
        )
        assert result.stdout.strip() == "hi", result.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, errors.read_text()
        assert "stopped" in errors.read_text()
        assert not key.parent.exists()
        assert not _processes_mentioning(str(key.parent))
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGKILL would leave namespaces behind
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(timeout=5)

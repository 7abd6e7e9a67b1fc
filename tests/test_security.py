"""TLS by default: only the deployment's own client and workers can connect.

On each backend, against the real components (SLURM, sshd hosts, mpiexec): the scheduler
listens on ``tls://``; a client on plain TCP and a client with other TLS credentials are
both refused (so neither can run a task); the credential files are ``0600`` in a
``0700`` directory while the deployment runs, and gone after it closes.
"""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import dask
import pytest

import daskdeploy
from conftest import run_batch_job
from daskdeploy.credentials import shared_credentials_dir

OUTSIDER_CHECK = '''
import sys


def outsider_refusals(address):
    """Try the scheduler as another user would: plain TCP, then foreign TLS credentials.

    Only the refusal each attempt must meet counts; any other error (a timeout, say) is
    raised, so that a scheduler which merely hangs is not taken for a secured one.
    """
    from distributed import Client, Security
    from distributed.comm.core import CommClosedError, FatalCommClosedError

    refused = []
    for name, target, security, error, message in [
        # the TLS listener fails the handshake of plain TCP and drops the connection
        ("tcp", address.replace("tls://", "tcp://"), None, CommClosedError, ""),
        # the scheduler's certificate is not signed by the outsider's own CA
        ("foreign-tls", address, Security.temporary(), FatalCommClosedError,
         "TLS certificate does not match"),
    ]:
        try:
            with Client(target, security=security, timeout=3) as outsider:
                outsider.submit(sum, [1, 2]).result(timeout=3)
        except CommClosedError as exc:
            if type(exc) is not error or message not in str(exc):
                raise
            refused.append(name)
    return refused
'''
namespace: dict = {}
exec(OUTSIDER_CHECK, namespace)
outsider_refusals = namespace["outsider_refusals"]


def assert_private(directory: Path) -> None:
    """0700 directory, 0600 files: ca.pem, cert.pem, key.pem."""
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    files = sorted(directory.iterdir())
    assert [path.name for path in files] == ["ca.pem", "cert.pem", "key.pem"]
    assert {stat.S_IMODE(path.stat().st_mode) for path in files} == {0o600}


def assert_secured(client) -> None:
    address = client.scheduler.address
    assert address.startswith("tls://"), address
    started = time.monotonic()
    assert outsider_refusals(address) == ["tcp", "foreign-tls"]
    assert client.submit(sum, [1, 2]).result() == 3  # the deployment's own client works
    print(f"\noutsiders refused in {time.monotonic() - started:.2f} s")


def test_local_listens_on_loopback_plain_by_default_and_tls_on_request(capsys):
    with daskdeploy.deploy("local", workers=1, quiet=True, dashboard=False) as client:
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
    assert "without TLS" not in capsys.readouterr().err  # local's default: no warning
    with daskdeploy.deploy("local", workers=1, quiet=True, dashboard=False, tls=True) as client:
        assert_secured(client)
        credentials = client.deployment.scratch_dir / "tls"
        assert_private(credentials)
    assert not credentials.exists()


def test_slurm_uses_tls_by_default_and_warns_when_turned_off(slurm, capsys):
    with daskdeploy.deploy("slurm", workers=1, quiet=True) as client:
        assert_secured(client)
        credentials = shared_credentials_dir(client.deployment.id)
        assert_private(credentials)
        assert f"--tls-key {credentials}/key.pem" in client.cluster.job_script()
    assert not credentials.exists()
    with daskdeploy.deploy("slurm", workers=1, quiet=True, tls=False) as client:
        assert client.scheduler.address.startswith("tcp://")
    assert "without TLS (tls=False)" in capsys.readouterr().err


def test_allocation_workers_use_the_deployments_credentials(slurm, sandbox):
    script = sandbox.script(
        "secured.py",
        OUTSIDER_CHECK + "import os, stat, daskdeploy\n"
        "from daskdeploy.credentials import shared_credentials_dir\n"
        "with daskdeploy.deploy('allocation', quiet=True) as client:\n"
        "    print('ADDRESS', client.scheduler.address)\n"
        "    refused = ' '.join(['REFUSED', *outsider_refusals(client.scheduler.address)])\n"
        "    sys.stdout.write(refused + '\\n')  # one write: stderr lines cannot split it\n"
        "    print('RESULT', client.submit(sum, [1, 2]).result())\n"
        "    print('WORKERS', len(client.scheduler_info()['workers']))\n"
        "    directory = shared_credentials_dir(client.deployment.id)\n"
        "    modes = [directory, *sorted(directory.iterdir())]\n"
        "    print('MODES', *(oct(stat.S_IMODE(p.stat().st_mode)) for p in modes))\n",
    )
    status, log = run_batch_job(
        sandbox, slurm, f"{sys.executable} {script}", "-N", "2", "-n", "2", "--mem-per-cpu=300"
    )
    assert status == 0, log
    assert "ADDRESS tls://" in log, log
    assert "REFUSED tcp foreign-tls" in log, log
    assert "RESULT 3" in log and "WORKERS 2" in log, log
    assert "MODES 0o700 0o600 0o600 0o600" in log, log
    sandbox.assert_clean()


def test_ssh_hosts_get_private_credentials_removed_at_close(ssh_hosts):
    first, second, third = ssh_hosts.hosts
    secret = "SECRET-7f3a-not-for-ps"  # another tool's token in this user's dask config
    with (
        dask.config.set({"othertool": {"token": secret}}),
        daskdeploy.deploy(
            "ssh",
            hosts=[first, second, third],
            connect_options=ssh_hosts.connect_options(),
            quiet=True,
        ) as client,
    ):
        assert_secured(client)
        # distributed's SSH start passes the inherited config on the remote command line
        # (`env DASK_INTERNAL_INHERIT_CONFIG=... python`, in ps while it starts) into every
        # remote process's environment: only dask's own sections may go there.
        assert ssh_hosts.remote_processes("distributed.cli.dask_spec")
        assert not ssh_hosts.remote_processes(secret)
        remote = client.run_on_scheduler(
            lambda: (dask.config.get("othertool", None), dask.config.get("daskdeploy", None))
        )
        assert remote == (None, None)
        assert dask.config.get("othertool.token") == secret  # this process keeps it
        remote = f"/tmp/daskdeploy-{client.deployment.id}/tls"  # the hosts' sessions use /tmp
        for host in ssh_hosts.hosts:
            modes = ssh_hosts.ssh(host, f"stat -c %a {remote} {remote}/ca.pem {remote}/key.pem")
            assert modes.stdout.split() == ["700", "600", "600"], (host, modes)
        assert_private(client.deployment.scratch_dir / "tls")  # the client's own copy
    for host in ssh_hosts.hosts:
        assert ssh_hosts.ssh(host, f"test -e {remote}").returncode == 1


def test_mpi_ranks_share_credentials_by_message(mpiexec_path, sandbox):
    script = sandbox.script(
        "secured_mpi.py",
        OUTSIDER_CHECK + "import daskdeploy\n"
        "with daskdeploy.deploy('mpi', quiet=True) as client:\n"
        "    print('ADDRESS', client.scheduler.address)\n"
        "    refused = ' '.join(['REFUSED', *outsider_refusals(client.scheduler.address)])\n"
        "    sys.stdout.write(refused + '\\n')  # one write: stderr lines cannot split it\n"
        "    print('RESULT', client.submit(sum, [1, 2]).result())\n",
    )
    result = sandbox.run([mpiexec_path, "-n", "3", sys.executable, str(script)], timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ADDRESS tls://127.0.0.1:" in result.stdout, result.stdout
    assert "REFUSED tcp foreign-tls" in result.stdout, result.stdout
    assert "RESULT 3" in result.stdout
    sandbox.assert_clean()


@pytest.fixture(scope="module")
def mpiexec_path() -> str:
    from conftest import require
    from daskdeploy.backends.mpi.launchers import find_mpiexec

    mpiexec = find_mpiexec()
    require(None if mpiexec else "no mpiexec next to this Python", "MPICH (pip install mpich)")
    return mpiexec

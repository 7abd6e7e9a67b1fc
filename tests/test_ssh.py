"""The ssh backend against real sshd daemons on network-namespace hosts (no mocks)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import sys
import time
from pathlib import Path

import pytest
import yaml

import daskdeploy
from conftest import EXAMPLES, example_argv, report_figures, require_module
from reference_answers import check_answer
from worker_facts import assert_workers_forked

require_module("asyncssh", extra="ssh")

REMOTE = "distributed.cli.dask_spec"  # every remote scheduler and worker runs this


def deployment_id(stderr: str) -> str:
    """The deployment id from daskdeploy's summary line."""
    return re.search(r"daskdeploy: (dd-[0-9a-f]+) on ssh", stderr).group(1)


def layout(hosts) -> list[str]:
    """Scheduler on the first namespace host, two workers on each of the other two."""
    first, second, third = hosts.hosts
    return [first, second, second, third, third]


def wait_remote_gone(hosts, timeout: float = 30) -> float:
    """Seconds until no remote scheduler/worker process is left; fails after ``timeout``."""
    started = time.monotonic()
    while hosts.remote_processes(REMOTE):
        assert time.monotonic() - started < timeout, hosts.remote_processes(REMOTE)
        time.sleep(0.1)
    return time.monotonic() - started


def configure(sandbox, hosts, **extra) -> None:
    """Write the hosts and SSH settings to the sandbox's dask config, as a user would."""
    settings = {"hosts": layout(hosts), "connect_options": hosts.connect_options(), **extra}
    config = {"daskdeploy": {"ssh": settings}}
    (sandbox.root / "config").mkdir(exist_ok=True)
    path = sandbox.root / "config" / "daskdeploy.yaml"
    path.write_text(yaml.safe_dump(config))
    sandbox.env["DASK_CONFIG"] = str(path.parent)


def test_deploy_across_namespace_hosts_and_clean_close(ssh_hosts):
    started = time.monotonic()
    with daskdeploy.deploy(
        "ssh", hosts=layout(ssh_hosts), connect_options=ssh_hosts.connect_options(), quiet=True
    ) as client:
        startup = time.monotonic() - started
        workers = client.scheduler_info(n_workers=-1)["workers"]
        assert len(workers) == 4
        assert {addr.split("//")[1].split(":")[0] for addr in workers} == set(ssh_hosts.hosts[1:])
        assert not client.scheduler.address.startswith("tcp://127.")
        assert client.submit(sum, [1, 2]).result() == 3
        assert_workers_forked(client)
        remote_dir = f"/tmp/daskdeploy-{client.deployment.id}"  # the hosts' sessions use /tmp
        local_dirs = client.run(lambda dask_worker: dask_worker.local_directory)
        assert all(path.startswith(remote_dir) for path in local_dirs.values()), local_dirs
        assert ssh_hosts.ssh(ssh_hosts.hosts[1], f"test -d {remote_dir}").returncode == 0
    for host in ssh_hosts.hosts:  # the per-deployment directory is gone from every host
        assert ssh_hosts.ssh(host, f"test -e {remote_dir}").returncode == 1
    closed = time.monotonic()
    gone = wait_remote_gone(ssh_hosts)
    print(
        f"\nssh: 1 scheduler + 4 workers on 3 hosts in {startup:.2f} s; "
        f"remote processes gone {gone:.2f} s after close ({time.monotonic() - closed:.2f})"
    )


def accepted_logins(hosts) -> dict[str, int]:
    """SSH logins each namespace host's sshd has accepted so far, from its log."""
    return {
        host: (hosts.root / "log" / f"sshd-{namespace}.log").read_text().count("Accepted publickey")
        for namespace, host in zip(hosts.namespaces, hosts.hosts, strict=True)
    }


def test_one_ssh_connection_per_host_from_start_to_close(ssh_hosts):
    # The check of each host, its credentials, its scheduler or workers and the clean-up
    # at close all go over one connection per host (distributed's SSHCluster opens one
    # per scheduler and per worker host; daskdeploy used to add three more per host).
    before = accepted_logins(ssh_hosts)
    with daskdeploy.deploy(
        "ssh", hosts=layout(ssh_hosts), connect_options=ssh_hosts.connect_options(), quiet=True
    ) as client:
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == 4
        started = accepted_logins(ssh_hosts)
        # The hosts share this machine's file system: the credentials are private there.
        tls = Path(f"/tmp/daskdeploy-{client.deployment.id}/tls")
        assert stat.S_IMODE(tls.stat().st_mode) == 0o700
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tls.iterdir()}
        assert len(modes) == 3 and set(modes.values()) == {0o600}, modes
    wait_remote_gone(ssh_hosts)
    closed = accepted_logins(ssh_hosts)
    assert {host: started[host] - before[host] for host in before} == dict.fromkeys(
        ssh_hosts.hosts, 1
    )
    assert closed == started


def test_scheduler_that_cannot_start_leaves_no_waiting_workers(ssh_hosts):
    # The workers' Pythons start before the scheduler is up; when it never comes up they
    # must go too, with the deployment's directories.
    before = set(Path("/tmp").glob("daskdeploy-dd-*"))  # the hosts' sessions use /tmp
    started = time.monotonic()
    with pytest.raises(Exception, match="nosuch0") as info:
        daskdeploy.deploy(
            "ssh",
            hosts=layout(ssh_hosts),
            connect_options=ssh_hosts.connect_options(),
            interface="nosuch0",
            quiet=True,
        )
    assert time.monotonic() - started < 30, info.value
    assert not ssh_hosts.remote_processes(REMOTE)
    left = set(Path("/tmp").glob("daskdeploy-dd-*")) - before
    assert not [path for path in left if re.fullmatch(r"daskdeploy-dd-[0-9a-f]+", path.name)]


@pytest.mark.parametrize("name", ["pi", "calc_mean", "wiki_bag", "airline"])
def test_examples_run_unchanged(ssh_hosts, sandbox, airline_dir, wiki_dir, name):
    argv = example_argv(name, wiki_dir, airline_dir)
    configure(sandbox, ssh_hosts)
    result = sandbox.run(
        sandbox.command("run", "--backend", "ssh", "--report", str(EXAMPLES / f"{name}.py"), *argv)
    )
    assert result.returncode == 0, result.stderr
    check_answer(name, result.stdout, argv)
    assert "on ssh: 4 workers" in result.stderr
    assert report_figures(result.stderr)["workers"].startswith("4 x 1 thread")
    wait_remote_gone(ssh_hosts)
    sandbox.assert_clean()


def test_hostfile_with_repeated_hosts(ssh_hosts, tmp_path):
    hostfile = tmp_path / ".hosts"
    hostfile.write_text("\n".join([ssh_hosts.hosts[0], ssh_hosts.hosts[1], ssh_hosts.hosts[1]]))
    with daskdeploy.deploy(
        "ssh",
        hostfile=str(hostfile),
        workers_per_host=2,
        connect_options=ssh_hosts.connect_options(),
        quiet=True,
    ) as client:
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == 4
    wait_remote_gone(ssh_hosts)


def _bad(ssh_hosts, tmp_path, case: str) -> dict:
    options = ssh_hosts.connect_options()
    hosts = layout(ssh_hosts)[:3]
    if case == "wrong port":
        options["port"] = ssh_hosts.silent_port() + 1  # nothing listens there
    elif case == "silent port":  # accepts TCP on loopback, never speaks SSH
        options["port"] = ssh_hosts.silent_port()
        hosts = ["127.0.0.1", "127.0.0.1"]
    elif case == "wrong key":
        key = tmp_path / "other_key"
        os.system(f"ssh-keygen -q -t ed25519 -N '' -f {key}")
        options["client_keys"] = [str(key)]
    elif case == "unknown host":
        hosts = [hosts[0], "no-such-host.invalid"]
    elif case == "bad remote python":
        return {"hosts": hosts, "connect_options": options, "remote_python": "/usr/bin/false"}
    return {"hosts": hosts, "connect_options": options}


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("wrong port", "connection refused"),
        ("silent port", "no SSH answer within 3"),
        ("wrong key", "authentication failed"),
        ("unknown host", "no-such-host.invalid"),
        ("bad remote python", "could not report its distributed version"),
    ],
)
def test_bad_hosts_fail_fast_naming_host_and_cause(ssh_hosts, tmp_path, case, says):
    options = _bad(ssh_hosts, tmp_path, case)
    started = time.monotonic()
    with pytest.raises(daskdeploy.DeploymentError) as info:
        daskdeploy.deploy("ssh", connect_timeout=3, quiet=True, **options)
    assert time.monotonic() - started < 12
    assert says in str(info.value), str(info.value)
    assert "nothing was started" in str(info.value)
    assert not ssh_hosts.remote_processes(REMOTE)


def test_bad_host_lists_are_refused_before_connecting(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("# nobody\n\n")
    cases = [
        ({"hostfile": str(empty)}, "lists no host"),
        ({"hostfile": str(tmp_path / "missing")}, "cannot read the hostfile"),
        ({"hosts": ["10.1.2.3"]}, "at least one worker host"),
        ({}, "either hosts"),
        ({"hosts": ["127.0.0.1", "10.1.2.3"]}, "loopback"),
        ({"hosts": ["a", "b"], "workers": 3}, "drop the workers option"),
    ]
    for options, says in cases:
        with pytest.raises(daskdeploy.OptionError, match=says):
            daskdeploy.plan("ssh", **options)


def test_exception_in_the_script_leaves_nothing(ssh_hosts, sandbox):
    configure(sandbox, ssh_hosts)
    script = sandbox.script(
        "fails.py",
        "import daskdeploy\n"
        "client = daskdeploy.deploy('ssh')\n"
        "raise RuntimeError('analysis failed')\n",
    )
    result = sandbox.run([sys.executable, str(script)])
    assert result.returncode == 1 and "analysis failed" in result.stderr
    wait_remote_gone(ssh_hosts, timeout=15)
    assert not Path(f"/tmp/daskdeploy-{deployment_id(result.stderr)}").exists()
    sandbox.assert_clean()


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("SIGINT", marks=pytest.mark.fault("SIGINT to daskdeploy run", "ssh")),
        pytest.param("SIGKILL", marks=pytest.mark.fault("kill -9 of the client", "ssh")),
    ],
)
def test_interrupted_or_killed_client_leaves_nothing(ssh_hosts, sandbox, how, capsys, record_fault):
    configure(sandbox, ssh_hosts)
    script = sandbox.script("slow.py", "import time\nprint('READY', flush=True)\ntime.sleep(120)\n")
    process = sandbox.popen(sandbox.command("run", "--backend", "ssh", str(script)))
    assert process.stdout.readline().strip() == "READY", process.stderr.read()
    assert ssh_hosts.remote_processes(REMOTE)
    process.send_signal(signal.SIGINT if how == "SIGINT" else signal.SIGKILL)
    sent = time.monotonic()
    process.wait(timeout=60)
    gone = wait_remote_gone(ssh_hosts, timeout=60)
    record_fault(time.monotonic() - sent, "idle workers: to no remote process")
    with capsys.disabled():
        print(f"\nssh: remote processes gone {gone:.2f} s after {how} to the client")
    remote_dir = Path(f"/tmp/daskdeploy-{deployment_id(process.stderr.read())}")
    process.stdout.close()
    process.stderr.close()
    if how == "SIGINT":
        assert not remote_dir.exists()
    else:  # nobody is left to clean up: at most the directory with two lock files remains
        assert {p.name for p in remote_dir.rglob("*")} <= {
            "dask-scratch-space",
            "global.lock",
            "purge.lock",
        }
        shutil.rmtree(remote_dir, ignore_errors=True)

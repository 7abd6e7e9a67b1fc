"""Named deployments: ``daskdeploy up NAME``, attach from other processes, ls, scale, down.

Every deployment here is started by the real command in a sandbox, attached to from
separate processes (``daskdeploy run --attach``, a plain ``python`` with the printed
snippet, a real Jupyter kernel, this test process), and ended by ``down``, its idle
timeout or a crash; each test then proves that no process and no file was left. Answers
are checked against references computed here.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

import daskdeploy
from conftest import EXAMPLES, example_argv, require_module
from daskdeploy.named.supervisor import STATUS_INTERVAL
from daskdeploy.testing.sandbox import require, wait_for
from reference_answers import check_answer

PYTHON = sys.executable


# -- helpers ---------------------------------------------------------------------------------


def up(sandbox, name: str, *args: str, timeout: float = 180) -> str:
    """``daskdeploy up NAME ARGS``; returns its output, fails the test if it failed."""
    result = sandbox.run(sandbox.command("up", name, *args), timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{name} is up (dd-" in result.stdout, result.stdout
    return result.stdout


def named(sandbox, name: str) -> dict | None:
    """The ``daskdeploy ls --json`` entry of deployment ``name`` (``None`` if not listed)."""
    for entry in sandbox.deployments().values():
        if (entry.get("named") or {}).get("name") == name:
            return entry
    return None


def record_of(sandbox, name: str) -> dict | None:
    """The record of deployment ``name``, read straight from the sandbox's cache."""
    directory = sandbox.cache_dir / "daskdeploy" / "deployments"
    for path in directory.glob("dd-*.json") if directory.exists() else []:
        content = json.loads(path.read_text())
        if content.get("name") == name:
            return content
    return None


def run_attached(sandbox, name: str, script: Path | str, *argv: str, timeout: float = 120):
    return sandbox.run(sandbox.command("run", "--attach", name, str(script), *argv), timeout)


def down(sandbox, name: str) -> str:
    result = sandbox.run(sandbox.command("down", name), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Ended {name} (" in result.stdout and ": dd-" in result.stdout, result.stdout
    return result.stdout


@pytest.fixture
def in_sandbox(sandbox, monkeypatch):
    """This test process sees the sandbox's records, as a script run there would."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(sandbox.cache_dir))
    return sandbox


# -- local -----------------------------------------------------------------------------------


def test_up_attach_from_two_processes_scale_and_down_on_local(sandbox, wiki_dir, airline_dir):
    printed = up(sandbox, "analysis", "-n", "2")
    assert "scheduler  tls://127.0.0.1:" in printed  # TLS even on local: it outlives up
    assert "ends       after 1h idle" in printed
    deployment_id = record_of(sandbox, "analysis")["id"]

    # Two separate processes one after the other, each an unchanged example.
    for example in ("pi", "calc_mean"):
        argv = example_argv(example, wiki_dir, airline_dir)
        ran = run_attached(sandbox, "analysis", EXAMPLES / f"{example}.py", *argv)
        assert ran.returncode == 0, ran.stderr
        check_answer(example, ran.stdout, argv)
        assert f"attached to 'analysis' ({deployment_id} on local, 2 workers now" in ran.stderr

    entry = named(sandbox, "analysis")
    assert entry["id"] == deployment_id and entry["state"] == "running"
    assert entry["named"]["state"] == "ready" and entry["named"]["workers"] == 2
    # The supervisor looks at the scheduler every STATUS_INTERVAL (2 s): the script that
    # just ended may still be counted for that long.
    wait_for(
        lambda: "2 workers, 0 clients" in sandbox.run(sandbox.command("ls")).stdout,
        3 * STATUS_INTERVAL,
        "ls to show the ended scripts' clients gone",
    )
    listing = sandbox.run(sandbox.command("ls")).stdout
    (row,) = [line for line in listing.splitlines() if line.split()[:1] == [deployment_id]]
    assert row.split()[1:4] == ["analysis", "local", "ready"], listing

    again = sandbox.run(sandbox.command("up", "analysis", "-n", "1"), timeout=60)
    assert again.returncode == 1 and "already runs" in again.stderr, again.stderr

    resized = sandbox.run(sandbox.command("scale", "analysis", "3"), timeout=60)
    assert resized.returncode == 0, resized.stderr
    wait_for(lambda: named(sandbox, "analysis")["named"]["workers"] == 3, 60, "3 workers")
    refused = sandbox.run(sandbox.command("scale", "analysis", "100000"), timeout=60)
    assert refused.returncode == 1, refused.stderr
    assert "100000 local worker processes cannot fit this machine" in refused.stderr

    # A plain distributed script, with the snippet `up` prints, and nothing of daskdeploy.
    snippet = sandbox.run(sandbox.command("attach-snippet", "analysis")).stdout
    plain = sandbox.script(
        "plain.py",
        snippet + "print('SUM', client.submit(sum, [1, 2, 3]).result(), "
        "len(client.scheduler_info()['workers']))\nclient.close()\n",
    )
    ran = sandbox.run([PYTHON, str(plain)])
    assert ran.returncode == 0, ran.stderr
    assert "SUM 6 3" in ran.stdout

    down(sandbox, "analysis")
    sandbox.assert_clean()
    assert (
        "ending analysis: SIGTERM received"
        in (sandbox.cache_dir / "daskdeploy/named/analysis.log").read_text()
    )


def test_deploy_attach_in_python_leaves_it_running_and_dask_ctl_finds_it(in_sandbox):
    sandbox = in_sandbox
    up(sandbox, "inproc", "-n", "1")
    with daskdeploy.deploy(attach="inproc", quiet=True) as client:
        assert client.submit(sum, [1, 2, 3]).result() == 6
        assert isinstance(client.cluster, daskdeploy.NamedCluster)
        assert client.cluster.scheduler_address.startswith("tls://127.0.0.1:")
    # deploy("NAME"): not a backend or profile, so it attaches.
    with daskdeploy.deploy("inproc", quiet=True) as client:
        assert client.submit(pow, 2, 10).result() == 1024
    assert record_of(sandbox, "inproc")["named"]["state"] == "ready"

    with pytest.raises(daskdeploy.OptionError, match="drop workers"):
        daskdeploy.deploy(attach="inproc", workers=3)

    # dask-ctl's discovery protocol: the entry point, then from_name.
    from importlib.metadata import entry_points

    (entry_point,) = [
        ep for ep in entry_points(group="dask_cluster_discovery") if ep.name == "daskdeploy"
    ]

    async def discovered() -> list:
        return [found async for found in entry_point.load()()]

    assert ("inproc", daskdeploy.NamedCluster) in asyncio.run(discovered())
    cluster = daskdeploy.NamedCluster.from_name("inproc")
    try:
        assert len(cluster.scheduler_info["workers"]) == 1
        assert "NamedCluster(inproc, 'tls://127.0.0.1:" in repr(cluster)
    finally:
        cluster.close()
    assert record_of(sandbox, "inproc")["named"]["state"] == "ready"  # close: only the view

    down(sandbox, "inproc")
    with pytest.raises(daskdeploy.DeploymentError, match="No deployment named 'inproc' runs"):
        daskdeploy.deploy(attach="inproc")
    sandbox.assert_clean()


#: dask-ctl 2024.1.0 (the latest) imports distributed.cli.utils.install_signal_handlers at
#: import time, which distributed 2026 removed (dask/distributed#9240): without this one
#: line dask-ctl cannot be imported at all. Everything else is dask-ctl's own code.
DASK_CTL = """
import sys
import distributed.cli.utils
distributed.cli.utils.install_signal_handlers = lambda *args, **kwargs: None
from dask_ctl.cli import cluster
cluster(sys.argv[1:], prog_name="dask cluster")
"""


def test_dask_cluster_list_lists_the_named_deployment(sandbox):
    require_module("dask_ctl", extra="test")
    up(sandbox, "listed", "-n", "2")
    sandbox.env["COLUMNS"] = "250"  # rich draws the table to the terminal's width
    result = sandbox.run([PYTHON, "-c", DASK_CTL, "list"], timeout=120)
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if " listed " in line]
    assert "tls://127.0.0.1:" in row and "daskdeploy" in row and "Running" in row, row
    assert row.split()[4:6] == ["2", "2"], row  # workers and threads, from the scheduler
    down(sandbox, "listed")
    sandbox.assert_clean()


def test_idle_timeout_ends_a_forgotten_deployment_counted_from_its_last_use(sandbox):
    up(sandbox, "forgotten", "-n", "1", "--idle-timeout", "6s")
    assert record_of(sandbox, "forgotten")["named"]["idle_timeout"] == 6.0
    script = sandbox.script(
        "one.py", "import dask\nprint('ANSWER', dask.delayed(sum)([1, 2]).compute())\n"
    )
    assert "ANSWER 3" in run_attached(sandbox, "forgotten", script).stdout
    used = time.monotonic()
    wait_for(lambda: record_of(sandbox, "forgotten") is None, 60, "the idle timeout")
    idle_end = time.monotonic() - used
    sandbox.assert_clean()
    log = (sandbox.cache_dir / "daskdeploy/named/forgotten.log").read_text()
    assert "ending forgotten: idle for 6 s (no client and no task)" in log
    # The clock restarted when the script left (looks every 2 s), not when `up` returned.
    assert 3.5 < idle_end < 30, idle_end
    print(f"\nnamed: idle timeout of 6 s ended the deployment {idle_end:.1f} s after its last use")


def test_kill_9_of_the_supervisor_then_ls_attach_and_down_tell_the_truth(sandbox):
    up(sandbox, "crashy", "-n", "2")
    record = record_of(sandbox, "crashy")
    supervisor = psutil.Process(record["pid"])
    # Kill its reaper first, so that nothing cleans up: the worst case.
    for child in supervisor.children():
        if "-c" in child.cmdline() and "-I" in child.cmdline():
            child.kill()
    supervisor.kill()
    supervisor.wait(10)

    entry = named(sandbox, "crashy")
    assert entry["state"] == "orphaned" and entry["named"]["state"] == "gone", entry
    script = sandbox.script("one.py", "import dask\nprint(dask.delayed(sum)([1, 2]).compute())\n")
    ran = run_attached(sandbox, "crashy", script)
    assert ran.returncode == 1
    assert f"is gone: its supervisor (pid {record['pid']}) has died" in ran.stderr, ran.stderr
    down(sandbox, "crashy")
    sandbox.assert_clean()


def test_kill_9_of_the_supervisor_alone_is_cleaned_up_by_its_reaper(sandbox):
    up(sandbox, "reaped", "-n", "1")
    os.kill(record_of(sandbox, "reaped")["pid"], signal.SIGKILL)
    began = time.monotonic()
    wait_for(lambda: record_of(sandbox, "reaped") is None, 60, "the reaper")
    sandbox.assert_clean()
    print(f"\nnamed: reaper ended a kill -9'd deployment in {time.monotonic() - began:.1f} s")


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["up", "1st"], 2, "cannot name a deployment: use a letter"),
        (["up", "slurm"], 2, "is a backend name"),
        (["up", "x", "--backend", "mpi"], 2, "cannot outlive a command"),
        (["up", "x", "--backend", "nosuch"], 2, "Unknown backend 'nosuch'"),
        (["up", "x", "--idle-timeout", "soon"], 2, "Invalid idle_timeout"),
        (["up", "x", "-o", "wokers=2"], 2, "wokers"),
        (["run", "--attach", "nosuch", "SCRIPT"], 1, "No deployment named 'nosuch' runs here"),
        (["run", "--attach", "x", "-n", "2", "SCRIPT"], 2, "drop --workers"),
        (["down", "nosuch"], 1, "No deployment named 'nosuch' here"),
        (["scale", "nosuch", "3"], 1, "No deployment named 'nosuch' runs here"),
        (["logs", "nosuch"], 1, "No log of a deployment named 'nosuch'"),
    ],
)
def test_bad_input_fails_fast_and_leaves_nothing(sandbox, args, status, message):
    script = sandbox.script("s.py", "print('never')\n")
    command = [str(script) if arg == "SCRIPT" else arg for arg in args]
    began = time.monotonic()
    result = sandbox.run(sandbox.command(*command), timeout=60)
    assert (result.returncode, message in result.stderr) == (status, True), result.stderr
    assert "never" not in result.stdout
    assert time.monotonic() - began < 15
    sandbox.assert_clean()


# -- another user ------------------------------------------------------------------------------

OTHER_USER = "daskdeploy-other"

INTRUDER = r"""
import sys
from distributed import Client, Security

address, ca, cert, key, own = sys.argv[1:6]
for path in (ca, cert, key):
    try:
        open(path).read()
        print("READ", path)
    except PermissionError:
        print("NO-READ", path)
for label, target, security in (
    ("plain-tcp", address.replace("tls://", "tcp://"), None),
    ("own-certificate", address, Security(
        tls_ca_file=own + "/ca.pem", tls_client_cert=own + "/cert.pem",
        tls_client_key=own + "/key.pem", require_encryption=True)),
):
    try:
        Client(target, security=security, timeout=5).close()
        print("CONNECTED", label)
    except OSError as exc:  # distributed's CommClosedError; a timeout is printed too
        print("REFUSED", label, type(exc).__name__, str(exc)[:60])
# TLS with no client certificate, trusting any server: distributed's Security cannot even
# express it (it raises TypeError before connecting), so a raw TLS 1.3 handshake: the
# scheduler's verdict on the missing certificate arrives as an alert on the first read.
import socket, ssl
host, port = address.removeprefix("tls://").rsplit(":", 1)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
try:
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            tls.recv(1)
    print("CONNECTED tls-without-certificate")
except ssl.SSLError as exc:
    print("REFUSED tls-without-certificate", exc.reason)
"""


def _other_user() -> pwd.struct_passwd | None:
    """A second Unix user for the test, created if this process may (root)."""
    try:
        return pwd.getpwnam(OTHER_USER)
    except KeyError:
        pass
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        return None
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", OTHER_USER],
        check=False,
        capture_output=True,
    )
    try:
        return pwd.getpwnam(OTHER_USER)
    except KeyError:
        return None


def test_another_user_cannot_read_the_credentials_or_connect(sandbox):
    other = _other_user()
    require(
        None if other is not None else "needs root (useradd) to create a second user",
        "a second Unix user",
    )
    up(sandbox, "private", "-n", "1")
    record = record_of(sandbox, "private")
    tls = record["named"]["tls"]
    from daskdeploy.credentials import Credentials

    with tempfile.TemporaryDirectory() as outside:
        os.chmod(outside, 0o755)
        own = Credentials.generate("dd-00000000").write(Path(outside) / "own")
        for path in (own.directory, *own.directory.iterdir()):
            os.chown(path, other.pw_uid, other.pw_gid)
        intruder = Path(outside) / "intruder.py"
        intruder.write_text(INTRUDER)
        os.chmod(intruder, 0o644)
        result = subprocess.run(
            [
                "setpriv",
                f"--reuid={other.pw_uid}",
                f"--regid={other.pw_gid}",
                "--clear-groups",
                PYTHON,
                str(intruder),
                record["scheduler_address"],
                tls["ca"],
                tls["cert"],
                tls["key"],
                str(own.directory),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd="/",
            env={"PATH": os.environ["PATH"], "HOME": outside, "PYTHONDONTWRITEBYTECODE": "1"},
            check=False,
        )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["NO-READ"] * 3, result.stdout
    # Each refused for its own reason: the TLS listener drops plain TCP; the scheduler's
    # certificate is not signed by the intruder's CA; no client certificate, no session.
    assert [line.split(maxsplit=3)[1:3] for line in lines[3:5]] == [
        ["plain-tcp", "CommClosedError"],
        ["own-certificate", "FatalCommClosedError"],
    ], result.stdout
    assert "TLS certificate does not match" in lines[4], result.stdout
    assert lines[5:] == ["REFUSED tls-without-certificate TLSV13_ALERT_CERTIFICATE_REQUIRED"], (
        result.stdout
    )
    # The owner still can, and the deployment is unharmed.
    script = sandbox.script(
        "one.py", "import dask\nprint('ANSWER', dask.delayed(sum)([1, 2]).compute())\n"
    )
    assert "ANSWER 3" in run_attached(sandbox, "private", script).stdout
    down(sandbox, "private")
    sandbox.assert_clean()


# -- a Jupyter kernel ------------------------------------------------------------------------

NOTEBOOK_CELL = """
import daskdeploy
import dask.array as da
client = daskdeploy.deploy(attach="notebook", quiet=True)
x = da.random.RandomState(7).random_sample(200_000, chunks=25_000)
print("MEAN", float(x.mean().compute()), len(client.scheduler_info()["workers"]))
"""


def test_a_jupyter_kernel_attaches_restarts_and_attaches_again(sandbox):
    import dask.array as da
    from jupyter_client.manager import KernelManager

    # The same numbers computed here, in this process, without any deployment.
    sample = da.random.RandomState(7).random_sample(200_000, chunks=25_000)
    expected = float(sample.compute(scheduler="sync").mean())
    up(sandbox, "notebook", "-n", "2")
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=sandbox.env, cwd=str(sandbox.root))
    kernel = manager.client()
    kernel.start_channels()
    try:
        answers = []
        for restart in (False, True):
            if restart:
                manager.restart_kernel(now=True)
                kernel.wait_for_ready(timeout=60)
            else:
                kernel.wait_for_ready(timeout=60)
            printed: list[str] = []

            def collect(message: dict, printed: list[str] = printed) -> None:
                if message["msg_type"] == "stream":
                    printed.append(message["content"]["text"])
                elif message["msg_type"] == "error":
                    printed.append("\n".join(message["content"]["traceback"]))

            reply = kernel.execute_interactive(NOTEBOOK_CELL, timeout=120, output_hook=collect)
            assert reply["content"]["status"] == "ok", "".join(printed)
            line = next(line for line in "".join(printed).splitlines() if line.startswith("MEAN"))
            answers.append(line.split())
            assert record_of(sandbox, "notebook")["named"]["state"] == "ready"
        for _, mean, workers in answers:
            assert abs(float(mean) - expected) < 1e-12 and workers == "2"
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)
    down(sandbox, "notebook")
    sandbox.assert_clean()


# -- slurm and ssh -----------------------------------------------------------------------------


def test_up_on_slurm_attach_twice_shows_the_time_limit_and_down_leaves_no_job(
    slurm, sandbox, wiki_dir, airline_dir
):
    printed = up(sandbox, "hpc", "--backend", "slurm", "-n", "2", "-o", "walltime=00:30:00")
    assert "(time limit, in 30m)" in printed or "(time limit, in 29" in printed, printed
    record = record_of(sandbox, "hpc")
    assert 29 * 60 < record["named"]["ends_at"] - time.time() <= 30 * 60
    jobs = {job["id"] for job in slurm.jobs()}
    assert jobs, "no SLURM job runs the workers"
    argv = example_argv("pi", wiki_dir, airline_dir)
    for _ in range(2):
        ran = run_attached(sandbox, "hpc", EXAMPLES / "pi.py", *argv)
        assert ran.returncode == 0, ran.stderr
        check_answer("pi", ran.stdout, argv)
    assert {job["id"] for job in slurm.jobs()} == jobs  # the same jobs served both runs
    assert "ends " in sandbox.run(sandbox.command("ls")).stdout
    down(sandbox, "hpc")
    slurm.wait_for_no_jobs(timeout=60)
    sandbox.assert_clean()


def test_up_on_ssh_runs_scripts_refuses_scale_and_down_leaves_nothing(
    ssh_hosts, sandbox, wiki_dir, airline_dir
):
    from test_ssh import REMOTE, configure, wait_remote_gone

    configure(sandbox, ssh_hosts)
    up(sandbox, "remote", "--backend", "ssh")
    argv = example_argv("calc_mean", wiki_dir, airline_dir)
    ran = run_attached(sandbox, "remote", EXAMPLES / "calc_mean.py", *argv)
    assert ran.returncode == 0, ran.stderr
    check_answer("calc_mean", ran.stdout, argv)
    assert ssh_hosts.remote_processes(REMOTE)
    refused = sandbox.run(sandbox.command("scale", "remote", "6"), timeout=60)
    assert refused.returncode == 1 and "has a fixed set of workers" in refused.stderr
    down(sandbox, "remote")
    wait_remote_gone(ssh_hosts)
    sandbox.assert_clean()


def test_up_with_the_scheduler_in_a_slurm_job_of_its_own(slurm, sandbox, wiki_dir, airline_dir):
    up(sandbox, "injob", "--backend", "slurm", "-n", "2", "--scheduler-in-job")
    record = record_of(sandbox, "injob")
    # The supervisor, and so the scheduler, is a process of the job <id>-up; the worker
    # jobs it submitted (an array of two tasks) are named with the id, as usual.
    supervisor_job = psutil.Process(record["pid"]).environ().get("SLURM_JOB_ID")
    jobs = {job["id"]: job for job in slurm.jobs()}
    assert jobs[supervisor_job]["name"] == f"{record['id']}-up", jobs
    assert jobs[supervisor_job]["state"] == "RUNNING", jobs
    workers = [job for job in jobs.values() if job["name"] == record["id"]]
    assert [job["state"] for job in workers] == ["RUNNING", "RUNNING"], jobs
    assert record["named"]["status"]["workers"] == 2
    argv = example_argv("wiki_bag", wiki_dir, airline_dir)
    ran = run_attached(sandbox, "injob", EXAMPLES / "wiki_bag.py", *argv)
    assert ran.returncode == 0, ran.stderr
    check_answer("wiki_bag", ran.stdout, argv)
    # `down` from another login node (as the record says it ran elsewhere) cannot signal
    # the supervisor: it cancels the supervisor's job, and the supervisor tears down.
    path = sandbox.cache_dir / "daskdeploy" / "deployments" / f"{record['id']}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "hostname": "login2"}))
    assert named(sandbox, "injob")["state"] == "unknown"
    down(sandbox, "injob")
    slurm.wait_for_no_jobs(timeout=60)
    sandbox.assert_clean()
    log = (sandbox.cache_dir / "daskdeploy/named/injob.log").read_text()
    assert "ending injob: SIGTERM received" in log
    assert "injob ended; nothing is left running" in log


def test_scheduler_in_job_is_refused_where_there_is_no_batch_system(sandbox):
    result = sandbox.run(sandbox.command("up", "x", "--scheduler-in-job", "-n", "1"), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "has no batch system to run the scheduler in" in result.stderr
    sandbox.assert_clean()

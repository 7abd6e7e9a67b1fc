"""``daskdeploy ls``, ``daskdeploy cleanup`` and the reaper, on real deployments.

Each case runs a real script in a subprocess (private TMPDIR and cache, a marker in the
environment of every process it starts), then ends it the hard way (``kill -9``) or with
``daskdeploy cleanup``, and proves that nothing is left: no process, no SLURM job, no file.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

from daskdeploy import orphans, records
from daskdeploy.backends.ssh.hosts import recordable_connect_options

HOLD = """\
import sys, time
import daskdeploy

backend = sys.argv[1]
workers = {} if backend == "ssh" else {"workers": 2}  # ssh: one worker per listed host
client = daskdeploy.deploy(backend, quiet=True, **workers)
print("READY", client.deployment.id, flush=True)
time.sleep(300)
"""

GONE_BOUND = 15.0  # seconds from kill -9 of the owner to nothing listed


def _start(sandbox, backend: str):
    """Start the holding script; return (process, deployment id) once its workers are up."""
    script = sandbox.script("hold.py", HOLD)
    process = sandbox.popen([sys.executable, str(script), backend])
    line = process.stdout.readline()
    if not line.startswith("READY"):
        process.kill()
        pytest.fail(f"the script did not deploy: {line!r} {process.stderr.read()}")
    return process, line.split()[1]


def _stop(process) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)
    process.stdout.close()
    process.stderr.close()


def _listed(sandbox) -> dict[str, dict]:
    result = sandbox.run(sandbox.command("ls", "--json"), timeout=60)
    assert result.returncode == 0, result.stderr
    return {entry["id"]: entry for entry in json.loads(result.stdout)}


def _wait_unlisted(deployment_id: str, timeout: float) -> float:
    """Seconds until nothing of the deployment is found (record, job or process)."""
    began = time.monotonic()
    while orphans.find_deployment(deployment_id) is not None:
        assert time.monotonic() - began < timeout, f"{deployment_id} still found"
        time.sleep(0.05)
    return time.monotonic() - began


@pytest.fixture
def sandbox_cache(sandbox, monkeypatch):
    """Look in the sandbox's cache from this process too (records live there)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(sandbox.cache_dir))
    return sandbox


@pytest.mark.fault("kill -9 of the client", "local")
def test_ls_lists_a_running_deployment_and_the_reaper_ends_it_after_kill_9(
    sandbox_cache, record_fault
):
    sandbox = sandbox_cache
    process, deployment_id = _start(sandbox, "local")
    try:
        table = sandbox.run(sandbox.command("ls"), timeout=60)
        row = next(line for line in table.stdout.splitlines() if deployment_id in line)
        assert row.split()[1:4] == ["-", "local", "running"], table.stdout  # no NAME
        assert f":{process.pid}" in row and "tcp://127.0.0.1:" in row
        entry = _listed(sandbox)[deployment_id]
        assert entry["state"] == "running" and entry["owner"]["pid"] == process.pid
        assert len(entry["processes"]) >= 2, entry  # the two workers (and their helpers)

        process.send_signal(signal.SIGKILL)
        seconds = _wait_unlisted(deployment_id, GONE_BOUND)
        print(f"\nkill -9 of the owner to nothing listed (reaper): {seconds:.2f} s")
        record_fault(seconds, "to nothing listed (reaper)")
    finally:
        _stop(process)
    assert deployment_id not in _listed(sandbox)
    sandbox.assert_clean()


def test_cleanup_ends_a_running_deployment(sandbox_cache):
    sandbox = sandbox_cache
    process, deployment_id = _start(sandbox, "local")
    try:
        began = time.monotonic()
        result = sandbox.run(sandbox.command("cleanup", deployment_id), timeout=60)
        status = process.wait(timeout=20)
        print(f"\ndaskdeploy cleanup of a running deployment: {time.monotonic() - began:.2f} s")
    finally:
        _stop(process)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Ending {deployment_id} (local, running" in result.stdout
    assert "SIGTERM" in result.stdout and f"Ended {deployment_id}" in result.stdout
    assert status == 128 + signal.SIGTERM  # the owner's own teardown ran
    assert orphans.find_deployment(deployment_id) is None
    sandbox.assert_clean()


@pytest.mark.fault("kill -9 of the client", "slurm")
def test_kill_9_on_slurm_leaves_no_job(slurm, sandbox_cache, record_fault):
    sandbox = sandbox_cache
    sandbox.env.update(slurm.env)
    process, deployment_id = _start(sandbox, "slurm")
    try:
        ours = [job for job in slurm.jobs() if job["name"] == deployment_id]
        assert len(ours) == 2, slurm.jobs()  # HOLD's 2 workers, up when it prints READY
        assert all(job["comment"] == f"daskdeploy:{deployment_id}" for job in ours), ours
        listed = _listed(sandbox)[deployment_id]["slurm_jobs"]
        assert sorted(job["id"] for job in listed) == sorted(job["id"] for job in ours), listed
        process.send_signal(signal.SIGKILL)
        began = time.monotonic()
        while any(job["name"] == deployment_id for job in slurm.jobs()):
            assert time.monotonic() - began < GONE_BOUND, slurm.jobs()
            time.sleep(0.1)
        seconds = time.monotonic() - began
        print(f"\nkill -9 of a slurm owner to no job left (reaper): {seconds:.2f} s")
        record_fault(seconds, "to no job left (reaper)")
        _wait_unlisted(deployment_id, GONE_BOUND)
    finally:
        _stop(process)
    assert slurm.jobs() == []
    sandbox.assert_clean()


@pytest.mark.fault("kill -9 of the client", "sge")
def test_kill_9_on_sge_leaves_no_job(sge, sandbox_cache, record_fault):
    """ls lists the deployment's Grid Engine jobs (found with qstat by their name); after
    kill -9 of their owner the reaper deletes them."""
    sandbox = sandbox_cache
    process, deployment_id = _start(sandbox, "sge")
    try:
        ours = [job for job in sge.jobs() if job["name"] == deployment_id]
        assert len(ours) == 2, sge.jobs()  # HOLD's 2 workers, up when it prints READY
        listed = _listed(sandbox)[deployment_id]["sge_jobs"]
        assert sorted(job["id"] for job in listed) == sorted(job["id"] for job in ours)
        process.send_signal(signal.SIGKILL)
        began = time.monotonic()
        while any(job["name"] == deployment_id for job in sge.jobs()):
            assert time.monotonic() - began < GONE_BOUND, sge.jobs()
            time.sleep(0.1)
        seconds = time.monotonic() - began
        print(f"\nkill -9 of an sge owner to no job left (reaper): {seconds:.2f} s")
        record_fault(seconds, "to no job left (reaper)")
        _wait_unlisted(deployment_id, GONE_BOUND)
    finally:
        _stop(process)
    assert sge.jobs() == []
    sandbox.assert_clean()


@pytest.mark.fault("kill -9 of the client", "ssh")
def test_kill_9_on_ssh_leaves_nothing_on_the_hosts(ssh_hosts, sandbox_cache, record_fault):
    from test_ssh import REMOTE, configure

    sandbox = sandbox_cache
    configure(sandbox, ssh_hosts)
    process, deployment_id = _start(sandbox, "ssh")
    remote_dir = Path(f"/tmp/daskdeploy-{deployment_id}")  # the namespace hosts share /tmp
    try:
        assert _listed(sandbox)[deployment_id]["ssh_hosts"] == list(dict.fromkeys(ssh_hosts.hosts))
        process.send_signal(signal.SIGKILL)
        began = time.monotonic()
        while ssh_hosts.remote_processes(REMOTE) or remote_dir.exists():
            assert time.monotonic() - began < GONE_BOUND, ssh_hosts.remote_processes(REMOTE)
            time.sleep(0.1)
        seconds = time.monotonic() - began
        print(f"\nkill -9 of an ssh owner to no remote process or directory: {seconds:.2f} s")
        record_fault(seconds, "to no remote process or directory (reaper)")
        _wait_unlisted(deployment_id, GONE_BOUND)
    finally:
        _stop(process)
    sandbox.assert_clean()


def test_bad_ids_are_refused(sandbox):
    not_an_id = sandbox.run(sandbox.command("cleanup", "dd-00c0ffee", "nonsense"), timeout=60)
    assert not_an_id.returncode == 2
    assert "'nonsense' is not a deployment id" in not_an_id.stderr
    unknown = sandbox.run(sandbox.command("cleanup", "dd-00c0ffee"), timeout=60)
    assert unknown.returncode == 2
    assert "No deployment dd-00c0ffee found" in unknown.stderr
    assert "Known deployments:" in unknown.stderr


def test_records_are_private_atomic_and_skip_unreadable_files(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    caplog.set_level(logging.WARNING, logger="daskdeploy")
    record = records.DeploymentRecord.for_this_process(
        "dd-0123abcd", "local", scheduler_address="tcp://127.0.0.1:1", data={"x": [1]}
    )
    path = records.write(record)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    (path.parent / "dd-99999999.json").write_text("{not json")
    assert [r.id for r in records.read_all()] == ["dd-0123abcd"]
    assert "dd-99999999.json" in caplog.text
    assert records.read("dd-0123abcd") == record
    assert record.owner_alive() is True
    assert records.remove("dd-0123abcd") and not records.remove("dd-0123abcd")
    assert sorted(os.listdir(path.parent)) == ["dd-99999999.json"]  # no temporary files


def test_ssh_connect_options_are_recorded_without_secrets():
    kept = recordable_connect_options(
        {
            "username": "me",
            "port": 2222,
            "known_hosts": None,
            "client_keys": ["/home/me/.ssh/id_ed25519"],
            "password": "hunter2",
            "passphrase": "x",
            "agent_path": object(),
        }
    )
    assert kept == {
        "username": "me",
        "port": 2222,
        "known_hosts": None,
        "client_keys": ["/home/me/.ssh/id_ed25519"],
    }


def test_cleanup_removes_worker_spill_directories_left_on_this_host(tmp_path, monkeypatch):
    """A worker killed before its shell's exit trap ran (srun step killed after kill -9 of
    an salloc shell's client) leaves daskdeploy-<id>-XXXXXX in TMPDIR; the clean-up the
    reaper runs takes it, and only it."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    deployment_id = "dd-0123abcd"
    left = tmp_path / f"daskdeploy-{deployment_id}-Xy12Ab"
    (left / "dask-scratch-space").mkdir(parents=True)
    other = tmp_path / "daskdeploy-dd-99999999-Xy12Ab"  # another deployment's
    other.mkdir()
    report = orphans.end_deployment(deployment_id)
    assert not report.errors, report.errors
    assert not left.exists()
    assert other.exists()


#: A third-party backend, installed as a distribution with an entry point: the local
#: backend plus a "remote" marker file that only its leftover hooks know how to find and
#: end (standing for a batch job or a process on another host).
MARKER_PLUGIN = """\
import os
from pathlib import Path

from daskdeploy.backends.base import Leftover, LeftoverCleanup, LeftoverSearch
from daskdeploy.backends.local import LocalBackend


def _markers() -> Path:
    return Path(os.environ["MARKER_BACKEND_DIR"])


class MarkerBackend(LocalBackend):
    name = "marker"
    summary = "local workers plus a marker file only this backend can end"
    leftovers_key = "markers"
    defaults = {"processes": True, "tls": False}

    def start(self, options, context):
        running = super().start(options, context)
        marker = _markers() / context.deployment_id
        marker.write_text("started")
        running.stop.append(lambda: marker.unlink(missing_ok=True))
        return running

    def find_leftovers(self, deployment_id, records):
        found = {}
        for path in _markers().glob("dd-*"):
            if deployment_id in (None, path.name):
                found[path.name] = [Leftover(path.name, "left", {"marker": str(path)})]
        return LeftoverSearch(found)

    def end_leftovers(self, deployment_id, record, found):
        for leftover in found:
            Path(leftover.detail["marker"]).unlink()
        return LeftoverCleanup(done=[f"removed {len(found)} marker(s)"] if found else [])

    def describe_leftovers(self, found):
        return f"{len(found)} marker(s)"
"""


@pytest.fixture
def marker_backend(sandbox_cache, tmp_path):
    """The plugin above, installed for the sandbox's processes (and the reaper's cleanup)."""
    site = tmp_path / "site"
    dist_info = site / "marker_backend-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: marker-backend\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[daskdeploy.backends]\nmarker = marker_backend:MarkerBackend\n"
    )
    (site / "marker_backend.py").write_text(MARKER_PLUGIN)
    markers = tmp_path / "markers"
    markers.mkdir()
    sandbox = sandbox_cache
    paths = [str(site), sandbox.env.get("PYTHONPATH", "")]
    sandbox.env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    sandbox.env["MARKER_BACKEND_DIR"] = str(markers)
    return sandbox, markers


def test_a_third_party_backend_gets_ls_and_cleanup_through_its_leftover_hooks(marker_backend):
    """ls lists what the plugin's find_leftovers finds; after kill -9 of the owner the
    reaper's cleanup calls its end_leftovers, which ends it."""
    sandbox, markers = marker_backend
    process, deployment_id = _start(sandbox, "marker")
    try:
        assert (markers / deployment_id).exists()
        entry = _listed(sandbox)[deployment_id]
        assert entry["backend"] == "marker" and entry["state"] == "running", entry
        assert entry["markers"] == [{"marker": str(markers / deployment_id)}], entry
        table = sandbox.run(sandbox.command("ls"), timeout=60).stdout
        assert "1 marker(s)" in next(line for line in table.splitlines() if deployment_id in line)

        process.send_signal(signal.SIGKILL)
        began = time.monotonic()
        while (markers / deployment_id).exists() or deployment_id in _listed(sandbox):
            assert time.monotonic() - began < GONE_BOUND, "the reaper did not end the marker"
            time.sleep(0.1)
    finally:
        _stop(process)
    assert not list(markers.iterdir())
    sandbox.assert_clean()

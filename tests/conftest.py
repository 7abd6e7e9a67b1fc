"""Shared fixtures: isolated dask config, leftover detection, subprocess helpers."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import dask.config
import psutil
import pytest

from daskdeploy.config import ensure_defaults
from daskdeploy.datasets import prepare_airline, prepare_wiki

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
MARKER_VAR = "DASKDEPLOY_TEST_MARKER"


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Give every test its own dask config dir and no DASKDEPLOY_BACKEND from outside."""
    config_dir = tmp_path_factory.mktemp("dask-config")
    monkeypatch.setattr(dask.config, "PATH", str(config_dir))
    monkeypatch.setenv("DASK_CONFIG", str(config_dir))
    monkeypatch.delenv("DASKDEPLOY_BACKEND", raising=False)
    # Default SLURM job logs go to $XDG_CACHE_HOME/daskdeploy: keep them per test.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    ensure_defaults()
    with dask.config.set({"daskdeploy.profiles": {}}):
        yield config_dir


def processes_with_marker(marker: str) -> list[psutil.Process]:
    """Return live (non-zombie) processes whose environment carries ``marker``."""
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if process.environ().get(MARKER_VAR) == marker and process.status() != "zombie":
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_until_gone(marker: str, timeout: float = 15.0) -> list[psutil.Process]:
    """Wait until no process carries ``marker``; return the stragglers after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = processes_with_marker(marker)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Sandbox:
    """Runs daskdeploy commands and scripts in subprocesses that can be audited afterwards.

    Every subprocess gets a unique marker in its environment (inherited by the workers it
    spawns) and a private TMPDIR, so a test can prove that no process and no temporary
    directory outlived the run.
    """

    def __init__(self, root: Path, config_dir: Path):
        self.root = root
        self.tmpdir = root / "tmp"
        self.tmpdir.mkdir()
        self.cache_dir = root / "cache"
        self.cache_dir.mkdir()
        self.marker = uuid.uuid4().hex
        self.env = {
            **os.environ,
            MARKER_VAR: self.marker,
            "TMPDIR": str(self.tmpdir),
            "XDG_CACHE_HOME": str(self.cache_dir),
            "DASK_CONFIG": str(config_dir),
            "PYTHONUNBUFFERED": "1",
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "daskdeploy", *args]

    def run(self, args: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            args,
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    def popen(self, args: list[str]) -> subprocess.Popen:
        """Start ``args`` as a terminal would: SIGINT at its default, so Ctrl-C works.

        (A shell running this suite in the background may have left SIGINT ignored, and
        ignored signals are inherited.)
        """
        return subprocess.Popen(
            args,
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint,
        )

    def script(self, name: str, source: str) -> Path:
        path = self.root / name
        path.write_text(source)
        return path

    def assert_clean(self, timeout: float = 15.0) -> None:
        """Assert that no marked process survives and the private TMPDIR is empty."""
        left = wait_until_gone(self.marker, timeout)
        for process in left:
            process.kill()
        assert not left, f"processes left running: {[p.cmdline() for p in left]}"
        leftovers = sorted(p.name for p in self.tmpdir.iterdir())
        assert not leftovers, f"files left in TMPDIR: {leftovers}"
        for kind in ("slurm-logs", "rendezvous"):
            shared = self.cache_dir / "daskdeploy" / kind
            left = sorted(p.name for p in shared.iterdir()) if shared.exists() else []
            assert not left, f"files left in {shared}: {left}"


@pytest.fixture
def sandbox(tmp_path: Path, isolated_config: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path, isolated_config)
    yield box
    for process in processes_with_marker(box.marker):
        process.kill()


def require(reason: str | None, what: str) -> None:
    """Skip when a real component is unavailable; fail instead under CI, which has them all."""
    if reason is None:
        return
    message = f"{what} unavailable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must provide it: see .ci/run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[object]:
    """A real SLURM cluster on localhost for the whole session: munged, slurmctld, 3 slurmd.

    The nodes declare 8 CPUs each, more than this machine has, so many one-core worker jobs
    run at once. SLURM_CONF is exported for the session, so deploy("slurm") and every
    subprocess finds it.
    """
    from daskdeploy.testing.slurm import LocalSlurm, unavailable_reason

    require(unavailable_reason(), "a local SLURM cluster")
    cluster = LocalSlurm(nodes=3, cpus_per_node=8, memory_mb=32000).start()
    saved = os.environ.get("SLURM_CONF")
    os.environ.update(cluster.env)
    try:
        yield cluster
    finally:
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved
        cluster.stop()


@pytest.fixture
def slurm(slurm_cluster):
    """The session's SLURM cluster; the test fails if it leaves any job behind."""
    yield slurm_cluster
    left = slurm_cluster.jobs()
    if left:
        slurm_cluster.run("scancel", *[job["id"] for job in left])
        slurm_cluster.wait_for_no_jobs(timeout=30)
        pytest.fail(f"jobs left in SLURM after the test: {left}")


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` by path.

    The module is deliberately not put in ``sys.modules``: like a script run as
    ``__main__``, its functions are then pickled by value for the workers.
    """
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """Shared by the test modules, so the airline data is prepared once."""
    return tmp_path_factory.getbasetemp() / "data"


@pytest.fixture(scope="session")
def airline_dir(data_dir) -> Path:
    prepare_airline(data_dir / "airline")
    return data_dir / "airline"


@pytest.fixture(scope="session")
def wiki_dir(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("wiki")
    prepare_wiki(dest, size="600kB", files=3, seed=1)
    return dest


def example_argv(name: str, wiki_dir: Path, airline_dir: Path) -> list[str]:
    """Command-line arguments that make each example quick but real."""
    return {
        "pi": ["--samples", "2000000", "--chunk", "250000"],
        "calc_mean": ["--replicates", "40", "--n", "1000"],
        "wiki_bag": ["--data", str(wiki_dir)],
        "airline": ["--data", str(airline_dir)],
    }[name]


def expected_output(name: str, argv: list[str], client) -> str:
    """The answer line each example must print, computed here on the same inputs."""
    module = load_example(name)
    options = dict(zip(argv[::2], argv[1::2], strict=True))
    if name == "pi":
        pi = module.estimate_pi(int(options["--samples"]), int(options["--chunk"]))
        return f"pi ~ {pi:.6f}"
    if name == "calc_mean":
        _, std = module.calc_means(int(options["--replicates"]), int(options["--n"]), 0)
        return f"std of the means: {std:.3e}"
    if name == "wiki_bag":
        matches, total = module.count_matches(str(Path(options["--data"]) / "part-*"))
        return f"{matches:,} of {total:,} lines are 'en' titles matching 'Obama'"
    max_delay, _ = module.delay_summary(str(Path(options["--data"]) / "*.csv.bz2"))
    return f"largest departure delay: {max_delay:.0f} min"


@pytest.fixture(scope="module")
def example_client():
    """A local deployment that computes the examples' expected answers."""
    import daskdeploy

    with daskdeploy.deploy("local", workers=2, quiet=True) as client:
        yield client


def run_batch_job(
    sandbox,
    slurm,
    command: str | None,
    *resources: str,
    timeout: float = 180,
    script: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
):
    """Run ``command`` (or the batch ``script``) as a job and wait; return (status, output).

    Polls squeue every 0.2 s (``sbatch --wait`` polls at growing intervals of seconds) and
    reads the exit status from ``scontrol show job``.
    """
    output = sandbox.root / f"job-{time.monotonic_ns()}.out"
    options = ["--parsable", f"--output={output}", "-t", "00:10:00", *resources]
    target = [str(script)] if script else ["--wrap", command]
    submitted = subprocess.run(
        ["sbatch", *options, *target],
        cwd=cwd or sandbox.root,
        env=env or sandbox.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    deadline = time.monotonic() + timeout
    while any(job["id"] == job_id for job in slurm.jobs()):
        if time.monotonic() > deadline:
            slurm.run("scancel", job_id)
            raise AssertionError(f"job {job_id} still running after {timeout} s")
        time.sleep(0.2)
    shown = slurm.run("scontrol", "show", "job", job_id).stdout
    status = int(re.search(r"\bExitCode=(\d+):", shown).group(1))
    return status, output.read_text() if output.exists() else shown


@pytest.fixture(scope="session")
def ssh_hosts() -> Iterator[object]:
    """Three network-namespace hosts with a private sshd each (plus one on loopback)."""
    from daskdeploy.testing.ssh import LocalSSHHosts, unavailable_reason

    require(unavailable_reason(), "sshd in network namespaces")
    hosts = LocalSSHHosts(namespaces=3).start()
    try:
        yield hosts
    finally:
        hosts.stop()

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
        for kind in ("slurm-logs", "rendezvous", "credentials"):
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


def wait_for(condition, timeout: float, what: str, interval: float = 0.1):
    """Poll ``condition()`` until it returns something true (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def submit_batch_job(
    sandbox,
    command: str | None,
    *resources: str,
    script: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[str, Path]:
    """Submit ``command`` (or the batch ``script``) with sbatch; return (job id, output file)."""
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
    return submitted.stdout.strip().split(";")[0], output


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
    job_id, output = submit_batch_job(sandbox, command, *resources, script=script, cwd=cwd, env=env)
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


# ------------------------------------------------------------------------------ fault suite
#
# Tests tagged ``@pytest.mark.fault(case, backend)`` form one table: a fault (a killed
# worker, a cancelled job, a signal, ...) on one backend. ``case`` and ``backend`` may name
# the test's parameters in braces (``"{signum.name} to daskdeploy run"``). A tagged test
# can report the time it measured with the ``record_fault`` fixture. At the end of the
# session the terminal summary prints the table (case x backend: passed, failed or skipped
# and the longest time measured) and one line of counts:
# ``fault suite: N cases, P passed, F failed, S skipped``.

#: Rows of the fault table, in the order they are printed.
FAULT_CASES = (
    "worker SIGKILL mid-task",
    "scancel mid-run",
    "walltime expiry mid-run",
    "SIGINT to daskdeploy run",
    "SIGTERM to daskdeploy run",
    "kill -9 of the client",
    "two deployments at once",
    "bad input",
)
#: Columns of the fault table; "any" holds bad inputs that concern no one backend.
FAULT_BACKENDS = ("local", "slurm", "allocation", "ssh", "mpi", "any")
#: Cells where a case cannot happen, and why (tests/test_faults.py explains each).
FAULT_NOT_APPLICABLE = {
    **{(case, "any"): "not a backend" for case in FAULT_CASES if case != "bad input"},
    **{
        (case, backend): "no SLURM job"
        for case in ("scancel mid-run", "walltime expiry mid-run")
        for backend in ("local", "ssh")
    },
    ("scancel mid-run", "mpi"): "no job of its own",
    ("walltime expiry mid-run", "mpi"): "no job of its own",
    ("walltime expiry mid-run", "allocation"): "limit ends the job",
    ("kill -9 of the client", "mpi"): "rank death ends run",
}

_OUTCOMES = ("passed", "failed", "xfailed", "skipped")
_FAULT_KEY = pytest.StashKey["FaultResult"]()
_FAULT_RESULTS = pytest.StashKey[list]()


class FaultResult:
    """Outcome and measured times of one tagged test."""

    def __init__(self, case: str, backend: str, nodeid: str):
        self.case = case
        self.backend = backend
        self.nodeid = nodeid
        self.outcome: str | None = None
        self.duration = 0.0  # of the test's call phase
        self.seconds: list[float] = []
        self.notes: list[str] = []
        self.over = False  # the fault outlasted the case's bound (the time is a minimum)

    def update(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.duration = report.duration
        if report.failed:
            self.outcome = "failed"
        elif hasattr(report, "wasxfail") and report.skipped:
            self.outcome = "xfailed"  # a known bug, named in the test's xfail reason
            self.notes.append(f"known bug: {report.wasxfail}")
        elif report.skipped and self.outcome != "failed":
            self.outcome = "skipped"
        elif report.when == "call" and self.outcome is None:
            self.outcome = "passed"

    @property
    def time(self) -> str:
        """The longest time the test recorded, or ``~`` and its whole duration."""
        if self.seconds:
            return f"{'>' if self.over else ''}{max(self.seconds):.1f}s"
        return f"~{self.duration:.1f}s" if self.outcome == "passed" else ""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fault(case, backend): the test is one case of the fault suite, printed in the table "
        f"at the end; case is one of {', '.join(FAULT_CASES)}; backend one of "
        f"{', '.join(FAULT_BACKENDS)}. Both may name test parameters in braces.",
    )
    config.stash[_FAULT_RESULTS] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("fault")
        if marker is None:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        case, backend = (str(arg).format(**params) for arg in marker.args)
        if case not in FAULT_CASES or backend not in FAULT_BACKENDS:
            raise pytest.UsageError(
                f"{item.nodeid}: fault({case!r}, {backend!r}) is not in the table: "
                f"cases {FAULT_CASES}, backends {FAULT_BACKENDS}"
            )
        item.stash[_FAULT_KEY] = FaultResult(case, backend, item.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    result = item.stash.get(_FAULT_KEY, None)
    if result is not None:
        if report.when == "setup":
            item.config.stash[_FAULT_RESULTS].append(result)
        result.update(report)
    return report


@pytest.fixture
def record_fault(request: pytest.FixtureRequest):
    """``record_fault(seconds, note, over=False)``: report a time this fault case measured.

    It is printed (seen with ``-s``) and the longest one goes into the fault table.
    """
    result = request.node.stash.get(_FAULT_KEY, None)
    if result is None:
        pytest.fail("record_fault is for tests marked @pytest.mark.fault(case, backend)")

    def record(seconds: float, note: str = "", over: bool = False) -> None:
        """``over``: the case gave up waiting after ``seconds``, the fault lasted longer."""
        result.seconds.append(seconds)
        result.notes.append(note)
        result.over = result.over or over
        more = " or more" if over else ""
        print(f"\nfault: {result.case} on {result.backend}: {seconds:.2f} s{more} ({note})")

    return record


def _fault_cell(results: list[FaultResult], not_applicable: str | None) -> str:
    if not results:
        return "n/a" if not_applicable else "-"
    counts = {kind: sum(r.outcome == kind for r in results) for kind in _OUTCOMES}
    total = len(results)
    if counts["failed"]:
        text = f"FAIL {counts['failed']}/{total}"
    elif counts["xfailed"]:
        text = f"xfail {counts['xfailed']}/{total}" if total > 1 else "xfail"
    elif counts["passed"]:
        text = "pass" if total == 1 else f"{counts['passed']}/{total} pass"
    else:
        text = "skip" if total == 1 else f"skip {total}"
    times = [r for r in results if r.outcome != "skipped" and r.time]
    if times:
        longest = max(times, key=lambda r: float(r.time.strip("~>s")))
        text += f" {longest.time}"
    return text


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    results: list[FaultResult] = config.stash.get(_FAULT_RESULTS, [])
    if not results:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault suite")
    first = max(len(case) for case in FAULT_CASES) + 2
    width = 17
    write(("case".ljust(first) + "".join(b.ljust(width) for b in FAULT_BACKENDS)).rstrip())
    for case in FAULT_CASES:
        row = case.ljust(first)
        for backend in FAULT_BACKENDS:
            cell = [r for r in results if r.case == case and r.backend == backend]
            row += _fault_cell(cell, FAULT_NOT_APPLICABLE.get((case, backend))).ljust(width)
        write(row.rstrip())
    write(
        "(n/a: cannot happen there, see tests/test_faults.py; -: not run; xfail: a known bug, "
        "see the list; time: the longest measured, > gave up waiting, ~ the whole test's)"
    )
    for r in results:
        if r.case != "bad input":
            note = "; ".join(n for n in r.notes if n)
            line = f"  {r.outcome or 'not run':7} {r.time:>7}  {r.case} / {r.backend}: {r.nodeid}"
            write(line + (f" ({note})" if note else ""))
    outcomes = [r.outcome or "skipped" for r in results]
    counts = ", ".join(f"{outcomes.count(kind)} {kind}" for kind in _OUTCOMES)
    bad = [r for r in results if r.case == "bad input"]
    among = f" (bad inputs: {len(bad)}, {sum(r.outcome == 'passed' for r in bad)} passed)"
    write(f"fault suite: {len(results)} cases, {counts}" + (among if bad else ""))


def report_figures(text: str) -> dict:
    """The worker line and CPU efficiency of a printed ``--report``; asserts it is there."""
    assert "CPU-efficiency report for dd-" in text, text
    workers = re.search(r"^  workers +(.+)$", text, re.M)
    efficiency = re.search(r"^  CPU efficiency +([\d.]+)%$", text, re.M)
    assert workers and efficiency, text
    return {"workers": workers.group(1), "efficiency": float(efficiency.group(1))}

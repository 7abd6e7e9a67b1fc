"""Bad inputs, table-driven: each gets one clear error, fast, with nothing left behind.

Every case below is a mistake a user can make through the Python API
(``daskdeploy.plan``/``deploy``/``save_profile``) or the ``daskdeploy`` command line (run
in-process with click's ``CliRunner``). For each one the test asserts that

* it fails within 10 s with the expected exception type (API) or exit status (CLI: 2 for
  a mistake in the command line or configuration, per ``daskdeploy --help``);
* the message contains the given fragments: the offending name or value and a hint of
  the fix (a suggested name, the accepted form, the command to run);
* no child process of the test process is left, no file appears in ``$TMPDIR`` and only
  empty directories under ``$XDG_CACHE_HOME/daskdeploy``.

Nothing here reaches an SSH host or MPI launcher: every case fails before anything
starts (the one SSH case is refused at the TCP connect on loopback). The cases of scale
a site cannot take ask the session's real SLURM cluster or SGE cell (``harness``) for
its limits, and submit nothing. Conditions
such as "SLURM commands missing" are real: ``PATH`` points at an empty directory.

``pytest tests/test_bad_inputs.py`` ends with a line such as
``bad inputs: 78 cases, 78 run, 78 passed (45 API, 33 CLI)``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.config
import psutil
import pytest
from click.testing import CliRunner

import daskdeploy
from conftest import require_module
from daskdeploy import (
    BackendUnavailableError,
    ConfigError,
    DeploymentError,
    OptionError,
    UnknownBackendError,
)
from daskdeploy.cli import cli

TIME_LIMIT = 10.0  # seconds each bad input may take to be refused
BAD_INPUT_EXIT = 2
SCRIPT = "SCRIPT"  # placeholder in CLI arguments for a script that must never run
NEVER_RUNS = "raise SystemExit('must not run')\n"
SMALL_PROFILE = {"small": {"backend": "local", "workers": 2}}

# Variables a SLURM job or an MPI launcher sets; removed so every case sees a plain shell.
_LAUNCH_PREFIXES = ("SLURM_", "PMI_", "PMIX_", "OMPI_")
_KEEP = {"SLURM_CONF"}


@dataclass
class Scene:
    """What a case's setup may change: environment, dask config, the config directory."""

    monkeypatch: pytest.MonkeyPatch
    config_dir: Path
    empty_dir: Path
    stack: contextlib.ExitStack

    def config(self, settings: dict[str, Any]) -> None:
        """Set dask config keys for the rest of the case."""
        self.stack.enter_context(dask.config.set(settings))

    def env(self, **variables: str) -> None:
        for name, value in variables.items():
            self.monkeypatch.setenv(name, value)


@dataclass(frozen=True)
class Case:
    """One bad input: how to give it, what must come back, and what the message says."""

    expect: type[Exception] | int
    fragments: tuple[str, ...]
    call: Callable[[], Any] | None = None
    args: tuple[str, ...] = ()
    setup: Callable[[Scene], None] | None = None
    needs: tuple[str, ...] = ()  # Python modules the case depends on
    harness: str | None = None  # a session fixture the case needs (a real SLURM or SGE)

    @property
    def kind(self) -> str:
        return "API" if self.call is not None else "CLI"


def _fault(case_id: str) -> pytest.MarkDecorator:
    """Each case is a row of the fault suite's table (conftest): under the backend it
    names (``api-slurm-...``), or under "any"."""
    named = case_id.split("-")[1]
    backend = named if named in ("local", "slurm", "allocation", "ssh", "mpi") else "any"
    return pytest.mark.fault("bad input", backend)


def api(
    case_id: str,
    call: Callable[[], Any],
    expect: type[Exception],
    *fragments: str,
    setup: Callable[[Scene], None] | None = None,
    needs: tuple[str, ...] = (),
    harness: str | None = None,
) -> Any:
    return pytest.param(
        Case(expect, fragments, call=call, setup=setup, needs=needs, harness=harness),
        id=case_id,
        marks=_fault(case_id),
    )


def cmd(
    case_id: str,
    args: list[str],
    *fragments: str,
    exit_code: int = BAD_INPUT_EXIT,
    setup: Callable[[Scene], None] | None = None,
    needs: tuple[str, ...] = (),
    harness: str | None = None,
) -> Any:
    return pytest.param(
        Case(
            exit_code,
            fragments,
            args=tuple(args),
            setup=setup,
            needs=needs,
            harness=harness,
        ),
        id=case_id,
        marks=_fault(case_id),
    )


# --- setups -------------------------------------------------------------------------------


def small_profile(scene: Scene) -> None:
    """A saved profile 'small' for the local backend."""
    scene.config({"daskdeploy.profiles": SMALL_PROFILE})


def profile_for_a_gone_backend(scene: Scene) -> None:
    """A saved profile 'old' whose backend is not (or no longer) installed."""
    scene.config({"daskdeploy.profiles": {"old": {"backend": "torque", "workers": 2}}})


def no_commands(scene: Scene) -> None:
    """PATH holds only an empty directory: no sbatch, squeue, srun, scontrol or mpiexec."""
    scene.env(PATH=str(scene.empty_dir))


def in_slurm_job_without_commands(scene: Scene) -> None:
    """A job's node list, but SLURM's commands are not on PATH (a missing module load)."""
    scene.env(PATH=str(scene.empty_dir), SLURM_JOB_NODELIST="n[1-2]", SLURM_JOB_ID="4243")


def bogus_backend_variable(scene: Scene) -> None:
    scene.env(DASKDEPLOY_BACKEND="slrum")


def under_mpiexec_with_four_ranks(scene: Scene) -> None:
    """The variables MPICH's mpiexec gives rank 0 of ``mpiexec -n 4``."""
    scene.env(PMI_RANK="0", PMI_SIZE="4")


def in_slurm_job_with_two_tasks(scene: Scene) -> None:
    """The variables the batch step of ``sbatch -n 2`` sees."""
    scene.env(SLURM_JOB_ID="4242", SLURM_NTASKS="2", SLURM_TASKS_PER_NODE="2")


def broken_profiles_file(scene: Scene) -> None:
    """``daskdeploy-profiles.yaml`` broken by hand while this process runs."""
    (scene.config_dir / "daskdeploy-profiles.yaml").write_text("daskdeploy: {profiles: [\n")


def sge_allows_one_array_of_four(scene: Scene) -> None:
    """The session's SGE cell allows 4 tasks per array and 1 job per user, until the end."""
    import subprocess

    def set_global(text: str) -> None:
        path = scene.empty_dir.parent / "global"  # qconf -Mconf names it by the file
        path.write_text(text)
        subprocess.run(["qconf", "-Mconf", str(path)], check=True, capture_output=True)
        path.unlink()

    shown = subprocess.run(["qconf", "-sconf"], check=True, capture_output=True, text=True)
    limits = {"max_aj_tasks": "4", "max_u_jobs": "1"}
    set_global(
        "\n".join(
            f"{line.split()[0]} {limits[line.split()[0]]}"
            if line.split() and line.split()[0] in limits
            else line
            for line in shown.stdout.splitlines()
        )
        + "\n"
    )
    scene.stack.callback(set_global, shown.stdout)


def closed_port() -> int:
    """A loopback TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


plan = daskdeploy.plan
deploy = daskdeploy.deploy

# --- the table ------------------------------------------------------------------------------

CASES = [
    # Names
    api(
        "api-unknown-backend",
        lambda: plan("locl"),
        UnknownBackendError,
        "Unknown backend 'locl'",
        "Did you mean 'local'?",
        "Known backends: local, slurm",
    ),
    api(
        "api-backend-not-a-name",
        lambda: plan(5),
        UnknownBackendError,
        "must be a backend or profile name such as 'local', got 5",
        "daskdeploy backends",
    ),
    api(
        "api-backend-empty-name",
        lambda: plan(""),
        UnknownBackendError,
        "got ''",
        "Leave it out to choose automatically",
    ),
    api(
        "api-slurm-adapt-maximum-zero",
        lambda: plan("slurm", adapt=[0, 0]),
        OptionError,
        "option 'adapt'",
        "the maximum must be at least 1 worker, got 0",
        needs=("dask_jobqueue",),
    ),
    api(
        "api-timeout-negative",
        lambda: plan("local", timeout=-5),
        OptionError,
        "option 'timeout'",
        "expected a positive duration such as 60",
    ),
    api(
        "api-unknown-option",
        lambda: plan("local", wrokers=2),
        OptionError,
        "Unknown option 'wrokers'",
        "Did you mean 'workers'?",
        "Valid options:",
    ),
    api(
        "api-option-of-another-backend",
        lambda: plan("local", walltime="01:00:00"),
        OptionError,
        "Unknown option 'walltime' for backend 'local'",
        "Valid options: adopt, dashboard",
    ),
    # Types
    api(
        "api-workers-as-word",
        lambda: plan("local", workers="four"),
        OptionError,
        "'workers'",
        "got 'four'",
        "expected a whole number >= 1",
    ),
    api(
        "api-workers-as-bool",
        lambda: plan("local", workers=True),
        OptionError,
        "'workers'",
        "got True",
        "expected a whole number >= 1",
    ),
    api(
        "api-threads-as-float",
        lambda: plan("local", threads_per_worker=2.5),
        OptionError,
        "'threads_per_worker'",
        "got 2.5",
        "expected a whole number >= 1",
    ),
    api(
        "api-dashboard-not-bool",
        lambda: plan("local", dashboard="maybe"),
        OptionError,
        "'dashboard'",
        "got 'maybe'",
        "expected true or false",
    ),
    # Sizes
    api(
        "api-workers-zero",
        lambda: plan("local", workers=0),
        OptionError,
        "'workers'",
        "got 0",
        "expected a whole number >= 1",
    ),
    api(
        "api-workers-negative",
        lambda: plan("local", workers=-3),
        OptionError,
        "'workers'",
        "got -3",
        "expected a whole number >= 1",
    ),
    api(
        "api-threads-zero",
        lambda: plan("local", threads_per_worker=0),
        OptionError,
        "'threads_per_worker'",
        "got 0",
        "expected a whole number >= 1",
    ),
    api(
        "api-memory-lots",
        lambda: plan("local", memory_per_worker="lots"),
        OptionError,
        "'memory_per_worker'",
        "got 'lots'",
        "such as '4GB', '512MiB' or a number of bytes",
    ),
    api(
        "api-memory-negative",
        lambda: plan("local", memory_per_worker="-1GB"),
        OptionError,
        "'memory_per_worker'",
        "expected a positive memory size, got '-1GB'",
        "e.g. '4GB'",
    ),
    api(
        "api-timeout-word",
        lambda: plan("local", timeout="soon"),
        OptionError,
        "'timeout'",
        "got 'soon'",
        "'5 minutes'",
    ),
    api(
        "api-timeout-zero",
        lambda: plan("local", timeout=0),
        OptionError,
        "'timeout'",
        "expected a positive duration, got 0",
        "e.g. 60 or '5 minutes'",
    ),
    # Scale the machine or the site cannot take
    api(
        "api-local-workers-beyond-the-machine",
        lambda: plan("local", workers=100000),
        OptionError,
        "100000 local worker processes cannot fit this machine",
        "at most",
        "workers (8 per core)",
        "Nothing was started",
        "ask for fewer workers (--workers",
    ),
    api(
        "api-local-deploy-thread-workers-beyond-the-machine",
        lambda: deploy("local", workers=100000, processes=False, quiet=True),
        OptionError,
        "100000 local thread workers cannot fit this machine",
        "or, if you mean it, --option oversubscribe=true",
    ),
    cmd(
        "cli-local-workers-beyond-the-machine",
        ["run", "-b", "local", "-n", "100000", SCRIPT],
        "Error: 100000 local worker processes cannot fit this machine",
        "ask for fewer workers (--workers",
    ),
    cmd(
        "cli-local-memory-per-worker-beyond-the-machine",
        ["run", "-b", "local", "-n", "2", "--memory-per-worker", "100TB", SCRIPT],
        "memory_per_worker 90.95 TiB x 2 = 181.90 TiB, more than the machine's",
        "or, if you mean it, --option oversubscribe=true",
    ),
    cmd(
        "cli-local-up-workers-beyond-the-machine",
        ["up", "big", "-b", "local", "-n", "100000"],
        "100000 local worker processes cannot fit this machine",
    ),
    cmd(
        "cli-slurm-workers-beyond-max-job-count",
        ["run", "-b", "slurm", "-n", "100000", SCRIPT],
        "100000 workers need 100000 SLURM jobs (1 worker(s) per job), more than the site "
        "allows: MaxJobCount (10000). Nothing was submitted.",
        "Ask for fewer workers",
        exit_code=1,
        needs=("dask_jobqueue",),
        harness="slurm_cluster",
    ),
    cmd(
        "cli-slurm-dry-run-workers-beyond-max-job-count",
        ["run", "-b", "slurm", "-n", "100000", "--dry-run", SCRIPT],
        "Check: REJECTED",
        "MaxJobCount (10000)",
        exit_code=1,
        needs=("dask_jobqueue",),
        harness="slurm_cluster",
    ),
    api(
        "api-sge-arrays-beyond-max-u-jobs",
        lambda: deploy("sge", workers=6, quiet=True),
        DeploymentError,
        "6 workers need 2 SGE job arrays (1 worker(s) per job), more than the site allows: "
        "max_u_jobs (1). Nothing was submitted.",
        setup=sge_allows_one_array_of_four,
        needs=("dask_jobqueue",),
        harness="sge_cell",
    ),
    # slurm
    api(
        "api-slurm-walltime-words",
        lambda: plan("slurm", walltime="1 hour"),
        OptionError,
        "'walltime'",
        "got '1 hour'",
        "such as '00:30:00'",
    ),
    api(
        "api-slurm-walltime-number",
        lambda: plan("slurm", walltime=43200),
        OptionError,
        "'walltime'",
        "got 43200",
        "quote it in YAML",
    ),
    api(
        "api-slurm-cores-not-multiple-of-processes",
        lambda: plan("slurm", cores=3, processes=2),
        OptionError,
        "cores (3) must be a multiple of processes (2)",
    ),
    api(
        "api-slurm-cores-contradict-threads",
        lambda: plan("slurm", cores=4, processes=2, threads_per_worker=1),
        OptionError,
        "threads_per_worker=1",
        "Set only one of cores and threads_per_worker",
    ),
    api(
        "api-slurm-adapt-with-workers",
        lambda: plan("slurm", adapt=[0, 4], workers=2),
        OptionError,
        "Give either workers (a fixed number) or adapt=[minimum, maximum], not both",
    ),
    api(
        "api-slurm-adapt-reversed",
        lambda: plan("slurm", adapt=[5, 2]),
        OptionError,
        "'adapt'",
        "the minimum (5) is above the maximum (2)",
        "[minimum, maximum]",
    ),
    api(
        "api-slurm-adapt-one-number",
        lambda: plan("slurm", adapt=[3]),
        OptionError,
        "'adapt'",
        "got [3]",
        "such as [0, 8] or '0:8'",
    ),
    api(
        "api-slurm-directives-as-mapping",
        lambda: plan("slurm", job_extra_directives={"constraint": "haswell"}),
        OptionError,
        "'job_extra_directives'",
        "expected a list of strings",
        "['--constraint=haswell'",
    ),
    api(
        "api-slurm-commands-missing",
        lambda: deploy("slurm", workers=1, quiet=True),
        BackendUnavailableError,
        "sbatch, squeue, scancel, scontrol are not on PATH",
        "module load slurm",
        "apt-get install slurm-client",
        setup=no_commands,
        needs=("dask_jobqueue",),
    ),
    # ssh
    api(
        "api-ssh-no-hosts",
        lambda: plan("ssh"),
        OptionError,
        "ssh backend",
        "hosts=[scheduler, worker, ...] or hostfile=PATH",
    ),
    api(
        "api-ssh-empty-host-list",
        lambda: plan("ssh", hosts=[]),
        OptionError,
        "Unusable host list",
        "list the scheduler's host first, then at least one worker host",
    ),
    api(
        "api-ssh-missing-hostfile",
        lambda: plan("ssh", hostfile="/nonexistent/hosts"),
        OptionError,
        "cannot read the hostfile '/nonexistent/hosts'",
        "No such file or directory",
    ),
    api(
        "api-ssh-connect-options-as-text",
        lambda: plan("ssh", hosts=["a", "b"], connect_options="port=22"),
        OptionError,
        "'connect_options'",
        "got 'port=22'",
        "{'port': 22, 'username': 'me'}",
    ),
    api(
        "api-ssh-workers-option",
        lambda: plan("ssh", hosts=["a", "b"], workers=3),
        OptionError,
        "worker count from the host list",
        "drop the workers option",
    ),
    api(
        "api-ssh-loopback-scheduler-remote-workers",
        lambda: plan("ssh", hosts=["127.0.0.1", "node2"]),
        OptionError,
        "'127.0.0.1'",
        "List the scheduler by an address the workers can reach",
    ),
    api(
        "api-ssh-host-unreachable",
        lambda: deploy(
            "ssh",
            hosts=["127.0.0.1", "127.0.0.1"],
            connect_options={"port": closed_port(), "known_hosts": None},
            connect_timeout=5,
            quiet=True,
        ),
        DeploymentError,
        "127.0.0.1: connection refused on port",
        "no sshd listening there?",
        "nothing was started",
        needs=("asyncssh",),
    ),
    # mpi and allocation
    api(
        "api-mpi-outside-a-launcher",
        lambda: deploy("mpi", quiet=True),
        BackendUnavailableError,
        "Backend 'mpi' cannot run here",
        "not started by an MPI launcher",
        "mpiexec -n 4 python script.py",
        needs=("mpi4py",),
    ),
    api(
        "api-mpi-workers-contradict-ranks",
        lambda: plan("mpi", workers=3),
        OptionError,
        "workers=3, but mpiexec (MPICH/Hydra) started 4 ranks",
        "Launch with -n 5, or drop workers",
        setup=under_mpiexec_with_four_ranks,
    ),
    api(
        "api-allocation-outside-a-job",
        lambda: deploy("allocation", quiet=True),
        BackendUnavailableError,
        "Backend 'allocation' cannot run here",
        "SLURM_JOB_ID is not set",
        "`daskdeploy sbatch` writes such a script",
    ),
    api(
        "api-allocation-more-workers-than-tasks",
        lambda: plan("allocation", workers=4),
        OptionError,
        "workers=4 but SLURM job 4242 has 2 task(s)",
        "Ask for more tasks (sbatch -n) or fewer workers",
        setup=in_slurm_job_with_two_tasks,
    ),
    # Profiles
    api(
        "api-unknown-profile",
        lambda: plan(profile="smal"),
        ConfigError,
        "Unknown profile 'smal'",
        "Did you mean 'small'?",
        "daskdeploy profile save NAME",
        setup=small_profile,
    ),
    api(
        "api-profile-names-an-unknown-backend",
        lambda: plan("old"),
        UnknownBackendError,
        "Unknown backend 'torque'",
        "It is named by profile 'old'",
        setup=profile_for_a_gone_backend,
    ),
    api(
        "api-profile-for-another-backend",
        lambda: plan("slurm", profile="small"),
        UnknownBackendError,
        "Profile 'small' is for backend 'local', not 'slurm'",
        "Drop one of the two arguments",
        setup=small_profile,
    ),
    api(
        "api-profile-without-backend-key",
        lambda: plan("bad"),
        ConfigError,
        "Profile 'bad' must be a mapping with a 'backend' key",
        "Fix daskdeploy.profiles.bad",
        setup=lambda scene: scene.config({"daskdeploy.profiles": {"bad": {"workers": 2}}}),
    ),
    api(
        "api-save-profile-bad-name",
        lambda: daskdeploy.save_profile("2nodes", "local"),
        ConfigError,
        "Invalid profile name '2nodes'",
        "use a letter followed by letters, digits",
    ),
    api(
        "api-save-profile-named-like-a-backend",
        lambda: daskdeploy.save_profile("local", "local"),
        ConfigError,
        "Profile name 'local' is taken by a backend",
        "choose another name",
    ),
    # Environment and dask config
    api(
        "api-env-backend-bogus",
        lambda: plan(),
        UnknownBackendError,
        "Unknown backend 'slrum' (from environment variable DASKDEPLOY_BACKEND)",
        "Did you mean 'slurm'?",
        setup=bogus_backend_variable,
    ),
    api(
        "api-config-backend-bogus",
        lambda: plan(),
        UnknownBackendError,
        "Unknown backend 'lokal' (from dask config daskdeploy.backend)",
        "Did you mean 'local'?",
        setup=lambda scene: scene.config({"daskdeploy.backend": "lokal"}),
    ),
    api(
        "api-config-bad-value",
        lambda: plan("local"),
        OptionError,
        "(from dask config daskdeploy.local.workers)",
        "got -1",
        "expected a whole number >= 1",
        setup=lambda scene: scene.config({"daskdeploy.local.workers": -1}),
    ),
    api(
        "api-config-unknown-key",
        lambda: plan("local"),
        OptionError,
        "Unknown option 'n_workers'",
        "(from dask config daskdeploy.local.n_workers)",
        "Did you mean 'workers'?",
        setup=lambda scene: scene.config({"daskdeploy.local.n_workers": 2}),
    ),
    api(
        "api-config-section-not-a-mapping",
        lambda: plan("local"),
        ConfigError,
        "daskdeploy.local must be a mapping of option names to values, got int 4",
        "DASK_DASKDEPLOY__LOCAL__*",
        setup=lambda scene: scene.config({"daskdeploy.local": 4}),
    ),
    api(
        "api-config-profiles-not-a-mapping",
        lambda: plan("small"),
        ConfigError,
        "daskdeploy.profiles must be a mapping of profile names to settings, got list",
        "Fix it in your dask config YAML",
        setup=lambda scene: scene.config({"daskdeploy.profiles": ["small"]}),
    ),
    # --- command line: daskdeploy run ------------------------------------------------------
    cmd(
        "cli-unknown-command",
        ["rn", SCRIPT],
        "No such command 'rn'",
        "Did you mean 'run'?",
    ),
    cmd(
        "cli-run-missing-script",
        ["run", "missing.py"],
        "File 'missing.py' does not exist",
        "Try 'daskdeploy run --help'",
    ),
    cmd(
        "cli-data-size-not-a-size",
        ["data", "wiki", "--size", "lots", "wiki-data"],
        "Invalid value for '--size'",
        "expected a positive size such as 50MB, 2GB or 1000000 (bytes), got 'lots'",
    ),
    cmd(
        "cli-profile-delete-unknown",
        ["profile", "delete", "nosuch"],
        "Cannot delete profile 'nosuch'",
        "`daskdeploy profile list`",
    ),
    cmd(
        "cli-profile-save-bad-value-names-command-line",
        ["profile", "save", "x", "-b", "local", "-o", "workers=0"],
        "option 'workers' of backend 'local' (from command line)",
        "expected a whole number >= 1, got 0",
    ),
    cmd(
        "cli-run-misspelt-flag",
        ["run", "--wokers", "2", "pi.py"],
        "No such option '--wokers'",
        "Did you mean '--workers'?",
    ),
    cmd(
        "cli-sbatch-misspelt-flag",
        ["sbatch", "--ntask", "4", "pi.py"],
        "No such option '--ntask'",
        "Did you mean '--ntasks'?",
    ),
    cmd(
        "cli-run-script-is-a-directory",
        ["run", "."],
        "'.' is a directory, not a script",
    ),
    cmd(
        "cli-run-no-script",
        ["run", "-n", "2"],
        "Missing argument 'SCRIPT'",
        "Try 'daskdeploy run --help'",
    ),
    cmd(
        "cli-option-without-equals",
        ["run", "-o", "processes", SCRIPT],
        "got 'processes'",
        "--option expects KEY=VALUE (for example --option processes=false)",
    ),
    cmd(
        "cli-flag-and-option-duplicate",
        ["run", "-n", "2", "-o", "workers=3", SCRIPT],
        "workers is given twice (as a flag and as --option)",
        "keep one",
    ),
    cmd(
        "cli-workers-zero",
        ["run", "-n", "0", SCRIPT],
        "'--workers' / '-n': 0 is not in the range x>=1",
    ),
    cmd(
        "cli-workers-not-a-number",
        ["run", "--workers", "abc", SCRIPT],
        "'--workers' / '-n': 'abc' is not a valid integer",
    ),
    cmd(
        "cli-threads-as-float",
        ["run", "--threads-per-worker", "1.5", SCRIPT],
        "'--threads-per-worker': '1.5' is not a valid integer",
    ),
    cmd(
        "cli-memory-lots",
        ["run", "--memory-per-worker", "lots", SCRIPT],
        "'memory_per_worker'",
        "(from command line): expected a memory size such as '4GB'",
        "got 'lots'",
    ),
    cmd(
        "cli-unknown-backend",
        ["run", "-b", "lokal", SCRIPT],
        "Unknown backend 'lokal'",
        "Did you mean 'local'?",
    ),
    cmd(
        "cli-unknown-option",
        ["run", "-o", "wrokers=2", SCRIPT],
        "Unknown option 'wrokers' for backend 'local' (from command line)",
        "Did you mean 'workers'?",
    ),
    cmd(
        "cli-unknown-profile",
        ["run", "--profile", "nosuch", SCRIPT],
        "Unknown profile 'nosuch'",
        "daskdeploy profile save NAME --backend BACKEND",
    ),
    cmd(
        "cli-profile-for-another-backend",
        ["run", "-b", "slurm", "--profile", "small", SCRIPT],
        "Profile 'small' is for backend 'local', not 'slurm'",
        "Drop one of the two arguments",
        setup=small_profile,
    ),
    cmd(
        "cli-env-backend-bogus",
        ["run", SCRIPT],
        "Unknown backend 'slrum' (from environment variable DASKDEPLOY_BACKEND)",
        "Did you mean 'slurm'?",
        setup=bogus_backend_variable,
    ),
    cmd(
        "cli-slurm-walltime-number",
        ["run", "-b", "slurm", "-o", "walltime=43200", SCRIPT],
        "'walltime'",
        "got 43200",
        "such as '01:00:00'",
    ),
    cmd(
        "cli-slurm-adapt-with-workers",
        ["run", "-b", "slurm", "-n", "2", "-o", "adapt=[0,4]", SCRIPT],
        "Give either workers (a fixed number) or adapt=[minimum, maximum], not both",
    ),
    cmd(
        "cli-slurm-commands-missing",
        ["run", "-b", "slurm", SCRIPT],
        "Backend 'slurm' cannot run here",
        "sbatch, squeue, scancel, scontrol are not on PATH",
        "module load slurm",
        setup=no_commands,
        needs=("dask_jobqueue",),
    ),
    cmd(
        "cli-ssh-missing-hostfile",
        ["run", "-b", "ssh", "-o", "hostfile=/nonexistent/hosts", SCRIPT],
        "cannot read the hostfile '/nonexistent/hosts'",
        "No such file or directory",
    ),
    cmd(
        "cli-mpi-launcher-missing",
        ["run", "-b", "mpi", "-n", "2", "-o", "launcher=mpiexec", SCRIPT],
        "No MPI launcher 'mpiexec' found",
        "pip install 'daskdeploy[mpi]'",
        "set the launcher option to its path",
        setup=no_commands,
    ),
    cmd(
        "cli-allocation-outside-a-job",
        ["run", "-b", "allocation", SCRIPT],
        "Backend 'allocation' cannot run here",
        "SLURM_JOB_ID is not set",
        "sbatch script or an salloc shell",
    ),
    # --- command line: sbatch, hostfile, profile -------------------------------------------
    cmd(
        "cli-hostfile-outside-slurm",
        ["hostfile"],
        "Not inside a SLURM job (SLURM_JOB_NODELIST is not set)",
        "Run this in an sbatch script or an salloc shell",
    ),
    cmd(
        "cli-hostfile-without-scontrol",
        ["hostfile"],
        "the program 'scontrol' is not on PATH",
        "add its directory to PATH",
        exit_code=1,
        setup=in_slurm_job_without_commands,
    ),
    cmd(
        "cli-sbatch-ntasks-zero",
        ["sbatch", "--ntasks", "0", SCRIPT],
        "'--ntasks': 0 is not in the range x>=1",
    ),
    cmd(
        "cli-sbatch-time-words",
        ["sbatch", "-t", "1 hour", SCRIPT],
        "--time",
        "got '1 hour'",
        "such as '00:30:00'",
    ),
    cmd(
        "cli-sbatch-memory-words",
        ["sbatch", "--mem-per-cpu", "lots", SCRIPT],
        "--mem-per-cpu expects a SLURM memory size",
        "got 'lots'",
        "e.g. 2G or 500M",
    ),
    cmd(
        "cli-sbatch-mem-and-mem-per-cpu",
        ["sbatch", "--mem", "4G", "--mem-per-cpu", "2G", SCRIPT],
        "give either --mem (per node) or --mem-per-cpu, not both",
    ),
    cmd(
        "cli-sbatch-more-nodes-than-tasks",
        ["sbatch", "-N", "4", "--ntasks", "2", SCRIPT],
        "--nodes=4 is more than --ntasks=2",
        "every node needs at least one task",
    ),
    cmd(
        "cli-sbatch-directive-without-dashes",
        ["sbatch", "--directive", "constraint=skylake", SCRIPT],
        "got 'constraint=skylake'",
        "an sbatch option such as --constraint=skylake",
    ),
    cmd(
        "cli-sbatch-submit-without-sbatch",
        ["sbatch", "--submit", SCRIPT],
        "sbatch is not on PATH",
        "leave out --check and --submit to only write the script",
        setup=no_commands,
    ),
    cmd(
        "cli-sbatch-missing-script",
        ["sbatch", "--ntasks", "2", "missing.py"],
        "File 'missing.py' does not exist",
        "Try 'daskdeploy sbatch --help'",
    ),
    cmd(
        "cli-profile-save-without-backend",
        ["profile", "save", "pair", "-n", "2"],
        "profile save needs --backend NAME",
    ),
    cmd(
        "cli-profile-save-bad-name",
        ["profile", "save", "2nodes", "-b", "local"],
        "Invalid profile name '2nodes'",
        "use a letter followed by letters, digits",
    ),
    cmd(
        "cli-profile-show-unknown",
        ["profile", "show", "smal"],
        "Unknown profile 'smal'",
        "Did you mean 'small'?",
        setup=small_profile,
    ),
    # Only reachable in a process that was running when the file broke: a process started
    # afterwards already fails while importing dask, which reads every file in that directory.
    cmd(
        "cli-profile-save-broken-profiles-file",
        ["profile", "save", "pair", "-b", "local"],
        "daskdeploy-profiles.yaml is not valid YAML",
        "Fix or delete the file",
        setup=broken_profiles_file,
    ),
]

_ran: list[str] = []
_passed: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many bad inputs the table holds, ran and passed, once at the end."""
    yield
    kinds = [param.values[0].kind for param in CASES]
    line = (
        f"bad inputs: {len(CASES)} cases, {len(_ran)} run, {len(_passed)} passed "
        f"({kinds.count('API')} API, {kinds.count('CLI')} CLI)"
    )
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    # Shown with and without -s: output capture is paused for this one line.
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if reporter is not None:
            reporter.write("\n")  # the last test's progress line is still open
            reporter.write_line(line)
        else:  # pragma: no cover - pytest run without its terminal plugin
            print(line)


def _live_children() -> dict[int, str]:
    found = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                found[child.pid] = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _files_under(root: Path) -> list[str]:
    """Every non-directory below ``root`` (empty directories are allowed)."""
    if not root.exists():
        return []
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if not path.is_dir())


def _check_needs(case: Case) -> None:
    """Skip a case whose extra is missing; fail instead under CI (it has every extra)."""
    for name in case.needs:
        require_module(name, extra="all")


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_clearly(
    case: Case,
    tmp_path: Path,
    isolated_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    _check_needs(case)
    if case.harness is not None:
        request.getfixturevalue(case.harness)
    _ran.append(case.kind)
    for name in list(os.environ):
        if name.startswith(_LAUNCH_PREFIXES) and name not in _KEEP:
            monkeypatch.delenv(name)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    script = tmp_path / "never.py"
    script.write_text(NEVER_RUNS)
    empty_dir = tmp_path / "empty-bin"
    empty_dir.mkdir()
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "daskdeploy"
    children_before = _live_children()

    with contextlib.ExitStack() as stack:
        scene = Scene(monkeypatch, isolated_config, empty_dir, stack)
        if case.setup is not None:
            case.setup(scene)
        started = time.monotonic()
        if case.call is not None:
            try:
                case.call()
            except Exception as exc:  # the type is checked below
                error = exc
            else:
                pytest.fail("no error was raised")
            elapsed = time.monotonic() - started
            assert type(error) is case.expect, f"{type(error).__name__}: {error}"
            assert isinstance(error, daskdeploy.DaskDeployError)
            message = str(error)
        else:
            args = [str(script) if arg == SCRIPT else arg for arg in case.args]
            result = CliRunner().invoke(cli, args, prog_name="daskdeploy")
            elapsed = time.monotonic() - started
            message = result.output
            assert isinstance(result.exception, SystemExit), repr(result.exception)
            assert result.exit_code == case.expect, message
            assert "Traceback" not in message
            assert "must not run" not in message

    assert elapsed < TIME_LIMIT, f"took {elapsed:.1f} s"
    for fragment in case.fragments:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"
    left = {pid: line for pid, line in _live_children().items() if pid not in children_before}
    assert not left, f"processes left running: {left}"
    left_in_tmpdir = sorted(path.name for path in tmpdir.iterdir())
    assert not left_in_tmpdir, f"left in TMPDIR: {left_in_tmpdir}"
    assert not _files_under(cache), f"files left in {cache}: {_files_under(cache)}"
    _passed.append(case.kind)


def test_the_table_covers_api_and_cli() -> None:
    cases = [param.values[0] for param in CASES]
    ids = [param.id for param in CASES]
    assert len(cases) >= 32
    assert len(set(ids)) == len(ids), "case ids must be unique"
    assert sum(case.kind == "API" for case in cases) >= 10
    assert sum(case.kind == "CLI" for case in cases) >= 10
    assert all(case.fragments for case in cases), "every case checks its message"

"""Driver jobs: ``daskdeploy jobscript`` and the templates in examples/jobscripts/.

A driver job is one small batch job that runs the script, the scheduler and the client,
and submits the worker jobs from inside it (``daskdeploy run --backend <system>``).

* ``daskdeploy jobscript --system NAME`` for every system that takes a shell script:
  golden files (``tests/golden/driver_<name>.sh``, with the Python that wrote them shown
  as ``<python>``; regenerate with ``DASKDEPLOY_UPDATE_GOLDEN=1`` and review the diff),
  the refusals (unknown system, HTCondor, a malformed ``-o``, a bad ``-t``), and
  ``bash -n`` on every script it writes and every template;
* for real, against the session's Grid Engine cell: ``examples/jobscripts/sge.sh``
  submitted as users submit it (``qsub`` from the top of the checkout), and the output of
  ``daskdeploy jobscript --system sge`` piped into ``qsub``. Both with ``qsub -sync y``,
  which waits for the job and exits with its status. Afterwards no job is left in the
  cell and nothing of the run is left in the sandbox.

The PBS, LSF, OAR, Moab and HTCondor templates cannot run here (no such system); they are
checked for shell syntax and for naming their own backend and directives.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import EXAMPLES, REPO, report_figures, require_module
from daskdeploy.registry import get_backend
from reference_answers import check_pi

require_module("dask_jobqueue", extra="sge")

GOLDEN = Path(__file__).parent / "golden"
TEMPLATES = EXAMPLES / "jobscripts"

#: The systems whose driver job is a shell script, and the template of each.
DRIVER_SYSTEMS = ("slurm", "sge", "pbs", "lsf", "oar", "moab")
SHELL_TEMPLATES = ("sge", "pbs", "lsf", "oar", "moab")

#: Every flag of the command once, so the golden files show each system's spelling.
GOLDEN_ARGS = (
    "-n",
    "3",
    "-t",
    "02:00:00",
    "-o",
    "walltime=00:20:00",
    "-o",
    "account=proj42",
    "--queue",
    "long",
    "--account",
    "proj42",
    "--job-name",
    "pi-run",
    "--setup",
    "module load python/3.11",
    "--setup",
    'source "$HOME/venvs/dask/bin/activate"',
    "examples/pi.py",
    "--samples",
    "2000000",
)


@pytest.fixture(autouse=True)
def no_site_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What dask-jobqueue reads from the machine: LSF's memory unit (from
    $LSF_ENVDIR/lsf.conf; none here, so KB) and PBS's fallback account."""
    empty = tmp_path / "lsf-envdir"
    empty.mkdir()
    monkeypatch.setenv("LSF_ENVDIR", str(empty))
    monkeypatch.delenv("PBS_ACCOUNT", raising=False)


def jobscript(*args: str) -> tuple[int, str]:
    """``daskdeploy jobscript ARGS`` in-process from the top of the checkout."""
    from daskdeploy.cli import cli

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        result = CliRunner().invoke(cli, ["jobscript", *args], prog_name="daskdeploy")
    finally:
        os.chdir(cwd)
    return result.exit_code, result.output


def assert_matches_golden(text: str, name: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DASKDEPLOY_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; see the module docstring to update it"


def bash_syntax_error(text: str) -> str:
    """What ``bash -n`` says about ``text`` ("" when it accepts it)."""
    result = subprocess.run(
        ["bash", "-n"], input=text, capture_output=True, text=True, timeout=10, check=False
    )
    return "" if result.returncode == 0 else result.stderr or f"status {result.returncode}"


# ------------------------------------------------------------------- daskdeploy jobscript


@pytest.mark.parametrize("system", DRIVER_SYSTEMS)
def test_jobscript_matches_golden(system):
    status, text = jobscript("--system", system, *GOLDEN_ARGS)
    assert status == 0, text
    assert not bash_syntax_error(text)
    shown = text.replace(sys.executable, "<python>")
    assert "<python> -m daskdeploy run --backend " + system in shown, shown
    assert_matches_golden(shown, f"driver_{system}.sh")


@pytest.mark.parametrize("system", DRIVER_SYSTEMS)
def test_jobscript_is_valid_bash_with_the_systems_directives(system):
    status, text = jobscript("--system", system, "examples/pi.py")
    assert status == 0, text
    assert not bash_syntax_error(text)
    prefix = get_backend(system).system.directive_prefix
    assert f"{prefix} " in text, text
    # The driver's own name, not a deployment id: clean-up must never take it for one.
    assert "dask-pi" in text and "dd-" not in text.replace("dd-xxxxxxxx", "")
    command = text.strip().splitlines()[-1]
    assert command == (
        f"{sys.executable} -m daskdeploy run --backend {system} --workers 4 examples/pi.py"
    )


def test_jobscript_refuses_an_unknown_system_and_names_the_known_ones():
    status, text = jobscript("--system", "slurmm", "examples/pi.py")
    assert status == 2, text
    assert "'slurmm' is not a batch system" in text
    for name in ("slurm", "sge", "pbs", "lsf", "htcondor", "oar", "moab"):
        assert name in text.split("Choose one of:")[1], text


def test_jobscript_refuses_htcondor_and_points_to_the_template():
    status, text = jobscript("--system", "htcondor", "examples/pi.py")
    assert status == 2, text
    assert "examples/jobscripts/" in text, text
    assert "Queue" not in text  # no submit description printed


def test_jobscript_refuses_an_option_without_a_value():
    status, text = jobscript("--system", "sge", "-o", "walltime", "examples/pi.py")
    assert status == 2, text
    assert "expected KEY=VALUE, got 'walltime'" in text, text


@pytest.mark.parametrize("bad", ["1h", "01:00:00:00", "soon"])
def test_jobscript_refuses_a_bad_time_limit_and_says_so(bad):
    status, text = jobscript("--system", "pbs", "-t", bad, "examples/pi.py")
    assert status == 2, text
    assert "time limit" in text and repr(bad) in text, text
    assert "#!" not in text  # nothing printed to submit


# ----------------------------------------------------------------------------- templates


@pytest.mark.parametrize("system", SHELL_TEMPLATES)
def test_template_is_valid_bash_and_runs_its_own_backend(system):
    path = TEMPLATES / f"{system}.sh"
    text = path.read_text()
    assert not bash_syntax_error(text)
    assert os.access(path, os.X_OK), f"{path.name} must be executable (oarsub -S runs it)"
    assert "set -euo pipefail" in text
    prefix = get_backend(system).system.directive_prefix
    directives = [line for line in text.splitlines() if line.startswith(prefix + " ")]
    assert len(directives) >= 3, directives
    # A comment after a directive would be read as more options on some systems.
    assert not [line for line in directives if " #" in line], directives
    runs = [line for line in text.splitlines() if line.startswith("daskdeploy run ")]
    assert runs == [
        f'daskdeploy run --backend {system} --workers "$WORKERS" --option walltime=00:30:00 '
        "--report examples/pi.py"
    ]
    assert 'WORKERS="${DASK_WORKERS:-8}"' in text
    assert "<" in text  # placeholders for site values


def condor_arguments(value: str) -> list[str]:
    """An HTCondor ``arguments`` value in the new syntax, split as condor_submit does.

    htcondor-jdl(5), arguments: the list in double quotes, a double quote written twice;
    arguments separated by white space; an argument with spaces in single quotes, a
    single quote in it written twice.
    """
    assert value.startswith('"') and value.endswith('"'), value
    text = value[1:-1].replace('""', '"')
    args: list[str] = []
    current: str | None = None
    quoted = False
    i = 0
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "'" and text[i + 1 : i + 2] == "'":
                current = (current or "") + "'"
                i += 1
            elif char == "'":
                quoted = False
            else:
                current = (current or "") + char
        elif char == "'":
            quoted = True
            current = current or ""
        elif char in " \t":
            if current is not None:
                args.append(current)
            current = None
        else:
            current = (current or "") + char
        i += 1
    assert not quoted, value
    if current is not None:
        args.append(current)
    return args


def test_htcondor_template_runs_its_backend_in_the_local_universe():
    text = (TEMPLATES / "htcondor.sub").read_text()
    commands = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            commands[key.strip().lower()] = value.strip()
    assert commands["universe"] == "local"
    assert commands["executable"] == "/bin/bash"
    assert text.rstrip().splitlines()[-1] == "queue"
    flag, script = condor_arguments(commands["arguments"])
    assert flag == "-c"
    assert not bash_syntax_error(script), script
    assert (
        'exec daskdeploy run --backend htcondor --workers "${DASK_WORKERS:-8}" '
        "--option walltime=00:30:00 --report examples/pi.py"
    ) in script
    assert commands["output"] == commands["error"]  # merged


def test_readme_lists_every_template():
    readme = (TEMPLATES / "README.md").read_text()
    templates = sorted(path.name for path in TEMPLATES.iterdir() if path.name != "README.md")
    assert templates == [
        "htcondor.sub",
        "lsf.sh",
        "moab.sh",
        "oar.sh",
        "pbs.sh",
        "sge.sh",
    ]
    for name in templates:
        assert f"[`{name}`]({name})" in readme, name


# ------------------------------------------------------------------ for real, on Grid Engine

#: qsub -sync y's last line: "Job 12 exited with exit code 0."
SYNC_DONE = re.compile(r"Job (\d+) exited with exit code (\d+)\.")


def qsub_and_wait(args: list[str], *, cwd: Path, env: dict[str, str], script: str | None = None):
    """``qsub -sync y ARGS``: submit, wait for the job to end, return (status, job id)."""
    result = subprocess.run(
        ["qsub", "-sync", "y", *args],
        cwd=cwd,
        env=env,
        input=script,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    done = SYNC_DONE.search(result.stdout)
    assert done, f"qsub -sync y: {result.stdout}{result.stderr}"
    return result.returncode, done.group(1)


def assert_no_sge_logs_left(sandbox) -> None:
    logs = sandbox.cache_dir / "daskdeploy" / "sge-logs"
    assert not logs.exists() or not any(logs.iterdir()), sorted(logs.iterdir())


def test_sge_template_runs_the_main_job(sge, sandbox):
    """examples/jobscripts/sge.sh, submitted as users submit it, runs pi and cleans up.

    The cell has 8 slots: the driver takes one, so 4 workers (DASK_WORKERS) rather than
    the template's 8. The output file is moved into the sandbox (-o on the command line
    wins over the script's).
    """
    output = sandbox.root / "driver.out"
    path = f"{Path(sys.executable).parent}{os.pathsep}{sandbox.env['PATH']}"
    env = {**sandbox.env, **sge.environ, "PATH": path}
    args = ["-v", "DASK_WORKERS=4", "-o", str(output), "examples/jobscripts/sge.sh"]
    status, job_id = qsub_and_wait(args, cwd=REPO, env=env)
    log = output.read_text() if output.exists() else "(no output file)"
    print(f"\n--- output of driver job {job_id} ---\n{log}")
    assert status == 0, log
    assert f"Driver job {job_id} on " in log and "Driver job done" in log, log
    check_pi(log)  # the template runs `examples/pi.py` with its default arguments
    assert "on sge: 4 workers x 1 thread" in log, log
    assert report_figures(log)["workers"].startswith("4 x 1 thread"), log
    assert sge.wait_for_no_jobs(timeout=30), sge.jobs()
    sandbox.assert_clean()
    assert_no_sge_logs_left(sandbox)


def test_jobscript_output_piped_into_qsub_runs(sge, sandbox):
    """``daskdeploy jobscript --system sge ... | qsub``: the job needs nothing on PATH.

    The job gets the cell's environment, not this one (no -V): only the sandbox's cache,
    config and marker are passed on (-v), so that what the run leaves can be checked.
    """
    written = sandbox.run(
        sandbox.command(
            "jobscript",
            "--system",
            "sge",
            "-n",
            "2",
            str(EXAMPLES / "pi.py"),
            "--samples",
            "200000",
            "--chunk",
            "50000",
        ),
        timeout=60,
    )
    assert written.returncode == 0, written.stderr
    env = {**sandbox.env, **sge.environ}
    passed_on = "XDG_CACHE_HOME,DASK_CONFIG,DASKDEPLOY_TEST_MARKER"
    status, job_id = qsub_and_wait(
        ["-v", passed_on], cwd=sandbox.root, env=env, script=written.stdout
    )
    # The script's own -o: <job name>-<job id>.out in the submit directory.
    output = sandbox.root / f"dask-pi-{job_id}.out"
    log = output.read_text() if output.exists() else f"(no {output.name})"
    print(f"\n--- {output.name} ---\n{written.stdout}--- its output ---\n{log}")
    assert status == 0, log
    check_pi(log, ["--samples", "200000", "--chunk", "50000"])
    assert "on sge: 2 workers x 1 thread" in log, log
    assert sge.wait_for_no_jobs(timeout=30), sge.jobs()
    sandbox.assert_clean()
    assert_no_sge_logs_left(sandbox)

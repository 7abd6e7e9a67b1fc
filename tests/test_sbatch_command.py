"""`daskdeploy sbatch`: batch scripts for the allocation backend, checked and submitted.

Golden files live in tests/golden/sbatch_*.sh; regenerate them after an intended change
with ``DASKDEPLOY_UPDATE_GOLDEN=1 pytest tests/test_sbatch_command.py`` and review the
diff. The tests from "real SLURM" on need a real SLURM (the ``slurm`` fixture); their jobs
run a stand-in for Python, so they do not depend on the allocation backend. One test runs
examples/pi.py with that backend.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import EXAMPLES
from daskdeploy.backends.slurm.sbatch import (
    SbatchRequest,
    default_setup,
    output_path,
    render_sbatch_script,
)
from daskdeploy.cli import cli
from reference_answers import check_pi

GOLDEN = Path(__file__).parent / "golden"

# Arguments a shell would mangle if they were not quoted.
NASTY_ARGS = ("two words", "it's", 'say "hi"', "$HOME", "a;rm -rf /", "*", "", "--flag=`id`")


def assert_matches_golden(text: str, name: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DASKDEPLOY_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; see the module docstring to update it"


def fake_python(directory: Path) -> Path:
    """A stand-in for Python that prints its directory, $GREETING and arguments."""
    path = directory / "fake-python"
    path.write_text('#!/bin/bash\nprintf "%s\\0" "$PWD" "${GREETING-unset}" "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def launched(output: str) -> list[str]:
    """The fields fake_python printed."""
    return output.split("\0")[:-1]


# --------------------------------------------------------------------------- the script


def test_default_script_matches_golden() -> None:
    assert_matches_golden(
        render_sbatch_script(SbatchRequest("examples/pi.py")), "sbatch_default.sh"
    )


def test_script_with_every_option_matches_golden() -> None:
    request = SbatchRequest(
        "my scripts/analysis.py",
        NASTY_ARGS,
        nodes=2,
        ntasks=4,
        cpus_per_task=2,
        mem_per_cpu="2G",
        time="02:30:00",
        partition="compute",
        account="proj42",
        qos="short",
        job_name='run "A" #1',
        output="logs/%x-%j.out",
        setup=("module load python/3.11", 'source "$HOME/venvs/dask/bin/activate"'),
        extra_directives=("--constraint=skylake", "--mail-type=END"),
        python="/opt/my env/bin/python",
    )
    assert_matches_golden(render_sbatch_script(request), "sbatch_full.sh")


def test_script_with_memory_per_node_matches_golden() -> None:
    request = SbatchRequest(
        "-odd.py", ("--samples", "100"), nodes=2, ntasks=8, cpus_per_task=4, mem="16G"
    )
    assert_matches_golden(render_sbatch_script(request), "sbatch_mem_per_node.sh")


def test_bash_passes_every_argument_through_unchanged(tmp_path: Path) -> None:
    request = SbatchRequest(
        "my script.py",
        NASTY_ARGS,
        setup=('export GREETING="hello world"', "echo set up >&2"),
        python=str(fake_python(tmp_path)),
    )
    job = tmp_path / "job.sbatch"
    job.write_text(render_sbatch_script(request))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        ["bash", str(job)],
        cwd=elsewhere,
        env={**os.environ, "SLURM_SUBMIT_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "set up\n"
    assert launched(result.stdout) == [
        str(tmp_path),
        "hello world",
        *("-m", "daskdeploy", "run", "--backend", "allocation", "my script.py"),
        *NASTY_ARGS,
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ntasks": 0}, "--ntasks must be a positive whole number"),
        ({"cpus_per_task": -1}, "--cpus-per-task must be a positive whole number"),
        ({"nodes": True}, "--nodes must be a positive whole number"),
        ({"nodes": 3, "ntasks": 2}, "more than --ntasks=2"),
        ({"mem": "4G", "mem_per_cpu": "1G"}, "not both"),
        ({"mem_per_cpu": "2.5G"}, "SLURM memory size"),
        ({"mem": "lots"}, "SLURM memory size"),
        ({"mem_per_cpu": "0"}, "more than 0"),
        ({"time": "1h"}, "--time: expected a time limit"),
        ({"time": "0"}, "--time: expected a positive time limit"),
        ({"script_args": ("ok", "two\nlines")}, "a script argument must be a single line"),
        ({"setup": ("module load x\nrm -rf ~",)}, "a setup line (--setup) must be a single line"),
        ({"job_name": "a\rb"}, "--job-name must be a single line"),
        ({"setup": ("  ",)}, "a setup line (--setup) must not be empty"),
        ({"partition": ""}, "--partition must not be empty"),
        ({"script": ""}, "the script path must not be empty"),
        (
            {"extra_directives": ("#SBATCH --exclusive",)},
            "--directive) is an sbatch option such as",
        ),
        ({"script_args": (1,)}, "a script argument must be text"),
        ({"output": None}, "--output is required"),
    ],
)
def test_bad_requests_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SbatchRequest(**{"script": "pi.py", **changes})


def test_mem_zero_and_slurm_time_forms_are_accepted() -> None:
    script = render_sbatch_script(SbatchRequest("pi.py", mem="0", time="1-12"))
    assert "#SBATCH --mem=0\n" in script and "#SBATCH --time=1-12\n" in script
    assert "all of each node's memory" in script


def test_output_path_fills_in_the_job_name_and_id() -> None:
    request = SbatchRequest("pi.py", output="logs/%x.%j.%%.%N")
    assert output_path(request, "7", "/work") == "/work/logs/dask-pi.7.%.%N"
    assert output_path(SbatchRequest("pi.py", output="/abs/%j"), "7", "/work") == "/abs/7"


# --------------------------------------------------------------------------- the command


@pytest.fixture
def pi_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "pi.py"
    script.write_text("print('pi')\n")
    return script


def invoke(*args: str):
    return CliRunner().invoke(cli, ["sbatch", *args], prog_name="daskdeploy")


def test_command_prints_the_script(pi_script: Path) -> None:
    result = invoke("--ntasks", "4", "-c", "2", "--mem-per-cpu", "1G", "pi.py", "--samples", "a b")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    script = result.stdout
    assert script.startswith("#!/bin/bash\n")
    for line in ("--job-name=dask-pi", "--ntasks=4", "--cpus-per-task=2", "--mem-per-cpu=1G"):
        assert f"#SBATCH {line}\n" in script
    assert script.endswith("exec daskdeploy run --backend allocation pi.py --samples 'a b'\n")
    venv = default_setup(sys.prefix, sys.base_prefix)  # activates the venv of this Python
    assert ("\nsource " in script) == bool(venv)
    assert all(f"\n{line}\n" in script for line in venv)


@pytest.mark.parametrize(
    ("args", "ntasks"),
    [
        ([], 2),
        (["-N", "2", "--ntasks-per-node=2"], 4),  # not the default 2: SLURM reads it as the total
        (["--ntasks-per-node", "3"], 3),
        (["-N", "2", "--ntasks-per-node=2", "--ntasks", "3"], 3),  # given: kept
    ],
)
def test_tasks_follow_ntasks_per_node_unless_given(
    pi_script: Path, args: list[str], ntasks: int
) -> None:
    result = invoke(*args, "pi.py")
    assert result.exit_code == 0, result.output
    assert f"#SBATCH --ntasks={ntasks}\n" in result.stdout
    assert f"# {ntasks} workers (--ntasks) x 1 thread (--cpus-per-task).\n" in result.stdout


def test_command_takes_setup_lines_or_none(pi_script: Path) -> None:
    result = invoke("--setup", "module load python", "--setup", "conda activate dask", "pi.py")
    assert "set +u\nmodule load python\nconda activate dask\nset -u\n" in result.stdout
    result = invoke("--setup", "", "pi.py")
    assert result.exit_code == 0, result.output
    assert "set +u" not in result.stdout and "source" not in result.stdout


def test_command_saves_the_script(pi_script: Path, tmp_path: Path) -> None:
    result = invoke("--save", "job.sbatch", "--directive=--exclusive", "pi.py")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Wrote job.sbatch. Submit it with: sbatch job.sbatch\n"
    assert "#SBATCH --exclusive\n" in (tmp_path / "job.sbatch").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ntasks", "0", "pi.py"], "0 is not in the range x>=1"),
        (["--mem", "1G", "--mem-per-cpu", "1G", "pi.py"], "not both"),
        (["-t", "1 hour", "pi.py"], "--time: expected a time limit"),
        (["-N", "3", "pi.py"], "more than --ntasks=2"),
        (["missing.py"], "'missing.py' does not exist"),
        (["--setup", "a\nb", "pi.py"], "single line"),
        (["--output", "nodir/%j.out", "--check", "pi.py"], "'nodir' does not exist"),
    ],
)
def test_command_refuses_bad_input_with_status_2(
    pi_script: Path, args: list[str], message: str
) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stdout == ""


def test_check_without_sbatch_names_it(pi_script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(pi_script.parent))
    result = invoke("--check", "pi.py")
    assert result.exit_code == 2
    assert "sbatch is not on PATH" in result.stderr


def test_command_line_script_runs_under_bash(tmp_path: Path) -> None:
    """The real entry point, redirected to a file as users do; bash then runs the result."""
    (tmp_path / "pi.py").write_text("print('pi')\n")
    options = ["--python", str(fake_python(tmp_path)), "--setup", ""]
    result = subprocess.run(
        [sys.executable, "-m", "daskdeploy", "sbatch", *options, "pi.py", *NASTY_ARGS],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    ran = subprocess.run(
        ["bash", "-c", result.stdout],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert launched(ran.stdout)[-len(NASTY_ARGS) - 1 :] == ["pi.py", *NASTY_ARGS]


# ------------------------------------------------------------- sbatch options passed through


def header(script: str) -> list[str]:
    return [line[len("#SBATCH ") :] for line in script.splitlines() if line.startswith("#SBATCH ")]


OWN_HEADER = ["--job-name=dask-pi", "--ntasks=2", "--cpus-per-task=1", "--time=01:00:00"]


def test_sbatch_options_it_does_not_interpret_go_to_the_header_in_order(pi_script: Path) -> None:
    result = invoke(
        *("--setup", "", "-N", "1", "--ntasks-per-node=2", "--exclusive", "--gres=gpu:1"),
        *("--constraint", "skylake|haswell", "--mail-type", "END", "--mail-user=me@example.org"),
        *("--qos", "normal", "-x", "n3", "-Cib", "-H", '--comment=run #2 of "A"'),
        *("--directive=--requeue", "--signal=B:USR1@60", "--exclusive=user"),
        *("pi.py", "--samples", "10", "--exclusive"),
    )
    assert result.exit_code == 0, result.output
    assert_matches_golden(result.stdout, "sbatch_pass_through.sh")
    assert header(result.stdout) == [
        "--job-name=dask-pi",
        "--nodes=1",
        *OWN_HEADER[1:],
        "--qos=normal",
        "--output=%x-%j.out",
        "--ntasks-per-node=2",
        "--exclusive",
        "--gres=gpu:1",
        "--constraint=skylake|haswell",  # `--option value` is written --option=value
        "--mail-type=END",
        "--mail-user=me@example.org",
        "-x n3",
        "-C ib",
        "-H",
        r'--comment="run #2 of \"A\""',  # quoted: sbatch splits at spaces, cuts at #
        "--requeue",
        "--signal=B:USR1@60",
        "--exclusive=user",
    ]
    # after SCRIPT, everything is the script's
    assert result.stdout.endswith(" pi.py --samples 10 --exclusive\n")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--exclusive", "pi.py"], ["--exclusive"]),  # a flag: pi.py is the script
        (["--nice", "pi.py"], ["--nice"]),  # sbatch's value is optional: only as --nice=N
        (["--nice=5", "pi.py"], ["--nice=5"]),
        (["--dependency", "afterok:12", "pi.py"], ["--dependency=afterok:12"]),
        (["--ntasks-per-n=2", "pi.py"], ["--ntasks-per-n=2"]),  # sbatch takes abbreviations
        (["--brand-new-option=x", "pi.py"], ["--brand-new-option=x"]),  # unknown, with =
        (["--directive", "--brand-new-flag", "pi.py"], ["--brand-new-flag"]),
        (["-G", "2", "-vv", "pi.py"], ["-G 2", "-vv"]),
        (["--", "pi.py"], []),
    ],
)
def test_how_options_passed_through_are_read(
    pi_script: Path, args: list[str], expected: list[str]
) -> None:
    result = invoke("--setup", "", *args)
    assert result.exit_code == 0, result.output
    assert header(result.stdout)[len(OWN_HEADER) + 1 :] == expected
    assert result.stdout.endswith(" pi.py\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--brand-new-flag", "pi.py"],
            "daskdeploy sbatch passes --brand-new-flag to sbatch, but does not know whether it "
            "takes a value: write --brand-new-flag=VALUE, or --directive=--brand-new-flag for "
            "a flag.",
        ),
        (["--exc", "pi.py"], "--exc could be sbatch's --exclude or --exclusive: write the"),
        (
            ["--part=debug", "pi.py"],
            "--part is sbatch's --partition, which daskdeploy sbatch writes itself: write "
            "--partition=debug in full.",
        ),
        (["--ntask", "4", "pi.py"], "No such option '--ntask'. Did you mean '--ntasks'?"),
        (["--ntask=4", "pi.py"], "No such option '--ntask'. Did you mean '--ntasks'?"),
        (["-Z", "pi.py"], "-Z is not one of sbatch's short options"),
        (["--mail-type"], "--mail-type needs a value: write --mail-type=VALUE."),
        (
            ["--wrap=hostname", "pi.py"],
            "--wrap is an option of the sbatch command, not of the job, so it cannot go into "
            "the #SBATCH header: daskdeploy sbatch writes the script itself.",
        ),
        (["--test-only", "pi.py"], "the #SBATCH header: --check asks sbatch --test-only."),
        (["-W", "pi.py"], "-W (sbatch's --wait) is an option of the sbatch command"),
    ],
)
def test_options_it_cannot_pass_through_are_refused_with_status_2(
    pi_script: Path, args: list[str], message: str
) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert result.stdout == ""


# --------------------------------------------------------------------------- real SLURM


def test_check_accepts_a_script(slurm, pi_script: Path) -> None:
    result = invoke("-N", "2", "--ntasks", "4", "--mem-per-cpu", "100M", "--check", "pi.py")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("#!/bin/bash\n")  # the script still goes to stdout
    assert result.stderr.startswith("Check: accepted. ")
    assert "to start at" in result.stderr
    assert not slurm.jobs()


def test_check_reports_slurms_reason(slurm, pi_script: Path) -> None:
    result = invoke("--partition", "nope", "--check", "--submit", "pi.py")
    assert result.exit_code == 1
    assert result.stdout.startswith("Check: REJECTED\n")
    assert "invalid partition" in result.stderr.lower()
    assert "sbatch --test-only" in result.stderr
    assert not slurm.jobs()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--no-such-option=1", "--exclusive"],
            "--no-such-option=1, passed through to the #SBATCH header:\n"
            "  sbatch: unrecognized option '--no-such-option=1'\n",
        ),
        (
            ["--mail-type=END", "--ntasks-per-node=0"],
            "--ntasks-per-node=0, passed through to the #SBATCH header:\n"
            '  sbatch: error: Invalid numeric value "0" for --ntasks-per-node.\n',
        ),
        (  # sbatch's message names no option: the one without which it accepts is named
            ["--exclusive", "-C", "nosuchfeature"],
            "-C nosuchfeature, passed through to the #SBATCH header:\n"
            "  allocation failure: Invalid feature specification\n",
        ),
    ],
)
@pytest.mark.parametrize("action", ["--check", "--submit"])
def test_an_option_sbatch_refuses_is_named_and_nothing_submitted(
    slurm, pi_script: Path, args: list[str], said: str, action: str
) -> None:
    result = invoke(*args, action, "pi.py")
    assert result.exit_code == 1, result.output
    checked = action == "--check"  # the script goes to stdout, the verdict to stderr
    assert result.stderr == (
        f"{'Check: REJECTED' if checked else ''}\n"
        f"Error: sbatch --test-only rejected {said}Fix or leave out that option (`sbatch "
        "--help` lists sbatch's options). Nothing was submitted.\n"
    ).lstrip("\n")
    assert result.stdout.startswith("#!/bin/bash\n") if checked else result.stdout == ""
    assert not slurm.jobs()


def test_submit_prints_the_job_id_and_how_to_watch_it(slurm, pi_script: Path) -> None:
    # Held, the job never starts: this test does not depend on the allocation backend.
    result = invoke("-J", "held job #1", "--directive=--hold", "--submit", "pi.py")
    assert result.exit_code == 0, result.output
    job_id = re.search(r"Submitted batch job (\d+) \(held job #1\)", result.stdout)[1]
    assert f"squeue -j {job_id}\n" in result.stdout
    assert f"scancel {job_id}\n" in result.stdout
    assert f"output:  {pi_script.parent}/held job #1-{job_id}.out\n" in result.stdout
    jobs = slurm.jobs()
    assert [(job["id"], job["name"], job["state"]) for job in jobs] == [
        (job_id, "held job #1", "PENDING")
    ]
    slurm.run("scancel", job_id)
    assert slurm.wait_for_no_jobs(timeout=30)


def test_submitted_job_runs_the_command_from_the_submit_directory(
    slurm, pi_script: Path, tmp_path: Path
) -> None:
    fake = fake_python(tmp_path)
    (tmp_path / "logs").mkdir()
    result = invoke(
        *("--python", str(fake), "--setup", 'export GREETING="hi there"'),
        *("--output", "logs/%x-%j.out", "-t", "2", "--save", "job.sbatch", "--submit"),
        *("pi.py", *NASTY_ARGS),
    )
    assert result.exit_code == 0, result.output
    job_id = re.search(r"Submitted batch job (\d+)", result.stdout)[1]
    assert slurm.wait_for_no_jobs(timeout=30)
    log = tmp_path / "logs" / f"dask-pi-{job_id}.out"
    deadline = time.monotonic() + 10  # the output file may lag the job's end a little
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert launched(log.read_text()) == [
        str(tmp_path),
        "hi there",
        *("-m", "daskdeploy", "run", "--backend", "allocation", "pi.py"),
        *NASTY_ARGS,
    ]


# --------------------------------------------------------------------------- with Dask


def run_to_the_end(slurm, sandbox, args: list[str]) -> str:
    """Run ``args`` (which submit one job) in the sandbox; wait for the job; its output."""
    bin_dir = Path(sys.executable).parent  # the `daskdeploy` command, also without a venv
    env = {**sandbox.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        args, cwd=sandbox.root, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    job_id = re.search(r"Submitted batch job (\d+)", result.stdout)[1]
    assert slurm.wait_for_no_jobs(timeout=90), slurm.jobs()
    outputs = list(sandbox.root.glob(f"*{job_id}.out"))
    assert len(outputs) == 1, outputs
    return outputs[0].read_text()


def test_written_script_runs_pi_on_the_allocation(slurm, sandbox) -> None:
    resources = ["-N", "1", "--ntasks", "2", "-c", "2", "--mem-per-cpu", "500M", "-t", "5"]
    passed_through = ["--ntasks-per-node=2", "--exclusive"]  # sbatch's, into the header
    pi = [str(EXAMPLES / "pi.py"), "--samples", "2000000"]
    command = sandbox.command("sbatch", *resources, *passed_through, "--check", "--submit", *pi)
    log = run_to_the_end(slurm, sandbox, command)
    check_pi(log, pi[1:])
    # -c 2: two single-threaded worker processes per task (threads_per_worker not set)
    assert "on allocation: 4 workers x 1 thread" in log and "processes=4 threads=4" in log, log
    sandbox.assert_clean()


def test_allocation_template_is_accepted_by_slurm(slurm) -> None:
    """examples/sbatch/allocation.sbatch as users submit it (a full run takes ~10 s more)."""
    template = EXAMPLES / "sbatch" / "allocation.sbatch"
    result = slurm.run("sbatch", "--test-only", str(template))
    assert result.returncode == 0, result.stderr
    assert "using 4 processors on nodes" in result.stderr
    assert "\ndaskdeploy run --backend allocation --report examples/pi.py\n" in template.read_text()

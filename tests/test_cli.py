"""The command line, run as a real subprocess: `daskdeploy run`, errors, backends, profiles."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

PLAIN_SCRIPT = textwrap.dedent(
    """
    # A plain dask script: it never imports daskdeploy.
    import sys

    import dask
    import dask.array as da
    import dask.bag as db
    import dask.dataframe as dd
    import pandas as pd
    from distributed import get_client

    def square(x):
        return x * x

    total = sum(dask.compute(*[dask.delayed(square)(i) for i in range(10)]))
    array_sum = int(da.arange(1000, chunks=100).sum().compute())
    bag_count = db.from_sequence(range(100), npartitions=4).filter(lambda x: x % 3 == 0).count()
    frame = dd.from_pandas(pd.DataFrame({"k": [1, 1, 2], "v": [1.0, 3.0, 5.0]}), npartitions=2)
    means = frame.groupby("k").v.mean().compute().to_dict()
    workers = len(get_client().scheduler_info(n_workers=-1)["workers"])
    print("RESULT", total, array_sum, bag_count.compute(), means, workers, sys.argv[1:])
    """
)


def test_run_executes_a_plain_dask_script_on_the_deployment(sandbox):
    script = sandbox.script("plain.py", PLAIN_SCRIPT)
    result = sandbox.run(sandbox.command("run", "-n", "2", str(script), "--flag", "value"))
    assert result.returncode == 0, result.stderr
    assert "RESULT 285 499500 34 {1: 2.0, 2: 5.0} 2 ['--flag', 'value']" in result.stdout
    assert "on local: 2 workers x 1 thread" in result.stderr
    sandbox.assert_clean()


@pytest.mark.parametrize(
    ("body", "status", "stderr_fragment"),
    [
        ("import sys; sys.exit(7)", 7, ""),
        ("raise ValueError('bad input file')", 1, "ValueError: bad input file"),
        ("import sys; sys.exit('fatal: no data')", 1, "fatal: no data"),
    ],
)
def test_run_exits_with_the_script_status(sandbox, body, status, stderr_fragment):
    script = sandbox.script("ends.py", f"import dask\n{body}\n")
    result = sandbox.run(sandbox.command("run", "-q", "-n", "1", str(script)))
    assert result.returncode == status, result.stderr
    assert stderr_fragment in result.stderr
    assert "daskdeploy/runner.py" not in result.stderr
    sandbox.assert_clean()


def test_dry_run_prints_the_plan_and_starts_nothing(sandbox):
    script = sandbox.script("never.py", "raise SystemExit('must not run')\n")
    result = sandbox.run(
        sandbox.command("run", "--dry-run", "-n", "3", "-o", "processes=false", str(script), "x")
    )
    assert result.returncode == 0, result.stderr
    assert "workers            = 3  (command line)" in result.stdout
    assert "processes          = False  (command line)" in result.stdout
    assert "Dry run: nothing was started." in result.stdout
    assert "must not run" not in result.stdout + result.stderr
    sandbox.assert_clean(timeout=1)


def test_config_from_environment_variables_reaches_the_plan(sandbox):
    script = sandbox.script("never.py", "pass\n")
    sandbox.env["DASK_DASKDEPLOY__LOCAL__WORKERS"] = "3"
    sandbox.env["DASKDEPLOY_BACKEND"] = "local"
    result = sandbox.run(sandbox.command("run", "--dry-run", str(script)))
    assert result.returncode == 0, result.stderr
    assert "workers            = 3  (dask config daskdeploy.local.workers)" in result.stdout
    assert "chosen by environment variable DASKDEPLOY_BACKEND" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "-b", "lokal", "S"], "Unknown backend 'lokal'"),
        (["run", "-o", "wrokers=2", "S"], "Did you mean 'workers'?"),
        (["run", "-o", "memory_per_worker=lots", "S"], "expected a memory size"),
        (["run", "-o", "noequals", "S"], "--option expects KEY=VALUE"),
        (["run", "-n", "0", "S"], "0 is not in the range x>=1"),
        (["run", "missing.py"], "'missing.py' does not exist"),
        (["run", "--profile", "nosuch", "S"], "Unknown profile 'nosuch'"),
        (["run", "-b", "nosuch", "S"], "Unknown backend 'nosuch'"),
        (["run", "-n", "2", "-o", "workers=3", "S"], "given twice"),
        (["profile", "save", "x"], "needs --backend"),
        (["profile", "delete", "x"], "Cannot delete profile 'x'"),
    ],
)
def test_user_mistakes_get_one_clear_message_and_exit_2(sandbox, args, fragment):
    script = sandbox.script("S", "raise SystemExit('must not run')\n")
    args = [str(script) if arg == "S" else arg for arg in args]
    result = sandbox.run(sandbox.command(*args), timeout=30)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert "must not run" not in result.stderr
    sandbox.assert_clean(timeout=1)


def test_malformed_config_yaml_is_reported(sandbox, isolated_config):
    (isolated_config / "broken.yaml").write_text("daskdeploy:\n  local: [1, 2\n")
    result = sandbox.run(sandbox.command("backends"), timeout=30)
    assert result.returncode == 2, result.stderr
    assert "broken.yaml' is malformed" in result.stderr
    assert "Fix or remove that file" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_a_section_that_is_not_a_mapping_is_refused_not_dropped(sandbox, isolated_config):
    """dask's merge of the packaged defaults would silently replace ``local: 4``."""
    (isolated_config / "typo.yaml").write_text("daskdeploy:\n  local: 4\n")
    (sandbox.root / "x.py").write_text("")
    result = sandbox.run(sandbox.command("run", "--dry-run", "x.py"), timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "daskdeploy.local must be a mapping of option names to values, got int 4" in (
        result.stderr
    )


def test_backends_lists_local_as_available(sandbox):
    result = sandbox.run(sandbox.command("backends", "--options"), timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["BACKEND", "KIND", "AVAILABLE", "DETAILS"]
    assert lines[1].split()[:3] == ["local", "cluster", "yes"]
    assert "threads_per_worker = 1" in result.stdout


def test_profiles_from_the_command_line(sandbox, isolated_config):
    saved = sandbox.run(
        sandbox.command("profile", "save", "pair", "--backend", "local", "-n", "2"), timeout=30
    )
    assert saved.returncode == 0, saved.stderr
    assert (isolated_config / "daskdeploy-profiles.yaml").exists()
    listed = sandbox.run(sandbox.command("profile", "list"), timeout=30)
    assert "pair  (local)" in listed.stdout
    shown = sandbox.run(sandbox.command("profile", "show", "pair"), timeout=30)
    assert "workers            = 2  (profile 'pair')" in shown.stdout
    script = sandbox.script("count.py", PLAIN_SCRIPT)
    ran = sandbox.run(sandbox.command("run", "-q", "--backend", "pair", str(script)))
    assert ran.returncode == 0, ran.stderr
    assert " 2 []" in ran.stdout
    deleted = sandbox.run(sandbox.command("profile", "delete", "pair"), timeout=30)
    assert deleted.returncode == 0
    sandbox.assert_clean()


def test_python_dash_m_and_help(sandbox):
    result = sandbox.run(sandbox.command("run", "--help"), timeout=30)
    assert result.returncode == 0
    for flag in ("--backend", "--workers", "--threads-per-worker", "--option", "--dry-run"):
        assert flag in result.stdout


# ------------------------------------------------------------- commands the backends add

CLI_PACKAGE = Path(__file__).resolve().parents[1] / "src" / "daskdeploy" / "cli"

#: Words only platform code may use: the generic command line names no platform.
PLATFORM_WORDS = ("slurm", "sbatch", "srun", "salloc", "ssh", "mpiexec")


@pytest.fixture
def fresh_backend_caches():
    """Forget loaded backends and their commands before and after the test."""
    from daskdeploy import registry
    from daskdeploy.cli import backend_commands

    def clear() -> None:
        registry._entry_point_targets.cache_clear()
        registry._load.cache_clear()
        backend_commands.forget_backends()

    clear()
    yield
    clear()


def test_help_lists_the_commands_backends_add_and_they_run():
    from daskdeploy.cli import cli

    listed = CliRunner().invoke(cli, ["--help"], prog_name="daskdeploy")
    assert listed.exit_code == 0, listed.output
    commands = listed.output.split("Commands:", 1)[1]
    for name in ("run", "backends", "ls", "cleanup", "profile", "sbatch", "hostfile", "jobscript"):
        assert f"\n  {name} " in commands, name
    assert (
        "Backends: local, slurm, sge, pbs, lsf, htcondor, oar, moab, mpi, allocation, "
        "batchjob, ssh." in " ".join(listed.output.split())
    )
    assert "--ntasks" in CliRunner().invoke(cli, ["sbatch", "--help"]).output
    mistyped = CliRunner().invoke(cli, ["sbach"], prog_name="daskdeploy")
    assert mistyped.exit_code == 2
    assert "Did you mean 'sbatch'?" in mistyped.output


def test_run_examples_come_from_the_backends_in_registry_order():
    from daskdeploy.cli import cli

    shown = CliRunner().invoke(cli, ["run", "--help"]).output
    block = shown.split("Examples:", 1)[1].split("Options:", 1)[0]
    examples = [line.strip() for line in block.splitlines() if line.strip()]
    backends = [line.split()[3] for line in examples if line.startswith("daskdeploy run --backend")]
    systems = ["slurm", "sge", "pbs", "lsf", "htcondor", "oar", "moab"]
    in_place = ["mpi", "allocation", "ssh"]
    # slurm: a run and a dry run; every other batch system: a dry run.
    assert backends == ["slurm", *systems, *in_place]
    assert examples[0] == "daskdeploy run examples/pi.py --samples 100000000"


def test_a_backend_that_fails_to_load_leaves_the_command_line_working(
    monkeypatch, fresh_backend_caches
):
    from daskdeploy import registry
    from daskdeploy.cli import cli

    monkeypatch.setitem(registry.BUILTIN_BACKENDS, "broken", "daskdeploy.no_such_module:Nothing")
    listed = CliRunner().invoke(cli, ["--help"], prog_name="daskdeploy")
    assert listed.exit_code == 0, listed.output
    assert "\n  sbatch " in listed.output
    statuses = CliRunner().invoke(cli, ["backends"])
    assert "failed to load" in statuses.output


def test_only_help_and_unknown_commands_load_the_backends():
    """Other commands import no backend; `--help` loads them all, but no heavy package."""
    probe = textwrap.dedent(
        """
        import contextlib
        import io
        import sys
        from daskdeploy.cli import cli

        def loaded(args):
            with contextlib.redirect_stdout(io.StringIO()):
                cli(args, prog_name="daskdeploy", standalone_mode=False)
            return sorted(
                name for name in sys.modules
                if name.startswith("daskdeploy.backends.") and name != "daskdeploy.backends.base"
            )

        print("profile", loaded(["profile", "list", "--help"]))
        print("ls", loaded(["ls", "--help"]))
        print("help", "daskdeploy.backends.slurm.commands" in loaded(["--help"]))
        heavy = {"dask_jobqueue", "asyncssh", "mpi4py", "distributed"}
        print("heavy", sorted({name.split(".")[0] for name in sys.modules} & heavy))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines() == ["profile []", "ls []", "help True", "heavy []"]


def test_the_generic_command_line_names_no_platform():
    for path in sorted(CLI_PACKAGE.glob("*.py")):
        text = path.read_text(encoding="utf-8").lower()
        named = [word for word in PLATFORM_WORDS if word in text]
        assert not named, f"{path.name} names {named}: move that to backends/<platform>/"


# ------------------------------------------------------------- one meaning per short flag

#: Every short flag of every command, and the long option it is, the same everywhere.
SHORT_FLAGS = {
    "-b": "--backend",
    "-n": "--workers",
    "-o": "--option",
    "-q": "--quiet",
    "-t": "--time",
    "-A": "--account",
    "-J": "--job-name",
    "-N": "--nodes",
    "-c": "--cpus-per-task",
    "-p": "--partition",
    "-h": "--help",
}


def walk_commands(command, ctx):
    """Every command under ``command`` (itself included), with its context."""
    yield command, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            yield from walk_commands(sub, click.Context(sub, info_name=name, parent=ctx))


def test_every_short_flag_means_the_same_in_every_command():
    from daskdeploy.cli import cli
    from daskdeploy.cli.arguments import SHORT_FLAGS as declared

    assert declared == SHORT_FLAGS
    seen: dict[str, set[str]] = {}
    commands = 0
    for command, ctx in walk_commands(
        cli, click.Context(cli, info_name="daskdeploy", **cli.context_settings)
    ):
        commands += 1
        for param in command.get_params(ctx):
            if not isinstance(param, click.Option):
                continue
            names = [*param.opts, *param.secondary_opts]
            for short in (name for name in names if not name.startswith("--")):
                where = f"{ctx.command_path} {short}"
                assert short in SHORT_FLAGS, f"{where}: a short flag not in the table"
                assert SHORT_FLAGS[short] in names, f"{where} is {names}, not {SHORT_FLAGS[short]}"
                seen.setdefault(short, set()).add(ctx.command_path)
    assert commands > 20  # the walk reached the subcommands and the backends' commands
    assert "daskdeploy run" in seen["-n"] and "daskdeploy sbatch" in seen["-N"]
    assert "daskdeploy profile save" in seen["-b"] and "daskdeploy data wiki" in seen["-h"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "-p", "cluster", "S", "-p", "3"],
            "In `daskdeploy run`, -p is not --profile: write --profile cluster or -b cluster "
            "(daskdeploy's -p means --partition).",
        ),
        (
            ["up", "analysis", "-pcluster"],
            "In `daskdeploy up`, -p is not --profile: write --profile cluster or -b cluster",
        ),
        (
            ["profile", "save", "big", "-p", "small", "-n", "8"],
            "In `daskdeploy profile save`, -p is not --profile: write --profile small (",
        ),
        (
            ["logs", "analysis", "-n", "20"],
            "In `daskdeploy logs`, -n is not --lines: write --lines 20 (daskdeploy's -n means "
            "--workers).",
        ),
        (
            ["jobscript", "--system", "sge", "-q", "long", "S"],
            "In `daskdeploy jobscript`, -q is not --queue: write --queue long (daskdeploy's -q "
            "means --quiet).",
        ),
        (
            ["sbatch", "-N", "2", "-n", "4", "S"],
            "In `daskdeploy sbatch`, -n is not --ntasks: write --ntasks 4 (daskdeploy's -n "
            "means --workers).",
        ),
        (
            ["sbatch", "-o", "logs/%j.out", "S"],
            "In `daskdeploy sbatch`, -o is not --output: write --output logs/%j.out "
            "(daskdeploy's -o means --option).",
        ),
        (
            ["sbatch", "-q", "normal", "S"],
            "In `daskdeploy sbatch`, -q is not --qos: write --qos normal (daskdeploy's -q "
            "means --quiet).",
        ),
        (
            ["sbatch", "-b", "now+1hour", "S"],
            "In `daskdeploy sbatch`, -b is not --begin: write --begin=now+1hour (daskdeploy's "
            "-b means --backend).",
        ),
        (["sbatch", "-n"], "In `daskdeploy sbatch`, -n is not --ntasks: write --ntasks N ("),
    ],
)
def test_short_flags_of_other_meanings_are_explained_and_exit_2(tmp_path, args, message):
    script = tmp_path / "S"
    script.write_text("raise SystemExit('must not run')\n")
    args = [str(script) if arg == "S" else arg for arg in args]
    result = CliRunner().invoke(cli_group(), args, prog_name="daskdeploy")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split()), result.stderr
    assert result.stdout == ""


def cli_group():
    from daskdeploy.cli import cli

    return cli

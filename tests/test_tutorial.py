"""Every command on the docs pages in ``PAGES`` runs, against the real components, as shown.

A page marks each console block with an rst comment (invisible on the page) that says
where it runs::

    .. tutorial: run local
    .. tutorial: run slurm, skip 8-      (output lines 8 on are not compared)
    .. tutorial: not run: <why>

(environments: local, slurm, ssh, mpi, sge). Each ``$ command`` line runs in bash, in a
copy of ``docs/tutorial/`` (the scripts folder every page shares), and must exit 0. The
output lines shown after it must appear in its output (stdout and stderr together), in
order, with numbers, deployment ids and ``...`` free: timings, ports and addresses differ
from run to run, the words do not. A console block without a marker fails the test, so
nothing on a listed page goes untested by accident. The blocks of one page and one
environment run in page order in one test (a later block may use what an earlier one
made), with ids naming the page and the line of its first block; a failure names the
page and line of the block that failed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

import job_wait
from conftest import REPO, require

DOCS = REPO / "docs"
#: The pages whose console blocks run, relative to docs/. Add a page here when every
#: console block on it carries a marker.
PAGES = (
    "tutorial.rst",
    "getting-started.rst",
    "dask-patterns.rst",
    "install.rst",
    "choosing.rst",
    "slurm.rst",
    "allocation.rst",
    "batch-systems.rst",
    "batchjob.rst",
    "local.rst",
    "ssh.rst",
    "mpi.rst",
    "named.rst",
    "adoption.rst",
    "cleanup.rst",
    "security.rst",
    "report.rst",
    "configuration.rst",
    "notebooks.rst",
    "gpus.rst",
    "troubleshooting.rst",
    "migration.rst",
)
TUTORIAL = DOCS / "tutorial.rst"
SCRIPTS = DOCS / "tutorial"
MARKER = re.compile(r"^\.\. tutorial: (?P<spec>.+)$")
ENVIRONMENTS = ("local", "slurm", "ssh", "mpi", "sge")
#: The environments the tutorial itself walks through.
TUTORIAL_ENVIRONMENTS = ("local", "slurm", "ssh", "mpi")


@dataclass
class Step:
    """One ``$ command`` and the output shown after it."""

    command: str
    shown: list[tuple[int, str]] = field(default_factory=list)  # (output line no., text)


@dataclass
class Block:
    """A console block of a page."""

    page: str  # relative to docs/
    line: int
    environment: str | None  # None: not run
    skip: set[int]
    steps: list[Step]

    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def _skipped_lines(spec: str) -> set[int]:
    skipped: set[int] = set()
    for part in spec.split():
        first, dash, last = part.partition("-")
        end = int(last) if last else 10_000 if dash else int(first)
        skipped.update(range(int(first), end + 1))
    return skipped


def _indented_block(lines: list[str], start: int) -> list[str]:
    """The body of the directive at ``lines[start]`` (which may itself be indented, as in
    a list item), dedented to its own text."""
    indent = " " * (len(lines[start]) - len(lines[start].lstrip()) + 3)
    body = []
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith(indent):
            break
        body.append(line[len(indent) :])
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    return body


def parse_page(text: str, page: str = "tutorial.rst") -> list[Block]:
    """A page's console blocks, with where each runs and what it should print."""
    lines = text.splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if line.strip() != ".. code-block:: console":
            continue
        previous = next((lines[i] for i in range(number - 1, -1, -1) if lines[i].strip()), "")
        marker = MARKER.match(previous.strip())
        if marker is None:
            raise AssertionError(
                f"docs/{page}:{number + 1}: console block without a "
                "'.. tutorial: run ENV' or '.. tutorial: not run: WHY' line before it"
            )
        spec = marker["spec"].strip()
        environment, skip = None, set()
        if not spec.startswith("not run:"):
            run = re.fullmatch(r"run (\w+)(?:, skip ([\d\- ]+))?", spec)
            assert run and run[1] in ENVIRONMENTS, f"docs/{page}:{number + 1}: bad marker {spec!r}"
            environment, skip = run[1], _skipped_lines(run[2] or "")
        steps: list[Step] = []
        output_line = 0
        for body_line in _indented_block(lines, number) if environment else []:
            if body_line.startswith("$ "):
                steps.append(Step(body_line[2:]))
                continue
            output_line += 1
            assert steps, f"docs/{page}:{number + 1}: output before the first '$ ' command"
            if output_line not in skip and body_line.strip() not in ("", "..."):
                steps[-1].shown.append((output_line, body_line))
        assert environment is None or steps, f"docs/{page}:{number + 1}: a run block without '$ '"
        blocks.append(Block(page, number + 1, environment, skip, steps))
    return blocks


_VARIABLE = re.compile(r"(\.\.\.|dd-[0-9a-f]+|\d+(?:[.,:]\d+)*)")


def shape(line: str) -> re.Pattern[str]:
    """A pattern for ``line`` with numbers, deployment ids and ``...`` left open."""
    pattern = ""
    for index, part in enumerate(_VARIABLE.split(" ".join(line.split()))):
        if index % 2 == 0:
            pattern += re.escape(part)
        elif part == "...":
            pattern += ".*"
        elif part.startswith("dd-"):
            pattern += "dd-[0-9a-f]+"
        else:
            pattern += r"\d+(?:[.,:]\d+)*"
    return re.compile(pattern)


def missing_output(shown: list[tuple[int, str]], output: str) -> list[str]:
    """The shown lines that do not appear in ``output`` in order (empty: all do)."""
    actual = [" ".join(line.split()) for line in output.splitlines()]
    position, missing = 0, []
    for number, line in shown:
        pattern = shape(line)
        for index in range(position, len(actual)):
            if pattern.fullmatch(actual[index]):
                position = index + 1
                break
        else:
            missing.append(f"output line {number}: {line.strip()}")
    return missing


def page_blocks(page: str) -> list[Block]:
    """The console blocks of ``docs/<page>``."""
    return parse_page((DOCS / page).read_text(), page)


def run_blocks(page: str, environment: str, workdir: Path, env: dict[str, str]) -> None:
    """Run every block of ``environment`` on ``page`` in page order; fail with full output."""
    blocks = [b for b in page_blocks(page) if b.environment == environment]
    assert blocks, f"docs/{page} has no block for {environment}"
    for block in blocks:
        for step in block.steps:
            result = subprocess.run(
                ["bash", "-c", step.command],
                cwd=workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=240,
                check=False,
            )
            context = f"{block.where()}: $ {step.command}\n--- output ---\n{result.stdout}"
            assert result.returncode == 0, f"exit status {result.returncode}\n{context}"
            missing = missing_output(step.shown, result.stdout)
            assert not missing, "shown but not printed:\n  " + "\n  ".join(missing) + f"\n{context}"


def _runs() -> list:
    """One (page, environment) per environment a page's blocks use, in page order."""
    runs = []
    for page in PAGES:
        try:
            blocks = page_blocks(page)
        except (AssertionError, OSError):  # test_every_console_block_is_marked says why
            continue
        first: dict[str, int] = {}
        for block in blocks:
            if block.environment is not None:
                first.setdefault(block.environment, block.line)
        runs += [
            pytest.param((page, environment), id=f"{page}:{first[environment]}-{environment}")
            for environment in ENVIRONMENTS
            if environment in first
        ]
    return runs


#: The fixture that provides each environment's real component (None: nothing to start).
_COMPONENT = {"local": None, "slurm": "slurm", "ssh": "ssh_hosts", "mpi": None, "sge": "sge"}


@pytest.fixture(params=_runs())
def page_run(request) -> tuple[str, str, object]:
    """(page, environment, component): the component is set up before the sandbox, so
    the sandbox's processes are killed before its leftover-jobs check runs."""
    page, environment = request.param
    if environment == "mpi":
        from daskdeploy.testing.mpi import unavailable_reason

        require(unavailable_reason(), "MPI (mpi4py and MPICH's mpiexec)")
    name = _COMPONENT[environment]
    return page, environment, request.getfixturevalue(name) if name else None


@pytest.fixture
def tutorial_dir(sandbox) -> Path:
    """A copy of docs/tutorial/ to run in, with this Python's bin first on PATH and the
    repository's examples/ linked in (pages that run ``examples/pi.py`` as from a checkout)."""
    workdir = sandbox.root / "tutorial"
    shutil.copytree(SCRIPTS, workdir, ignore=shutil.ignore_patterns("__pycache__"))
    (workdir / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    bindir = str(Path(sys.executable).parent)
    sandbox.env["PATH"] = os.pathsep.join([bindir, sandbox.env.get("PATH", "")])
    return workdir


# ----------------------------------------------------------------------- the checker


@pytest.mark.parametrize("page", PAGES)
def test_every_console_block_is_marked(page):
    blocks = page_blocks(page)  # raises, naming the line, for a block without a marker
    for block in blocks:
        if block.environment is None:
            assert not block.steps
    if page == "tutorial.rst":
        assert {b.environment for b in blocks} >= set(TUTORIAL_ENVIRONMENTS)
        unrun = [block.where() for block in blocks if block.environment is None]
        assert len(unrun) <= 1, f"only the set-up block may go unrun: {unrun}"


def test_every_page_listed_exists_and_has_a_block_that_runs():
    for page in PAGES:
        assert any(b.environment for b in page_blocks(page)), page


def test_the_set_up_installs_extras_that_exist_and_enters_the_scripts_directory():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

    text = TUTORIAL.read_text()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for named in re.findall(r"pip install -e '\.\[([\w,]+)\]'", text):
        assert set(named.split(",")) <= set(extras), named
    assert "cd docs/tutorial" in text and SCRIPTS.is_dir()


def test_shape_matching_ignores_numbers_and_ids_but_not_words():
    shown = [(1, "daskdeploy: dd-1e46cd8d on local: 2 workers x 1 thread, scheduler ...")]
    assert not missing_output(
        shown, "daskdeploy: dd-9f on local: 4 workers x 1 thread, scheduler t"
    )
    assert missing_output(shown, "daskdeploy: dd-9f on slurm: 4 workers x 1 thread, scheduler t")
    timing = [(1, "4 parts in 3.29 s (threads)")]
    assert not missing_output(timing, "noise\n4 parts in 12.5 s  (threads)")
    assert missing_output(timing, "4 parts in 12.5 s (processes)")
    assert missing_output([(1, "b"), (2, "a")], "a\nb")  # order matters


def test_markers_parse_with_page_and_line():
    text = (
        "x\n\n.. tutorial: run sge, skip 2-\n\n.. code-block:: console\n\n   $ echo a\n   a\n   b\n"
    )
    (block,) = parse_page(text, "some.rst")
    assert (block.where(), block.environment, block.steps[0].shown) == (
        "docs/some.rst:5",
        "sge",
        [(1, "a")],
    )
    with pytest.raises(AssertionError, match=re.escape("docs/other.rst:1: console block without")):
        parse_page(".. code-block:: console\n\n   $ true\n", "other.rst")
    nested = "1. x\n\n   .. tutorial: run local\n\n   .. code-block:: console\n\n"
    nested += "      $ true\n      ok\n"
    (block,) = parse_page(nested, "list.rst")
    assert (block.steps[0].command, block.steps[0].shown) == ("true", [(1, "ok")])


def test_fast_sbatch_wait_prints_and_exits_as_sbatch_wait_does(slurm, sandbox):
    """The wrapper against the real ``sbatch --wait``, side by side: the same line, the job's
    exit code, 1 for a job ended by a signal; other command lines are the real sbatch's."""
    real = shutil.which("sbatch")
    assert real, "sbatch is not on PATH"
    wrapper = str(job_wait.install(sandbox.root / "bin", real))
    jobs = {"exit 3": 3, "kill -TERM $$": 1, "sleep 1": 0}
    runs = {
        (command, program): subprocess.Popen(
            [program, "--wait", "-o", "/dev/null", "--wrap", command],
            cwd=sandbox.root,
            env=sandbox.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for command in jobs
        for program in (real, wrapper)
    }
    for (command, program), process in runs.items():
        output, _ = process.communicate(timeout=120)
        assert re.fullmatch(r"Submitted batch job \d+\n", output), (program, output)
        assert process.returncode == jobs[command], (command, program, output)
    version = [real, "--version"]
    assert subprocess.run([wrapper, "--version"], capture_output=True, text=True).stdout == (
        subprocess.run(version, capture_output=True, text=True).stdout
    )


# ------------------------------------------------------------------------ the pages


def test_page_commands_run(page_run, sandbox, tutorial_dir):
    page, environment, component = page_run
    if environment == "ssh":
        # What the tutorial tells the user to write, with this machine's hosts and keys.
        (tutorial_dir / "hosts.txt").write_text("\n".join(component.hosts) + "\n")
        documented = _documented_config()
        documented["daskdeploy"]["ssh"]["connect_options"].update(component.connect_options())
        config_dir = Path(sandbox.env["DASK_CONFIG"])
        (config_dir / "daskdeploy.yaml").write_text(yaml.safe_dump(documented))
    if environment == "slurm":
        _fast_sbatch_wait(sandbox)
    run_blocks(page, environment, tutorial_dir, sandbox.env)
    if environment in ("slurm", "sge"):
        assert component.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


def _fast_sbatch_wait(sandbox) -> None:
    """Put tests/job_wait.py's sbatch first on the blocks' PATH: ``sbatch --wait`` then
    returns within 0.2 s of the job's end, not up to 32 s later; the rest is the real sbatch."""
    real = shutil.which("sbatch", path=sandbox.env.get("PATH"))
    assert real, "sbatch is not on PATH"
    wrapper = job_wait.install(sandbox.root / "bin", real)
    sandbox.env["PATH"] = os.pathsep.join([str(wrapper.parent), sandbox.env["PATH"]])


def _documented_config() -> dict:
    """The tutorial's dask-config YAML block, parsed (it must be valid YAML)."""
    text = TUTORIAL.read_text()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == ".. code-block:: yaml")
    config = yaml.safe_load("\n".join(_indented_block(lines, start)))
    assert set(config["daskdeploy"]["ssh"]["connect_options"]) <= {
        "username",
        "known_hosts",
        "port",
        "client_keys",
    }
    return config

"""Every command in docs/tutorial.rst runs, against the real components, as shown.

The tutorial marks each console block with an rst comment (invisible on the page) that
says where it runs::

    .. tutorial: run local
    .. tutorial: run slurm, skip 8-      (output lines 8 on are not compared)
    .. tutorial: not run: <why>

Each ``$ command`` line runs in bash, in a copy of ``docs/tutorial/``, and must exit 0.
The output lines shown after it must appear in its output (stdout and stderr together),
in order, with numbers, deployment ids and ``...`` free: timings, ports and addresses
differ from run to run, the words do not. A console block without a marker fails the
test, so nothing in the tutorial goes untested by accident.
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

from conftest import REPO, require

TUTORIAL = REPO / "docs" / "tutorial.rst"
SCRIPTS = REPO / "docs" / "tutorial"
MARKER = re.compile(r"^\.\. tutorial: (?P<spec>.+)$")
ENVIRONMENTS = ("local", "slurm", "ssh", "mpi")


@dataclass
class Step:
    """One ``$ command`` and the output shown after it."""

    command: str
    shown: list[tuple[int, str]] = field(default_factory=list)  # (output line no., text)


@dataclass
class Block:
    """A console block of the tutorial."""

    line: int
    environment: str | None  # None: not run
    skip: set[int]
    steps: list[Step]

    def where(self) -> str:
        return f"docs/tutorial.rst:{self.line}"


def _skipped_lines(spec: str) -> set[int]:
    skipped: set[int] = set()
    for part in spec.split():
        first, dash, last = part.partition("-")
        end = int(last) if last else 10_000 if dash else int(first)
        skipped.update(range(int(first), end + 1))
    return skipped


def _indented_block(lines: list[str], start: int) -> list[str]:
    """The body of the directive at ``lines[start]``, dedented by 3."""
    body = []
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith("   "):
            break
        body.append(line[3:])
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    return body


def parse_tutorial(text: str) -> list[Block]:
    """The tutorial's console blocks, with where each runs and what it should print."""
    lines = text.splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if line.strip() != ".. code-block:: console":
            continue
        previous = next((lines[i] for i in range(number - 1, -1, -1) if lines[i].strip()), "")
        marker = MARKER.match(previous)
        if marker is None:
            raise AssertionError(
                f"docs/tutorial.rst:{number + 1}: console block without a "
                "'.. tutorial: run ENV' or '.. tutorial: not run: WHY' line before it"
            )
        spec = marker["spec"].strip()
        environment, skip = None, set()
        if not spec.startswith("not run:"):
            run = re.fullmatch(r"run (\w+)(?:, skip ([\d\- ]+))?", spec)
            assert run and run[1] in ENVIRONMENTS, f"line {number}: bad marker {spec!r}"
            environment, skip = run[1], _skipped_lines(run[2] or "")
        steps: list[Step] = []
        output_line = 0
        for body_line in _indented_block(lines, number) if environment else []:
            if body_line.startswith("$ "):
                steps.append(Step(body_line[2:]))
                continue
            output_line += 1
            assert steps, f"line {number}: output before the first '$ ' command"
            if output_line not in skip and body_line.strip() not in ("", "..."):
                steps[-1].shown.append((output_line, body_line))
        assert environment is None or steps, f"line {number}: a run block without '$ '"
        blocks.append(Block(number + 1, environment, skip, steps))
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


def run_blocks(environment: str, workdir: Path, env: dict[str, str]) -> None:
    """Run every block of ``environment`` in tutorial order; fail with full output."""
    blocks = [b for b in parse_tutorial(TUTORIAL.read_text()) if b.environment == environment]
    assert blocks, f"the tutorial has no block for {environment}"
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


@pytest.fixture
def tutorial_dir(sandbox) -> Path:
    """A copy of docs/tutorial/ to run in, with this Python's bin first on PATH."""
    workdir = sandbox.root / "tutorial"
    shutil.copytree(SCRIPTS, workdir, ignore=shutil.ignore_patterns("__pycache__"))
    bindir = str(Path(sys.executable).parent)
    sandbox.env["PATH"] = os.pathsep.join([bindir, sandbox.env.get("PATH", "")])
    return workdir


# ----------------------------------------------------------------------- the checker


def test_every_console_block_is_marked_and_runs_somewhere():
    blocks = parse_tutorial(TUTORIAL.read_text())
    assert {b.environment for b in blocks} >= set(ENVIRONMENTS)
    unrun = [block.where() for block in blocks if block.environment is None]
    assert len(unrun) <= 1, f"only the set-up block may go unrun: {unrun}"


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


# ---------------------------------------------------------------------- the tutorial


def test_tutorial_on_this_machine(sandbox, tutorial_dir):
    run_blocks("local", tutorial_dir, sandbox.env)
    sandbox.assert_clean()


def test_tutorial_on_slurm(slurm, sandbox, tutorial_dir):
    run_blocks("slurm", tutorial_dir, sandbox.env)
    assert slurm.wait_for_no_jobs(timeout=30)
    sandbox.assert_clean()


def test_tutorial_over_ssh(ssh_hosts, sandbox, tutorial_dir):
    # What the tutorial tells the user to write, with this machine's hosts and keys.
    (tutorial_dir / "hosts.txt").write_text("\n".join(ssh_hosts.hosts) + "\n")
    documented = _documented_config()
    documented["daskdeploy"]["ssh"]["connect_options"].update(ssh_hosts.connect_options())
    config_dir = Path(sandbox.env["DASK_CONFIG"])
    (config_dir / "daskdeploy.yaml").write_text(yaml.safe_dump(documented))
    run_blocks("ssh", tutorial_dir, sandbox.env)
    sandbox.assert_clean()


def test_tutorial_under_mpi(sandbox, tutorial_dir):
    from daskdeploy.testing.mpi import unavailable_reason

    require(unavailable_reason(), "MPI (mpi4py and MPICH's mpiexec)")
    run_blocks("mpi", tutorial_dir, sandbox.env)
    sandbox.assert_clean()


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

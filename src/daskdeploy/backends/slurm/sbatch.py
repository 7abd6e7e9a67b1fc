"""Batch scripts that run a Dask program inside one SLURM allocation (``daskdeploy sbatch``).

:func:`render_sbatch_script` is pure: it turns an :class:`SbatchRequest` into the text of
a batch script whose batch step runs ``daskdeploy run --backend allocation SCRIPT ARGS``,
so the scheduler and the script run in the batch step and the Dask workers in the tasks
of the job: one single-threaded worker process per CPU of each task, or one worker per
task with ``--threads-per-worker`` threads (see
:func:`daskdeploy.backends.shared.layout.task_layout`).
Nothing in it runs a command or reads the environment, so it is tested against golden
files (``tests/golden/sbatch_*.sh``).

:func:`check_script` and :func:`submit_script` hand such a script to ``sbatch``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path, PurePath

from ...commands import CommandError, run_command
from . import control
from .control import parse_walltime

__all__ = [
    "SbatchRequest",
    "check_script",
    "default_setup",
    "output_path",
    "render_sbatch_script",
    "submit_script",
]

_MEMORY = re.compile(r"^\d+(?:[KMGT]B?)?$", re.IGNORECASE)
# sbatch reads #SBATCH lines itself: whitespace splits arguments, '#' starts a comment
# (even inside a word), and double quotes group with backslash escapes.
_DIRECTIVE_SPECIAL = re.compile(r'[\s#"\\]')
_LINE_BREAK = re.compile(r"[\n\r\0]")


@dataclass(frozen=True)
class SbatchRequest:
    """What goes into a batch script that runs ``script`` on one SLURM allocation.

    Every task of the job runs Dask workers, one single-threaded worker process per CPU;
    the scheduler and ``script`` run in the batch step. Values are checked when the
    request is made.

    Parameters
    ----------
    script
        Path of the Python script, as the job should see it (relative paths are relative
        to the directory the job is submitted from).
    script_args
        Arguments passed on to the script.
    nodes
        ``--nodes``; ``None`` leaves the node count to SLURM.
    ntasks
        ``--ntasks``: the number of tasks, each running ``cpus_per_task`` workers.
    cpus_per_task
        ``--cpus-per-task``: the worker processes of each task, single-threaded, unless
        ``threads_per_worker`` is set (then one worker per task with that many threads).
        Fewer, with more threads each, when the task's memory would leave a worker less
        than 256 MiB.
    mem_per_cpu, mem
        ``--mem-per-cpu`` or ``--mem`` (per node), e.g. ``"2G"``; at most one of them.
        ``None`` for both leaves memory to the site's default.
    time
        ``--time``, the job's time limit, e.g. ``"01:00:00"``.
    partition, account, qos
        ``--partition``, ``--account``, ``--qos``; ``None`` leaves them out.
    job_name
        ``--job-name``; ``None`` means ``"dask-"`` followed by the script's stem.
    output
        ``--output``; ``%x`` is the job name and ``%j`` the job id.
    setup
        Shell lines run before daskdeploy, e.g. ``"module load python"`` or
        ``"source ~/venv/bin/activate"``; written as they are, not quoted.
    extra_directives
        More sbatch options, one ``#SBATCH`` line each, e.g. ``"--constraint=skylake"``.
    python
        Python that runs ``-m daskdeploy``; ``None`` runs the ``daskdeploy`` command.

    Raises
    ------
    ValueError
        For a count that is not a positive whole number, a malformed time limit or memory
        size, both ``mem`` and ``mem_per_cpu``, more nodes than tasks, an empty value, or a
        newline in any value.
    """

    script: str
    script_args: tuple[str, ...] = ()
    nodes: int | None = None
    ntasks: int = 2
    cpus_per_task: int = 1
    mem_per_cpu: str | None = None
    mem: str | None = None
    time: str = "01:00:00"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    job_name: str | None = None
    output: str = "%x-%j.out"
    setup: tuple[str, ...] = ()
    extra_directives: tuple[str, ...] = ()
    python: str | None = None

    def __post_init__(self) -> None:
        for name in ("script_args", "setup", "extra_directives"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("script", "time", "output"):
            if getattr(self, name) is None:
                raise ValueError(f"{_label(name)} is required")
        for item in fields(self):
            _check_text(item.name, getattr(self, item.name))
        for name in ("script", "partition", "account", "qos", "job_name", "output", "python"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ValueError(f"{_label(name)} must not be empty")
        if any(not line.strip() for line in self.setup):
            raise ValueError(f"{_label('setup')} must not be empty")
        for directive in self.extra_directives:
            if not directive.startswith("-"):
                raise ValueError(
                    f"{_label('extra_directives')} is an sbatch option such as "
                    f"--constraint=skylake (without '#SBATCH'), got {directive!r}"
                )
        for name in ("nodes", "ntasks", "cpus_per_task"):
            value = getattr(self, name)
            if value is None and name == "nodes":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{_flag(name)} must be a positive whole number, got {value!r}")
        if self.nodes is not None and self.nodes > self.ntasks:
            raise ValueError(
                f"--nodes={self.nodes} is more than --ntasks={self.ntasks}: every node needs at "
                f"least one task"
            )
        if self.mem is not None and self.mem_per_cpu is not None:
            raise ValueError("give either --mem (per node) or --mem-per-cpu, not both")
        for name in ("mem", "mem_per_cpu"):
            _check_memory(name, getattr(self, name))
        try:
            parse_walltime(self.time)
        except ValueError as exc:
            raise ValueError(f"--time: {exc}") from None

    @property
    def name(self) -> str:
        """The job name: ``job_name``, or ``dask-<script stem>``.

        >>> SbatchRequest("analysis/run_all.py").name
        'dask-run_all'
        """
        return self.job_name or f"dask-{PurePath(self.script).stem}"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


_LABELS = {
    "script": "the script path",
    "script_args": "a script argument",
    "setup": "a setup line (--setup)",
    "extra_directives": "an extra directive (--directive)",
}


def _label(name: str) -> str:
    """How messages name a field: as the command-line option where there is one."""
    return _LABELS.get(name) or _flag(name)


def _check_text(name: str, value: object) -> None:
    """Every text value (and every item of a tuple) is one line; counts are checked later."""
    if name in ("nodes", "ntasks", "cpus_per_task") or value is None:
        return
    for item in value if isinstance(value, tuple) else (value,):
        if not isinstance(item, str):
            raise ValueError(f"{_label(name)} must be text, got {item!r}")
        if _LINE_BREAK.search(item):
            raise ValueError(
                f"{_label(name)} must be a single line without a newline, got {item!r}"
            )


def _check_memory(name: str, value: str | None) -> None:
    if value is None:
        return
    if not _MEMORY.match(value.strip()):
        raise ValueError(
            f"{_flag(name)} expects a SLURM memory size: a whole number with an optional K, M, "
            f"G or T suffix (megabytes without one), e.g. 2G or 500M; got {value!r}"
        )
    if name == "mem_per_cpu" and int(re.match(r"\d+", value.strip())[0]) == 0:
        raise ValueError("--mem-per-cpu must be more than 0")


def _directive_value(value: str) -> str:
    """Quote a value for an ``#SBATCH`` line when sbatch would otherwise split or cut it.

    >>> print(_directive_value("%x-%j.out"), _directive_value('my "big" run #2'))
    %x-%j.out "my \\"big\\" run #2"
    """
    if not _DIRECTIVE_SPECIAL.search(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _directives(request: SbatchRequest) -> list[str]:
    pairs: list[tuple[str, object]] = [("job-name", request.name)]
    if request.nodes is not None:
        pairs.append(("nodes", request.nodes))
    pairs += [("ntasks", request.ntasks), ("cpus-per-task", request.cpus_per_task)]
    if request.mem_per_cpu is not None:
        pairs.append(("mem-per-cpu", request.mem_per_cpu.strip()))
    if request.mem is not None:
        pairs.append(("mem", request.mem.strip()))
    pairs.append(("time", request.time.strip()))
    for name in ("partition", "account", "qos"):
        value = getattr(request, name)
        if value is not None:
            pairs.append((name, value))
    pairs.append(("output", request.output))
    lines = [f"#SBATCH --{key}={_directive_value(str(value))}" for key, value in pairs]
    return lines + [f"#SBATCH {directive}" for directive in request.extra_directives]


def _memory_text(request: SbatchRequest) -> str:
    if request.mem_per_cpu is not None:
        return f"{request.mem_per_cpu.strip()} per CPU (--mem-per-cpu)"
    if request.mem is not None:
        if request.mem.strip() == "0":
            return "all of each node's memory (--mem=0), shared by the node's workers"
        return f"{request.mem.strip()} per node (--mem), shared by the node's workers"
    return "the site's default (no --mem-per-cpu or --mem)"


def workers_summary(request: SbatchRequest) -> str:
    """The job's workers in a few words: ``"4 tasks x 2 CPUs = 8 workers x 1 thread"``.

    >>> from pathlib import Path
    >>> workers_summary(SbatchRequest(Path("a.py"), ntasks=1))
    '1 worker x 1 thread'
    """
    tasks, cpus = request.ntasks, request.cpus_per_task
    if cpus == 1:
        return f"{tasks} worker{'s' if tasks != 1 else ''} x 1 thread"
    return (
        f"{tasks} task{'s' if tasks != 1 else ''} x {cpus} CPUs = {tasks * cpus} workers x 1 thread"
    )


def _workers_text(request: SbatchRequest) -> list[str]:
    """The comment lines that say which workers the job runs, and why."""
    tasks, cpus = request.ntasks, request.cpus_per_task
    plural = "s" if tasks != 1 else ""
    if cpus == 1:
        return [
            "# The batch step runs the Dask scheduler and your script; `daskdeploy run --backend",
            "# allocation` starts one Dask worker in each task of this job with srun:",
            f"# {tasks} worker{plural} (--ntasks) x 1 thread (--cpus-per-task).",
        ]
    return [
        "# The batch step runs the Dask scheduler and your script; `daskdeploy run --backend",
        "# allocation` starts the Dask workers in the tasks of this job with srun, one",
        "# single-threaded worker process per CPU (pure-Python code holds the GIL):",
        f"# {tasks} task{plural} (--ntasks) x {cpus} CPUs (--cpus-per-task) = {tasks * cpus} "
        "workers x 1 thread.",
        "# For one worker of N threads per task instead (code that releases the GIL, such as",
        "# NumPy), add --threads-per-worker N to the `daskdeploy run` line below.",
    ]


def render_sbatch_script(request: SbatchRequest) -> str:
    """Write the batch script that runs ``request.script`` on one SLURM allocation.

    The script asks SLURM for ``ntasks`` tasks of ``cpus_per_task`` CPUs, runs the
    ``setup`` lines, changes to the submit directory and ends with
    ``exec daskdeploy run --backend allocation SCRIPT ARGS``, every argument quoted for
    the shell.

    Parameters
    ----------
    request
        What to ask SLURM for and what to run.

    Returns
    -------
    str
        The script, ending with a newline.

    Examples
    --------
    >>> script = render_sbatch_script(SbatchRequest("pi.py", ("--samples", "1e6"), ntasks=4))
    >>> print("\\n".join(line for line in script.splitlines() if line.startswith("#SBATCH")))
    #SBATCH --job-name=dask-pi
    #SBATCH --ntasks=4
    #SBATCH --cpus-per-task=1
    #SBATCH --time=01:00:00
    #SBATCH --output=%x-%j.out
    >>> print(script.splitlines()[-1])
    exec daskdeploy run --backend allocation pi.py --samples 1e6
    >>> print(render_sbatch_script(SbatchRequest("my pi.py", ("$HOME",))).splitlines()[-1])
    exec daskdeploy run --backend allocation 'my pi.py' '$HOME'
    """
    lines = [
        "#!/bin/bash",
        "# Dask on one SLURM allocation, written by `daskdeploy sbatch`.",
        "#",
        *_workers_text(request),
        f"# Memory: {_memory_text(request)}.",
        "# No other job is submitted, so `scancel <job id>` stops everything, and the time",
        "# limit bounds the whole run.",
        "#",
        "# Submit it from the directory the relative paths below refer to: the job runs",
        "# there, and a relative --output lands there (%x: job name, %j: job id).",
        "#",
        "#     sbatch THIS_FILE",
        "",
        *_directives(request),
        "",
        "set -euo pipefail",
        "",
    ]
    if request.setup:
        lines += [
            "# The Python environment. The workers start from this environment too, so it",
            "# must be on a file system the compute nodes see. Activation scripts may use",
            "# unset variables, hence set +u / set -u.",
            "set +u",
            *request.setup,
            "set -u",
            "",
        ]
    lines += ['cd "${SLURM_SUBMIT_DIR:-.}"', ""]
    if request.python is None:
        launcher = ["daskdeploy"]
    else:
        launcher = [shlex.quote(request.python), "-m", "daskdeploy"]
    command = [*launcher, "run", "--backend", "allocation"]
    if request.script.startswith("-"):
        command.append("--")  # a script name that looks like an option
    command += [shlex.quote(arg) for arg in (request.script, *request.script_args)]
    lines.append("exec " + " ".join(command))
    return "\n".join(lines) + "\n"


def default_setup(prefix: str, base_prefix: str) -> tuple[str, ...]:
    """Setup lines that activate the virtual environment at ``prefix``, if it is one.

    Pass ``sys.prefix`` and ``sys.base_prefix``: they differ inside a virtual environment.

    >>> default_setup("/home/me/my env", "/usr")
    ("source '/home/me/my env/bin/activate'",)
    >>> default_setup("/usr", "/usr")
    ()
    """
    if prefix == base_prefix:
        return ()
    return (f"source {shlex.quote(str(PurePath(prefix, 'bin', 'activate')))}",)


def output_path(request: SbatchRequest, job_id: str, submit_dir: str) -> str:
    """Where the job's output goes: ``request.output`` with ``%x``, ``%j`` filled in.

    Relative paths are taken from ``submit_dir``; other ``%`` patterns stay as they are.

    >>> output_path(SbatchRequest("pi.py"), "42", "/home/me")
    '/home/me/dask-pi-42.out'
    """
    replacements = {"%x": request.name, "%j": job_id, "%A": job_id, "%%": "%"}
    text = re.sub(r"%[xjA%]", lambda match: replacements[match[0]], request.output)
    return str(PurePath(submit_dir, text))


def check_script(script: str) -> str:
    """:func:`~daskdeploy.backends.slurm.control.test_submit` of a ``daskdeploy sbatch``
    script: SLURM's estimate, or :class:`~daskdeploy.commands.CommandError` with its
    reason (also when ``sbatch`` is missing)."""
    return control.test_submit(script, what="the job script")


def submit_script(script: str, path: Path | None = None) -> str:
    """Submit a batch script with ``sbatch`` and return the job id.

    Parameters
    ----------
    script
        The script; ``sbatch`` reads it from its standard input.
    path
        Submit this file instead (it should hold ``script``), so that SLURM records its
        name, e.g. in ``scontrol show job``.

    Raises
    ------
    CommandError
        ``sbatch`` failed (the message quotes it), is missing, or printed no job id.
    """
    args: Sequence[str] = ["sbatch", "--parsable"] + ([str(path)] if path is not None else [])
    result = run_command(
        args,
        input_text=None if path is not None else script,
        timeout=60.0,
        what="submitting the job with sbatch",
    )
    job_id = result.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise CommandError(
            f"sbatch printed no job id: {result.stdout.strip() or result.stderr.strip()}", result
        )
    return job_id

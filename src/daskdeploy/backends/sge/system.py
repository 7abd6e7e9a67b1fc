"""Grid Engine as a batch system of the job-queue backend: its commands and spellings.

Written against Son of Grid Engine 8.1 (Debian's ``gridengine-*``), which the test suite
runs for real; Univa/Altair Grid Engine share the commands and options used here. Manual
pages: qsub(1), qstat(1), qdel(1), sge_pe(5), queue_conf(5).
"""

from __future__ import annotations

import getpass
import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...commands import CommandError, run_command
from ...options import Option, text
from ..jobqueue.system import (
    QUICK,
    BatchJob,
    BatchSystem,
    JobAllocation,
    JobArrays,
    JobSettings,
    format_hms,
)

if TYPE_CHECKING:
    from ...options import ResolvedOptions

__all__ = ["SGE", "SgeSystem", "expand_task_range", "parse_qstat_xml"]


def expand_task_range(tasks: str) -> list[str]:
    """Expand ``qstat``'s array task list (``"1-7:2,10"``) into task ids.

    >>> expand_task_range("2-4:1"), expand_task_range("1,3"), expand_task_range("5")
    (['2', '3', '4'], ['1', '3'], ['5'])
    """
    ids: list[str] = []
    for part in filter(None, tasks.split(",")):
        span, _, step = part.partition(":")
        first, _, last = span.partition("-")
        ids += [str(i) for i in range(int(first), int(last or first) + 1, int(step or 1))]
    return ids


def parse_qstat_xml(xml: str) -> list[BatchJob]:
    """The jobs in ``qstat -xml`` output, one per array task.

    Running tasks are listed one per ``job_list`` element; pending tasks of an array share
    one element whose ``tasks`` field is a range (see :func:`expand_task_range`).
    """
    jobs = []
    for element in ElementTree.fromstring(xml).iter("job_list"):
        number = element.findtext("JB_job_number", "").strip()
        name = element.findtext("JB_name", "").strip()
        state = element.findtext("state", "").strip()
        host = element.findtext("queue_name", "").strip().partition("@")[2]
        tasks = element.findtext("tasks", "").strip()
        running = state in ("r", "t", "Rr", "Rt")
        ids = [f"{number}.{task}" for task in expand_task_range(tasks)] if tasks else [number]
        jobs += [BatchJob(job_id, name, state, nodes=host, running=running) for job_id in ids]
    return jobs


class SgeSystem(BatchSystem):
    """Grid Engine: ``qsub``/``qstat``/``qdel``, ``qsub -t`` arrays, ``qsub -w v`` checks."""

    name = "sge"
    title = "SGE"
    cluster_class = "dask_jobqueue.sge:SGECluster"
    submit_command = "qsub"
    status_command = "qstat"
    cancel_command = "qdel"
    other_commands = ("qconf",)
    install_hint = (
        "install the client tools (Debian/Ubuntu: apt-get install gridengine-client) and "
        "set SGE_ROOT and SGE_CELL (source $SGE_ROOT/$SGE_CELL/common/settings.sh)"
    )
    directive_prefix = "#$"
    # qsub(1): 'Your job 42 ("name") has been submitted', 'Your job-array 42.1-4:1 ...'
    job_id_pattern = r"Your job(?:-array)? (?P<job_id>\d+)"
    # qsub(1) -t n[-m[:s]]: tasks numbered from 1, the index in $SGE_TASK_ID; qdel(1)
    # and qstat(1) take "job.task".
    arrays = JobArrays(
        submit_flag="-t {first}-{last}",
        index_variable="SGE_TASK_ID",
        first_index=1,
        task_id="{array}.{index}",
        # qsub(1) -o: $TASK_ID in the path is the task's index.
        output_substitutions=(("$JOB_ID.out", "$JOB_ID.$TASK_ID.out"),),
    )
    # sge_conf(5): max_aj_tasks tasks per array job; max_u_jobs (per user) and max_jobs
    # (per cell) active jobs, an array job counting once; 0 is no limit.
    limits_command = ("qconf", "-sconf")
    limit_settings: ClassVar[dict[str, str]] = {
        "max_aj_tasks": "max_array_tasks",
        "max_u_jobs": "max_jobs",
        "max_jobs": "max_jobs",
    }
    array_tasks_are_jobs = False
    tested_with_daemon = True
    can_test_submit = True
    # qsub -w v fails at once when the qmaster is down: one call fewer before submitting.
    controller_check_first = False
    # Inside a job: SGE sets SGE_JOB_SPOOL_DIR in every job; a parallel-environment job
    # has PE_HOSTFILE ("host slots queue processors" per line, sge_pe(5)); qrsh(1)
    # -inherit starts a task on one of the job's hosts (the PE needs control_slaves).
    in_place_backend = "batchjob"
    allocation = JobAllocation(
        marker="SGE_JOB_SPOOL_DIR",
        job_id="JOB_ID",
        host_file="PE_HOSTFILE",
        slots_per_line=True,
        slots="NSLOTS",
        launcher=("qrsh", "-inherit", "-nostdin", "{host}"),
    )
    extra_options: ClassVar[tuple[Option, ...]] = (
        Option("project", text, "Project the jobs belong to (qsub -P).", nullable=True),
        Option(
            "parallel_environment",
            text,
            "Parallel environment of jobs of more than one core (qsub -pe NAME CORES); "
            "`qconf -spl` lists them.",
            nullable=True,
        ),
        Option(
            "resource_spec",
            text,
            "More resource requests (qsub -l), e.g. 'h_vmem=4G,mem_free=4G': Grid Engine "
            "sites name memory resources differently, so none is requested by default.",
            nullable=True,
        ),
    )
    option_help: ClassVar[dict[str, str]] = {
        "queue": "Cluster queue (qsub -q); null: the cell's default queues.",
        "account": "Account string for accounting (qsub -A).",
        "job_extra_directives": "More #$ lines, e.g. ['-l gpu=1', '-R y'].",
    }
    rejection_hints: ClassVar[dict[str, str]] = {
        "queue": "check the queue option (`qconf -sql` lists queues)",
        "parallel environment": "check the parallel_environment option (`qconf -spl` lists "
        "them) and that the queue's pe_list has it",
        "project": "check the project option (`qconf -sprjl` lists projects)",
        "no suitable queues": "ask for fewer cores, less memory or time per job, or check "
        "the queue and resource_spec options (`qstat -g c`, `qconf -sq QUEUE`)",
    }
    # qstat(1): d = deletion requested; E = error state (the job will not run).
    ending_states: ClassVar[frozenset[str]] = frozenset({"dr", "dt", "dRr", "dRt", "Eqw"})

    def configured(self) -> bool:
        """Whether a Grid Engine cell seems set up here (``SGE_ROOT``/its ``act_qmaster``)."""
        root = os.environ.get("SGE_ROOT") or "/var/lib/gridengine"
        cell = os.environ.get("SGE_CELL") or "default"
        return Path(root, cell, "common", "act_qmaster").is_file()

    def check_controller(self) -> str:
        """Ask the qmaster (``qstat``), saying how to point the client at the cell."""
        try:
            self._qstat_xml()
        except CommandError as exc:
            raise CommandError(
                f"{exc}\nCheck that SGE_ROOT and SGE_CELL (and SGE_QMASTER_PORT if the cell "
                f"uses its own port) are set as in $SGE_ROOT/$SGE_CELL/common/settings.sh, "
                f"and that sge_qmaster is running.",
                exc.result,
            ) from None
        return ""

    def test_submit(self, script: str, array_size: int | None = None) -> str | None:
        """``qsub -w v [-t 1-N]``: would a queue of the (empty) cell accept the job?
        Submits nothing."""
        what = f"a job array of {array_size} worker jobs" if array_size else "the worker job script"
        result = run_command(
            ["qsub", "-w", "v", *self.array_args(array_size)],
            input_text=script,
            timeout=QUICK,
            what=f"checking {what} with qsub -w v",
        )
        return (result.stdout.strip() or result.stderr.strip()).replace("verification: ", "")

    def list_jobs(self, name: str | None = None) -> list[BatchJob]:
        """``qstat -xml -u USER``, one entry per array task (named ``name`` if given)."""
        jobs = parse_qstat_xml(self._qstat_xml())
        return [job for job in jobs if name is None or job.name == name]

    def _qstat_xml(self) -> str:
        result = run_command(
            ["qstat", "-xml", "-u", getpass.getuser()],
            timeout=QUICK,
            what="listing jobs with qstat",
        )
        return result.stdout

    def node_addresses(self, queue: str | None) -> list[str]:
        """The execution hosts (``qconf -sel``; Grid Engine has no per-queue list handy)."""
        result = run_command(["qconf", "-sel"], timeout=QUICK, what="listing execution hosts")
        return result.stdout.split()

    def walltime_text(self, seconds: int, given: str) -> str:
        """``h_rt`` as ``HH:MM:SS`` (queue_conf(5), time_specifier)."""
        return format_hms(seconds)

    def job_kwargs(self, options: ResolvedOptions, settings: JobSettings) -> dict[str, Any]:
        """Queue, project, account, PE slots, resources and per-job output files."""
        # qsub(1) -o PATH: $JOB_NAME and $JOB_ID are expanded in the path. dask-jobqueue
        # already joins stderr to stdout (-j y) and runs in the submit directory (-cwd).
        # -S: the script is bash (arrays, $(...)); queues default to /bin/sh or csh.
        directives = ["-S /bin/bash", f"-o {settings.log_directory}/$JOB_NAME-$JOB_ID.out"]
        if options["account"]:
            directives.append(f"-A {options['account']}")
        if settings.cores > 1 and options["parallel_environment"]:
            directives.append(f"-pe {options['parallel_environment']} {settings.cores}")
        return {
            "queue": options["queue"],
            "project": options["project"],
            "resource_spec": options["resource_spec"],
            "job_extra_directives": directives,
        }

    def output_files(self, log_directory: Path, job_name: str, job_id: str) -> list[Path]:
        """``<name>-<job>.out``, or ``<name>-<job>.<task>.out`` for an array task."""
        return [log_directory / f"{job_name}-{job_id}.out"]


SGE = SgeSystem()

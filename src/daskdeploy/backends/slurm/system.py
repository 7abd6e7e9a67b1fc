"""SLURM as a batch system of the job-queue backend: its commands and spellings."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...options import Option, text
from ..jobqueue.system import BatchJob, BatchSystem, JobArrays, JobSettings
from . import control

if TYPE_CHECKING:
    from ...options import ResolvedOptions

__all__ = ["SLURM", "SlurmSystem"]

#: States in which a SLURM job still holds or waits for resources.
_ALIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "REQUEUED", "RESIZING"})


def _batch_job(job: control.SlurmJob, tag: str = "") -> BatchJob:
    return BatchJob(
        job.id, job.name, job.state, job.reason, job.nodes, tag, running=job.state == "RUNNING"
    )


class SlurmSystem(BatchSystem):
    """SLURM: ``sbatch``/``squeue``/``scancel``, job arrays, ``sbatch --test-only``."""

    name = "slurm"
    title = "SLURM"
    cluster_class = "dask_jobqueue.slurm:SLURMCluster"
    submit_command = "sbatch"
    status_command = "squeue"
    cancel_command = "scancel"
    other_commands = ("scontrol",)
    install_hint = "install the client tools (Debian/Ubuntu: apt-get install slurm-client)"
    directive_prefix = "#SBATCH"
    job_id_pattern = r"Submitted batch job (?P<job_id>\d+)"
    arrays = JobArrays(
        submit_flag="--array={first}-{last}",
        index_variable="SLURM_ARRAY_TASK_ID",
        first_index=0,
        task_id="{array}_{index}",
        # Output files named after the array task ("%A_%a"), as squeue and scancel name it.
        output_substitutions=(("%j", "%A_%a"),),
    )
    # slurm.conf(5): array indices stay below MaxArraySize (tasks 0..MaxArraySize-1);
    # MaxJobCount counts every task of an array as a job.
    limits_command = ("scontrol", "show", "config")
    limit_settings: ClassVar[dict[str, str]] = {
        "MaxArraySize": "max_array_tasks",
        "MaxJobCount": "max_jobs",
    }
    queue_word = "partition"
    in_place_backend = "allocation"
    tested_with_daemon = True
    can_test_submit = True
    extra_options: ClassVar[tuple[Option, ...]] = (
        Option("qos", text, "Quality of service (sbatch --qos).", nullable=True),
    )
    option_help: ClassVar[dict[str, str]] = {
        "queue": "SLURM partition (sbatch -p); null: the cluster's default partition.",
        "account": "Account to charge (sbatch -A).",
        "job_extra_directives": "More #SBATCH lines, e.g. ['--constraint=haswell', "
        "'--gres=gpu:1'].",
    }
    rejection_hints: ClassVar[dict[str, str]] = {
        "partition": "check the partition option (`sinfo -s` lists partitions)",
        "memory": "ask for less memory, cores or time per job (`sinfo -o '%P %c %m %l'` "
        "shows what nodes offer)",
        "node configuration": "ask for less memory, cores or time per job (`sinfo -o "
        "'%P %c %m %l'` shows what nodes offer)",
        "account": "check the account and qos options (`sacctmgr show assoc user=$USER`)",
        "qos": "check the account and qos options (`sacctmgr show assoc user=$USER`)",
        "array": "the site limits job arrays (`scontrol show config | grep -i array`)",
    }

    def configured(self) -> bool:
        """Whether SLURM seems configured here (``SLURM_CONF``, ``/etc/slurm/slurm.conf``)."""
        conf = os.environ.get("SLURM_CONF")
        return bool(conf) or os.path.exists("/etc/slurm/slurm.conf") or os.path.isdir("/run/slurm")

    def tools_missing_reason(self) -> str | None:
        """Which SLURM client commands are missing (see :func:`control.tools_missing_reason`)."""
        return control.tools_missing_reason()

    def check_controller(self) -> str:
        """``scontrol ping``."""
        return control.check_controller()

    def test_submit(self, script: str, array_size: int | None = None) -> str | None:
        """``sbatch --test-only [--array=0-N]``: SLURM's estimate of when and where the
        job would start."""
        what = f"a job array of {array_size} worker jobs" if array_size else "the worker job script"
        return control.test_submit(script, what=what, args=self.array_args(array_size))

    def submit(self, script_path: Path, *, array_size: int | None = None) -> str:
        """``sbatch [--array=0-N] SCRIPT``."""
        return control.submit(script_path, array_size=array_size)

    def list_jobs(self, name: str | None = None) -> list[BatchJob]:
        """``squeue`` by name, or every job of this user with its comment as the tag."""
        if name is not None:
            return [_batch_job(job) for job in control.list_jobs(name)]
        return [_batch_job(job, comment) for job, comment in control.list_my_jobs()]

    def cancel_deployment(self, name: str, job_ids: Sequence[str] = ()) -> None:
        """``scancel --name`` (and the arrays of ``job_ids`` as a whole)."""
        control.cancel_named_or_listed(name, job_ids)

    def job_alive(self, job_id: str) -> bool:
        """Whether SLURM still lists the job in a state that holds or waits for resources."""
        return control.job_state(job_id) in _ALIVE

    def node_addresses(self, queue: str | None) -> list[str]:
        """The ``NodeAddr`` of the partition's nodes (``scontrol show node``)."""
        return control.node_addresses(queue)

    def walltime_text(self, seconds: int, given: str) -> str:
        """SLURM reads every form daskdeploy accepts: pass the user's text on."""
        return given

    def job_kwargs(self, options: ResolvedOptions, settings: JobSettings) -> dict[str, Any]:
        """Partition, account, qos; output per job; the deployment id as a comment."""
        directives = [
            f"--output={settings.log_directory}/%x-%j.out",
            f"--comment=daskdeploy:{settings.job_name}",
        ]
        if options["qos"]:
            directives.append(f"--qos={options['qos']}")
        return {
            "queue": options["partition"],
            "account": options["account"],
            "job_extra_directives": directives,
        }

    def tag_of(self, job: BatchJob) -> str:
        """The deployment id in a job's ``--comment=daskdeploy:<id>``."""
        prefix = "daskdeploy:"
        return job.tag[len(prefix) :] if job.tag.startswith(prefix) else ""


SLURM = SlurmSystem()

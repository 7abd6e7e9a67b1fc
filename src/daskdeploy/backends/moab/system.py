"""Moab as a batch system of the job-queue backend: PBS job scripts, Moab's commands.

Moab schedules jobs of a resource manager (usually Torque) and takes PBS job scripts:
``msub`` "can accept command line arguments (with the same syntax as qsub), job scripts
(in either PBS or LoadLeveler syntax)" (Moab Workload Manager documentation, msub). So
:class:`MoabSystem` is :class:`~daskdeploy.backends.pbs.system.PbsSystem` with Moab's
commands: ``msub`` to submit, ``showq --xml`` to list, ``canceljob`` to cancel, and
Moab's job states. dask-jobqueue's ``MoabJob`` is its ``PBSJob`` with those commands.

Written against the Moab Workload Manager documentation (docs.adaptivecomputing.com,
commands msub, showq, canceljob; "Layout of Scheduler Components"). Not run by the test
suite: no Moab server runs here. No job arrays, as for PBS.
"""

from __future__ import annotations

import getpass
import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...commands import run_command
from ..jobqueue.system import QUICK, BatchJob, JobSettings
from ..pbs.system import PbsSystem

if TYPE_CHECKING:
    from ...options import ResolvedOptions

__all__ = ["MOAB", "MoabSystem", "parse_showq_xml"]


def parse_showq_xml(xml: str) -> list[BatchJob]:
    """The jobs in ``showq --xml`` output.

    ``<Data>`` holds ``<queue option="active|eligible|blocked">`` elements whose ``<job>``
    elements carry ``JobID``, ``JobName``, ``State`` (``Running``, ``Idle``, ...) and, once
    running, ``MasterHost``. A job in the blocked queue gets ``blocked`` as its reason.
    Some Moab versions print several ``<Data>`` documents one after the other.
    """
    jobs = []
    for document in xml.split("</Data>"):
        if "<Data" not in document:
            continue
        root = ElementTree.fromstring(document[document.index("<Data") :] + "</Data>")
        for queue in root.iter("queue"):
            option = queue.get("option", "")
            for job in queue.iter("job"):
                state = job.get("State", "")
                running = state == "Running"
                jobs.append(
                    BatchJob(
                        job.get("JobID", ""),
                        job.get("JobName", ""),
                        state,
                        reason="blocked" if option == "blocked" and not running else "",
                        nodes=job.get("MasterHost", ""),
                        running=running,
                    )
                )
    return jobs


class MoabSystem(PbsSystem):
    """Moab: ``msub``/``showq --xml``/``canceljob``, ``#PBS`` job scripts."""

    name = "moab"
    title = "Moab"
    cluster_class = "dask_jobqueue.moab:MoabCluster"
    # msub <script> (msub: "job scripts (in either PBS or LoadLeveler syntax)"); showq
    # --xml -w user=<name> (showq); canceljob <job id> ... (canceljob), as dask-jobqueue's
    # MoabJob.
    submit_command = "msub"
    status_command = "showq"
    cancel_command = "canceljob"
    install_hint = (
        "add Moab's bin directory to PATH (in its home directory, /opt/moab by default or "
        "$MOABHOMEDIR, whose etc/moab.cfg names the server)"
    )
    # msub prints the new job's id alone on a line ("4761849", or "Moab.12" for a job
    # Moab numbers itself): PbsSystem.job_id_pattern (pbs.system.JOB_ID_LINE) reads both.
    option_help: ClassVar[dict[str, str]] = {
        "queue": "Moab class (msub -q); null: the default class. `mdiag -c` lists them.",
        "account": "Account charged for the jobs (msub -A).",
        "job_extra_directives": "More #PBS lines for msub, e.g. ['-l feature=haswell'].",
    }
    # Moab's words: "ERROR:    cannot submit job - <reason>", "... - cred limit reached"
    # (Moab's job submission code, MUIJobSubmit); "ERROR:  client timed out" when the
    # server does not answer.
    rejection_hints: ClassVar[dict[str, str]] = {
        "class": "check the queue option, Moab's class (`mdiag -c` lists classes)",
        "limit": "a Moab limit of your user, group or account was reached (`mdiag -u` shows "
        "yours): ask for fewer or smaller jobs",
        "qos": "check the QOS in job_extra_directives (`mdiag -q` lists them)",
        "timed out": "the Moab server does not answer: check that `showq` works",
    }
    # Moab job states (showq, checkjob): Canceling ends a job; Completed, Removed and
    # Vacated jobs have ended.
    ending_states: ClassVar[frozenset[str]] = frozenset(
        {"Canceling", "Completed", "Removed", "Vacated"}
    )
    gone_states: ClassVar[frozenset[str]] = frozenset({"Completed", "Removed", "Vacated"})

    def job_kwargs(self, options: ResolvedOptions, settings: JobSettings) -> dict[str, Any]:
        """As PBS, but resources in Torque's words (``nodes=1:ppn=N``) unless
        ``resource_spec`` is set: Moab runs mostly over Torque, which refuses PBS
        Professional's ``select=`` that dask-jobqueue's PBSJob writes by default."""
        kwargs = super().job_kwargs(options, settings)
        if kwargs["resource_spec"] is None:
            # Torque qsub(1) -l nodes=<count>:ppn=<processors per node>; mem (pbs_resources).
            memory_mb = -(-settings.memory // 2**20)
            kwargs["resource_spec"] = f"nodes=1:ppn={settings.cores},mem={memory_mb}mb"
        return kwargs

    def configured(self) -> bool:
        """Whether Moab's clients seem set up (``MOABHOMEDIR``, a ``moab.cfg``).

        Moab "checks for critical config files in directories in this order: /opt/moab/,
        /opt/moab/etc/, /etc/" (Layout of Scheduler Components).
        """
        return bool(os.environ.get("MOABHOMEDIR")) or any(
            Path(directory, "moab.cfg").is_file()
            for directory in ("/opt/moab", "/opt/moab/etc", "/etc")
        )

    def list_jobs(self, name: str | None = None) -> list[BatchJob]:
        """``showq --xml -w user=USER``: this user's jobs (named ``name`` if given).

        showq -w restricts the list to a constraint such as ``user=<name>``; ``--xml``
        prints it as XML.
        """
        result = run_command(
            [self.status_command, "--xml", "-w", f"user={getpass.getuser()}"],
            timeout=QUICK,
            what="listing jobs with showq",
        )
        jobs = parse_showq_xml(result.stdout)
        return [job for job in jobs if name is None or job.name == name]


MOAB = MoabSystem()

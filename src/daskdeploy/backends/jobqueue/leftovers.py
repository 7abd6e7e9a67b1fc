"""Finding and ending the batch jobs a deployment left (``daskdeploy ls``/``cleanup``).

A deployment's jobs are named with its id (and tagged with it where the system has a field
for that, such as SLURM's comment), so they are found even when a user renamed them.
Without the status command there are none; where the system does not seem configured
(:meth:`~.system.BatchSystem.configured`), it is asked only when ending a deployment whose
record says it submitted jobs there, so machines without that system see no noise.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ...commands import CommandError
from ..base import Leftover, LeftoverCleanup, LeftoverSearch

if TYPE_CHECKING:
    from ...records import DeploymentRecord
    from .system import BatchSystem

__all__ = ["BatchJobLeftovers"]

_JOB_WAIT = 20.0  # seconds to wait for cancelled jobs to leave the queue
_ID = re.compile(r"^dd-[0-9a-f]{4,32}$")


def _jobs_by_deployment(
    system: BatchSystem, ask: bool
) -> tuple[dict[str, list[Leftover]], str | None]:
    if shutil.which(system.status_command) is None or not (ask or system.configured()):
        return {}, None
    try:
        listed = system.list_jobs()
    except CommandError as exc:
        return {}, str(exc).splitlines()[0]
    jobs: dict[str, list[Leftover]] = {}
    for job in listed:
        deployment_id = system.tag_of(job) or job.name
        if _ID.match(deployment_id):
            detail = {"id": job.id, "name": job.name, "state": job.state}
            jobs.setdefault(deployment_id, []).append(Leftover(job.id, job.state, detail))
    return jobs, None


class BatchJobLeftovers:
    """The leftover hooks of a backend that submits batch jobs (see :class:`Backend`)."""

    name: str
    system: ClassVar[BatchSystem]

    def find_leftovers(
        self, deployment_id: str | None, records: Mapping[str, DeploymentRecord]
    ) -> LeftoverSearch:
        """This user's batch jobs that belong to deployments, by deployment id.

        The system is asked only where it is configured: ``daskdeploy ls`` on a laptop
        stays quiet.
        """
        jobs, problem = _jobs_by_deployment(self.system, ask=False)
        if deployment_id is not None:
            jobs = {deployment_id: jobs[deployment_id]} if deployment_id in jobs else {}
        title = self.system.title
        problems = [f"Could not list {title} jobs: {problem}"] if problem else []
        return LeftoverSearch(jobs, problems)

    def end_leftovers(
        self, deployment_id: str, record: DeploymentRecord | None, found: Sequence[Leftover]
    ) -> LeftoverCleanup:
        """Cancel the deployment's jobs, wait until the system lists none, remove its logs."""
        outcome = LeftoverCleanup()
        submitted = record is not None and record.backend == self.name
        _cancel(self.system, deployment_id, submitted, list(found), outcome)
        if record is not None:
            _remove_logs(deployment_id, record, outcome)
        return outcome

    def describe_leftovers(self, found: Sequence[Leftover]) -> str:
        """``"2 slurm jobs"``."""
        return f"{len(found)} {self.name} job{'s' if len(found) != 1 else ''}"


def _cancel(
    system: BatchSystem,
    deployment_id: str,
    submitted: bool,
    listed: list[Leftover],
    outcome: LeftoverCleanup,
) -> None:
    if shutil.which(system.cancel_command) is None:
        return
    problem = None
    if not listed:  # ask again: the caller's look may have been skipped or have failed
        jobs, problem = _jobs_by_deployment(system, ask=submitted)
        listed = jobs.get(deployment_id, [])
    if problem and submitted:
        outcome.errors.append(problem)
    if not listed and not (problem and submitted):  # nothing to cancel, or no system here
        return
    # Jobs found by their tag but renamed: cancel them by id.
    renamed = [job.id for job in listed if (job.detail or {}).get("name") != deployment_id]
    title = system.title
    try:
        system.cancel_deployment(deployment_id, renamed)
    except CommandError as exc:
        outcome.errors.append(f"Cancelling {title} jobs failed: {exc}")
        return
    if listed:
        outcome.done.append(f"cancelled {len(listed)} {title} job{'s' if len(listed) != 1 else ''}")
    deadline = time.monotonic() + _JOB_WAIT
    while listed and time.monotonic() < deadline:
        time.sleep(0.2)
        jobs, problem = _jobs_by_deployment(system, ask=True)
        listed = jobs.get(deployment_id, []) if not problem else listed
        listed = [job for job in listed if job.state not in system.gone_states]
    if listed:
        outcome.errors.append(
            f"{title} still lists {len(listed)} job(s) {_JOB_WAIT:g} s after "
            f"{system.cancel_command}: " + ", ".join(f"{job.id} {job.state}" for job in listed)
        )


def _remove_logs(deployment_id: str, record: DeploymentRecord, outcome: LeftoverCleanup) -> None:
    logs = record.data.get("log_directory")
    if not (record.data.get("remove_logs") and logs and Path(logs).name == deployment_id):
        return
    path = Path(logs)
    if not path.is_dir() or path.is_symlink():
        return
    try:
        shutil.rmtree(path)
    except OSError as exc:
        outcome.errors.append(f"Could not remove the job logs {path}: {exc}")
        return
    outcome.done.append("removed the job logs")

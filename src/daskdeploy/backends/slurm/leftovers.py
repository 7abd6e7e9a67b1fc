"""Finding and ending the SLURM jobs a deployment left (``daskdeploy ls``/``cleanup``).

A deployment's jobs are named with its id and commented ``daskdeploy:<id>``, so they are
found by either even when a user renamed them. Without ``squeue`` there are none; without a
SLURM configuration (``SLURM_CONF``, ``/etc/slurm/slurm.conf``) SLURM is asked only when
ending a deployment whose record says it submitted jobs, so machines without SLURM see no
noise.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ...commands import CommandError
from ..base import Leftover, LeftoverCleanup, LeftoverSearch
from . import control

if TYPE_CHECKING:
    from ...records import DeploymentRecord

__all__ = ["SlurmJobLeftovers"]

_JOB_WAIT = 20.0  # seconds to wait for cancelled jobs to leave squeue
_COMMENT = re.compile(r"^daskdeploy:(dd-[0-9a-f]+)$")
_ID = re.compile(r"^dd-[0-9a-f]{4,32}$")


def _configured() -> bool:
    """Whether SLURM seems configured here (if not, failing commands would only be noise)."""
    conf = os.environ.get("SLURM_CONF")
    return bool(conf) or os.path.exists("/etc/slurm/slurm.conf") or os.path.isdir("/run/slurm")


def _jobs_by_deployment(ask: bool) -> tuple[dict[str, list[Leftover]], str | None]:
    if shutil.which("squeue") is None or not (ask or _configured()):
        return {}, None
    try:
        listed = control.list_my_jobs()
    except CommandError as exc:
        return {}, str(exc).splitlines()[0]
    jobs: dict[str, list[Leftover]] = {}
    for job, comment in listed:
        match = _COMMENT.match(comment)
        deployment_id = match.group(1) if match else job.name
        if _ID.match(deployment_id):
            detail = {"id": job.id, "name": job.name, "state": job.state}
            jobs.setdefault(deployment_id, []).append(Leftover(job.id, job.state, detail))
    return jobs, None


class SlurmJobLeftovers:
    """The leftover hooks of a backend that submits SLURM jobs (see :class:`Backend`)."""

    name: str
    leftovers_key = "slurm_jobs"

    def find_leftovers(
        self, deployment_id: str | None, records: Mapping[str, DeploymentRecord]
    ) -> LeftoverSearch:
        """This user's SLURM jobs that belong to deployments, by deployment id.

        SLURM is asked only where it is configured: ``daskdeploy ls`` on a laptop stays
        quiet.
        """
        jobs, problem = _jobs_by_deployment(ask=False)
        if deployment_id is not None:
            jobs = {deployment_id: jobs[deployment_id]} if deployment_id in jobs else {}
        problems = [f"Could not list SLURM jobs: {problem}"] if problem else []
        return LeftoverSearch(jobs, problems)

    def end_leftovers(
        self, deployment_id: str, record: DeploymentRecord | None, found: Sequence[Leftover]
    ) -> LeftoverCleanup:
        """Cancel the deployment's jobs, wait until SLURM lists none, remove its job logs."""
        outcome = LeftoverCleanup()
        submitted = record is not None and record.backend == self.name
        _cancel(deployment_id, submitted, list(found), outcome)
        if record is not None:
            _remove_logs(deployment_id, record, outcome)
        return outcome

    def describe_leftovers(self, found: Sequence[Leftover]) -> str:
        """``"2 slurm jobs"``."""
        return f"{len(found)} slurm job{'s' if len(found) != 1 else ''}"


def _cancel(
    deployment_id: str, submitted: bool, listed: list[Leftover], outcome: LeftoverCleanup
) -> None:
    if shutil.which("scancel") is None:
        return
    problem = None
    if not listed:  # ask again: the caller's look may have been skipped or have failed
        jobs, problem = _jobs_by_deployment(ask=submitted)
        listed = jobs.get(deployment_id, [])
    if problem and submitted:
        outcome.errors.append(problem)
    if not listed and not (problem and submitted):  # nothing to cancel, or no SLURM here
        return
    # Jobs found by their comment but renamed: cancel them by id (an array as a whole).
    renamed = [job.id for job in listed if (job.detail or {}).get("name") != deployment_id]
    try:
        control.cancel_named_or_listed(deployment_id, renamed)
    except CommandError as exc:
        outcome.errors.append(f"Cancelling SLURM jobs failed: {exc}")
        return
    if listed:
        outcome.done.append(f"cancelled {len(listed)} SLURM job{'s' if len(listed) != 1 else ''}")
    deadline = time.monotonic() + _JOB_WAIT
    while listed and time.monotonic() < deadline:
        time.sleep(0.2)
        jobs, problem = _jobs_by_deployment(ask=True)
        listed = jobs.get(deployment_id, []) if not problem else listed
    if listed:
        outcome.errors.append(
            f"SLURM still lists {len(listed)} job(s) {_JOB_WAIT:g} s after scancel: "
            + ", ".join(f"{job.id} {job.state}" for job in listed)
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

"""Finding and ending what a deployment left on its SSH hosts (``daskdeploy ls``/``cleanup``).

The record of an ssh deployment names its hosts, their private directories and how to
connect (never a secret). Its remote schedulers and workers carry the directory's name on
their command lines, which is how they are found and ended on each host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ...scratch import PREFIX as SCRATCH_PREFIX
from ..base import Leftover, LeftoverCleanup, LeftoverSearch

if TYPE_CHECKING:
    from ...records import DeploymentRecord

__all__ = ["describe_hosts", "end_hosts", "find_hosts"]

_SSH_TIMEOUT = 10.0  # seconds to connect to an SSH host at most


def _remote_dirs(record: DeploymentRecord | None) -> dict[str, str]:
    remote = record.data.get("remote_dirs") if record is not None else None
    if not isinstance(remote, dict):
        return {}
    return {str(host): str(path) for host, path in remote.items()}


def find_hosts(
    backend: str, deployment_id: str | None, records: Mapping[str, DeploymentRecord]
) -> LeftoverSearch:
    """The hosts each recorded deployment runs processes on (from its record)."""
    found: dict[str, list[Leftover]] = {}
    for record_id, record in records.items():
        if deployment_id is not None and record_id != deployment_id:
            continue
        hosts = _remote_dirs(record)
        if hosts:
            found[record_id] = [Leftover(host, detail=host) for host in hosts]
    return LeftoverSearch(found)


def end_hosts(
    backend: str,
    deployment_id: str,
    record: DeploymentRecord | None,
    found: Sequence[Leftover],
) -> LeftoverCleanup:
    """End the deployment's processes on every host and remove its directories there."""
    outcome = LeftoverCleanup()
    remote_dirs = _remote_dirs(record)
    if record is None or not remote_dirs:
        return outcome
    from .hosts import end_remote_deployment

    options = dict(record.data.get("connect_options") or {})
    timeout = min(float(options.get("connect_timeout") or _SSH_TIMEOUT), _SSH_TIMEOUT)
    options["connect_timeout"] = timeout
    try:
        failures = end_remote_deployment(
            remote_dirs, options, timeout, f"{SCRATCH_PREFIX}{record.id}"
        )
    except Exception as exc:
        outcome.errors.append(f"Cleaning up on the SSH hosts failed: {exc}")
        return outcome
    cleaned = [host for host in remote_dirs if host not in failures]
    if cleaned:
        outcome.done.append(f"cleaned up on {', '.join(cleaned)}")
    for host, cause in failures.items():
        outcome.errors.append(f"SSH host {host}: {cause}")
    return outcome


def describe_hosts(found: Sequence[Leftover]) -> str:
    """``"ssh: host1 host2"``."""
    return "ssh: " + " ".join(leftover.id for leftover in found)

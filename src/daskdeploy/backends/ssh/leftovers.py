"""Finding and ending what a deployment left on its SSH hosts (``daskdeploy ls``/``cleanup``).

The record of an ssh deployment names its hosts, their private directories and how to
connect (never a secret). Its remote schedulers and workers carry the directory's name on
their command lines, which is how they are found and ended on each host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...scratch import PREFIX as SCRATCH_PREFIX
from ..base import Leftover, LeftoverCleanup, LeftoverSearch

if TYPE_CHECKING:
    from ...records import DeploymentRecord

__all__ = ["HostLeftovers"]

_SSH_TIMEOUT = 10.0  # seconds to connect to an SSH host at most


def _remote_dirs(record: DeploymentRecord | None) -> dict[str, str]:
    remote = record.data.get("remote_dirs") if record is not None else None
    if not isinstance(remote, dict):
        return {}
    return {str(host): str(path) for host, path in remote.items()}


class HostLeftovers:
    """The leftover hooks of a backend that runs processes on SSH hosts (see :class:`Backend`)."""

    leftovers_key = "ssh_hosts"

    def find_leftovers(
        self, deployment_id: str | None, records: Mapping[str, DeploymentRecord]
    ) -> LeftoverSearch:
        """The hosts each recorded deployment runs processes on (from its record)."""
        found: dict[str, list[Leftover]] = {}
        for record_id, record in records.items():
            hosts = _remote_dirs(record)
            if hosts and deployment_id in (None, record_id):
                found[record_id] = [Leftover(host, detail=host) for host in hosts]
        return LeftoverSearch(found)

    def end_leftovers(
        self, deployment_id: str, record: DeploymentRecord | None, found: Sequence[Leftover]
    ) -> LeftoverCleanup:
        """End the deployment's processes on every host and remove its directories there."""
        remote_dirs = _remote_dirs(record)
        if record is None or not remote_dirs:
            return LeftoverCleanup()
        return _end_on_hosts(record.id, remote_dirs, record.data.get("connect_options"))

    def describe_leftovers(self, found: Sequence[Leftover]) -> str:
        """``"ssh: host1 host2"``."""
        return "ssh: " + " ".join(leftover.id for leftover in found)


def _end_on_hosts(
    deployment_id: str, remote_dirs: dict[str, str], connect_options: Any
) -> LeftoverCleanup:
    from .hosts import end_remote_deployment

    outcome = LeftoverCleanup()
    options = dict(connect_options or {})
    timeout = min(float(options.get("connect_timeout") or _SSH_TIMEOUT), _SSH_TIMEOUT)
    options["connect_timeout"] = timeout
    try:
        failures = end_remote_deployment(
            remote_dirs, options, timeout, f"{SCRATCH_PREFIX}{deployment_id}"
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

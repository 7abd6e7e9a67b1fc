"""Finding the scheduler through a scheduler file, with a deadline.

Processes started together (``srun`` tasks, MPI ranks, worker jobs) learn the scheduler's
address from the JSON file the scheduler writes (``Scheduler(scheduler_file=...)``), never
from its log output. Waiting for that file always has a deadline, and the error says which
file was awaited and for how long.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from ...errors import DeploymentError
from ...scratch import shared_cache_dir

__all__ = ["read_scheduler_address", "shared_rendezvous_dir", "wait_for_scheduler_file"]


def shared_rendezvous_dir() -> Path:
    """Directory (created, mode 0700) for scheduler files that every node can read."""
    path = shared_cache_dir("rendezvous")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def read_scheduler_address(path: Path) -> str | None:
    """Return the address in a scheduler file, or ``None`` if it is missing or incomplete."""
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not written yet, or being written
    address = content.get("address") if isinstance(content, dict) else None
    return address if isinstance(address, str) and address else None


def wait_for_scheduler_file(
    path: Path,
    timeout: float,
    *,
    still_possible: Callable[[], str | None] | None = None,
    poll: float = 0.05,
) -> str:
    """Wait until ``path`` holds a scheduler address and return it.

    Parameters
    ----------
    path
        The scheduler file.
    timeout
        Seconds to wait at most.
    still_possible
        Called while waiting; returns a sentence when the scheduler can no longer appear
        (e.g. its process exited), which ends the wait at once with that reason.

    Raises
    ------
    DeploymentError
        When the deadline passes or ``still_possible`` reports a reason.
    """
    deadline = time.monotonic() + timeout
    while True:
        address = read_scheduler_address(path)
        if address:
            return address
        reason = still_possible() if still_possible else None
        if reason:
            raise DeploymentError(f"No scheduler appeared in {path}: {reason}")
        if time.monotonic() > deadline:
            raise DeploymentError(
                f"No scheduler appeared in {path} within {timeout:g} s. The process meant to "
                f"start it may have failed or be waiting for resources; check its output."
            )
        time.sleep(poll)

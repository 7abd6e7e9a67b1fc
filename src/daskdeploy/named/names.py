"""Names of named deployments: what a name may be, and finding the deployment behind one.

A named deployment is an ordinary deployment (one record in
``~/.cache/daskdeploy/deployments``) whose owner is a supervising process started by
``daskdeploy up NAME``; its record carries the name. Looking a name up reads only those
records: no batch system or remote host is asked, so it takes milliseconds.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import records
from ..errors import DeploymentError, OptionError
from ..scratch import shared_cache_dir

__all__ = [
    "NAME_PATTERN",
    "NamedDeployment",
    "check_name",
    "find",
    "list_named",
    "log_path",
    "named_dir",
    "require_running",
]

#: A name: a letter, then letters, digits, ``_``, ``.`` or ``-``; at most 64 characters.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")

#: States of a named deployment, as ``daskdeploy ls`` shows them.
STARTING, READY, ENDING = "starting", "ready", "ending"


def named_dir(create: bool = False) -> Path:
    """``~/.cache/daskdeploy/named`` (``$XDG_CACHE_HOME`` if set): logs, mode 0700."""
    return shared_cache_dir("named", create=create)


def log_path(name: str) -> Path:
    """The supervisor's log of deployment ``name`` (kept after it ends, until the next up)."""
    return named_dir() / f"{name}.log"


def check_name(name: Any) -> str:
    """Return ``name`` if it can name a deployment; raise :class:`OptionError` if not.

    Backend and profile names are refused, so that ``deploy("NAME")`` is never ambiguous.
    """
    from .. import profiles, registry

    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise OptionError(
            f"{name!r} cannot name a deployment: use a letter, then letters, digits, '_', "
            f"'.' or '-' (at most 64 characters), e.g. 'analysis' or 'gpu-run2'."
        )
    if name == "auto" or name in registry.backend_names():
        raise OptionError(
            f"{name!r} is a backend name, so deploy({name!r}) would start that backend "
            f"instead of attaching: choose another name, e.g. '{name}-1'."
        )
    if name in profiles.list_profiles():
        raise OptionError(
            f"{name!r} is a saved profile, so deploy({name!r}) would start that profile "
            f"instead of attaching: choose another name, or start it with `daskdeploy up "
            f"NAME --profile {name}`."
        )
    if records.ID_PATTERN.match(name):
        raise OptionError(f"{name!r} looks like a deployment id: choose a name that does not.")
    return name


@dataclass(frozen=True)
class NamedDeployment:
    """A named deployment, as its record describes it.

    Attributes
    ----------
    record
        Its deployment record (owner, scheduler address, ``named`` facts).
    """

    record: records.DeploymentRecord

    @property
    def name(self) -> str:
        """The deployment's name."""
        return self.record.name or "?"

    @property
    def id(self) -> str:
        """The deployment id (``dd-...``)."""
        return self.record.id

    @property
    def backend(self) -> str:
        """The backend it runs on."""
        return self.record.backend

    @property
    def state(self) -> str:
        """``starting``, ``ready`` or ``ending`` while its supervisor lives; else ``gone``.

        ``unknown`` when the supervisor runs on another host.
        """
        alive = self.record.owner_alive()
        if alive is None:
            return "unknown"
        if not alive:
            return "gone"
        return str(self.record.named.get("state", STARTING))

    @property
    def address(self) -> str | None:
        """The scheduler's address."""
        return self.record.scheduler_address

    @property
    def dashboard_link(self) -> str | None:
        """The dashboard URL, if one runs."""
        return self.record.named.get("dashboard_link")

    @property
    def status(self) -> dict[str, Any]:
        """What the supervisor last saw: workers, threads, clients, tasks, idle_since."""
        return dict(self.record.named.get("status") or {})

    @property
    def idle_seconds(self) -> float | None:
        """Seconds without a client and without tasks (``None`` while busy)."""
        since = self.status.get("idle_since")
        return None if since is None else max(0.0, time.time() - float(since))

    @property
    def ends_at(self) -> float | None:
        """When it ends by itself at the latest (time limit), seconds since the epoch."""
        value = self.record.named.get("ends_at")
        return None if value is None else float(value)

    @property
    def idle_timeout(self) -> float | None:
        """Seconds idle after which it ends by itself (``None``: never)."""
        value = self.record.named.get("idle_timeout")
        return None if not value else float(value)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary, for ``daskdeploy ls --json``."""
        return {
            "name": self.name,
            "state": self.state,
            "workers": self.status.get("workers"),
            "threads": self.status.get("threads"),
            "clients": self.status.get("clients"),
            "tasks": self.status.get("tasks"),
            "idle_seconds": self.idle_seconds,
            "idle_timeout": self.idle_timeout,
            "ends_at": self.ends_at,
            "dashboard": self.dashboard_link,
            "log": str(log_path(self.name)),
        }


def list_named() -> list[NamedDeployment]:
    """Every named deployment with a record here, oldest first."""
    return [NamedDeployment(record) for record in records.read_all() if record.name]


def find(name: str) -> NamedDeployment | None:
    """The deployment named ``name``: a live one if there is one, else the newest record."""
    matches = [found for found in list_named() if found.name == name]
    live = [found for found in matches if found.state not in ("gone",)]
    if live:
        return live[-1]
    return matches[-1] if matches else None


def require_running(name: str) -> NamedDeployment:
    """The ready deployment named ``name``, or a :class:`DeploymentError` saying why not."""
    found = find(name)
    if found is None:
        running = sorted({other.name for other in list_named() if other.state == READY})
        listing = ", ".join(running) if running else "none"
        raise DeploymentError(
            f"No deployment named {name!r} runs here (named deployments: {listing}). "
            f"Start it with `daskdeploy up {name} --backend BACKEND ...`, or see "
            f"`daskdeploy ls`."
        )
    state = found.state
    if state == "gone":
        raise DeploymentError(
            f"Deployment {name!r} ({found.id}, {found.backend}) is gone: its supervisor "
            f"(pid {found.record.pid}) has died, so its scheduler no longer runs. "
            f"`daskdeploy down {name}` ends whatever it left; `daskdeploy up {name} ...` "
            f"starts it again. Its log: {log_path(name)}"
        )
    if state == STARTING:
        raise DeploymentError(
            f"Deployment {name!r} ({found.id}) is still starting: `daskdeploy up` returns "
            f"when its workers have connected. Try again then; its log: {log_path(name)}"
        )
    if state == ENDING:
        raise DeploymentError(
            f"Deployment {name!r} ({found.id}) is ending "
            f"({found.record.named.get('ending_because', 'asked to')}). "
            f"Start a new one with `daskdeploy up {name} ...`."
        )
    return found

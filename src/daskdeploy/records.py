"""The on-disk record of live deployments, one JSON file each.

Every deployment started by :meth:`daskdeploy.Plan.start` writes
``~/.cache/daskdeploy/deployments/<id>.json`` (``$XDG_CACHE_HOME`` if set; directory mode
0700, file mode 0600) and removes it at teardown. The record says who owns the deployment
(host, pid, command line), where its scheduler listens and what the backend needs to end it
from another process (:attr:`daskdeploy.backends.base.Running.record`), so that
``daskdeploy ls`` and ``daskdeploy cleanup`` can find and end deployments whose owner was
killed without a chance to tear them down.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import processes
from .scratch import shared_cache_dir

__all__ = [
    "ID_PATTERN",
    "DeploymentRecord",
    "read",
    "read_all",
    "record_path",
    "records_dir",
    "remove",
    "write",
]

logger = logging.getLogger(__name__)

#: What a deployment id looks like (:func:`daskdeploy.scratch.new_deployment_id`).
ID_PATTERN = re.compile(r"^dd-[0-9a-f]{4,32}$")

_VERSION = 1


@dataclass
class DeploymentRecord:
    """What another process needs to know about a live deployment.

    Attributes
    ----------
    id
        The deployment id (``dd-`` plus hex).
    backend
        Name of the backend that started it.
    hostname
        Host of the owner process (the one that called ``deploy()``).
    pid
        Pid of the owner process on ``hostname``.
    pid_start
        When the owner started, as :func:`daskdeploy.processes.start_ticks` tells it
        (``None`` if unknown), which tells the owner from a later process with its pid.
    started
        Start time, seconds since the epoch.
    started_iso
        The same time as ISO 8601 text, for people.
    argv
        The owner's command line (``sys.argv``).
    scheduler_address
        Where the scheduler listens, if known.
    scratch_dir
        The deployment's local scratch directory.
    data
        Backend-specific facts for ``daskdeploy cleanup``
        (:attr:`~daskdeploy.backends.base.Running.record`).
    name
        The name of a named deployment (``daskdeploy up NAME``), else ``None``.
    named
        What attaching to a named deployment needs and what ``daskdeploy ls`` shows of
        it: the credential file paths, dashboard, idle timeout and end time, and the
        status its supervisor last saw (workers, clients, tasks, idle since when).
    """

    id: str
    backend: str
    hostname: str
    pid: int
    pid_start: int | None
    started: float
    started_iso: str
    argv: list[str]
    scheduler_address: str | None = None
    scratch_dir: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    named: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_this_process(
        cls,
        deployment_id: str,
        backend: str,
        *,
        scheduler_address: str | None = None,
        scratch_dir: str | os.PathLike[str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> DeploymentRecord:
        """A record of a deployment owned by the calling process, started now."""
        now = time.time()
        return cls(
            id=deployment_id,
            backend=backend,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            pid_start=processes.start_ticks(os.getpid()),
            started=now,
            started_iso=datetime.datetime.fromtimestamp(now)
            .astimezone()
            .isoformat(timespec="seconds"),
            argv=[str(arg) for arg in sys.argv],
            scheduler_address=scheduler_address,
            scratch_dir=str(scratch_dir) if scratch_dir is not None else None,
            data=dict(data or {}),
        )

    @classmethod
    def from_dict(cls, content: Any) -> DeploymentRecord:
        """Rebuild a record from its JSON form.

        Raises
        ------
        ValueError
            When ``content`` is not a record (missing or mistyped fields, a bad id).
        """
        if not isinstance(content, dict):
            raise ValueError("not a JSON object")
        try:
            record = cls(
                id=str(content["id"]),
                backend=str(content["backend"]),
                hostname=str(content["hostname"]),
                pid=int(content["pid"]),
                pid_start=None if content.get("pid_start") is None else int(content["pid_start"]),
                started=float(content["started"]),
                started_iso=str(content.get("started_iso", "")),
                argv=[str(arg) for arg in content.get("argv") or []],
                scheduler_address=content.get("scheduler_address"),
                scratch_dir=content.get("scratch_dir"),
                data=dict(content.get("data") or {}),
                name=None if content.get("name") is None else str(content["name"]),
                named=dict(content.get("named") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"missing or malformed field ({type(exc).__name__}: {exc})") from None
        if not ID_PATTERN.match(record.id):
            raise ValueError(f"{record.id!r} is not a deployment id")
        return record

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (with a format version)."""
        return {"version": _VERSION, **asdict(self)}

    @property
    def is_local(self) -> bool:
        """True when the owner runs (or ran) on this host."""
        return self.hostname == socket.gethostname()

    def owner_alive(self) -> bool | None:
        """Whether the owner still runs: ``None`` when it runs on another host."""
        if not self.is_local:
            return None
        return processes.same_process(self.pid, self.pid_start)


def records_dir(create: bool = False) -> Path:
    """``~/.cache/daskdeploy/deployments`` (``$XDG_CACHE_HOME`` if set), mode 0700."""
    return shared_cache_dir("deployments", create=create)


def record_path(deployment_id: str) -> Path:
    """Where the record of ``deployment_id`` is (or would be) kept."""
    if not ID_PATTERN.match(deployment_id):
        raise ValueError(f"{deployment_id!r} is not a deployment id (dd- and hex digits)")
    return records_dir() / f"{deployment_id}.json"


def write(record: DeploymentRecord) -> Path:
    """Write (or replace) ``record`` atomically, readable by this user only.

    Raises
    ------
    OSError
        When the directory or file cannot be written.
    """
    path = record_path(record.id)
    records_dir(create=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{record.id}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:  # mkstemp creates the file with mode 0600
            json.dump(record.to_dict(), stream, indent=1)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def read(deployment_id: str) -> DeploymentRecord | None:
    """The record of ``deployment_id``, or ``None`` if there is none or it is unreadable."""
    path = record_path(deployment_id)
    try:
        return DeploymentRecord.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("Skipping the unreadable deployment record %s: %s", path, exc)
        return None


def read_all() -> list[DeploymentRecord]:
    """Every readable record, oldest first; unreadable files are skipped with a warning."""
    found = []
    try:
        paths = sorted(records_dir().glob("dd-*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            record = DeploymentRecord.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:  # removed by its owner meanwhile
            continue
        except (OSError, ValueError) as exc:
            logger.warning("Skipping the unreadable deployment record %s: %s", path, exc)
            continue
        if path.stem != record.id:
            logger.warning("Skipping %s: it holds the record of %s", path, record.id)
            continue
        found.append(record)
    return sorted(found, key=lambda record: record.started)


def remove(deployment_id: str) -> bool:
    """Remove the record of ``deployment_id``; return whether there was one."""
    try:
        record_path(deployment_id).unlink()
    except FileNotFoundError:
        return False
    return True

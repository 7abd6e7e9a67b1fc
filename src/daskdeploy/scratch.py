"""Per-deployment scratch directories: private, tagged with the owner pid, always removed.

Workers spill to disk and write lock files; distributed's default location
(``$TMPDIR/dask-scratch-space``) outlives every run. Each deployment gets its own
directory instead, removed at close. A directory whose owner process died without
closing (``kill -9``) is swept by the next deployment on the machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .processes import is_running

__all__ = [
    "deployment_dirs",
    "make_scratch_dir",
    "new_deployment_id",
    "remove_deployment_dirs",
    "remove_scratch_dir",
    "remover",
    "sweep_stale",
]

PREFIX = "daskdeploy-"
_PATTERN = re.compile(r"^daskdeploy-(dd-[0-9a-f]+)-pid(\d+)-")


def shared_cache_dir(*parts: str, create: bool = False) -> Path:
    """A directory under ``$XDG_CACHE_HOME/daskdeploy`` (``~/.cache/daskdeploy``).

    For files that compute nodes must read or write (job output, scheduler files): home
    directories are shared with compute nodes on nearly every cluster, ``/tmp`` is not.
    Created (with its parents, mode 0700) only when ``create`` is true.
    """
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(cache, "daskdeploy", *parts)
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def new_deployment_id() -> str:
    """Return a fresh deployment id such as ``dd-3f9a61c2``."""
    return f"dd-{secrets.token_hex(4)}"


def make_scratch_dir(deployment_id: str, base: str | os.PathLike[str] | None = None) -> Path:
    """Create the private (0700) scratch directory of a deployment."""
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{deployment_id}-pid{os.getpid()}-", dir=base)
    return Path(path)


def remove_scratch_dir(path: Path) -> None:
    """Remove a scratch directory and everything in it; missing is fine."""
    shutil.rmtree(path, ignore_errors=True)


def deployment_dirs(deployment_id: str, base: str | os.PathLike[str] | None = None) -> list[Path]:
    """This user's directories of one deployment in ``base`` (default: the temp directory).

    That is the deployment's own scratch directory (``daskdeploy-<id>-pid<pid>-...``) and the
    spill directories its workers made on this host (``daskdeploy-<id>-XXXXXX``).
    """
    return _owned_entries(Path(base or tempfile.gettempdir()), f"{PREFIX}{deployment_id}-")


def _owned_entries(root: Path, prefix: str) -> list[Path]:
    """This user's entries of ``root`` whose names start with ``prefix``."""
    found = []
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            with contextlib.suppress(OSError):
                if entry.name.startswith(prefix) and entry.lstat().st_uid == os.getuid():
                    found.append(entry)
    return found


def forkserver_dir_prefix(pid: int) -> str:
    """Name prefix of the directory holding the worker forkserver's socket of process ``pid``
    (see ``backends.shared.worker_processes``)."""
    return f"{PREFIX}fs-pid{pid}-"


def forkserver_dirs(pid: int, base: str | os.PathLike[str] | None = None) -> list[Path]:
    """This user's forkserver socket directories of process ``pid`` in ``base``.

    The process removes its own when its last deployment closes; these are what a process
    killed outright (``kill -9``, a kernel restart) left. Without ``base``: in the
    temporary directory and in ``/tmp``, where it goes when the temporary directory's path
    is too long for a socket.
    """
    roots = [Path(base)] if base else [Path(tempfile.gettempdir()), Path("/tmp")]
    prefix = forkserver_dir_prefix(pid)
    return [entry for root in dict.fromkeys(roots) for entry in _owned_entries(root, prefix)]


def remove_deployment_dirs(deployment_id: str) -> None:
    """Remove every directory :func:`deployment_dirs` finds; run when a deployment ends.

    A worker's shell removes its spill directory when the worker exits, but not when the
    batch system kills it outright (a job step killed at the end of a job, ``SIGKILL``).
    On the machine that ran the deployment, this catches those.
    """
    for path in deployment_dirs(deployment_id):
        remove_scratch_dir(path)


def remover(deployment_id: str, scratch_dir: Path) -> Callable[[], None]:
    """The clean-up step that removes a deployment's scratch and its workers' spill here."""

    def remove() -> None:
        remove_scratch_dir(scratch_dir)
        remove_deployment_dirs(deployment_id)

    return remove


def sweep_stale(base: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove this user's scratch directories whose owner process no longer exists.

    Returns the removed paths.
    """
    root = Path(base or tempfile.gettempdir())
    removed = []
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            match = _PATTERN.match(entry.name)
            if not match or not entry.is_dir() or is_running(int(match.group(2))):
                continue
            with contextlib.suppress(OSError):
                if entry.stat().st_uid != os.getuid():
                    continue
                remove_scratch_dir(entry)
                removed.append(entry)
    return removed

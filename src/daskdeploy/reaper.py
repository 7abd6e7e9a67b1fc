"""The reaper: a tiny process that ends a deployment whose owner was killed outright.

A deployment is torn down by its owner process (close, end of the script, an exception,
Ctrl-C, SIGTERM). Killed with SIGKILL (``kill -9``, the out-of-memory killer), the owner
can do nothing: its worker processes, batch jobs and remote processes would be left to
time out on their own (workers after ``death_timeout``), and its files would stay.

So each deployment starts a reaper next to it: ``python -S -I -c <script>`` in its own
session (out of reach of signals sent to the owner's process group), holding the reading
end of a pipe from the owner. It waits:

* the owner's teardown writes ``done`` and closes the pipe: the reaper exits at once,
  having done nothing;
* the pipe reaches its end without ``done``, or the reaper is re-parented (its parent,
  the owner, died): the owner ended without teardown. The reaper replaces itself with
  ``python -m daskdeploy cleanup <id> --quiet`` (same Python, environment and working
  directory as the owner), which ends what is left of the deployment (see
  :mod:`daskdeploy.orphans`).

The reaper costs one small, idle process per deployment (about 10 MB, no CPU: it wakes
twice a second to check its parent).
"""

from __future__ import annotations

import contextlib
import logging
import os
import site
import subprocess
import sys
from pathlib import Path

from . import records

__all__ = ["Reaper"]

logger = logging.getLogger(__name__)

#: The variables that tag a deployment's processes (see :mod:`daskdeploy.orphans`); the
#: reaper and the clean-up it becomes must not carry them, or another clean-up of the same
#: deployment would take them for the deployment's own processes.
_TAGS = ("DASKDEPLOY_DEPLOYMENT_ID", "DASKDEPLOY_DEPLOYMENT_OWNER")

# argv: owner pid, python, deployment id. Runs with -S -I: no site, no user paths, no
# PYTHON* variables (those apply to the interpreter it execs, as in the owner).
_SCRIPT = """\
import os, select, sys
owner, python, deployment = int(sys.argv[1]), sys.argv[2], sys.argv[3]
said = b""
while os.getppid() == owner:
    if select.select([0], [], [], 0.5)[0]:
        chunk = os.read(0, 64)
        if not chunk:
            break
        said += chunk
        if b"done" in said:
            sys.exit(0)
# The pipe closed without "done" while the owner lives (it closed every descriptor, say):
# only its death tells.
while os.getppid() == owner:
    select.select([], [], [], 0.5)
os.close(0)
os.open(os.devnull, os.O_RDONLY)
os.execv(python, [python, "-m", "daskdeploy", "cleanup", deployment, "--quiet"])
"""


def _environment() -> dict[str, str]:
    """The owner's environment without the tags, able to import this daskdeploy."""
    environment = {name: value for name, value in os.environ.items() if name not in _TAGS}
    package_parent = str(Path(__file__).resolve().parent.parent)
    try:
        site_dirs = {str(Path(p).resolve()) for p in site.getsitepackages()}
        site_dirs.add(str(Path(site.getusersitepackages()).resolve()))
    except (AttributeError, OSError):  # a virtualenv's old site.py lacks them
        site_dirs = set()
    if package_parent not in site_dirs:  # not installed normally (source tree, sys.path tweak)
        paths = [package_parent, *environment.get("PYTHONPATH", "").split(os.pathsep)]
        environment["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return environment


class Reaper:
    """The record and the reaper process of one deployment, from the owner's side.

    Parameters
    ----------
    deployment_id
        The deployment it guards.
    """

    def __init__(self, deployment_id: str) -> None:
        self.deployment_id = deployment_id
        self.owner = os.getpid()
        self.process: subprocess.Popen[bytes] | None = None
        self.record_path: Path | None = None

    def start(self, record: records.DeploymentRecord) -> None:
        """Write the deployment's record, then start the reaper process.

        Failures are logged, not raised: a deployment without them still works, it is
        only not cleaned up after a ``kill -9``.
        """
        try:
            self.record_path = records.write(record)
        except (OSError, TypeError, ValueError) as exc:  # TypeError: data is not JSON
            logger.warning(
                "Could not write the record of %s (daskdeploy ls will not list it): %s",
                self.deployment_id,
                exc,
            )
        if not sys.executable:  # an embedded interpreter: nothing to start the reaper with
            return
        try:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-S", "-I", "-c", _SCRIPT),
                    *(str(self.owner), sys.executable, self.deployment_id),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,  # stderr stays: the clean-up reports failures there
                env=_environment(),
                start_new_session=True,
            )
        except OSError as exc:
            logger.warning(
                "Could not start the reaper of %s; if this process is killed with SIGKILL, "
                "end what is left with `daskdeploy cleanup %s`: %s",
                self.deployment_id,
                self.deployment_id,
                exc,
            )

    def finish(self) -> None:
        """Tell the reaper the teardown is complete, reap it, remove the record.

        Called as the last clean-up step of the deployment. Does nothing in a process
        forked from the owner.
        """
        if os.getpid() != self.owner:
            return
        process, self.process = self.process, None
        if process is not None:
            assert process.stdin is not None
            with contextlib.suppress(OSError, ValueError):
                process.stdin.write(b"done")
                process.stdin.flush()
            with contextlib.suppress(OSError, ValueError):
                process.stdin.close()
            try:
                process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=1.0)
        path, self.record_path = self.record_path, None
        if path is not None:  # the very file written, even if XDG_CACHE_HOME changed since
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                logger.warning("Could not remove the record of %s: %s", self.deployment_id, exc)

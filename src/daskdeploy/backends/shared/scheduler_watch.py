"""A scheduler preload that ends a scheduler nobody uses any more.

Schedulers that daskdeploy starts away from the client (over SSH, or as a task of an
``srun`` step) must not outlive it, even when the client process is killed with
SIGKILL. :func:`preload_text` returns the source of a preload (``Scheduler(preload=[...])``
accepts module text), so it works where daskdeploy itself is not installed. It closes
the scheduler

* a few seconds after the last client disconnected, once one had connected (the grace
  lets the owner of the cluster shut it down in order first);
* when no client has connected within ``timeout`` seconds.

Closing the scheduler tells every worker to close too.
"""

from __future__ import annotations

__all__ = ["preload_text"]

_GRACE = 3.0  # seconds between the last client leaving and the scheduler closing

# No blank lines and no single quotes: the text travels inside a shell command line, and
# distributed's SSH start-up gives up on the first blank line the scheduler logs.
_TEMPLATE = """\
import asyncio
import logging
from distributed.diagnostics.plugin import SchedulerPlugin
_logger = logging.getLogger("daskdeploy.backends.shared.scheduler_watch")
class DaskdeployCloseWhenClientsLeave(SchedulerPlugin):
    name = "daskdeploy-close-when-clients-leave"
    def __init__(self, timeout):
        self.timeout = timeout
        self.seen = False
        self.closing = None
    async def start(self, scheduler):
        asyncio.get_running_loop().call_later(self.timeout, self._no_client, scheduler)
    def _close(self, scheduler, why):
        if self.closing is None:
            _logger.warning("Closing the scheduler: %s", why)
            self.closing = asyncio.ensure_future(scheduler.close(reason="daskdeploy: " + why))
    def _no_client(self, scheduler):
        if not self.seen:
            self._close(scheduler, "no client connected within %g s" % self.timeout)
    def add_client(self, scheduler, client):
        if client != "fire-and-forget":
            self.seen = True
    def remove_client(self, scheduler, client):
        asyncio.get_running_loop().call_later(GRACE, self._maybe_close, scheduler)
    def _maybe_close(self, scheduler):
        left = [c for c in scheduler.clients if c != "fire-and-forget"]
        if self.seen and not left and scheduler.status.name == "running":
            self._close(scheduler, "its client left")
async def dask_setup(scheduler):
    await scheduler.register_scheduler_plugin(
        DaskdeployCloseWhenClientsLeave(TIMEOUT), name=None, idempotent=False
    )
"""


def preload_text(timeout: float) -> str:
    """Source of the preload, closing the scheduler if no client came within ``timeout`` s.

    >>> text = preload_text(30)
    >>> "\\n\\n" in text, "'" in text
    (False, False)
    """
    # No trailing newline either: distributed logs the text, and that would end in a blank line.
    text = _TEMPLATE.replace("TIMEOUT", f"{float(timeout)!r}").replace("GRACE", f"{_GRACE!r}")
    return text.rstrip("\n")

"""Stop a cluster's workers through their nannies, at once.

Told to close by the scheduler (what closing a cluster does), a worker closes itself, and
its process then waits 2 s for a helper thread of distributed's nanny machinery
(``thread.join(timeout=2)`` in ``distributed.nanny``) before it exits. Every close of a
deployment whose workers run under nannies in processes of their own (SSH hosts, ``srun``
tasks) paid those 2 s. Closed by its nanny instead, a worker process gets the stop
message that thread waits for and exits at once. A worker busy in a task nobody waits
for any more (the client has closed) gets :data:`WORKER_EXIT_GRACE` seconds before its
nanny kills it: a pure-Python loop cannot be interrupted.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["REACH_TIMEOUT", "WORKER_EXIT_GRACE", "stop_workers_through_nannies"]

logger = logging.getLogger(__name__)

#: Seconds a worker process gets to exit by itself before its nanny kills it.
WORKER_EXIT_GRACE = 1.0

#: Seconds to reach every nanny; beyond that, closing the cluster goes ahead (a nanny on a
#: host that died, or one being killed at the same time, e.g. by ``scancel``).
REACH_TIMEOUT = 1.0


def stop_workers_through_nannies(cluster: Any) -> None:
    """Ask every nanny of ``cluster`` (a running SpecCluster) to close its worker and exit.

    Goes through the scheduler, which knows every nanny wherever it runs, and returns once
    every nanny has started closing; a failure (a nanny already gone) is ignored, since
    closing the cluster follows anyway.
    """
    if cluster.status.name != "running" or cluster.scheduler_comm is None:
        return

    from distributed.protocol.pickle import dumps

    from ... import probes

    probes.shipped()  # the nannies (on SSH hosts, say) need not have daskdeploy installed
    message = {
        "op": "run",
        "function": dumps(probes.close_nanny_soon),
        # Nanny.close gives its worker 0.8 x timeout before the kill.
        "args": dumps((WORKER_EXIT_GRACE / 0.8, "daskdeploy: deployment closing")),
        "kwargs": dumps({}),
        "wait": True,
    }

    async def close_all() -> None:
        import asyncio

        broadcast = cluster.scheduler_comm.broadcast(msg=message, nanny=True, on_error="ignore")
        try:
            await asyncio.wait_for(broadcast, REACH_TIMEOUT)
        except (asyncio.TimeoutError, OSError) as exc:
            logger.info("Not every nanny could be asked to close (%r); closing the cluster", exc)

    cluster.sync(close_all)

"""Runner mode of the ``allocation`` backend: ``srun -n N python script.py``.

Every task runs the same script and takes a role when it calls ``deploy()`` (see
:class:`~daskdeploy.backends.shared.ranks.Roles`: task 0 the scheduler, task 1 the script, the
others workers). Each worker task runs the workers of
:meth:`~daskdeploy.backends.slurm.environment.Allocation.worker_layout`: by default one
single-threaded
worker process per CPU of the task (``--cpus-per-task``). The number of tasks decides
the workers; the ``workers`` option does not apply here.

The scheduler and worker tasks never return from ``deploy()``: they serve until the
script's task closes its client (or exits, or dies), then exit with status 0, so ``srun``
ends with the script's own status. The tasks find the scheduler through a scheduler file
in a directory shared by the nodes, waited for with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from ...credentials import CredentialFiles, write_shared
from ...errors import DeploymentError
from ...options import ResolvedOptions
from ..base import Running, StartContext
from ..shared.ranks import (
    Roles,
    quiet_serving_logs,
    scheduler_here,
    serve_scheduler,
    serve_workers,
    single_process,
)
from ..shared.rendezvous import shared_rendezvous_dir, wait_for_scheduler_file
from .environment import Allocation

__all__ = ["start_in_step"]


def scheduler_file_for(allocation: Allocation, environ: dict[str, str] | None = None) -> Path:
    """The scheduler file every task of this step agrees on."""
    env = os.environ if environ is None else environ
    step = env.get("SLURM_STEP_ID", "0")
    return shared_rendezvous_dir() / f"runner-{allocation.job_id}.{step}.json"


def start_in_step(
    options: ResolvedOptions,
    context: StartContext,
    allocation: Allocation,
    listen_host: str,
) -> Running:
    """Take this task's role; return the client's :class:`Running`, or never return."""
    roles = Roles(allocation.ntasks)
    role = roles.of(allocation.rank)
    scheduler_file = scheduler_file_for(allocation)
    layout = allocation.worker_layout(options)
    # The scheduler's task writes the credentials beside the scheduler file before it
    # starts; the others read them once the scheduler file appeared.
    credentials = CredentialFiles(scheduler_file.with_suffix(".tls"))
    forget_files = [
        credentials.remove,
        lambda: scheduler_file.unlink(missing_ok=True),
    ]
    if role == "scheduler":
        security = _new_security(options, context, credentials)
        try:
            _serve(
                serve_scheduler(
                    host=listen_host,
                    dashboard=options["dashboard"],
                    timeout=options["timeout"],
                    scheduler_file=scheduler_file,
                    security=security,
                )
            )
        finally:
            credentials.remove()
    if role == "worker":
        address = wait_for_scheduler_file(scheduler_file, options["timeout"])
        _serve(
            serve_workers(
                address=address,
                processes=layout.processes,
                threads=layout.threads,
                memory=layout.memory,
                name=f"{context.deployment_id}-{allocation.rank}",
                local_directory=context.scratch_dir,
                death_timeout=options["timeout"],
                security=_security_for(address, credentials),
            )
        )
    if role == "all":
        return single_process(options, context, layout, layout.processes)
    if role == "scheduler+client":
        return scheduler_here(
            options,
            context,
            listen_host,
            layout,
            layout.processes,
            scheduler_file=scheduler_file,
            stop=forget_files,
            security=_new_security(options, context, credentials),
        )
    address = wait_for_scheduler_file(scheduler_file, options["timeout"])
    # The scheduler task closes when this client leaves; the files go with it.
    return Running(
        address=address,
        security=_security_for(address, credentials),
        expected_workers=roles.dask_workers(layout),
        threads_per_worker=layout.threads,
        sizing_note=layout.reason,
        stop=forget_files[1:],
    )


def _new_security(options: ResolvedOptions, context: StartContext, files: CredentialFiles) -> Any:
    if not options["tls"]:
        return None
    return write_shared(context.deployment_id, files.directory).security()


def _security_for(address: str, files: CredentialFiles) -> Any:
    """The scheduler task's credentials when its address says TLS (None: plain TCP)."""
    if not address.startswith("tls://"):
        return None
    deadline = time.monotonic() + 10.0  # a shared file system may show files late
    while not files.exist() and time.monotonic() < deadline:
        time.sleep(0.2)
    if not files.exist():
        raise DeploymentError(
            f"The scheduler at {address} uses TLS, but its credentials are not readable in "
            f"{files.directory}. That directory must be on a file system every node shares "
            f"(set XDG_CACHE_HOME to one)."
        )
    return files.security()


def _serve(coroutine: Any) -> None:
    """Run a scheduler or worker until it closes, then end this task with status 0.

    ``SystemExit`` passes through ``deploy()``, which removes the task's scratch directory
    on its way out.
    """
    quiet_serving_logs()
    asyncio.run(coroutine)
    raise SystemExit(0)

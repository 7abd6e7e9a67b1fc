"""dask-jobqueue's SLURM job, submitted in batches as job arrays and failing loudly.

Imported only when the ``slurm`` backend starts (it imports :mod:`dask_jobqueue`).

dask-jobqueue submits one ``sbatch`` per job. When the cluster scales up, all new jobs
start in the same event-loop turn; :class:`ArraySubmitter` collects them and submits one
job array instead, which gets many jobs running sooner and spares the controller. Array
task ``i`` runs the worker that the ``i``-th job would have run, under the same name, so
dask-jobqueue's bookkeeping (scale down, adapt, close) works unchanged: each job's id is
``<array id>_<i>`` and ``scancel`` accepts it.

dask-jobqueue only logs a failed ``sbatch``; here the failure is also recorded so the
backend can raise it with ``sbatch``'s own message.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distributed.core import Status

from ...commands import CommandError, run_command
from . import control
from .jobscript import as_array_script


@contextlib.contextmanager
def _sigint_kept() -> Iterator[None]:
    """Keep the SIGINT handler that was in place before the block.

    dask_jobqueue 0.9's ``runner`` module, imported by the package, installs a SIGINT
    handler that calls ``sys.exit()``: Ctrl-C would then end a script with status 0, as if
    it had succeeded.
    """
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)


with _sigint_kept():
    from dask_jobqueue.slurm import SLURMCluster, SLURMJob

__all__ = ["ArraySubmitter", "DeploySLURMCluster", "DeploySLURMJob", "isolated_config_name"]

#: dask-jobqueue config section daskdeploy's jobs read: jobqueue's own packaged SLURM
#: defaults, untouched by the user's ``jobqueue.slurm`` settings.
CONFIG_NAME = "daskdeploy-slurm"

logger = logging.getLogger(__name__)


def isolated_config_name() -> str:
    """Register and return a jobqueue config section holding only jobqueue's defaults.

    dask-jobqueue fills every argument left ``None`` from ``jobqueue.<config_name>.*``. With
    the usual ``slurm`` section, settings in a user's ``jobqueue.yaml`` (queue, account,
    job-mem, log-directory) would reach the job script behind daskdeploy's back, while
    ``--dry-run`` reported the option as unset. daskdeploy's options are the one place
    where job settings come from, so its jobs read a section with jobqueue's packaged
    defaults only.
    """
    import dask.config
    import dask_jobqueue
    import yaml

    if dask.config.get(f"jobqueue.{CONFIG_NAME}", None) is None:
        packaged = Path(dask_jobqueue.__file__).with_name("jobqueue.yaml")
        defaults = yaml.safe_load(packaged.read_text())["jobqueue"]["slurm"]
        dask.config.update_defaults({"jobqueue": {CONFIG_NAME: defaults}})
    return CONFIG_NAME


class ArraySubmitter:
    """Collects job submissions made together and sends them to SLURM as one array.

    Parameters
    ----------
    script_dir
        Directory where submitted scripts are written (kept for inspection until close).
    use_arrays
        Submit batches of more than one job as a job array; otherwise one ``sbatch`` each.
    """

    def __init__(self, script_dir: Path, *, use_arrays: bool = True) -> None:
        self.script_dir = script_dir
        self.use_arrays = use_arrays
        self.failures: list[str] = []
        self.submitted: list[str] = []
        self._pending: list[tuple[DeploySLURMJob, asyncio.Future[str]]] = []
        self._flush: asyncio.Task[None] | None = None
        self._counter = itertools.count()

    async def submit(self, job: DeploySLURMJob) -> str:
        """Queue ``job`` for the next batch and return its SLURM job id once submitted."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((job, future))
        if self._flush is None:
            self._flush = asyncio.ensure_future(self._submit_batch())
        return await future

    async def _submit_batch(self) -> None:
        # Let every job started in this turn of the loop join the batch.
        await asyncio.sleep(0.02)
        batch, self._pending, self._flush = self._pending, [], None
        try:
            if self.use_arrays and len(batch) > 1:
                ids = await self._submit_array([job for job, _ in batch])
            else:
                ids = [await self._submit_one(job) for job, _ in batch]
        except Exception as exc:
            message = str(exc)
            self.failures.append(message)
            logger.error("Submitting %d worker job(s) failed: %s", len(batch), message)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.submitted.extend(ids)
        for (_, future), job_id in zip(batch, ids, strict=True):
            future.set_result(job_id)

    def _write(self, script: str) -> Path:
        path = self.script_dir / f"workers-{next(self._counter)}.sh"
        path.write_text(script)
        return path

    async def _submit_one(self, job: DeploySLURMJob) -> str:
        path = self._write(job.job_script())
        return await asyncio.to_thread(control.submit, path)

    async def _submit_array(self, jobs: list[DeploySLURMJob]) -> list[str]:
        script = as_array_script(jobs[0].job_script(), [job.name for job in jobs], jobs[0].name)
        path = self._write(script)
        array_id = await asyncio.to_thread(control.submit, path, array_size=len(jobs))
        return [f"{array_id}_{index}" for index in range(len(jobs))]


class DeploySLURMJob(SLURMJob):
    """A SLURM worker job submitted through an :class:`ArraySubmitter`."""

    def __init__(self, *args: Any, submitter: ArraySubmitter | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._submitter = submitter

    async def start(self) -> None:
        """Submit the job; on failure mark it failed so closing the cluster stays clean."""
        if self._submitter is None:
            await super().start()
            return
        try:
            self.job_id = await self._submitter.submit(self)
        except BaseException:
            self.status = Status.failed
            raise
        logger.debug("Worker %s is SLURM job %s", self.name, self.job_id)
        # ProcessInterface.start: mark running and signal readiness.
        self.status = Status.running


_ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "REQUEUED", "RESIZING"}


def _job_state(job_id: str) -> str:
    """SLURM's state of one job (or array task), "" once it is gone or unknown."""
    try:
        result = run_command(
            ["squeue", "-h", "-j", str(job_id), "-o", "%T"],
            timeout=10,
            check=False,
            what="asking squeue for a job's state",
        )
    except CommandError:
        return ""
    return result.stdout.strip().splitlines()[0].strip() if result.stdout.strip() else ""


class DeploySLURMCluster(SLURMCluster):
    """:class:`dask_jobqueue.SLURMCluster` that replaces worker jobs which end on their own.

    In distributed's SpecCluster a worker whose job ends (it reached its lifetime before
    the walltime, the job was cancelled, the node failed) keeps its place in the plan, so
    neither a fixed-size cluster nor :class:`distributed.deploy.Adaptive` ever starts a
    replacement: the cluster silently shrinks, down to no workers at all. Here the job is
    resubmitted under the same name once its last worker left and SLURM says the job
    ended, unless the worker was removed on purpose (scale down, adapt, close). A worker
    that leaves while its job runs on is being restarted by its nanny, so that job is
    kept (replaced only if none of its workers is back within ``restart_patience``
    seconds). A job that ends three times
    within 30 s is not replaced again, so a crashing worker cannot loop forever.
    """

    job_cls = DeploySLURMJob
    replace_delay = 1.0
    recheck_interval = 0.25
    restart_patience = 60.0
    crash_window = 30.0
    crash_limit = 3

    def __init__(self, *args: Any, retire_after: float | None = None, **kwargs: Any) -> None:
        self._replaced_at: dict[str, list[float]] = {}
        self._joined_at: dict[str, float] = {}
        self.retire_after = retire_after
        super().__init__(*args, **kwargs)

    def _update_worker_status(self, op: str, msg: Any) -> None:
        name = None
        if op == "add":
            now = time.monotonic()
            for info in msg.get("workers", {}).values():
                self._joined_at[str(info.get("name"))] = now
        if op == "remove":
            name = self.scheduler_info["workers"].get(msg, {}).get("name")
        super()._update_worker_status(op, msg)
        if name is not None:
            asyncio.get_running_loop().call_later(
                self.replace_delay, self._replace_if_ended, str(name)
            )

    def _retired(self, worker_name: str) -> bool:
        """Whether the worker left at the end of its lifetime (it will not come back)."""
        joined = self._joined_at.get(worker_name)
        return (
            self.retire_after is not None
            and joined is not None
            and time.monotonic() - joined >= self.retire_after
        )

    def _spec_name(self, worker_name: str) -> str | None:
        if worker_name in self.worker_spec:
            return worker_name
        base, _, _ = worker_name.rpartition("-")
        return base if "group" in self.worker_spec.get(base, {}) else None

    def _replace_if_ended(self, worker_name: str) -> None:
        spec_name = self._spec_name(worker_name)
        if self.status != Status.running or spec_name is None or spec_name not in self.workers:
            return  # closing, scaled down on purpose, or already replaced
        group = self.worker_spec[spec_name].get("group")
        names = {spec_name + suffix for suffix in group} if group else {spec_name}
        if names & self.observed:
            return  # other workers of the same job still run
        self._futures.add(
            asyncio.ensure_future(
                self._replace_once_ended(spec_name, names, patient=not self._retired(worker_name))
            )
        )

    async def _replace_once_ended(self, spec_name: str, names: set[str], patient: bool) -> None:
        """Replace the job of ``spec_name`` once SLURM says it ended.

        A worker that left before its lifetime while its job still runs is most likely
        being restarted by its nanny (after a crash, the memory limit, a kill): wait for
        it to come back rather than cancel the job under it. Only a job that stays alive
        for ``restart_patience`` seconds without any of its workers is replaced anyway.
        A worker that retired at its lifetime is replaced at once (``patient=False``): its
        job takes seconds to end, and the cluster would be short of it meanwhile.
        """
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + (self.restart_patience if patient else 0.0)
        while True:
            job = self.workers.get(spec_name)
            if self.status != Status.running or job is None or names & self.observed:
                return  # closing, removed on purpose, or the nanny brought the worker back
            job_id = getattr(job, "job_id", None)
            state = await loop.run_in_executor(None, _job_state, job_id) if job_id else ""
            if state not in _ALIVE or time.monotonic() > deadline:
                break
            await asyncio.sleep(self.recheck_interval)
        now = time.monotonic()
        recent = [t for t in self._replaced_at.get(spec_name, []) if now - t < self.crash_window]
        job = self.workers.pop(spec_name)
        self._futures.add(asyncio.ensure_future(job.close()))
        if len(recent) + 1 >= self.crash_limit:
            del self.worker_spec[spec_name]
            logger.error(
                "Worker job %s (%s) ended %d times within %.0f s; not replacing it again. "
                "Its output is in the job log directory.",
                job.job_id,
                spec_name,
                len(recent) + 1,
                self.crash_window,
            )
            return
        self._replaced_at[spec_name] = [*recent, now]
        logger.info("Worker job %s (%s) ended; submitting a replacement.", job.job_id, spec_name)
        self._correct_state()

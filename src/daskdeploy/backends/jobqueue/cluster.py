"""dask-jobqueue's clusters, submitting in batches as job arrays, failing loudly and
replacing jobs that end on their own; for any :class:`~.system.BatchSystem`.

Imported only when a job-queue backend starts (it imports :mod:`dask_jobqueue`).

dask-jobqueue submits one job per worker job. When the cluster scales up, all new jobs
start in the same event-loop turn; :class:`ArraySubmitter` collects them and submits one
job array instead (where the system has arrays), which gets many jobs running sooner and
spares the controller. Array task ``i`` runs the worker that the ``i``-th job would have
run, under the same name, so dask-jobqueue's bookkeeping (scale down, adapt, close) works
unchanged: each job's id is the task's id (``<array>_<i>``, ``<array>.<i>``), which the
system's cancel command accepts.

dask-jobqueue only logs a failed submission; here the failure is also recorded so the
backend can raise it with the submit command's own message.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from distributed.core import Status

from .jobscript import as_array_script
from .system import BatchSystem, SubmitLimits

__all__ = ["ArraySubmitter", "deploy_cluster_class", "isolated_config_name"]

logger = logging.getLogger(__name__)


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


def _import_class(target: str) -> type:
    module_name, _, attribute = target.partition(":")
    with _sigint_kept():
        module = importlib.import_module(module_name)
    return getattr(module, attribute)


def isolated_config_name(system: BatchSystem) -> str:
    """Register and return a jobqueue config section holding only jobqueue's defaults.

    dask-jobqueue fills every argument left ``None`` from ``jobqueue.<config_name>.*``. With
    the usual section (``jobqueue.slurm``, ``jobqueue.sge``), settings in a user's
    ``jobqueue.yaml`` (queue, account, job-mem, log-directory) would reach the job script
    behind daskdeploy's back, while ``--dry-run`` reported the option as unset.
    daskdeploy's options are the one place where job settings come from, so its jobs read
    a section with jobqueue's packaged defaults only.
    """
    import dask.config
    import dask_jobqueue
    import yaml

    config_name = f"daskdeploy-{system.name}"
    if dask.config.get(f"jobqueue.{config_name}", None) is None:
        packaged = Path(dask_jobqueue.__file__).with_name("jobqueue.yaml")
        defaults = yaml.safe_load(packaged.read_text())["jobqueue"][system.name]
        dask.config.update_defaults({"jobqueue": {config_name: defaults}})
    return config_name


#: Marks a submission failure this module logged and the backend raises, quoted.
_REPORTED = "_daskdeploy_reported"


def _already_reported(exc: BaseException) -> None:
    """Keep ``exc`` out of the event loop's "Exception in callback" traceback.

    A failed submission must still fail the job's start (distributed's SpecCluster
    checks that a started worker runs), and the cluster's task that started it then
    ends with the exception, which tornado logs with a full traceback. The failure has
    been logged in one line here and is raised by the backend with the system's words.
    """
    setattr(exc, _REPORTED, True)
    tornado_log = logging.getLogger("tornado.application")
    if not any(isinstance(f, _SkipReported) for f in tornado_log.filters):
        tornado_log.addFilter(_SkipReported())


class _SkipReported(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not getattr(error, _REPORTED, False)


class ArraySubmitter:
    """Collects job submissions made together and sends them as one job array.

    Parameters
    ----------
    system
        The batch system that gets the jobs.
    script_dir
        Directory where submitted scripts are written (kept for inspection until close).
    use_arrays
        Submit batches of more than one job as a job array (where ``system`` has arrays);
        otherwise one submission each.
    limits
        The site's limits; a batch larger than its largest array goes as several arrays.
    """

    def __init__(
        self,
        system: BatchSystem,
        script_dir: Path,
        *,
        use_arrays: bool = True,
        limits: SubmitLimits | None = None,
    ) -> None:
        self.system = system
        self.limits = limits or SubmitLimits()
        self.script_dir = script_dir
        self.use_arrays = use_arrays and system.arrays is not None
        self.failures: list[Exception] = []
        self.submitted: list[str] = []
        self._pending: list[tuple[Any, asyncio.Future[str]]] = []
        self._flush: asyncio.Task[None] | None = None
        self._counter = itertools.count()

    async def submit(self, job: Any) -> str:
        """Queue ``job`` (a dask-jobqueue Job) for the next batch; return its job id."""
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
                ids = await self._submit_arrays([job for job, _ in batch])
            else:
                ids = [await self._submit_one(job) for job, _ in batch]
        except Exception as exc:
            message = str(exc)
            self.failures.append(exc)
            _already_reported(exc)
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

    async def _submit_one(self, job: Any) -> str:
        path = self._write(job.job_script())
        return await asyncio.to_thread(self.system.submit, path)

    async def _submit_arrays(self, jobs: list[Any]) -> list[str]:
        """Submit ``jobs`` as job arrays no larger than the site allows, in order."""
        ids: list[str] = []
        for size in self.limits.array_sizes(len(jobs)):
            part, jobs = jobs[:size], jobs[size:]
            ids += await self._submit_array(part) if size > 1 else [await self._submit_one(part[0])]
        return ids

    async def _submit_array(self, jobs: list[Any]) -> list[str]:
        arrays = self.system.arrays
        assert arrays is not None
        script = as_array_script(
            jobs[0].job_script(),
            [job.name for job in jobs],
            jobs[0].name,
            arrays=arrays,
            directive_prefix=self.system.directive_prefix,
        )
        path = self._write(script)
        array_id = await asyncio.to_thread(self.system.submit, path, array_size=len(jobs))
        return arrays.task_ids(array_id, len(jobs))


class _SubmittedJob:
    """Mixin for a dask-jobqueue Job: submitted through an :class:`ArraySubmitter`."""

    status: Status
    job_id: str | None
    name: str

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
        logger.debug("Worker %s is job %s", self.name, self.job_id)
        # ProcessInterface.start: mark running and signal readiness.
        self.status = Status.running


class _ReplacingCluster:
    """Mixin for a dask-jobqueue cluster: replaces worker jobs which end on their own.

    In distributed's SpecCluster a worker whose job ends (it reached its lifetime before
    the walltime, the job was cancelled, the node failed) keeps its place in the plan, so
    neither a fixed-size cluster nor :class:`distributed.deploy.Adaptive` ever starts a
    replacement: the cluster silently shrinks, down to no workers at all. Here the job is
    resubmitted under the same name once its last worker left and the batch system says the job
    ended, unless the worker was removed on purpose (scale down, adapt, close). A worker
    that leaves while its job runs on is being restarted by its nanny, so that job is
    kept (replaced only if none of its workers is back within ``restart_patience``
    seconds). A job that ends three times
    within 30 s is not replaced again, so a crashing worker cannot loop forever.
    """

    system: BatchSystem
    replace_delay = 1.0
    recheck_interval = 0.25
    restart_patience = 60.0
    crash_window = 30.0
    crash_limit = 3

    def __init__(
        self,
        *args: Any,
        retire_after: float | None = None,
        check_workers: Callable[[int], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self._replaced_at: dict[str, list[float]] = {}
        self._joined_at: dict[str, float] = {}
        self.retire_after = retire_after
        self.check_workers = check_workers
        super().__init__(*args, **kwargs)

    def scale(
        self, n: int | None = None, jobs: int = 0, memory: Any = None, cores: Any = None
    ) -> Any:
        """As dask-jobqueue's, after ``check_workers`` accepted the number of workers."""
        workers = n if n is not None else jobs * self._dummy_job.worker_processes
        if workers and self.check_workers is not None:
            self.check_workers(int(workers))
        return super().scale(n, jobs=jobs, memory=memory, cores=cores)

    def adapt(self, *args: Any, **kwargs: Any) -> Any:
        """As dask-jobqueue's, after ``check_workers`` accepted the maximum."""
        maximum = kwargs.get("maximum")
        if kwargs.get("maximum_jobs") is not None:
            maximum = kwargs["maximum_jobs"] * self._dummy_job.worker_processes
        if maximum is not None and maximum != math.inf and self.check_workers is not None:
            self.check_workers(int(maximum))
        return super().adapt(*args, **kwargs)

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
        """Replace the job of ``spec_name`` once the batch system says it ended.

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
            alive = bool(job_id) and await loop.run_in_executor(None, self.system.job_alive, job_id)
            if not alive or time.monotonic() > deadline:
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


@cache
def deploy_cluster_class(system: BatchSystem) -> type:
    """The dask-jobqueue cluster class of ``system`` with daskdeploy's job and replacement.

    Its jobs take a ``submitter`` (an :class:`ArraySubmitter`) and the cluster a
    ``retire_after`` (seconds after which a worker may leave at the end of its lifetime)
    and a ``check_workers`` (called with the number of workers before ``scale`` and
    ``adapt``; raises to refuse it).
    """
    base = _import_class(system.cluster_class)
    job_cls = type(f"Deploy{base.job_cls.__name__}", (_SubmittedJob, base.job_cls), {})
    return type(
        f"Deploy{base.__name__}", (_ReplacingCluster, base), {"job_cls": job_cls, "system": system}
    )

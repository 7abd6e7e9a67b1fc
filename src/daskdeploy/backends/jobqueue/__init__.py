"""Batch systems (dask-jobqueue's): one backend, what differs per system is data.

``system``
    :class:`~.system.BatchSystem`: a system's commands, job-id pattern, directive
    prefix, job arrays, how queue/account/output are spelled, how its status command's
    output reads. Each system's folder (``backends/slurm``, ``backends/sge``, ...) holds
    one subclass.
``backend``
    :class:`~.backend.JobQueueBackend`: checks, job scripts, scale and adapt, diagnostics
    and clean-up, the same for every system.
``cluster``
    dask-jobqueue's cluster of a system, submitting job arrays and replacing jobs that
    end on their own.
``jobscript``
    Pure functions: job arrays from one job's script, worker lifetimes, time limits.
``leftovers``
    Finding and cancelling a dead deployment's jobs (``daskdeploy ls``/``cleanup``).
"""

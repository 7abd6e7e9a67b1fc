"""SLURM: the ``slurm`` backend (worker jobs) and the ``allocation`` backend (inside a job).

``backend``
    :class:`~daskdeploy.backends.slurm.backend.SlurmBackend`: workers in batch jobs
    submitted from here with dask-jobqueue, scale and adapt.
``job_arrays``
    dask-jobqueue's job, submitted in batches as job arrays.
``allocation``, ``allocation_runner``
    :class:`~daskdeploy.backends.slurm.allocation.AllocationBackend`: inside an
    ``sbatch``/``salloc`` allocation, workers as an ``srun`` step, or the whole script
    run on every task (runner mode).
``environment``
    What a job's ``SLURM_*`` variables say about its allocation.
``control``
    ``sbatch``/``squeue``/``scancel``/``scontrol`` with deadlines and diagnostics.
``jobscript``, ``sbatch``
    Job-script pieces, and the ``daskdeploy sbatch`` script writer (pure functions).
``commands``
    The ``daskdeploy sbatch`` and ``daskdeploy hostfile`` commands.
``leftovers``
    Finding and cancelling a dead deployment's jobs (``daskdeploy ls``/``cleanup``).
"""

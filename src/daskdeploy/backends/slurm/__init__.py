"""SLURM: the ``slurm`` backend (worker jobs) and the ``allocation`` backend (inside a job).

``backend``, ``system``
    :class:`~daskdeploy.backends.slurm.backend.SlurmBackend`: the job-queue backend
    (:mod:`daskdeploy.backends.jobqueue`) on :class:`~.system.SlurmSystem`, SLURM's
    commands, spellings and job arrays.
``allocation``, ``allocation_runner``
    :class:`~daskdeploy.backends.slurm.allocation.AllocationBackend`: inside an
    ``sbatch``/``salloc`` allocation, workers as an ``srun`` step, or the whole script
    run on every task (runner mode).
``environment``
    What a job's ``SLURM_*`` variables say about its allocation.
``control``
    ``sbatch``/``squeue``/``scancel``/``scontrol`` with deadlines and diagnostics.
``sbatch``
    The ``daskdeploy sbatch`` script writer (pure functions).
``commands``
    The ``daskdeploy sbatch`` and ``daskdeploy hostfile`` commands.
"""

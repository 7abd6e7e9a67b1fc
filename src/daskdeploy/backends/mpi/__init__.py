"""MPI: the ``mpi`` backend, dask-mpi style (scheduler on rank 0, the script on rank 1).

``backend``
    :class:`~daskdeploy.backends.mpi.backend.MPIBackend` and what every rank runs.
``launchers``
    Which launcher started this process (``mpiexec``, ``srun``), and finding one.
``world``
    Joining the MPI world through mpi4py, with deadlines on every collective step.
"""

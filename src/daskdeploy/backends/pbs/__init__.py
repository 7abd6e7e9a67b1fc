"""PBS (PBS Professional, OpenPBS, Torque): the ``pbs`` backend.

``system``
    :class:`~.system.PbsSystem`: ``qsub``/``qstat -f``/``qdel``, ``#PBS`` directives,
    ``qstat -f`` parsing; its spellings and parsers are shared with ``moab``.
``backend``
    :class:`~.backend.PBSBackend`: the job-queue backend on it.
"""

"""Moab: the ``moab`` backend.

``system``
    :class:`~.system.MoabSystem`: the PBS spellings (``#PBS`` job scripts, from
    :mod:`daskdeploy.backends.pbs`) with Moab's ``msub``/``showq --xml``/``canceljob``.
``backend``
    :class:`~.backend.MoabBackend`: the job-queue backend on it.
"""

"""OAR: the ``oar`` backend.

``system``
    :class:`~.system.OarSystem`: ``oarsub``/``oarstat -J``/``oardel``, ``#OAR``
    directives given to oarsub as options, ``oarstat`` parsing.
``backend``
    :class:`~.backend.OARBackend`: the job-queue backend on it.
"""

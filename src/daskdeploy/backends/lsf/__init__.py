"""IBM Spectrum LSF: the ``lsf`` backend.

``system``
    :class:`~.system.LsfSystem`: ``bsub < SCRIPT``/``bjobs -o``/``bkill``, ``#BSUB``
    directives, ``[hour:]minute`` time limits, ``bjobs`` parsing.
``backend``
    :class:`~.backend.LSFBackend`: the job-queue backend on it.
"""

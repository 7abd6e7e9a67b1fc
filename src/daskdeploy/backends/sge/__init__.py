"""Grid Engine (SGE, Son of Grid Engine, UGE/AGE): the ``sge`` backend.

``system``
    :class:`~.system.SgeSystem`: ``qsub``/``qstat``/``qdel``, ``#$`` directives, job
    arrays (``qsub -t``), ``qsub -w v`` verification, ``qstat -xml`` parsing.
``backend``
    :class:`~.backend.SGEBackend`: the job-queue backend on it.
"""

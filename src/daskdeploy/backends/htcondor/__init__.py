"""HTCondor: the ``htcondor`` backend.

``system``
    :class:`~.system.HTCondorSystem`: ``condor_submit``/``condor_q -af``/``condor_rm``,
    submit commands as ``job_extra_directives``, ``condor_q`` parsing.
``cluster``
    dask-jobqueue's HTCondorCluster with a job class that accepts ``walltime``.
``backend``
    :class:`~.backend.HTCondorBackend`: the job-queue backend on it.
"""

"""Test kit for daskdeploy and for the backends other packages write.

Generic, reusable parts (they need pytest and psutil: ``pip install daskdeploy[test]``):

:mod:`daskdeploy.testing.sandbox`
    The leftovers sandbox: run deployments in subprocesses with a private ``TMPDIR``,
    cache and config and a marker in every process's environment, then prove that no
    process and no file outlived them.
:mod:`daskdeploy.testing.contract`
    The contract suite: subclass :class:`~daskdeploy.testing.contract.BackendContract`
    and name your backend to run the tests every backend passes (deploy, compute, scale,
    close with nothing left; bad options refused; ``kill -9`` of the client cleaned up).
:mod:`daskdeploy.testing.faults`
    The pytest plugin that prints the fault table (case x backend, one column per
    registered backend).

Harnesses that run real components on this machine, for daskdeploy's own tests:
:mod:`daskdeploy.testing.slurm` (a SLURM cluster), :mod:`daskdeploy.testing.ssh` (sshd in
network namespaces), :mod:`daskdeploy.testing.mpi` (MPICH).
"""

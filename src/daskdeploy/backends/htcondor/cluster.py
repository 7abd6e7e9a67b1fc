"""dask-jobqueue's HTCondorCluster, taking the two job arguments every other class takes.

Imported only when an htcondor deployment renders or starts jobs (it imports
:mod:`dask_jobqueue`); :attr:`HTCondorSystem.cluster_class
<daskdeploy.backends.htcondor.system.HTCondorSystem.cluster_class>` names it.

dask-jobqueue 0.9's ``HTCondorJob`` differs from its other job classes in two ways the
job-queue backend does not expect:

* it has no ``walltime`` argument (HTCondor has no time limit of its own), and passing one
  fails with ``TypeError``. The limit is in the submit description instead
  (``periodic_remove``, see :meth:`HTCondorSystem.job_kwargs
  <daskdeploy.backends.htcondor.system.HTCondorSystem.job_kwargs>`), so it is dropped here;
* its ``job_directives_skip`` removes submit commands by exact key and raises ``KeyError``
  for a key it did not generate, where the option means "drop the generated lines that
  contain this text". Here it means the same as on every other system.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dask_jobqueue.htcondor import HTCondorCluster as _HTCondorCluster
from dask_jobqueue.htcondor import HTCondorJob as _HTCondorJob

__all__ = ["HTCondorCluster", "HTCondorJob"]


class HTCondorJob(_HTCondorJob):
    """``HTCondorJob`` that ignores ``walltime`` and skips generated lines by text."""

    def __init__(
        self,
        *args: Any,
        walltime: str | None = None,
        job_directives_skip: Iterable[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, job_directives_skip=[], **kwargs)
        skip = list(job_directives_skip)
        extra = self.job_extra_directives or {}
        for key, value in list(self.job_header_dict.items()):
            line = f"{key} = {value}"
            if key not in extra and any(text in line for text in skip):
                del self.job_header_dict[key]


class HTCondorCluster(_HTCondorCluster):
    """dask-jobqueue's ``HTCondorCluster`` with :class:`HTCondorJob`."""

    job_cls = HTCondorJob

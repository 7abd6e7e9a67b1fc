"""A dask-jobqueue script as many are written, unchanged: under `daskdeploy run`
its SLURMCluster runs on the deployment, and daskdeploy says which of its
keywords it did not apply."""

from dask.distributed import Client
from dask_jobqueue import SLURMCluster

cluster = SLURMCluster(
    cores=8,
    processes=2,
    memory="16GB",
    walltime="01:00:00",
    account="proj-1234",
    job_extra_directives=["--constraint=skylake"],
)
cluster.scale(jobs=2)
client = Client(cluster)
client.wait_for_workers(2)
print("workers", len(client.scheduler_info()["workers"]))
print("sum", client.submit(sum, range(10)).result())
client.close()
cluster.close()

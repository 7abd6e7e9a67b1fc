# The dask-jobqueue snippets of "Parallel python with dask and jupyter" (SciComp blog,
# "Dask and Jupyter"), in the order the post shows them; the computation at the end is
# the test's (marked "# test:"), since the post computes nothing.
from dask_jobqueue import SLURMCluster

cluster = SLURMCluster(
   cores=12,            # Number of cores per job =MPI= cpus_per_task
   memory="16GB",       # Total Memory per Job (--mem)
   walltime="00:10:00", # Expected time to complete a job.
)
cluster.scale(jobs=2)
print(cluster.job_script())

import dask.array as da  # test
from dask.distributed import Client  # test
client = Client(cluster)  # test
total = da.arange(3_000_000, chunks=500_000).sum().compute()  # test
print("total", total)  # test

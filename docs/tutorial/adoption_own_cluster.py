"""A script that builds its own cluster, as the Dask tutorials teach (for the adoption page).

Under ``daskdeploy run`` its LocalCluster and Client use the deployment instead.
"""

import dask.bag as db
from dask.distributed import Client, LocalCluster

cluster = LocalCluster(n_workers=4, threads_per_worker=1)
client = Client(cluster)
total = db.range(100, npartitions=4).map(lambda x: x * x).sum().compute()
print(f"sum of squares below 100: {total}")
client.close()
cluster.close()

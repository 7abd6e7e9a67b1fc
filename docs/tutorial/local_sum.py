"""Square 0..99 on the workers and add the squares up: a quick check of a deployment.

Used by the local, security and configuration pages: ``daskdeploy run local_sum.py``.
"""

import dask.bag as db

total = db.range(100, npartitions=4).map(lambda x: x * x).sum().compute()
print(f"sum of squares below 100: {total}")

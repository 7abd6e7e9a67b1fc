"""Every rank runs this; deploy() gives each its role (for the MPI page).

Rank 0 becomes the scheduler, rank 1 returns from deploy() and runs the rest, the other
ranks become workers.
"""

import daskdeploy

with daskdeploy.deploy() as client:
    workers = len(client.scheduler_info()["workers"])
    total = client.submit(sum, range(100)).result()
    print(f"{workers} workers; sum of 0..99 = {total}")

# From "Parallel Processing using Python's Dask package" (Chris Paciorek, Berkeley Research
# Computing), run top to bottom as the tutorial's Python session would. Code blocks are
# verbatim; lines marked "# test:" are the only changes. No __main__ guard, as in the lesson.
import json  # test: to print the answers
import time  # test: the session imported it earlier
import dask  # test: the session imported it earlier

# Section 7.4's definition of calc_mean ("define the function directly").
def calc_mean(i, n):
    import numpy as np
    np.random.seed(i)
    data = np.random.normal(size = n)
    return([np.mean(data), np.std(data)])


# 7.1. Using threads (no copying)
dask.config.set(scheduler='threads', num_workers = 4)  
n = 100000000
n = 400000  # test: the lesson's n takes seconds and 800 MB per task
p = 4
futures = [dask.delayed(calc_mean)(i, n) for i in range(p)]

t0 = time.time()
results = dask.compute(*futures)
time.time() - t0    # 20 sec.
print("threads", json.dumps(results))  # test

# 7.2. Multi-process parallelization via Dask Multiprocessing
import dask.multiprocessing
dask.config.set(scheduler='processes', num_workers = 4)  
n = 100000000
n = 400000  # test
p = 4
futures = [dask.delayed(calc_mean)(i, n) for i in range(p)]


t0 = time.time()
results = dask.compute(*futures)
time.time() - t0  # 5 sec.
print("processes", json.dumps(results))  # test

# 7.3. Multi-process parallelization via Dask Distributed (local)
from dask.distributed import Client, LocalCluster
cluster = LocalCluster(n_workers = 4)
c = Client(cluster)

futures = [dask.delayed(calc_mean)(i, n) for i in range(p)]
t0 = time.time()
results = dask.compute(*futures)
time.time() - t0   # 7 sec.
print("distributed", json.dumps(results))  # test

# 5.2. Parallel maps (calc_mean_vargs lives in the tutorial's calc_mean.py, not shown)
def calc_mean_vargs(inputs):  # test: as calc_mean.py would define it
    return calc_mean(*inputs)  # test

# ignore this setup for now; we'll see it again later
from dask.distributed import Client, LocalCluster
cluster = LocalCluster(n_workers = 4)
c = Client(cluster)

# set up and execute the parallel map
inputs = [(i, n) for i in range(p)]
# execute the function across the array of input values
future = c.map(calc_mean_vargs, inputs)
results = c.gather(future)
results
print("map", json.dumps(results))  # test

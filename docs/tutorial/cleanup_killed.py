"""Compute, then die from SIGKILL, as the out-of-memory killer would do it: for the clean-up page.

The deployment gets no chance to tear itself down; its reaper does it instead.
"""

import os
import signal

import dask.bag as db

total = db.range(100, npartitions=4).map(lambda x: x * x).sum().compute()
print(f"sum of squares below 100: {total}", flush=True)
os.kill(os.getpid(), signal.SIGKILL)

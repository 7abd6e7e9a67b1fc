"""Tasks that each need one "GPU": the workers say how many they hold.

Run with workers that hold a GPU resource, e.g.
    DASK_DISTRIBUTED__WORKER__RESOURCES='{"GPU": 1}' daskdeploy run -n 2 gpus_resources.py
"""

import os

import dask
import dask.array as da
from dask.distributed import Client, get_worker


def on_gpu(i):
    # A real task would use the GPU here (CuPy, PyTorch, ...), e.g. on
    # os.environ.get("CUDA_VISIBLE_DEVICES"); this one only says where it ran.
    return i * i, get_worker().name


if __name__ == "__main__":
    client = Client()
    held = {w["name"]: w["resources"] for w in client.scheduler_info()["workers"].values()}
    print("GPU per worker:", sorted(r.get("GPU", 0) for r in held.values()))
    seen = client.run(os.environ.get, "CUDA_VISIBLE_DEVICES")  # per worker
    print("CUDA_VISIBLE_DEVICES:", sorted({str(devices) for devices in seen.values()}))

    futures = client.map(on_gpu, range(8), resources={"GPU": 1})
    results = client.gather(futures)
    print("sum of squares", sum(square for square, _ in results))

    with dask.annotate(resources={"GPU": 1}):
        x = da.arange(1_000_000, chunks=100_000) * 2
    print("total", int(x.sum().compute()))

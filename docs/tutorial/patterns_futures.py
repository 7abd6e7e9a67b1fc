"""Futures: hand work to the workers now, collect the results when you need them."""

import daskdeploy


def square(x):
    return x * x


if __name__ == "__main__":
    with daskdeploy.deploy() as client:
        future = client.submit(square, 4)  # starts at once, on a worker
        print("submit:", future.result())  # waits for this one result
        futures = client.map(square, range(10))  # one task per input
        print("map, then gather:", client.gather(futures))
        total = client.submit(sum, futures)  # futures as inputs: no round trip
        print("sum on a worker:", total.result())

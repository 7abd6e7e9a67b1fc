"""client.map with the same arguments: one task, unless you say the function is random."""

import numpy as np

import daskdeploy


def simulate(n, seed=None):
    """Mean of n random draws: a stand-in for one replicate of a simulation."""
    return float(np.random.default_rng(seed).random(n).mean())


if __name__ == "__main__":
    with daskdeploy.deploy() as client:
        same = client.gather(client.map(simulate, [1000] * 8))
        print(f"map, same arguments:     {len(set(same))} distinct of {len(same)}")
        fresh = client.gather(client.map(simulate, [1000] * 8, pure=False))
        print(f"map, pure=False:         {len(set(fresh))} distinct of {len(fresh)}")
        seeded = client.gather(client.map(simulate, [1000] * 8, range(8)))
        print(f"map, a seed per replica: {len(set(seeded))} distinct of {len(seeded)}")
        print(f"  their mean, the same on every run: {np.mean(seeded):.6f}")

"""compute.py's work from a script that starts its own workers and measures them."""

import daskdeploy
from compute import main

if __name__ == "__main__":
    with daskdeploy.deploy() as client:  # where: DASKDEPLOY_BACKEND, config, or local
        meter = client.deployment.measure()
        main()
        report = meter.report()
    print(f"CPU efficiency {report.cpu_efficiency:.0%} of {report.threads} worker threads")

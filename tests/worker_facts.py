"""Checks, run on a deployment's workers, that they started the way daskdeploy starts them.

Workers are forked from a parent that has distributed loaded (see
``daskdeploy.backends.shared.worker_processes``): a forked worker runs its parent's own
command line, where a spawned one runs ``-c from multiprocessing.spawn import ...``; and
the variables distributed sets before spawning (one BLAS thread, ...) were there when its
Python started.
"""

from __future__ import annotations

from typing import Any


def _probe() -> Any:
    # Built here, so that it travels by value: the workers need not import this module.
    def facts() -> dict[str, Any]:
        import os

        import psutil

        me = psutil.Process()
        return {
            "forked": me.cmdline() == me.parent().cmdline(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        }

    return facts


def assert_workers_forked(client: Any) -> None:
    """Every worker of ``client`` was forked, with distributed's start-up variables set."""
    found = client.run(_probe())
    assert found, "no workers"
    expected = {"forked": True, "OMP_NUM_THREADS": "1"}
    assert all(facts == expected for facts in found.values()), found

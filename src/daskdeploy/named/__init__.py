"""Named deployments: start once with ``daskdeploy up NAME``, attach from any process.

* :func:`up` starts a deployment owned by a supervising process of its own
  (:mod:`.supervisor`), which outlives the command, ends the deployment after an idle
  timeout or at the backend's time limit, and carries out ``scale`` requests;
* :func:`attach` (``deploy(attach=NAME)``, ``daskdeploy run --attach NAME``) returns a
  client whose close leaves the deployment running;
* :class:`NamedCluster` is the deployment as a Dask cluster object (dask-ctl's
  ``from_name``), :func:`down` ends it and everything it started.

The deployment is an ordinary one underneath: the same record, reaper, TLS credentials
(readable by its owner only) and clean-up as ``deploy()``; ``daskdeploy ls`` and
``daskdeploy cleanup`` see it like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["NamedCluster", "NamedDeployment", "attach", "down", "find", "list_named", "scale", "up"]

if TYPE_CHECKING:
    from .attaching import attach
    from .cluster import NamedCluster
    from .names import NamedDeployment, find, list_named
    from .starting import down, scale, up

_WHERE = {
    "attach": "attaching",
    "NamedCluster": "cluster",
    "NamedDeployment": "names",
    "find": "names",
    "list_named": "names",
    "down": "starting",
    "scale": "starting",
    "up": "starting",
}


def __getattr__(name: str) -> Any:  # imported on first use: distributed is heavy
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)

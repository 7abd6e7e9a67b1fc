"""daskdeploy: run the same Dask program on a laptop, a cluster, SSH hosts or under MPI.

>>> import daskdeploy
>>> client = daskdeploy.deploy()          # doctest: +SKIP

``deploy()`` returns a real :class:`distributed.Client`. Which backend it uses comes
from its argument, the ``DASKDEPLOY_BACKEND`` environment variable or dask config;
nothing in the program has to change to move it elsewhere.

Importing this package starts nothing and imports neither distributed nor any backend
(it only registers distributed's configuration defaults with dask config, see
:func:`daskdeploy.config.register_distributed_defaults`); the public names below load on
first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "deploy": "daskdeploy.api",
    "plan": "daskdeploy.api",
    "Plan": "daskdeploy.api",
    "available_backends": "daskdeploy.registry",
    "BackendStatus": "daskdeploy.registry",
    "DeployedClient": "daskdeploy.deployment",
    "EfficiencyMeter": "daskdeploy.report.efficiency",
    "EfficiencyReport": "daskdeploy.report.efficiency",
    "HostLoad": "daskdeploy.report.efficiency",
    "WorkerUsage": "daskdeploy.report.efficiency",
    "Deployment": "daskdeploy.deployment",
    "save_profile": "daskdeploy.profiles",
    "delete_profile": "daskdeploy.profiles",
    "list_profiles": "daskdeploy.profiles",
    "DaskDeployError": "daskdeploy.errors",
    "UnknownBackendError": "daskdeploy.errors",
    "OptionError": "daskdeploy.errors",
    "ConfigError": "daskdeploy.errors",
    "BackendUnavailableError": "daskdeploy.errors",
    "DeploymentError": "daskdeploy.errors",
    "up": "daskdeploy.named.starting",
    "down": "daskdeploy.named.starting",
    "NamedCluster": "daskdeploy.named.cluster",
}

__all__ = [
    "BackendStatus",
    "BackendUnavailableError",
    "ConfigError",
    "DaskDeployError",
    "DeployedClient",
    "Deployment",
    "DeploymentError",
    "EfficiencyMeter",
    "EfficiencyReport",
    "HostLoad",
    "NamedCluster",
    "OptionError",
    "Plan",
    "UnknownBackendError",
    "WorkerUsage",
    "__version__",
    "available_backends",
    "delete_profile",
    "deploy",
    "down",
    "list_profiles",
    "plan",
    "save_profile",
    "up",
]

if TYPE_CHECKING:
    from .api import Plan, deploy, plan
    from .deployment import DeployedClient, Deployment
    from .errors import (
        BackendUnavailableError,
        ConfigError,
        DaskDeployError,
        DeploymentError,
        OptionError,
        UnknownBackendError,
    )
    from .named.cluster import NamedCluster
    from .named.starting import down, up
    from .profiles import delete_profile, list_profiles, save_profile
    from .registry import BackendStatus, available_backends
    from .report.efficiency import EfficiencyMeter, EfficiencyReport, HostLoad, WorkerUsage


def _prepare_config() -> None:
    from .config import register_distributed_defaults

    try:
        register_distributed_defaults()
    except ValueError as exc:
        # dask refuses a malformed config YAML when dask.config is first imported. Let the
        # import of daskdeploy succeed: the command line reports the file cleanly, and
        # deploy() meets the same error from dask with the file's name.
        if "malformed" not in str(exc):
            raise


_prepare_config()


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'daskdeploy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

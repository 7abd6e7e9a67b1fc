"""Exceptions raised by daskdeploy.

Every error a user can cause says what was wrong and how to fix it. All of them derive
from :class:`DaskDeployError`, so ``except daskdeploy.DaskDeployError`` catches every
mistake daskdeploy reports, while the built-in base classes (``ValueError``,
``RuntimeError``) keep generic handlers working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "BackendUnavailableError",
    "ConfigError",
    "DaskDeployError",
    "DeploymentError",
    "OptionError",
    "UnknownBackendError",
    "closest_match_hint",
]


class DaskDeployError(Exception):
    """Base class of every error daskdeploy raises on purpose."""


class UnknownBackendError(DaskDeployError, ValueError):
    """The requested backend (or profile) name is not registered."""


class OptionError(DaskDeployError, ValueError):
    """An option is unknown, or its value has the wrong type or range."""


class ConfigError(DaskDeployError, ValueError):
    """The daskdeploy section of the dask configuration, or a profile, is malformed."""


class BackendUnavailableError(DaskDeployError, RuntimeError):
    """The backend exists but cannot run here (missing extra, command or environment)."""


class DeploymentError(DaskDeployError, RuntimeError):
    """Starting the deployment failed; everything started so far has been torn down."""


def closest_match_hint(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or an empty string."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {matches[0]!r}?" if matches else ""

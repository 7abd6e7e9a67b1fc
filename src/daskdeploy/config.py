"""The one configuration layer: packaged YAML defaults, then dask config, then arguments.

daskdeploy keeps its settings in the ``daskdeploy`` section of dask's configuration, so
everything dask config offers works: YAML files in the dask config directories,
``DASK_DASKDEPLOY__LOCAL__WORKERS=4`` style environment variables and
``dask.config.set``. The packaged defaults are registered lazily, the first time
daskdeploy needs them, never at import time: the shared ones in ``daskdeploy.yaml`` beside
this module, and each backend's own in a YAML file beside the backend's module
(``backends/local.yaml``, ``backends/<platform>/backend.yaml``, ...; see
:func:`defaults_beside`).
"""

from __future__ import annotations

import copy
import os
from functools import cache
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownBackendError

__all__ = [
    "BACKEND_ENV_VAR",
    "backend_section",
    "defaults_beside",
    "ensure_defaults",
    "packaged_defaults",
    "requested_backend",
]

BACKEND_ENV_VAR = "DASKDEPLOY_BACKEND"
PACKAGED_DEFAULTS_FILE = Path(__file__).with_name("daskdeploy.yaml")


_NOT_BACKENDS = ("backend", "profiles", "common", "named")
_registered_backend_defaults: dict[str, dict[str, Any]] = {}


def defaults_beside(target: str) -> dict[str, Any]:
    """The packaged defaults of a backend: the YAML file beside its module, if any.

    ``"pkg.module:Class"`` reads ``pkg/module.yaml``, a mapping of option names to
    values; its ``extends`` key may name a YAML file (relative to it) whose defaults it
    overrides. Finding it imports the module's parent packages, not the module itself.

    Raises
    ------
    ConfigError
        When the file is not a mapping.
    """
    import importlib.util

    module = target.partition(":")[0]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return {}
    path = Path(spec.origin).with_suffix(".yaml")
    if not path.is_file():
        return {}
    return _defaults_file(path, target)


def _defaults_file(path: Path, target: str) -> dict[str, Any]:
    """Read a defaults YAML; an ``extends`` key names a file (relative to this one) whose
    defaults it starts from."""
    import yaml

    with path.open(encoding="utf-8") as stream:
        defaults = yaml.safe_load(stream) or {}
    if not isinstance(defaults, dict):
        raise ConfigError(
            f"{path} must be a mapping of option names to default values, got "
            f"{type(defaults).__name__}. Reinstall the package that provides {target}."
        )
    base = defaults.pop("extends", None)
    if base is None:
        return defaults
    return {**_defaults_file((path.parent / base).resolve(), target), **defaults}


@cache
def _packaged_yaml() -> dict[str, Any]:
    import yaml

    from .registry import BUILTIN_BACKENDS

    with PACKAGED_DEFAULTS_FILE.open(encoding="utf-8") as stream:
        packaged = yaml.safe_load(stream)["daskdeploy"]
    for name, target in BUILTIN_BACKENDS.items():
        packaged[name] = defaults_beside(target)
    return packaged


def common_defaults() -> dict[str, Any]:
    """Return the packaged defaults of the options every backend shares."""
    return dict(_packaged_yaml()["common"])


@cache
def packaged_defaults() -> dict[str, Any]:
    """Return the packaged ``daskdeploy`` defaults, each backend's section complete.

    The YAML states the shared options once under ``common``; here every backend section
    starts from those and overrides what it needs. ``common`` itself is not a config key.
    """
    raw = _packaged_yaml()
    merged = {key: copy.deepcopy(value) for key, value in raw.items() if key != "common"}
    for key, section in raw.items():
        if key not in _NOT_BACKENDS:
            merged[key] = {**common_defaults(), **section}
    return merged


def backend_defaults(backend: str) -> dict[str, Any]:
    """Return the default option values of a backend (built-in or registered)."""
    if backend in _registered_backend_defaults:
        return _registered_backend_defaults[backend]
    return dict(packaged_defaults().get(backend, {}))


#: User values that merging the packaged defaults replaced: a scalar or list where the
#: defaults have a mapping (``daskdeploy: {local: 4}``). dask's merge drops such a value
#: without a word; remembering it lets :func:`backend_section` and
#: :func:`profile_section` refuse it as they refuse the same value set later.
_replaced_by_defaults: dict[str, Any] = {}


@cache
def _register_defaults() -> None:
    import dask.config

    defaults = packaged_defaults()
    user = dask.config.config.get("daskdeploy")
    if isinstance(user, dict):
        for key, value in user.items():
            if isinstance(defaults.get(key), dict) and not isinstance(value, (dict, type(None))):
                _replaced_by_defaults[f"daskdeploy.{key}"] = value
    dask.config.update_defaults({"daskdeploy": copy.deepcopy(defaults)})


def ensure_defaults() -> None:
    """Make the packaged defaults part of dask config; values set by the user keep priority.

    Registered with ``dask.config.update_defaults`` once (so ``dask.config.refresh`` keeps
    them), and merged again if something removed them from the live config since.
    """
    import dask.config

    _register_defaults()
    section = dask.config.config.get("daskdeploy")
    if not isinstance(section, dict) or any(key not in section for key in packaged_defaults()):
        dask.config.update(
            dask.config.config,
            {"daskdeploy": copy.deepcopy(packaged_defaults())},
            priority="old",
        )


def register_distributed_defaults() -> None:
    """Put distributed's default configuration into dask config without importing it.

    daskdeploy imports distributed only when a deployment starts. Until then dask config
    has no ``distributed`` section, and a ``with dask.config.set({"distributed.x": ...}):``
    block entered before it would, on exit, delete the whole section that importing
    distributed filled in meanwhile (dask restores "did not exist"), breaking every later
    cluster with ``KeyError: 'comm'``. Registering the defaults first, exactly as
    ``distributed/config.py`` does on import, makes such a block restore only its key.
    """
    import importlib.util

    import dask.config
    import yaml

    if "distributed" in dask.config.config:
        return
    spec = importlib.util.find_spec("distributed")
    if spec is None or not spec.origin:
        return
    path = Path(spec.origin).with_name("distributed.yaml")
    try:
        defaults = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return  # distributed moved its file; importing it will register them instead
    dask.config.update_defaults(defaults)


def register_backend_defaults(backend: str, defaults: dict[str, Any]) -> None:
    """Register a third-party backend's defaults under ``daskdeploy.<backend>``.

    The shared options default to the packaged ``common`` values unless ``defaults``
    overrides them.
    """
    import dask.config

    merged = {**common_defaults(), **defaults}
    _registered_backend_defaults[backend] = merged
    dask.config.update_defaults({"daskdeploy": {backend: copy.deepcopy(merged)}})


def _get(key: str, default: Any = None) -> Any:
    import dask.config

    ensure_defaults()
    if key in _replaced_by_defaults:
        return _replaced_by_defaults[key]
    return dask.config.get(key, default=default)


def requested_backend(explicit: str | None) -> tuple[str, str]:
    """Return the backend (or profile) name asked for, and where that choice came from.

    Highest first: the ``backend`` argument, the ``DASKDEPLOY_BACKEND`` environment
    variable, the dask config key ``daskdeploy.backend``, else ``"auto"``.
    """
    if explicit is not None and (not isinstance(explicit, str) or not explicit.strip()):
        raise UnknownBackendError(
            f"The backend argument must be a backend or profile name such as 'local', "
            f"got {explicit!r}. Leave it out to choose automatically; `daskdeploy "
            f"backends` lists the names."
        )
    if explicit:
        return explicit, "backend argument"
    from_env = os.environ.get(BACKEND_ENV_VAR, "").strip()
    if from_env:
        return from_env, f"environment variable {BACKEND_ENV_VAR}"
    configured = _get("daskdeploy.backend")
    if configured and configured != "auto":
        return str(configured), "dask config daskdeploy.backend"
    return "auto", "default"


def backend_section(backend: str) -> dict[str, Any]:
    """Return ``daskdeploy.<backend>`` from dask config as a plain dict (empty if unset)."""
    section = _get(f"daskdeploy.{backend}", default={})
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(
            f"dask config key daskdeploy.{backend} must be a mapping of option names to "
            f"values, got {type(section).__name__} {section!r}. Fix it in your dask config "
            f"YAML (see `python -c 'import dask.config; print(dask.config.paths)'`) or in the "
            f"DASK_DASKDEPLOY__{backend.upper()}__* environment variables."
        )
    return dict(section)


def profile_section() -> dict[str, Any]:
    """Return ``daskdeploy.profiles`` from dask config (empty if unset)."""
    profiles = _get("daskdeploy.profiles", default={}) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(
            f"dask config key daskdeploy.profiles must be a mapping of profile names to "
            f"settings, got {type(profiles).__name__}. Fix it in your dask config YAML."
        )
    return dict(profiles)


def source_of(backend: str, name: str, value: Any) -> str:
    """Describe where a value found in ``daskdeploy.<backend>.<name>`` came from."""
    defaults = backend_defaults(backend)
    if name in defaults and defaults[name] == value:
        return "default"
    return f"dask config daskdeploy.{backend}.{name}"


def named_setting(key: str) -> Any:
    """A setting of named deployments: dask config ``daskdeploy.named.<key>``."""
    ensure_defaults()
    return _get(f"daskdeploy.named.{key}")

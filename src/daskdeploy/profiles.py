"""Profiles: a cluster's settings saved once under a name and deployed by that name.

A profile lives in dask config under ``daskdeploy.profiles.<name>``: a mapping with a
``backend`` key and that backend's options. Write profiles by hand in any dask config
YAML, or with :func:`save_profile` (``daskdeploy profile save``), which keeps them in
``daskdeploy-profiles.yaml`` in the user's dask config directory.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from . import config
from .errors import ConfigError, closest_match_hint

__all__ = ["delete_profile", "get_profile", "list_profiles", "profiles_file", "save_profile"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def profiles_file() -> Path:
    """Return the YAML file :func:`save_profile` writes (in dask's user config directory)."""
    import dask.config

    return Path(dask.config.PATH) / "daskdeploy-profiles.yaml"


def list_profiles() -> dict[str, dict[str, Any]]:
    """Return every profile defined in dask config, by name."""
    return config.profile_section()


def get_profile(name: str) -> tuple[str, dict[str, Any]]:
    """Return ``(backend, options)`` of a profile.

    Raises
    ------
    ConfigError
        If the profile does not exist (the message lists the saved ones) or is malformed.
    """
    profiles = list_profiles()
    if name not in profiles:
        saved = sorted(profiles)
        raise ConfigError(
            f"Unknown profile {name!r}.{closest_match_hint(name, saved)} "
            + (f"Saved profiles: {', '.join(saved)}." if saved else "No profiles are saved.")
            + " Save one with `daskdeploy profile save NAME --backend BACKEND ...`."
        )
    settings = profiles[name]
    if not isinstance(settings, dict) or not isinstance(settings.get("backend"), str):
        raise ConfigError(
            f"Profile {name!r} must be a mapping with a 'backend' key and option values, "
            f"got {settings!r}. Fix daskdeploy.profiles.{name} in your dask config YAML."
        )
    options = {key: value for key, value in settings.items() if key != "backend"}
    return settings["backend"], options


def _read_file(path: Path) -> dict[str, Any]:
    import yaml

    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc}). Fix or delete the file.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a YAML mapping. Fix or delete the file.")
    return data


def _write_file(path: Path, data: dict[str, Any]) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".daskdeploy-profiles-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            yaml.safe_dump(data, stream, sort_keys=True)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_profile(name: str, backend: str, **options: Any) -> Path:
    """Validate settings and save them as profile ``name``; return the file written.

    The options are checked exactly as :func:`daskdeploy.deploy` would check them, so a
    saved profile always deploys. Saving an existing name replaces it.

    Examples
    --------
    >>> import daskdeploy                                       # doctest: +SKIP
    >>> daskdeploy.save_profile("two", "local", workers=2)      # doctest: +SKIP
    >>> client = daskdeploy.deploy("two")                       # doctest: +SKIP
    """
    import dask.config

    from .api import plan
    from .registry import backend_names

    if not _NAME.match(name):
        raise ConfigError(
            f"Invalid profile name {name!r}: use a letter followed by letters, digits, "
            f"'.', '_' or '-' (at most 64 characters)."
        )
    if name in backend_names() or name == "auto":
        raise ConfigError(f"Profile name {name!r} is taken by a backend; choose another name.")
    plan(backend, **options)  # raises on unknown backend, options or values
    settings = {"backend": backend, **{key.replace("-", "_"): v for key, v in options.items()}}
    path = profiles_file()
    data = _read_file(path)
    data.setdefault("daskdeploy", {}).setdefault("profiles", {})[name] = settings
    _write_file(path, data)
    dask.config.update(dask.config.config, {"daskdeploy": {"profiles": {name: settings}}})
    return path


def delete_profile(name: str) -> Path:
    """Delete a profile saved by :func:`save_profile`; return the file changed."""
    import dask.config

    path = profiles_file()
    data = _read_file(path)
    saved = data.get("daskdeploy", {}).get("profiles", {})
    if name not in saved:
        known = sorted(list_profiles())
        where = (
            f"it is not saved there.{closest_match_hint(name, known)} Saved profiles: "
            f"{', '.join(known) or 'none'} (`daskdeploy profile list`)"
            if name not in known
            else "it comes from another dask config file; remove it there"
        )
        raise ConfigError(f"Cannot delete profile {name!r} from {path}: {where}.")
    del saved[name]
    _write_file(path, data)
    dask.config.config.get("daskdeploy", {}).get("profiles", {}).pop(name, None)
    return path

"""Atomic, resumable writing of data set files.

Each data set directory holds a hidden manifest (``.daskdeploy-<kind>.json``)
mapping every file written so far to the parameters that determine its content.
A file is (re)written only when it is missing or was written with other
parameters; files of the data set that are no longer wanted are removed.
Files are written under a hidden temporary name and renamed into place, so a
file that exists under its final name is always complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Params = Mapping[str, Any]


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path that is renamed to ``path`` if the block succeeds."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _manifest_path(dest: Path, kind: str) -> Path:
    return dest / f".daskdeploy-{kind}.json"


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write_manifest(path: Path, entries: Mapping[str, Params]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))


def files_to_write(dest: Path, kind: str, wanted: Mapping[str, Params]) -> Iterator[str]:
    """Yield the names in ``wanted`` that must be (re)written to ``dest``.

    Stale files are removed first. The caller writes each yielded name to
    ``dest / name`` (with :func:`atomic_path`) before asking for the next one;
    the name is then recorded in the manifest as done.

    Parameters
    ----------
    dest : Path
        Data set directory; created if missing.
    kind : str
        Data set name, used for the manifest file name.
    wanted : Mapping[str, Params]
        File name -> JSON-serialisable parameters that determine its content.

    Yields
    ------
    str
        A file name to write now.
    """
    dest.mkdir(parents=True, exist_ok=True)
    manifest = _manifest_path(dest, kind)
    done = {}
    for name, params in _read_manifest(manifest).items():
        if wanted.get(name) == params and (dest / name).exists():
            done[name] = params
        else:
            (dest / name).unlink(missing_ok=True)
    _write_manifest(manifest, done)
    for name, params in wanted.items():
        if name not in done:
            yield name
            done[name] = params
            _write_manifest(manifest, done)

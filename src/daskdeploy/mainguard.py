"""Keep worker processes from re-running the user's ``__main__`` script.

distributed starts local workers with multiprocessing's ``spawn`` method. A spawned child
re-imports the parent's ``__main__`` module from its file. In a script that calls
``deploy()`` at top level without an ``if __name__ == "__main__":`` guard that re-runs the
script in every worker, which then tries to start a cluster of its own and fails with
"An attempt has been made to start a new process before the current process has finished
its bootstrapping phase". With a guard it still re-executes all top-level code.

Workers never need the main module: Dask ships functions and classes defined in
``__main__`` by value (cloudpickle). multiprocessing skips the re-import when the main
module's ``__spec__`` names a ``__main__`` module, the case it already handles for
``python -m package``. While a deployment is alive daskdeploy gives the main module such
a spec, and restores the original when the last deployment closes.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["hide_main_from_spawn"]

_lock = threading.Lock()
_hidden: dict[int, tuple[ModuleType, object, int]] = {}
_MISSING = object()


def _spec_name(module: ModuleType) -> str:
    package = module.__dict__.get("__package__") or ""
    return f"{package}.__main__" if package else "__main__"


def hide_main_from_spawn(module: ModuleType | None = None) -> Callable[[], None]:
    """Stop spawned processes from importing ``module`` (default: ``sys.modules["__main__"]``).

    Returns a function that undoes it; calls nest (the last undo restores the original).
    Interactive sessions (no ``__file__``) need nothing and get a no-op.
    """
    module = module if module is not None else sys.modules.get("__main__")
    if module is None or not module.__dict__.get("__file__"):
        return lambda: None
    with _lock:
        key = id(module)
        if key in _hidden:
            held, original, count = _hidden[key]
            _hidden[key] = (held, original, count + 1)
        else:
            original = module.__dict__.get("__spec__", _MISSING)
            _hidden[key] = (module, original, 1)
            module.__spec__ = ModuleSpec(_spec_name(module), None, origin=module.__file__)

    def restore() -> None:
        with _lock:
            if key not in _hidden:
                return
            held, original, count = _hidden[key]
            if count > 1:
                _hidden[key] = (held, original, count - 1)
                return
            del _hidden[key]
            if original is _MISSING:
                held.__dict__.pop("__spec__", None)
            else:
                held.__spec__ = original

    return _once(restore)


def _once(function: Callable[[], None]) -> Callable[[], None]:
    done = False

    def run_once() -> None:
        nonlocal done
        if not done:
            done = True
            function()

    return run_once

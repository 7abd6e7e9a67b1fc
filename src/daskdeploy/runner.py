"""Run a Python file as ``__main__``, the way ``python script.py`` would, and return its status."""

from __future__ import annotations

import builtins
import sys
import traceback
import types
from collections.abc import Sequence
from pathlib import Path

from .mainguard import hide_main_from_spawn

__all__ = ["exit_status", "run_script"]


def exit_status(code: object) -> int:
    """Map a ``SystemExit.code`` to a process exit status like the interpreter does."""
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def run_script(path: Path, args: Sequence[str]) -> int:
    """Execute ``path`` as the ``__main__`` module with ``sys.argv = [path, *args]``.

    The script's directory is put first on ``sys.path`` and its module is hidden from
    spawned worker processes (see :mod:`daskdeploy.mainguard`). Everything is restored
    afterwards.

    Returns
    -------
    int
        0 on success, the ``sys.exit`` status, 130 after Ctrl-C, or 1 after an uncaught
        exception (whose traceback is printed to stderr, as Python would).
    """
    code = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    module = types.ModuleType("__main__")
    module.__dict__.update(__file__=str(path), __builtins__=builtins, __cached__=None)
    saved_main, saved_argv, saved_path = sys.modules["__main__"], sys.argv, list(sys.path)
    sys.modules["__main__"] = module
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.resolve().parent))
    restore_spec = hide_main_from_spawn(module)
    try:
        exec(code, module.__dict__)
    except SystemExit as exc:
        return exit_status(exc.code)
    except KeyboardInterrupt:
        print("daskdeploy: interrupted (SIGINT).", file=sys.stderr)
        return 130
    except BaseException as exc:  # the user's error: show it as Python would
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        return 1
    finally:
        restore_spec()
        sys.modules["__main__"], sys.argv = saved_main, saved_argv
        sys.path[:] = saved_path
    return 0

"""Where a script's own Dask set-up is intercepted, installed for one run and then removed.

Each hook asks :func:`daskdeploy.adoption.current` on every call, so a paused thread
(daskdeploy's own code) and the time after the run see the original behaviour. All are
removed after the run except ``SpecCluster.__new__``, which stays as a pass-through (see
:func:`_hook_spec_cluster`):

* ``distributed.Client.__init__``: no address, no scheduler file and no
  ``scheduler-address`` in dask config (``Client()``, ``Client(n_workers=2)``) -> the
  deployment. ``Client.shutdown`` of such a client closes only the client, and its
  ``scheduler_info()`` returns what it fetched (see
  :meth:`~daskdeploy.deployment.DeployedClient.scheduler_info`).
* ``distributed.deploy.SpecCluster.__new__``, the base of ``LocalCluster`` and of every
  dask-jobqueue class (``SLURMCluster``, ``PBSCluster``, ...), and the ``SSHCluster``
  factory -> an :class:`~daskdeploy.adoption.cluster.AdoptedCluster`.
* dask's named schedulers ``threads``/``threading``/``processes``/``multiprocessing``
  (``dask.config.set(scheduler=...)``, ``compute(scheduler=...)``) -> the deployment's
  client. ``sync``/``single-threaded`` stay in the script's process.
* ``dask_mpi.initialize`` and ``dask_mpi.execute``, patched when the script imports
  dask_mpi: the script is already the client of a running deployment.

Nothing here imports dask_jobqueue, dask_mpi or mpi4py.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import inspect
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import current, paused
from .cluster import AdoptedCluster, call_text

__all__ = ["install"]

_ROUTED_SCHEDULERS = ("threads", "threading", "processes", "multiprocessing")
_SSH_MODULES = ("distributed", "distributed.deploy", "distributed.deploy.ssh", "dask.distributed")


def install() -> Callable[[], None]:
    """Install every hook; return the function that removes them all again."""
    undo = [
        _hook_client(),
        _hook_spec_cluster(),
        _hook_ssh_cluster(),
        _hook_named_schedulers(),
        _hook_on_import("dask_mpi", _patch_dask_mpi),
    ]

    return _all(undo)


def _set(owner: Any, name: str, value: Any) -> Callable[[], None]:
    """Replace ``owner.name`` (which exists) and return how to put the original back."""
    before = vars(owner)[name]
    setattr(owner, name, value)
    return lambda: setattr(owner, name, before)


def _intercept(
    original: Callable[..., Any],
    describe: Callable[..., str],
    adopted: Callable[..., Any],
) -> Callable[..., Any]:
    """Wrap ``original`` for the run: outside one it runs as before; inside, the call
    (``describe(*args, **kwargs)``) is noted, then adopted (``adopted(adoption, request,
    *args, **kwargs)`` answers instead) or, with adoption off, run as written."""

    @functools.wraps(original)
    def intercepted(*args: Any, **kwargs: Any) -> Any:
        adoption = current()
        if adoption is None:
            return original(*args, **kwargs)
        request = describe(*args, **kwargs)
        adoption.note(request)
        if adoption.mode != "adopt":
            with paused():  # what it builds inside is its own, not another request
                return original(*args, **kwargs)
        return adopted(adoption, request, *args, **kwargs)

    return intercepted


def _all(steps: list[Callable[[], None]]) -> Callable[[], None]:
    """One function that runs ``steps`` in reverse order."""

    def run() -> None:
        for step in reversed(steps):
            step()

    return run


# -- Client ------------------------------------------------------------------------------


def _hook_client() -> Callable[[], None]:
    from distributed import Client

    from ..deployment import fresh_scheduler_info

    original_init = Client.__init__
    original_shutdown = Client.shutdown
    original_scheduler_info = Client.scheduler_info
    signature = inspect.signature(original_init)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        adoption = current()
        if adoption is None:
            original_init(self, *args, **kwargs)
            return
        bound = signature.bind(self, *args, **kwargs)
        named = bound.arguments
        address = named.get("address")
        if isinstance(address, AdoptedCluster):
            self._daskdeploy_adopted = True
        elif address is None and named.get("scheduler_file") is None and not _configured():
            wishes = named.get("kwargs", {})
            request = call_text(type(self).__name__, (), wishes)
            adoption.note(request)
            if adoption.mode == "adopt":  # the cluster keywords go to the stand-in instead
                named["address"] = adoption.stand_in(request, named.pop("kwargs", {}))
                self._daskdeploy_adopted = True
        original_init(*bound.args, **bound.kwargs)
        if getattr(self, "_daskdeploy_adopted", False):
            adoption.adopted_client(self)

    def shutdown(self: Any) -> Any:
        if getattr(self, "_daskdeploy_adopted", False) and current() is not None:
            # The scheduler is the deployment's: it ends with the run, not with the script.
            return self.close()
        return original_shutdown(self)

    def scheduler_info(self: Any, n_workers: int = -1, **kwargs: Any) -> Any:
        if getattr(self, "_daskdeploy_adopted", False):  # as a DeployedClient's: no race
            cached = functools.partial(original_scheduler_info, self)
            return fresh_scheduler_info(self, n_workers, cached, **kwargs)
        return original_scheduler_info(self, n_workers, **kwargs)

    __init__.__wrapped__ = original_init  # type: ignore[attr-defined]
    undo = [
        _set(Client, "__init__", __init__),
        _set(Client, "shutdown", shutdown),
        _set(Client, "scheduler_info", scheduler_info),
    ]
    return _all(undo)


def _configured() -> bool:
    import dask.config

    return bool(dask.config.get("scheduler-address", None))


# -- clusters ------------------------------------------------------------------------------


def _adopting_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    """``SpecCluster.__new__``: the deployment's stand-in while a run adopts, else as before."""
    adoption = current()
    if adoption is not None:
        request = call_text(cls.__name__, args, kwargs)
        adoption.note(request)
        if adoption.mode == "adopt":
            return adoption.stand_in(request, kwargs)
    return object.__new__(cls)


def _hook_spec_cluster() -> Callable[[], None]:
    """Give ``SpecCluster`` (and so its subclasses) :func:`_adopting_new`, once per process.

    It stays after the run: CPython cannot take a ``__new__`` off a class again. After
    ``del SpecCluster.__new__`` the class keeps the slot of a Python-level ``__new__``,
    and ``object.__new__`` then refuses the constructor's arguments ("object.__new__()
    takes exactly one argument") for every later ``LocalCluster(...)``. Outside a run it
    only passes through to ``object.__new__``.
    """
    from distributed.deploy import SpecCluster

    if vars(SpecCluster).get("__new__") is not _adopting_new:
        SpecCluster.__new__ = _adopting_new  # type: ignore[method-assign]
    return lambda: None


def _hook_ssh_cluster() -> Callable[[], None]:
    from distributed.deploy import ssh

    original = ssh.SSHCluster
    replacement = _intercept(
        original,
        lambda *args, **kwargs: call_text("SSHCluster", args, kwargs),
        lambda adoption, request, *args, **kwargs: adoption.stand_in(request, kwargs),
    )
    undo = [
        _set(sys.modules[name], "SSHCluster", replacement)
        for name in _SSH_MODULES
        if name in sys.modules and vars(sys.modules[name]).get("SSHCluster") is original
    ]
    return _all(undo)


# -- named schedulers ----------------------------------------------------------------------


class _RoutedScheduler:
    """Stands in for one of dask's local schedulers: the deployment runs the graph."""

    def __init__(self, name: str, original: Callable[..., Any]) -> None:
        self.name = name
        self.original = original

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        adoption = current()
        if adoption is None:
            return self.original(dsk, keys, **kwargs)
        import dask.config

        configured = dask.config.get("num_workers", None)
        wishes = {"num_workers": configured} if configured else {}
        wishes.update(kwargs)
        request = f"scheduler={self.name!r}"
        if wishes:
            request += " " + call_text("", (), wishes)
        adoption.note(request, once=True)
        if adoption.mode != "adopt":
            return self.original(dsk, keys, **kwargs)
        return adoption.client.get(dsk, keys)


def _hook_named_schedulers() -> Callable[[], None]:
    from dask.base import named_schedulers

    saved = {
        name: named_schedulers[name] for name in _ROUTED_SCHEDULERS if name in named_schedulers
    }
    named_schedulers.update({name: _RoutedScheduler(name, get) for name, get in saved.items()})

    def restore() -> None:
        named_schedulers.update(saved)

    return restore


# -- dask_mpi --------------------------------------------------------------------------


def _patch_dask_mpi(module: ModuleType) -> Callable[[], None]:
    """The script is already the client of a running deployment: ``initialize()`` returns
    True (the client's answer) and ``execute(function, ...)`` calls the function here."""

    def execute_here(
        adoption: Any,
        request: str,
        client_function: Any = None,
        client_args: Any = (),
        client_kwargs: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        if callable(client_function):
            client_function(*client_args, **(client_kwargs or {}))
        return True

    initialize = _intercept(
        module.initialize,
        lambda *args, **kwargs: call_text("dask_mpi.initialize", args, kwargs),
        lambda *unused, **ignored: True,
    )
    execute = _intercept(
        module.execute,
        lambda function=None, *args, **kwargs: call_text("dask_mpi.execute", (function,), kwargs),
        execute_here,
    )
    undo = [_set(module, "initialize", initialize), _set(module, "execute", execute)]
    return _all(undo)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``patch(module)`` right after ``name`` is imported, if it is during the run."""

    def __init__(self, name: str, patch: Callable[[ModuleType], Callable[[], None]]) -> None:
        self.name = name
        self.patch = patch
        self.undo: Callable[[], None] | None = None

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader

        finder = self

        class PatchingLoader(importlib.abc.Loader):
            def create_module(self, spec: Any) -> Any:
                return loader.create_module(spec)

            def exec_module(self, module: ModuleType) -> None:
                loader.exec_module(module)
                finder.undo = finder.patch(module)

        spec.loader = PatchingLoader()
        return spec


def _hook_on_import(
    name: str, patch: Callable[[ModuleType], Callable[[], None]]
) -> Callable[[], None]:
    if name in sys.modules:
        return patch(sys.modules[name])
    finder = _AfterImport(name, patch)
    sys.meta_path.insert(0, finder)

    def remove() -> None:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        if finder.undo is not None:
            finder.undo()

    return remove

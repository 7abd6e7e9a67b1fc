"""The backends: the contract, and one folder (or module) per platform.

``base``
    The contract every backend implements (:class:`~daskdeploy.backends.base.Backend`).
``local``
    A cluster on this machine.
``<platform>/``
    Everything one platform needs: its backends, the environment it runs in, job
    control, job scripts, its command-line commands and the clean-up of what it leaves.
    :data:`daskdeploy.registry.BUILTIN_BACKENDS` says which folder holds which backend.
``shared/``
    Worker and scheduler mechanisms several platforms use: worker layouts, roles by
    rank, closing workers through their nannies, the scheduler that ends when its client
    leaves, rendezvous by scheduler file.

Generic code (``daskdeploy.api``, ``orphans``, ``cli``, ...) reaches a platform only
through :mod:`daskdeploy.registry`, which names the built-in backends.
"""

"""SSH: the ``ssh`` backend (scheduler and workers on hosts reached with asyncssh).

``backend``
    :class:`~daskdeploy.backends.ssh.backend.SSHBackend`.
``hosts``
    Host lists, probing hosts, private files and ending processes on them.
``leftovers``
    Ending what a dead deployment left on its hosts (``daskdeploy ls``/``cleanup``).
"""

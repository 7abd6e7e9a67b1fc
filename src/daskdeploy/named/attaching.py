"""Attaching to a named deployment: a :class:`~daskdeploy.DeployedClient` that leaves it running.

The client belongs to a local :class:`~daskdeploy.Deployment` that started nothing: its
teardown closes this client and its :class:`~.cluster.NamedCluster` view, never the
workers or the scheduler, which belong to the supervisor.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import lifecycle
from ..backends.base import Running
from ..deployment import DeployedClient, Deployment
from ..options import ResolvedOptions
from .cluster import NamedCluster

__all__ = ["attach"]


def attach(
    name: str, *, quiet: bool = False, report: bool = False, adopt: bool = True
) -> DeployedClient:
    """Connect to the running deployment ``name``; closing the client leaves it running.

    Parameters
    ----------
    name
        The name given to ``daskdeploy up``.
    quiet
        Do not print the one-line summary.
    report
        Measure CPU efficiency while attached and print the report at close.
    adopt
        Under ``daskdeploy run --attach``: the script's own clusters use the deployment.

    Raises
    ------
    DeploymentError
        No such deployment runs, it is still starting or ending, its credentials cannot
        be read, or its scheduler does not answer; the message says which.
    """
    cluster = NamedCluster(name)
    named = cluster.named
    source = f"named deployment {name!r}"
    settings = {**named.record.named.get("options", {}), "quiet": quiet, "report": report}
    settings["adopt"] = adopt
    options = ResolvedOptions(settings, {key: source for key in settings})
    scratch = Path(named.record.scratch_dir or tempfile.gettempdir())
    deployment = Deployment(named.id, named.backend, options, scratch)
    deployment.attach(
        Running(
            address=named.address or cluster.scheduler_address,
            cluster=cluster,
            security=cluster.security,
            expected_workers=0,
            dashboard_link=named.dashboard_link,
            scalable=bool(named.record.named.get("scalable")),
        )
    )
    lifecycle.register(deployment)
    try:
        client = DeployedClient.for_deployment(deployment, owner=True)
        if report:
            from ..report.efficiency import started_meter_or_none

            deployment.meter = started_meter_or_none(
                client, label=f"{named.id} ({name}) on {named.backend}", startup_seconds=0.0
            )
    except BaseException:
        deployment.teardown()
        raise
    workers = len(client.scheduler_info()["workers"])
    deployment.running.expected_workers = workers  # type: ignore[union-attr]
    if not quiet:
        shape = named.record.named.get("shape", "")
        print(
            f"daskdeploy: attached to {name!r} ({named.id} on {named.backend}, {workers} "
            f"worker{'' if workers == 1 else 's'} now; started as {shape}), scheduler "
            f"{named.address}"
            + (f", dashboard {named.dashboard_link}" if named.dashboard_link else "")
            + ". Closing this client leaves it running.",
            file=sys.stderr,
            flush=True,
        )
    return client


def connect_snippet(found: Any) -> str:
    """Python that connects a plain :class:`distributed.Client` to ``found``."""
    tls = found.record.named.get("tls")
    if not tls:
        return f"from distributed import Client\nclient = Client({found.address!r})\n"
    return (
        "from distributed import Client, Security\n"
        "security = Security(\n"
        f"    tls_ca_file={tls['ca']!r},\n"
        f"    tls_client_cert={tls['cert']!r},\n"
        f"    tls_client_key={tls['key']!r},\n"
        "    require_encryption=True,\n"
        ")\n"
        f"client = Client({found.address!r}, security=security)\n"
        f"# or, with daskdeploy: client = daskdeploy.deploy(attach={found.name!r})\n"
    )

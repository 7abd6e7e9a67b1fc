"""The process that owns a named deployment, started by ``daskdeploy up`` in its own session.

``python -m daskdeploy.named.supervisor SPEC`` reads the JSON spec ``up`` wrote (and
deletes it), starts the deployment in this process exactly as ``deploy()`` would (so its
record, reaper, TLS credentials and clean-up are the usual ones), adds the name to the
record, and then serves:

* every couple of seconds it asks the scheduler how many workers, clients and tasks it
  has, and writes that into the record for ``daskdeploy ls``;
* it ends the deployment when nobody used it for ``idle_timeout`` seconds (no client
  besides its own, no task), when the backend's time limit runs out, when asked to
  (``daskdeploy down``, a control request) or on SIGTERM/SIGHUP;
* it carries out ``scale`` and ``adapt`` requests (:mod:`.control`).

Its stdout and stderr are the deployment's log (``daskdeploy logs NAME``).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .. import records
from . import control
from .names import ENDING, READY, list_named

__all__ = ["main"]

logger = logging.getLogger("daskdeploy.named")

#: Seconds between two looks at the scheduler.
STATUS_INTERVAL = 2.0


def _activity_probe() -> Any:
    """A function run on the scheduler (wherever it runs, by value: no import needed there)."""

    def activity(dask_scheduler: Any, own: str) -> dict[str, Any]:
        workers = list(dask_scheduler.workers.values())
        others = [c for c in dask_scheduler.clients if c not in (own, "fire-and-forget")]
        return {
            "workers": len(workers),
            "threads": sum(worker.nthreads for worker in workers),
            "memory": sum(worker.memory_limit or 0 for worker in workers),
            "clients": len(others),
            "tasks": len(dask_scheduler.tasks),
            # Activity between two looks: a short script can come and go unseen.
            "transitions": getattr(dask_scheduler, "transition_counter", 0),
            "client_ids": sorted(str(c) for c in others),
        }

    return activity


class Supervisor:
    """Serve one named deployment until a reason to end it comes up."""

    def __init__(
        self, name: str, client: Any, idle_timeout: float | None, time_limit: float | None
    ) -> None:
        self.name = name
        self.client = client
        self.deployment = client.deployment
        self.idle_timeout = idle_timeout or None
        self.ends_at = time.time() + time_limit if time_limit else None
        self.idle_since: float | None = time.time()
        self.status: dict[str, Any] = {}
        self._client_ids: list[str] = []
        self.inbox = control.Inbox(client)
        self.in_job = False
        self._probe = _activity_probe()

    # -- the record ------------------------------------------------------------------

    def publish(self, state: str, because: str | None = None) -> None:
        """Write the name, what attaching needs and the latest status into the record."""
        record = records.read(self.deployment.id)
        if record is None:
            return
        running = self.deployment.running
        security = running.security if running is not None else None
        record.name = self.name
        record.named = {
            "state": state,
            "dashboard_link": self.deployment.dashboard_link,
            "tls": None
            if security is None
            else {
                "ca": security.tls_ca_file,
                "cert": security.tls_client_cert,
                "key": security.tls_client_key,
            },
            "scalable": bool(running and running.scalable),
            "scheduler_in_job": self.in_job,
            "shape": self.deployment.shape(),
            "options": self._given_options(),
            "idle_timeout": self.idle_timeout,
            "ends_at": self.ends_at,
            "status": {**self.status, "idle_since": self.idle_since, "seen": time.time()},
            **({"ending_because": because} if because else {}),
        }
        records.write(record)

    def _given_options(self) -> dict[str, Any]:
        """The options as ``up`` resolved them, JSON-able, for attached clients' summaries."""
        given = {}
        for name, value in self.deployment.options.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                continue
            given[name] = value
        return given

    # -- serving ---------------------------------------------------------------------

    def serve(self) -> str:
        """Serve until the deployment should end; return why."""
        self.refresh()
        self.publish(READY)
        logger.info("%s is ready: %s", self.name, self.deployment.summary())
        next_look = time.monotonic() + STATUS_INTERVAL
        while True:
            message = self.inbox.get(timeout=max(0.0, next_look - time.monotonic()))
            if message is not None:
                reason = self.handle(message)
                if reason:
                    return reason
            if time.monotonic() >= next_look:
                next_look = time.monotonic() + STATUS_INTERVAL
                self.refresh()
                reason = self.reason_to_end()
                if reason:
                    return reason
                self.publish(READY)

    def refresh(self) -> None:
        """Ask the scheduler how busy it is; track since when nobody uses it."""
        try:
            seen = self.client.run_on_scheduler(self._probe, own=self.client.id)
        except Exception as exc:  # the scheduler is going away: the next look decides
            logger.warning("Could not ask the scheduler for its status: %s", exc)
            return
        client_ids = seen.pop("client_ids")
        came_and_went = bool(self.status) and (
            client_ids != self._client_ids or seen["transitions"] != self.status["transitions"]
        )
        self._client_ids, self.status = client_ids, seen
        busy = came_and_went or seen["clients"] > 0 or seen["tasks"] > 0
        if busy:
            self.idle_since = None
        elif self.idle_since is None:
            self.idle_since = time.time()

    def reason_to_end(self) -> str | None:
        """Why the deployment should end now, or ``None``."""
        now = time.time()
        if self.ends_at is not None and now >= self.ends_at:
            return "its time limit ran out"
        if self.idle_timeout and self.idle_since and now - self.idle_since >= self.idle_timeout:
            return f"idle for {self.idle_timeout:g} s (no client and no task)"
        if self.client.status != "running":
            return "its scheduler went away"
        return None

    def _check_scale(self, action: str, arguments: dict[str, Any]) -> None:
        """Refuse a number of workers the backend says cannot work, before scaling."""
        workers = _asked_workers(action, arguments)
        if workers is not None:
            from ..registry import get_backend

            get_backend(self.deployment.backend).check_scale(self.deployment.options, workers)

    def handle(self, message: dict[str, Any]) -> str | None:
        """Carry out one control request; return a reason to end, if it was ``down``."""
        action = message["action"]
        arguments = message.get("arguments") or {}
        self.idle_since = None  # somebody is using it
        if action == "down":
            self.inbox.answer(message, True, "ending")
            return "asked to end (a down request: NamedCluster.down())"
        running = self.deployment.running
        cluster = running.cluster if running is not None else None
        if cluster is None or not running.scalable:
            self.inbox.answer(
                message,
                False,
                f"Deployment {self.name!r} ({self.deployment.backend}, "
                f"{self.deployment.shape()}) has a fixed set of workers: it cannot {action}.",
            )
            return None
        try:
            self._check_scale(action, arguments)
            if action == "scale":
                accepted = inspect.signature(cluster.scale).parameters
                given = {k: v for k, v in arguments.items() if v and k in accepted}
                cluster.scale(**given) if given else cluster.scale(0)
                text = "scaling to " + (", ".join(f"{k}={v}" for k, v in given.items()) or "n=0")
            else:
                cluster.adapt(
                    minimum=int(arguments.get("minimum", 0)),
                    maximum=int(arguments["maximum"]),
                )
                text = f"adapting between {arguments.get('minimum', 0)} and {arguments['maximum']}"
        except Exception as exc:
            self.inbox.answer(message, False, f"{action} failed: {type(exc).__name__}: {exc}")
            return None
        logger.info("%s: %s", self.name, text)
        self.inbox.answer(message, True, text)
        return None


def _asked_workers(action: str, arguments: dict[str, Any]) -> int | None:
    """The most workers a scale or adapt request asks for, when it names a number."""
    if action == "adapt":
        return int(arguments["maximum"])
    return int(arguments["n"]) if arguments.get("n") else None


def _already_named(name: str, own_id: str) -> str | None:
    """The id of another live deployment already called ``name``, if any."""
    for other in list_named():
        if other.name == name and other.id != own_id and other.state != "gone":
            return other.id
    return None


def main(argv: list[str] | None = None) -> int:
    """Start the deployment the spec describes and serve it; the exit status says how."""
    arguments = sys.argv[1:] if argv is None else argv
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    # The scheduler logs every run_on_scheduler call (one per status look) at INFO.
    logging.getLogger("distributed.worker").setLevel(logging.WARNING)
    spec_path = Path(arguments[0])
    spec = json.loads(spec_path.read_text())
    spec_path.unlink()
    name = spec["name"]

    from ..api import plan_from

    deployment_plan = plan_from(
        spec["backend"], spec.get("profile"), spec["options"], "daskdeploy up"
    )
    logger.info("starting %s on %s", name, deployment_plan.backend.name)
    client = deployment_plan.start(name=name, deployment_id=spec.get("deployment_id"))
    reason = "it failed"
    supervisor: Supervisor | None = None
    try:
        clash = _already_named(name, client.deployment.id)
        if clash:
            reason = f"another deployment named {name!r} ({clash}) started first"
            return 1
        supervisor = Supervisor(
            name,
            client,
            spec.get("idle_timeout"),
            deployment_plan.backend.time_limit(deployment_plan.options),
        )
        supervisor.in_job = bool(spec.get("scheduler_in_job"))
        reason = supervisor.serve()
        return 0
    except SystemExit as exc:  # SIGTERM/SIGHUP (lifecycle) or a second up's clash
        number = exc.code - 128 if isinstance(exc.code, int) else 0
        reason = (
            f"{signal.Signals(number).name} received (`daskdeploy down` and `cleanup` send SIGTERM)"
            if number in set(signal.Signals)
            else "exit"
        )
        raise
    finally:
        logger.info("ending %s: %s", name, reason)
        if supervisor is not None:
            with contextlib.suppress(Exception):
                supervisor.publish(ENDING, reason)
        client.close()
        logger.info("%s ended; nothing is left running", name)


if __name__ == "__main__":
    sys.exit(main())

"""Asking a named deployment's supervisor to act: scale, adapt, end.

Requests travel through the deployment's own scheduler as Dask events (topic
``daskdeploy-control``), so they need the deployment's TLS credentials like any other
client and no further port is opened. The supervisor answers on
``daskdeploy-control-reply`` with the request's token.
"""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import DeploymentError

__all__ = ["ACTIONS", "Inbox", "request"]

TOPIC = "daskdeploy-control"
REPLY_TOPIC = "daskdeploy-control-reply"
#: What a supervisor can be asked to do.
ACTIONS = ("scale", "adapt", "down")


def request(
    log_event: Callable[[str, Any], Any],
    get_events: Callable[[str], Any],
    action: str,
    timeout: float = 60.0,
    **arguments: Any,
) -> str:
    """Ask the supervisor of a deployment to act; return its answer.

    ``log_event(topic, message)`` and ``get_events(topic)`` reach the deployment's
    scheduler: a connected Client's methods of those names, or a cluster's scheduler rpc.

    Raises
    ------
    DeploymentError
        The supervisor refused (the message says why) or did not answer in time.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    token = uuid.uuid4().hex
    log_event(TOPIC, {"token": token, "action": action, "arguments": arguments})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, reply in get_events(REPLY_TOPIC):
            if isinstance(reply, dict) and reply.get("token") == token:
                if reply.get("ok"):
                    return str(reply.get("text", "done"))
                raise DeploymentError(str(reply.get("text", "the supervisor refused")))
        time.sleep(0.05)
    raise DeploymentError(
        f"The deployment's supervisor did not answer the {action!r} request within "
        f"{timeout:g} s: see its log (`daskdeploy logs NAME`)."
    )


class Inbox:
    """The supervisor's end: requests arrive on the client's event loop, queue up here."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        client.subscribe_topic(TOPIC, self._arrived)

    def _arrived(self, event: Any) -> None:
        _, message = event
        if isinstance(message, dict) and message.get("action") in ACTIONS:
            self._queue.put(message)

    def get(self, timeout: float) -> dict[str, Any] | None:
        """The next request, or ``None`` after ``timeout`` seconds without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def answer(self, message: dict[str, Any], ok: bool, text: str) -> None:
        """Send the outcome of ``message`` back to whoever asked."""
        self.client.log_event(REPLY_TOPIC, {"token": message.get("token"), "ok": ok, "text": text})

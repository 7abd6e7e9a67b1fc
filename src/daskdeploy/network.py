"""Choosing the address a scheduler listens on so that its workers can reach it."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

__all__ = ["LOOPBACK", "address_facing", "is_loopback"]

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or a name) is this machine's loopback."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def address_facing(hosts: Sequence[str]) -> str:
    """This machine's address on the route to ``hosts`` (loopback when they all are).

    Falls back to the address of the default route when ``hosts`` is empty.
    """
    from distributed.utils import get_ip

    if hosts and all(is_loopback(host) for host in hosts):
        return LOOPBACK
    return get_ip(hosts[0]) if hosts else get_ip()

"""Loopback networking helpers shared by the local process groups and the local Ray head."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port that was free a moment ago on loopback (the rendezvous port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


__all__ = ["free_port"]

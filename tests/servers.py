"""Plumbing shared by the test servers (git daemon, HTTP git, docker-registry)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable

from buildwright_localcluster.wait import wait_until


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (a server may still race for it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_ready(
    process: subprocess.Popen[bytes], answers: Callable[[], bool], timeout: float, what: str
) -> bool:
    """Poll `answers` until it is true; False when the process exits or time runs out."""
    try:
        state = wait_until(
            lambda: "exited" if process.poll() is not None else answers(),
            timeout=timeout,
            description=f"{what} answering",
            retry_on=(),
        )
    except TimeoutError:
        return False
    return state is True

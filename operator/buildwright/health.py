"""Whether the operator is ready: a small registry of named readiness checks.

`/readyz` answers 200 only while every check is ready. A part of the operator that needs
something before it can do its job (the first list of a watch, a permission it lacks)
marks itself not ready under a key of its own with the reason, and ready again once that
passed; `/readyz` prints the reasons, so `kubectl describe pod` tells what is missing.

    health.set_not_ready("watch/pods", "listing build Pods")
    ...
    health.set_ready("watch/pods")

The registry is process-wide and holds no I/O; `/healthz` (alive) does not consult it.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_not_ready: dict[str, str] = {}


def set_not_ready(key: str, reason: str) -> None:
    """Report `key` as not ready, because of `reason` (replaces an earlier reason)."""
    with _lock:
        _not_ready[key] = reason


def set_ready(key: str) -> None:
    """Report `key` as ready (nothing to do when it was)."""
    with _lock:
        _not_ready.pop(key, None)


def not_ready() -> dict[str, str]:
    """Every check that is not ready, with its reason."""
    with _lock:
        return dict(_not_ready)


def is_ready() -> bool:
    with _lock:
        return not _not_ready


def reset() -> None:
    """Forget every check (tests)."""
    with _lock:
        _not_ready.clear()

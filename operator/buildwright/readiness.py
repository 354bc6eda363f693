"""Whether the operator sees everything it needs to: the watches that currently fail.

A list or watch the apiserver refuses (403: a permission is missing) does not stop the
operator: the watch concerned keeps retrying with a growing pause, everything else goes on,
and the operator reports itself not ready until the permission is granted. The refusal is
logged once, with the permission that is missing, not on every retry.

`/readyz` answers from `ready()` and can show `failing()`; nothing here does I/O.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("buildwright")

# watch (e.g. "list secrets in all namespaces") → why it fails
_failing: dict[str, str] = {}


def watch_failed(watch: str, reason: str) -> None:
    """`watch` cannot list or watch; logged the first time only."""
    if watch not in _failing:
        logger.error("cannot %s: %s; not ready until this is granted (retrying)", watch, reason)
    _failing[watch] = reason


def watch_recovered(watch: str) -> None:
    """`watch` works (again)."""
    if _failing.pop(watch, None) is not None:
        logger.info("can %s again; ready", watch)


def ready() -> bool:
    """True when no watch fails."""
    return not _failing


def failing() -> dict[str, str]:
    """The failing watches and why, for a readiness endpoint to show."""
    return dict(_failing)


def reset() -> None:
    """Forget every failure (a fresh start; tests)."""
    _failing.clear()

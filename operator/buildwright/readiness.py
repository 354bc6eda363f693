"""Whether the operator sees everything it needs to: the watches that currently fail.

A list or watch the apiserver refuses (403: a permission is missing) does not stop the
operator: the watch concerned keeps retrying with a growing pause, everything else goes on,
and the operator reports itself not ready until the permission is granted. The refusal is
logged once, with the permission that is missing, not on every retry.

The failures are checks of `health`, the one registry `/readyz` answers from, under keys
`permission: <watch>`; nothing here does I/O.
"""

from __future__ import annotations

import logging

from buildwright import health

logger = logging.getLogger("buildwright")

_PREFIX = "permission: "


def watch_failed(watch: str, reason: str) -> None:
    """`watch` cannot list or watch; logged the first time only."""
    if watch not in failing():
        logger.error("cannot %s: %s; not ready until this is granted (retrying)", watch, reason)
    health.set_not_ready(_PREFIX + watch, reason)


def watch_recovered(watch: str) -> None:
    """`watch` works (again)."""
    if watch in failing():
        health.set_ready(_PREFIX + watch)
        logger.info("can %s again; ready", watch)


def ready() -> bool:
    """True when no watch fails."""
    return not failing()


def failing() -> dict[str, str]:
    """The failing watches (e.g. "list secrets in all namespaces") and why."""
    return {
        key.removeprefix(_PREFIX): reason
        for key, reason in health.not_ready().items()
        if key.startswith(_PREFIX)
    }


def reset() -> None:
    """Forget every failure (a fresh start; tests)."""
    for watch in failing():
        health.set_ready(_PREFIX + watch)

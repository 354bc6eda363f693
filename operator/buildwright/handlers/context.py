"""The operator's process-wide state, created at start-up and shared by the handlers."""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from buildwright.core import cached
from buildwright.core.validation import ProbePolicy
from buildwright.kube import Kube
from buildwright.state import Dependents, Key, Scheduler, Store

DEFAULT_STEP_IMAGE = "ghcr.io/buildwright/buildwright:0.1.0"
DEFAULT_STATUS_COALESCE_SECONDS = 1.0


@dataclass(frozen=True)
class UnwrittenStart:
    """A Pod created for a BuildRun whose status does not name it yet (its first status write
    is waiting to be coalesced): later events follow the Pod instead of starting again."""

    uid: str
    pod_name: str
    snapshot: dict[str, Any]


@dataclass
class Config:
    """Settings read from the environment (the Deployment sets them)."""

    step_image: str = DEFAULT_STEP_IMAGE
    """Image of our in-Pod step programs (git source, image processing, results)."""

    forbidden_env: tuple[str, ...] | None = None
    """Override of the forbidden environment variable names (`*` suffix = prefix)."""

    status_coalesce_seconds: float = DEFAULT_STATUS_COALESCE_SECONDS
    """How long in-progress status changes of a BuildRun may wait to be written together
    (`core.status.write_deadline`); 0 writes every change at once."""

    extra_volume_sources: frozenset[str] = frozenset()
    """Volume sources Builds and BuildRuns may use in overrides besides the ones the Pod
    Security Standard "restricted" allows (e.g. `hostPath`): trusted clusters only."""

    repository_probe: ProbePolicy = field(default_factory=ProbePolicy)
    """Whether and which repositories `build.shipwright.io/verify.repository` may probe:
    BUILDWRIGHT_REPOSITORY_PROBE=off turns it off, BUILDWRIGHT_REPOSITORY_PROBE_HOSTS (comma
    separated) limits it to those hosts."""

    @classmethod
    def from_env(cls) -> Config:
        forbidden = os.environ.get("FORBIDDEN_ENV_VAR_NAMES")
        coalesce = os.environ.get("BUILDWRIGHT_STATUS_COALESCE_SECONDS", "")
        try:
            coalesce_seconds = float(coalesce) if coalesce else DEFAULT_STATUS_COALESCE_SECONDS
        except ValueError:
            raise ValueError(
                f"BUILDWRIGHT_STATUS_COALESCE_SECONDS={coalesce!r} is not a number of seconds"
            ) from None
        if coalesce_seconds < 0:
            raise ValueError("BUILDWRIGHT_STATUS_COALESCE_SECONDS must not be negative")
        extra_sources = os.environ.get("BUILDWRIGHT_EXTRA_VOLUME_SOURCES", "").split(",")
        probe = os.environ.get("BUILDWRIGHT_REPOSITORY_PROBE", "on").strip().lower()
        if probe not in ("on", "off"):
            raise ValueError(f"BUILDWRIGHT_REPOSITORY_PROBE={probe!r} must be on or off")
        hosts = os.environ.get("BUILDWRIGHT_REPOSITORY_PROBE_HOSTS", "").split(",")
        allowed = frozenset(h.strip().lower() for h in hosts if h.strip())
        return cls(
            repository_probe=ProbePolicy(enabled=probe == "on", allowed_hosts=allowed or None),
            extra_volume_sources=frozenset(n.strip() for n in extra_sources if n.strip()),
            step_image=os.environ.get("BUILDWRIGHT_STEP_IMAGE", DEFAULT_STEP_IMAGE),
            status_coalesce_seconds=coalesce_seconds,
            forbidden_env=tuple(n.strip() for n in forbidden.split(",") if n.strip())
            if forbidden
            else None,
        )


@dataclass
class Context:
    """Everything the handlers share: the API client, what was seen, and the timers."""

    kube: Kube
    config: Config
    builds: Store = field(default_factory=lambda: Store(cached.without_bookkeeping))
    buildruns: Store = field(default_factory=lambda: Store(cached.without_bookkeeping))
    strategies: Store = field(default_factory=lambda: Store(cached.without_bookkeeping))
    cluster_strategies: Store = field(default_factory=lambda: Store(cached.without_bookkeeping))
    pods: Store = field(default_factory=lambda: Store(cached.build_pod_for_status))
    # Secrets as the metadata watch delivers them (never their data), reduced to their name;
    # those of type kubernetes.io/dockerconfigjson again apart (a watch selects them by type).
    secrets: Store = field(default_factory=lambda: Store(cached.secret_summary))
    docker_secrets: Store = field(default_factory=lambda: Store(cached.secret_summary))
    # ServiceAccounts are not watched (no list/watch permission); lookups are reused briefly.
    accounts: dict[Key, tuple[float, dict[str, Any] | None]] = field(default_factory=dict)
    # Secret (ns, name) → Builds referencing it; Build/strategy → BuildRuns waiting on it.
    secret_dependents: Dependents = field(default_factory=Dependents)
    strategy_dependents: Dependents = field(default_factory=Dependents)
    build_waiters: Dependents = field(default_factory=Dependents)
    scheduler: Scheduler = field(default_factory=Scheduler)
    # BuildRun → when its pending in-progress status change is to be written. Not read from
    # the scheduler: its entry is gone by the time the callback runs, and that run must see
    # the deadline as passed, not start a new window.
    status_due: dict[Key, datetime] = field(default_factory=dict)
    # Set at start-up (main.py): build Pods watched outside kopf, and the BuildRuns they wake.
    pod_informer: Any = None
    secret_informers: list[Any] = field(default_factory=list)
    reconcile_queue: Any = None
    unwritten_starts: dict[Key, UnwrittenStart] = field(default_factory=dict)
    # (object, purpose) → transient failures in a row, for the backoff of `common.retry_later`.
    retry_attempts: dict[tuple[Key, str], int] = field(default_factory=dict)
    # uids of the finished BuildRuns whose end-of-run Event this process knows to exist.
    announced: set[str] = field(default_factory=set)
    # Whether this replica reconciles (leader election; always without it).
    leading: Callable[[], bool] = lambda: True
    elector: Any = None
    _locks: defaultdict[Key, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )

    def lock(self, key: Key) -> asyncio.Lock:
        """Serialises reconciles of one BuildRun across its own and its Pod's events."""
        return self._locks[key]

    def forget_lock(self, key: Key) -> None:
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]


_current: Context | None = None


def install(context: Context) -> None:
    global _current
    _current = context


def current() -> Context:
    if _current is None:
        raise RuntimeError("the operator context is not initialised (startup did not run)")
    return _current

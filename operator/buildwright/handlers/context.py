"""The operator's process-wide state, created at start-up and shared by the handlers."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from buildwright.config import ReconcileConfig
from buildwright.core import cached
from buildwright.informer import BuildRunInformer, KeyQueue, PodInformer, SecretInformer
from buildwright.kube import Kube
from buildwright.leader import Elector
from buildwright.state import Dependents, Key, Scheduler, Store


@dataclass(frozen=True)
class UnwrittenStart:
    """A Pod created for a BuildRun whose status does not name it yet (its first status write
    is waiting to be coalesced): later events follow the Pod instead of starting again."""

    uid: str
    pod_name: str
    snapshot: dict[str, Any]


@dataclass
class Context:
    """Everything the handlers share: the API client, what was seen, and the timers."""

    kube: Kube
    config: ReconcileConfig
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
    # Set at start-up (main.py): BuildRuns and build Pods watched outside kopf.
    pod_informer: PodInformer | None = None
    buildrun_informer: BuildRunInformer | None = None
    secret_informers: list[SecretInformer] = field(default_factory=list)
    reconcile_queue: KeyQueue | None = None
    unwritten_starts: dict[Key, UnwrittenStart] = field(default_factory=dict)
    # (object, purpose) → transient failures in a row, for the backoff of `common.retry_later`.
    retry_attempts: dict[tuple[Key, str], int] = field(default_factory=dict)
    # uids of the finished BuildRuns whose end-of-run Event this process knows to exist.
    announced: set[str] = field(default_factory=set)
    # Whether this replica reconciles (leader election; always without it).
    leading: Callable[[], bool] = lambda: True
    elector: Elector | None = None
    _locks: defaultdict[Key, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )

    def lock(self, key: Key) -> asyncio.Lock:
        """Serialises reconciles of one BuildRun across its own and its Pod's events."""
        return self._locks[key]

    def busy(self, key: Key) -> bool:
        """Whether a reconcile of this BuildRun holds its lock now."""
        lock = self._locks.get(key)
        return lock is not None and lock.locked()

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

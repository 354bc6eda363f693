"""What the operator remembers between events: the objects it has seen, and its timers.

kopf hands every watch event to a handler; the handlers keep the latest body of each object
here so that a reconcile reads Builds, strategies and BuildRuns from memory instead of the API.
A miss is never trusted as "does not exist": the shell confirms it with a GET, because at
start-up one watch may deliver its objects before another has listed everything.

The deadline scheduler replaces per-object kopf timers (one asyncio task per object is too
expensive with thousands of BuildRuns): one task sleeps until the earliest deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
Body = dict[str, Any]


class Store:
    """The latest body of each object of one kind.

    Bodies are kept as compact JSON and decoded on each `get` (a fresh dict every time, ~10 µs
    for a BuildRun). Kept as Python dicts, their small pieces would sit in the same memory
    pages as the rest of the watch events they came from; after a burst those pages stay
    pinned by a few survivors each, and the process keeps the burst's size. 5,000 BuildRuns
    with their Pods: 97 MB as dicts, 19 MB as JSON (bench/README.md).
    """

    def __init__(self, keep: Callable[[Body], Body] | None = None) -> None:
        # key → (uid, resourceVersion, JSON of the kept body)
        self._objects: dict[Key, tuple[Any, Any, bytes]] = {}
        # What to keep of each body (see core.cached): memory per object, not behaviour.
        self._keep = keep

    def put(self, body: Body) -> bool:
        """Keep `body` unless this or a newer version of the object is already stored. True
        when what is kept of it changed: a new object, or a change to the parts `keep`
        keeps; False for a version seen before and for a change to nothing kept (a build
        Pod's binding to its node), which no decision reads.

        Our own writes store their answers at once; the watch delivers the same versions
        later, and an older one must not replace a newer one (a reconcile would then act on
        a stale status: start a second time, rewrite a condition, post an Event twice).
        """
        meta = body.get("metadata", {})
        key = (meta.get("namespace", ""), meta["name"])
        stored = self._objects.get(key)
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        if stored is not None and _not_newer(uid, version, stored[0], stored[1]):
            return False
        kept = self._keep(body) if self._keep is not None else body
        # The version is kept apart and keys in order: the JSON then says whether anything
        # else changed, whichever way the body came (a list, a watch event, a write's answer).
        kept_meta = {k: v for k, v in (kept.get("metadata") or {}).items() if k != _VERSION}
        content = orjson.dumps({**kept, "metadata": kept_meta}, option=orjson.OPT_SORT_KEYS)
        self._objects[key] = (uid, version, content)
        return stored is None or stored[0] != uid or stored[2] != content

    def drop(self, namespace: str, name: str) -> None:
        self._objects.pop((namespace, name), None)

    def get(self, namespace: str, name: str) -> Body | None:
        stored = self._objects.get((namespace, name))
        return None if stored is None else _decode(stored)

    def stored_keys(self) -> list[Key]:
        return list(self._objects)

    def in_namespace(self, namespace: str) -> list[Body]:
        return [_decode(stored) for (ns, _), stored in self._objects.items() if ns == namespace]

    def __len__(self) -> int:
        return len(self._objects)


_VERSION = "resourceVersion"


def _decode(stored: tuple[Any, Any, bytes]) -> Body:
    body: Body = orjson.loads(stored[2])
    if stored[1] is not None:
        body["metadata"][_VERSION] = stored[1]
    return body


def _not_newer(uid: Any, version: Any, stored_uid: Any, stored_version: Any) -> bool:
    """Whether (uid, version) is the stored version of the object or an older one.

    resourceVersions are opaque to clients, but the apiserver's are etcd revisions: integers
    that grow. Anything else (or a different uid: a re-created object) counts as newer.
    """
    if uid != stored_uid:
        return False
    if version == stored_version and version:
        return True
    if not (isinstance(version, str) and isinstance(stored_version, str)):
        return False
    if not (version.isdigit() and stored_version.isdigit()):
        return False
    return int(version) < int(stored_version)


class Dependents:
    """Which objects wait on which: e.g. Secret (ns, name) → Builds that reference it."""

    def __init__(self) -> None:
        self._by_target: defaultdict[Key, set[Key]] = defaultdict(set)
        self._by_dependent: defaultdict[Key, set[Key]] = defaultdict(set)

    def link(self, dependent: Key, targets: set[Key]) -> None:
        for target in self._by_dependent.pop(dependent, set()) - targets:
            self._by_target[target].discard(dependent)
        for target in targets:
            self._by_target[target].add(dependent)
        if targets:
            self._by_dependent[dependent] = set(targets)

    def forget(self, dependent: Key) -> None:
        self.link(dependent, set())

    def of(self, target: Key) -> set[Key]:
        return set(self._by_target.get(target, ()))


Callback = Callable[[], Awaitable[None]]


class Scheduler:
    """Runs callbacks at deadlines; one pending deadline per key (the earliest wins)."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, Key, str]] = []
        self._pending: dict[tuple[Key, str], tuple[datetime, Callback]] = {}
        self._counter = itertools.count()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()  # strong refs until each call ends

    def at(self, key: Key, purpose: str, when: datetime, callback: Callback) -> None:
        """Call `callback` at `when` unless an earlier deadline for (key, purpose) exists."""
        current = self._pending.get((key, purpose))
        if current is not None and current[0] <= when:
            return
        self._pending[(key, purpose)] = (when, callback)
        heapq.heappush(self._heap, (when, next(self._counter), key, purpose))
        self._wakeup.set()

    def is_pending(self, key: Key, purpose: str) -> bool:
        """Whether a timer of (key, purpose) is set and has not fired yet."""
        return (key, purpose) in self._pending

    def cancel(self, key: Key, purpose: str) -> None:
        self._pending.pop((key, purpose), None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="buildwright-scheduler")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            now = datetime.now(UTC)
            while self._heap and self._heap[0][0] <= now:
                when, _, key, purpose = heapq.heappop(self._heap)
                pending = self._pending.get((key, purpose))
                if pending is None or pending[0] != when:
                    continue  # cancelled or superseded by an earlier deadline
                del self._pending[(key, purpose)]
                task = asyncio.create_task(self._call(pending[1], key, purpose))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            delay = (self._heap[0][0] - now).total_seconds() if self._heap else 3600.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=max(delay, 0.0))

    @staticmethod
    async def _call(callback: Callback, key: Key, purpose: str) -> None:
        try:
            await callback()
        except Exception:
            logger.exception("scheduled %s of %s/%s failed", purpose, *key)

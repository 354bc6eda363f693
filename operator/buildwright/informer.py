"""The build Pods, listed and watched without kopf, and the BuildRuns they wake up.

A build Pod changes about eight times in its life (scheduled, each container started and
finished) and each change arrives as the whole 16 KB object. Through kopf, every one of those
events became a decoded body held in a per-object queue, a handler run and a reconcile of its
BuildRun; under a burst the queued bodies took much of the operator's memory and kopf's
machinery much of its CPU (moving Pods here: burst-500 peak RSS 307 -> 120 MB, steady-10
CPU per BuildRun 26 -> 17 ms, one run each).

Here each event is reduced at once to what the status decision reads (`core.cached`), stored,
and its BuildRun is put on a queue of keys: a BuildRun already waiting there is not queued
again, so a burst of changes to one Pod costs one reconcile, which reads the newest Pod. It is
the informer and work queue of Kubernetes controllers, for one kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from buildwright import health, kube, metrics
from buildwright.core import pod, status
from buildwright.state import Key, Store

logger = logging.getLogger("buildwright")

# The labels core.pod puts on every build Pod.
MANAGED_BY_SELECTOR = f"{pod.LABEL_MANAGED_BY}={pod.MANAGED_BY}"
LIST_PAGE_SIZE = 500
WATCH_SECONDS = 300
RETRY_SECONDS = 1.0


class KeyQueue:
    """BuildRun keys waiting for a reconcile, each at most once, served by a few workers.

    A key is taken off the pending set *before* its handler runs: a change that arrives while
    it runs queues it again, and the next run sees that change. Urgent keys (a Pod that
    finished or went) are served before the others: under a burst, hundreds of in-progress
    changes wait, and the end of a run should not wait behind them.
    """

    def __init__(self, handler: Callable[[str, str], Awaitable[None]], workers: int) -> None:
        self._handler = handler
        self._workers = workers
        self._pending: set[Key] = set()
        self._urgent_pending: set[Key] = set()
        self._urgent: deque[Key] = deque()
        self._normal: deque[Key] = deque()
        self._ready = asyncio.Semaphore(0)
        self._tasks: list[asyncio.Task[None]] = []
        self._added: dict[Key, float] = {}  # when each pending key was queued (monotonic)
        metrics.current().queue_depth.set_function(lambda: len(self._pending))

    def add(self, key: Key, *, urgent: bool = False) -> None:
        if key in self._urgent_pending or (key in self._pending and not urgent):
            return
        self._pending.add(key)
        self._added.setdefault(key, time.monotonic())
        if urgent:
            # A key already waiting in the normal lane gets a second, earlier entry; the
            # later one finds it no longer pending and is skipped.
            self._urgent_pending.add(key)
            self._urgent.append(key)
        else:
            self._normal.append(key)
        self._ready.release()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._serve(), name=f"buildwright-reconcile-{i}")
            for i in range(self._workers)
        ]

    async def stop(self) -> None:
        await _cancel(self._tasks)
        self._tasks = []

    async def _serve(self) -> None:
        while True:
            await self._ready.acquire()
            key = self._urgent.popleft() if self._urgent else self._normal.popleft()
            if key not in self._pending:
                continue  # the second entry of a key served from the urgent lane
            self._pending.discard(key)
            self._urgent_pending.discard(key)
            added = self._added.pop(key, None)
            if added is not None:
                metrics.current().queue_wait.observe(time.monotonic() - added)
            try:
                await self._handler(*key)
            except Exception:
                logger.exception("reconcile of BuildRun %s/%s failed", *key)


class PodInformer:
    """Keeps `store` in step with the build Pods of `namespaces` (all when empty) and calls
    `changed((namespace, buildrun_name), urgent=...)` for the BuildRun of every Pod that
    changed or went; urgent when the Pod finished, is being deleted or is gone."""

    def __init__(
        self,
        client: kube.Kube,
        store: Store,
        changed: Callable[..., None],
        namespaces: list[str] | None = None,
    ) -> None:
        self._kube = client
        self._store = store
        self._changed = changed
        self._namespaces: list[str | None] = list(namespaces) if namespaces else [None]
        self._tasks: list[asyncio.Task[None]] = []

    def _health_key(self, namespace: str | None) -> str:
        return f"watch/pods/{namespace or '*'}"

    def start(self) -> None:
        for namespace in self._namespaces:
            health.set_not_ready(self._health_key(namespace), "build Pods not listed yet")
        self._tasks = [
            asyncio.create_task(self._run(namespace), name=f"buildwright-pods-{namespace or '*'}")
            for namespace in self._namespaces
        ]

    async def stop(self) -> None:
        await _cancel(self._tasks)
        self._tasks = []

    async def _run(self, namespace: str | None) -> None:
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._relist(namespace)
                    health.set_ready(self._health_key(namespace))
                version = await self._watch(namespace, version)
            except asyncio.CancelledError:
                raise
            except _Expired:
                metrics.current().watch_restarts.labels("pods", "expired").inc()
                logger.info("build Pod watch expired; listing them again")
                version = None
            except Exception as error:  # the API is away or the connection broke: try again
                metrics.current().watch_restarts.labels("pods", "error").inc()
                logger.warning("watching build Pods: %s; retrying in %ss", error, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)

    async def _relist(self, namespace: str | None) -> str:
        """Store every build Pod; forget the ones gone meanwhile. Returns the list's version."""
        seen: set[Key] = set()
        version = ""
        params = {"labelSelector": MANAGED_BY_SELECTOR, "limit": str(LIST_PAGE_SIZE)}
        while True:
            page = await self._kube.list_page(kube.PODS, namespace, params)
            for item in page.get("items") or []:
                meta = item.get("metadata") or {}
                seen.add((meta.get("namespace", ""), meta.get("name", "")))
                self._observe("ADDED", item)
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion", ""))
            token = meta.get("continue")
            if not token:
                break
            params = {**params, "continue": token}
        for key in self._store.stored_keys():
            if key not in seen and (namespace is None or key[0] == namespace):
                gone = self._store.get(*key)
                self._store.drop(*key)
                if gone is not None:
                    self._notify(gone, gone=True)
        return version

    async def _watch(self, namespace: str | None, version: str) -> str:
        params = {
            "labelSelector": MANAGED_BY_SELECTOR,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": version,
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        async for event in self._kube.watch(kube.PODS, namespace, params):
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise _Expired
                raise kube.ApiError(int(obj.get("code") or 500), obj.get("reason", ""),
                                    obj.get("message", ""))  # fmt: skip
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._observe(kind, obj)
        return version

    def _observe(self, kind: str, build_pod: dict[str, Any]) -> None:
        meta = build_pod.get("metadata") or {}
        if kind == "DELETED":
            self._store.drop(meta.get("namespace", ""), meta.get("name", ""))
        else:
            self._store.put(build_pod)
        self._notify(build_pod, gone=kind == "DELETED")

    def _notify(self, build_pod: dict[str, Any], *, gone: bool = False) -> None:
        meta = build_pod.get("metadata") or {}
        buildrun = (meta.get("labels") or {}).get(pod.LABEL_BUILDRUN_NAME)
        if buildrun:
            urgent = gone or status.pod_ending(build_pod)
            self._changed((meta.get("namespace", ""), buildrun), urgent=urgent)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""

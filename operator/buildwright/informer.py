"""Build Pods and Secrets, listed and watched without kopf, and what they wake up.

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

Secrets are listed and watched as metadata only (`PartialObjectMetadata`): the operator
needs to know that a referenced Secret exists (and whether it is a docker config, which a
second watch selects by type), never what it holds, so their data never enters its memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from buildwright import health, kube, metrics, readiness
from buildwright.core import contract, podview
from buildwright.state import Key, Store

logger = logging.getLogger("buildwright")

# The labels core.pod puts on every build Pod.
MANAGED_BY_SELECTOR = f"{contract.LABEL_MANAGED_BY}={contract.MANAGED_BY}"
LIST_PAGE_SIZE = 500
WATCH_SECONDS = 300
# After a failed list or watch: 1 s, then twice as long each time in a row, up to 30 s.
RETRY_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


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


class Informer:
    """Keeps a list of one kind up to date in each of `namespaces` (all when empty): lists
    in pages, then watches from the list's version, lists again when the watch expires.

    A refused list or watch (403: a permission is missing) does not end anything: it marks
    the operator not ready (`buildwright.readiness`, logged once with the missing
    permission), and is tried again with a growing pause until the permission is granted.
    Subclasses say what an object's arrival or departure means (`_observe`, `_gone`).
    """

    resource: kube.Resource
    what: str  # how the log names the objects ("build Pods")
    # The objects' kind: items of a list do not say it, watch events and write answers do.
    # Listed objects get it, so that a body reads the same however it arrived (an Event's
    # involvedObject names it) and the first watch event of an unchanged object is no change.
    kind = ""
    metadata_only = False

    def __init__(
        self, client: kube.Kube, store: Store, params: dict[str, str],
        namespaces: list[str] | None = None,
    ) -> None:  # fmt: skip
        self._kube = client
        self._store = store
        self._params = params
        self._namespaces: list[str | None] = list(namespaces) if namespaces else [None]
        self._tasks: list[asyncio.Task[None]] = []

    def _health_key(self, namespace: str | None) -> str:
        return f"watch/{self.resource.plural}/{namespace or '*'}"

    def start(self) -> None:
        for namespace in self._namespaces:
            health.set_not_ready(self._health_key(namespace), f"{self.what} not listed yet")
        self._tasks = [
            asyncio.create_task(
                self._run(namespace), name=f"buildwright-{self.resource.plural}-{namespace or '*'}"
            )
            for namespace in self._namespaces
        ]

    async def stop(self) -> None:
        await _cancel(self._tasks)
        self._tasks = []

    def _permission(self, verb: str, namespace: str | None) -> str:
        where = f"in namespace {namespace}" if namespace else "in all namespaces"
        group = self.resource.group_version.rpartition("/")[0]
        kind = f"{self.resource.plural}.{group}" if group else self.resource.plural
        return f"{verb} {kind} {where}"

    async def _run(self, namespace: str | None) -> None:
        version: str | None = None
        delay = RETRY_SECONDS
        refused = False  # a refusal that will not change by itself is logged once
        while True:
            verb = "list" if version is None else "watch"
            try:
                if version is None:
                    version = await self._relist(namespace)
                    readiness.watch_recovered(self._permission("list", namespace))
                    health.set_ready(self._health_key(namespace))
                    delay, refused = RETRY_SECONDS, False
                version = await self._watch(namespace, version)
                delay = RETRY_SECONDS  # the server ended a healthy watch
            except asyncio.CancelledError:
                raise
            except _Expired:
                metrics.current().watch_restarts.labels(self.resource.plural, "expired").inc()
                logger.info("%s watch expired; listing them again", self.what)
                version = None
            except Exception as error:
                metrics.current().watch_restarts.labels(self.resource.plural, "error").inc()
                if isinstance(error, kube.ApiError) and error.status == 403:
                    # Missing RBAC: said once, the operator is not ready until it is granted.
                    readiness.watch_failed(self._permission(verb, namespace), error.message)
                elif kube.is_transient(error) or not isinstance(error, kube.ApiError):
                    # The API is away or the connection broke: try again.
                    logger.warning("watching %s: %s; retrying in %.0fs", self.what, error, delay)
                elif not refused:
                    refused = True
                    logger.error(
                        "watching %s in %s: the API server refused: %s; this is retried, but"
                        " will not change by itself", self.what,
                        namespace or "all namespaces", error,
                    )  # fmt: skip
                # The watch resumes from its last version; failures in a row wait longer.
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_SECONDS, delay * 2)

    async def _relist(self, namespace: str | None) -> str:
        """Store every object; forget the ones gone meanwhile. Returns the list's version."""
        seen: set[Key] = set()
        version = ""
        params = {**self._params, "limit": str(LIST_PAGE_SIZE)}
        while True:
            page = await self._kube.list_page(
                self.resource, namespace, params, metadata_only=self.metadata_only, informer=True
            )
            for item in page.get("items") or []:
                if self.kind:
                    item.setdefault("apiVersion", self.resource.group_version)
                    item.setdefault("kind", self.kind)
                meta = item.get("metadata") or {}
                seen.add((meta.get("namespace", ""), meta.get("name", "")))
                await self._observe("ADDED", item)
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
                    await self._gone(gone)
        return version

    async def _watch(self, namespace: str | None, version: str) -> str:
        params = {
            **self._params,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": version,
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        async for event in self._kube.watch(
            self.resource, namespace, params, metadata_only=self.metadata_only
        ):
            kind = event.get("type")
            if kind == kube.OPENED:
                readiness.watch_recovered(self._permission("watch", namespace))
                continue
            obj = event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise _Expired
                raise kube.ApiError(int(obj.get("code") or 500), obj.get("reason", ""),
                                    obj.get("message", ""))  # fmt: skip
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                await self._observe(kind, obj)
        return version

    async def _observe(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if kind == "DELETED":
            self._store.drop(meta.get("namespace", ""), meta.get("name", ""))
            await self._gone(obj)
        elif self._store.put(obj):
            await self._changed_object(obj)

    async def _changed_object(self, obj: dict[str, Any]) -> None:
        """`obj` was added or changed (it is stored already). Not called for a version the
        store holds already: the answer of the operator's own write, seen again on the watch,
        or an unchanged object listed again."""

    async def _gone(self, obj: dict[str, Any]) -> None:
        """`obj` was deleted (it is no longer stored)."""


class PodInformer(Informer):
    """Keeps `store` in step with the build Pods of `namespaces` (all when empty) and calls
    `changed((namespace, buildrun_name), urgent=...)` for the BuildRun of every Pod that
    changed or went; urgent when the Pod finished, is being deleted or is gone."""

    resource = kube.PODS
    what = "build Pods"
    kind = "Pod"

    def __init__(
        self,
        client: kube.Kube,
        store: Store,
        changed: Callable[..., None],
        namespaces: list[str] | None = None,
    ) -> None:
        super().__init__(client, store, {"labelSelector": MANAGED_BY_SELECTOR}, namespaces)
        self._changed = changed

    async def _changed_object(self, obj: dict[str, Any]) -> None:
        self._notify(obj)

    async def _gone(self, obj: dict[str, Any]) -> None:
        self._notify(obj, gone=True)

    def _notify(self, build_pod: dict[str, Any], *, gone: bool = False) -> None:
        meta = build_pod.get("metadata") or {}
        buildrun = (meta.get("labels") or {}).get(contract.LABEL_BUILDRUN_NAME)
        if buildrun:
            urgent = gone or podview.pod_ending(build_pod)
            self._changed((meta.get("namespace", ""), buildrun), urgent=urgent)


class BuildRunInformer(Informer):
    """Keeps `store` in step with the BuildRuns of `namespaces` (all when empty): calls
    `changed((namespace, name))` for every BuildRun added or changed, and `gone(key, uid)`
    for every one deleted. Watched here rather than through kopf, whose machinery per event
    cost more than the reconcile itself (bench/results.md)."""

    resource = kube.BUILDRUNS
    what = "BuildRuns"
    kind = "BuildRun"

    def __init__(
        self,
        client: kube.Kube,
        store: Store,
        changed: Callable[[Key], None],
        gone: Callable[[Key, str], None],
        namespaces: list[str] | None = None,
    ) -> None:
        super().__init__(client, store, {}, namespaces)
        self._changed = changed
        self._went = gone

    async def _changed_object(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        self._changed((meta.get("namespace", ""), meta.get("name", "")))

    async def _gone(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        self._went((meta.get("namespace", ""), meta.get("name", "")), str(meta.get("uid", "")))


class SecretInformer(Informer):
    """Secrets as metadata only (PartialObjectMetadata): which exist, never their data.

    `field_selector` narrows the set (`type=kubernetes.io/dockerconfigjson`: the apiserver
    selects Secrets by type, which metadata does not carry). `appeared_or_went(key)` is
    called when a Secret is added or deleted (not on changes: only existence is read).
    """

    resource = kube.SECRETS
    what = "Secrets"
    metadata_only = True

    def __init__(
        self,
        client: kube.Kube,
        store: Store,
        appeared_or_went: Callable[[Key], Awaitable[None]],
        namespaces: list[str] | None = None,
        field_selector: str | None = None,
    ) -> None:
        params = {"fieldSelector": field_selector} if field_selector else {}
        super().__init__(client, store, params, namespaces)
        self._appeared_or_went = appeared_or_went

    async def _observe(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if kind != "DELETED" and self._store.get(*key) is None:
            self._store.put(obj)
            await self._appeared_or_went(key)
            return
        await super()._observe(kind, obj)  # a change (nothing to say) or a deletion (_gone)

    async def _gone(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        await self._appeared_or_went((meta.get("namespace", ""), meta.get("name", "")))


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""

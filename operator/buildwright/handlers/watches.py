"""Events of the objects Builds depend on: Secrets and strategies.

Each handler only records the object and fans out to the Builds it concerns. Build Pods are
watched outside kopf (`buildwright.informer`).
"""

from __future__ import annotations

from typing import Any

import kopf

from buildwright.core import preflight
from buildwright.handlers import builds
from buildwright.handlers.context import current


@kopf.on.event("", "v1", "secrets")
async def secret_event(type: str, body: kopf.Body, **_: Any) -> None:
    """A referenced Secret appeared, changed or vanished: re-validate the Builds using it."""
    ctx = current()
    meta = body["metadata"]
    if type == "DELETED":
        ctx.secrets.drop(meta["namespace"], meta["name"])
    else:
        ctx.secrets.put(dict(body))
    for namespace, name in ctx.secret_dependents.of((meta["namespace"], meta["name"])):
        await builds.register_or_retry(ctx, namespace, name)


async def _strategy_changed(kind: str, type: str, body: kopf.Body) -> None:
    ctx = current()
    meta = body["metadata"]
    namespace = meta.get("namespace", "")
    store = ctx.cluster_strategies if kind == preflight.CLUSTER_BUILD_STRATEGY else ctx.strategies
    if type == "DELETED":
        store.drop(namespace, meta["name"])
    else:
        store.put(dict(body))
    target = (f"{kind}/{namespace}", meta["name"])
    for dependent_ns, dependent in ctx.strategy_dependents.of(target):
        await builds.register_or_retry(ctx, dependent_ns, dependent)


@kopf.on.event("shipwright.io", "v1beta1", "buildstrategies")
async def buildstrategy_event(type: str, body: kopf.Body, **_: Any) -> None:
    await _strategy_changed(preflight.BUILD_STRATEGY, type, body)


@kopf.on.event("shipwright.io", "v1beta1", "clusterbuildstrategies")
async def clusterbuildstrategy_event(type: str, body: kopf.Body, **_: Any) -> None:
    await _strategy_changed(preflight.CLUSTER_BUILD_STRATEGY, type, body)

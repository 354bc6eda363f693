"""Events of the objects Builds depend on: Secrets and strategies.

Each handler only records the object and fans out to the Builds it concerns. Build Pods and
Secrets are watched outside kopf (`buildwright.informer`); Secrets as metadata only.
"""

from __future__ import annotations

from typing import Any

import kopf

from buildwright.core import preflight
from buildwright.handlers import builds
from buildwright.handlers.context import current
from buildwright.state import Key


async def secret_appeared_or_went(key: Key) -> None:
    """A Secret appeared or vanished (the Secret informer, `buildwright.informer`, reports
    it): re-validate the Builds referring to it."""
    ctx = current()
    for namespace, name in ctx.secret_dependents.of(key):
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

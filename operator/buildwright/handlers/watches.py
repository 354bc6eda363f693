"""Events of the objects Builds depend on: Secrets and strategies.

Each handler only records the object and fans out to the Builds it concerns. Build Pods and
Secrets are watched outside kopf (`buildwright.informer`); Secrets as metadata only.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
import pydantic

from buildwright import kube
from buildwright.core import preflight, scripts, validation
from buildwright.core.formats import rfc3339
from buildwright.handlers import builds, common
from buildwright.handlers.context import Context, current
from buildwright.state import Key

logger = logging.getLogger("buildwright")


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
        await warn_about_scripts(ctx, kind, dict(body))
    target = (f"{kind}/{namespace}", meta["name"])
    for dependent_ns, dependent in ctx.strategy_dependents.of(target):
        await builds.register_or_retry(ctx, dependent_ns, dependent)


async def warn_about_scripts(ctx: Context, kind: str, body: dict[str, Any]) -> None:
    """Tell the strategy's author when a step pastes a parameter into a shell script: a
    condition on the strategy, and a Warning Event when that condition changes (so neither a
    repeated event nor a restart posts it again). The condition goes when the steps are fixed."""
    try:
        strategy = validation.parse_strategy(body)
    except pydantic.ValidationError:
        return
    message = scripts.warning(scripts.spliced_parameters(strategy.spec.steps))
    conditions = (strategy.status.conditions if strategy.status else None) or []
    current = next((c for c in conditions if c.type == scripts.CONDITION_TYPE), None)
    if (current.message if current else None) == message:
        return
    others = [c.to_wire() for c in conditions if c.type != scripts.CONDITION_TYPE]
    if message is not None:
        others.append({
            "type": scripts.CONDITION_TYPE, "status": "False", "reason": scripts.REASON,
            "message": message, "lastTransitionTime": rfc3339(common.now()),
        })  # fmt: skip
    meta = body["metadata"]
    resource = kube.CLUSTERBUILDSTRATEGIES if kind == preflight.CLUSTER_BUILD_STRATEGY else (
        kube.BUILDSTRATEGIES
    )
    try:
        updated = await ctx.kube.merge_patch(
            resource, meta.get("namespace"), meta["name"],
            {"status": {"conditions": others or None}}, status=True,
        )  # fmt: skip
    except kube.API_ERRORS as error:  # the next event of the strategy tries again
        logger.warning("strategy %s: could not write its condition: %s", meta["name"], error)
        return
    if message is not None:
        logger.warning("%s %s: %s", kind, meta["name"], message)
        await common.post_event(ctx, updated, scripts.REASON, message, warning=True)


@kopf.on.event("shipwright.io", "v1beta1", "buildstrategies")
async def buildstrategy_event(type: str, body: kopf.Body, **_: Any) -> None:
    await _strategy_changed(preflight.BUILD_STRATEGY, type, body)


@kopf.on.event("shipwright.io", "v1beta1", "clusterbuildstrategies")
async def clusterbuildstrategy_event(type: str, body: kopf.Body, **_: Any) -> None:
    await _strategy_changed(preflight.CLUSTER_BUILD_STRATEGY, type, body)

"""What a trigger writes, for the receiver and the poller alike: the BuildRun (AlreadyExists is
"done before"), the Build's `status.lastTriggeredRun`, an Event on the Build; and the one read
of Secret data the operator makes for triggers."""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from typing import Any

from buildwright import kube, logs
from buildwright.core import triggers as decide
from buildwright.core.formats import rfc3339
from buildwright.handlers import common
from buildwright.handlers.context import Context

logger = logging.getLogger("buildwright.triggers")

# At most one Event of a kind per Build and this many seconds for deliveries not acted on.
REFUSAL_EVENT_WINDOW = 60


async def secret_data(ctx: Context, namespace: str, name: str) -> dict[str, bytes] | None:
    """The named Secret's data, decoded; None when it does not exist. Never cached, never
    logged: the caller uses it and drops it."""
    secret = await ctx.kube.get(kube.SECRETS, namespace, name)
    if secret is None:
        return None
    out = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value)
        except (ValueError, TypeError):
            continue
    return out


async def create_buildrun(ctx: Context, body: dict[str, Any]) -> bool:
    """Create the triggered BuildRun; False when it exists already (the same delivery or
    change, seen before by this or another replica)."""
    meta = body["metadata"]
    try:
        await ctx.kube.create(kube.BUILDRUNS, meta["namespace"], body)
    except kube.ApiError as error:
        if error.conflict:
            return False
        raise
    return True


async def record_triggered(ctx: Context, build_body: dict[str, Any], run: dict[str, Any],
                           trigger: str, cause: str) -> None:  # fmt: skip
    """`status.lastTriggeredRun` and a `BuildRunTriggered` Event on the Build."""
    meta = build_body["metadata"]
    name = run["metadata"]["name"]
    entry = decide.last_triggered(name, trigger, cause, rfc3339(common.now()))
    try:
        updated = await ctx.kube.merge_patch(
            kube.BUILDS, meta["namespace"], meta["name"], {"status": {"lastTriggeredRun": entry}},
            status=True,
        )  # fmt: skip
        ctx.builds.put(updated)
    except kube.ApiError as error:
        if not error.not_found:
            raise
    await common.post_event(
        ctx, build_body, decide.EVENT_TRIGGERED, f"trigger {trigger!r}: {cause}; BuildRun {name}",
        name=f"{meta['name']}.{name}",
    )  # fmt: skip
    logger.info(
        "Build %s/%s: trigger %r started BuildRun %s (%s)", meta["namespace"], meta["name"],
        trigger, name, cause, extra=logs.about("Build", meta["namespace"], meta["name"]),
    )  # fmt: skip


async def noted(ctx: Context, build_body: dict[str, Any], reason: str, message: str,
                kind: str, *, warning: bool) -> None:  # fmt: skip
    """An Event on a Build about a delivery it did not act on: at most one per Build, reason,
    `kind` (what went wrong, without the delivery's own words) and window, so that a caller
    hammering the endpoint cannot flood `kubectl describe build`."""
    meta = build_body["metadata"]
    window = int(time.time() // REFUSAL_EVENT_WINDOW)
    tag = hashlib.sha256(f"{meta.get('uid')}\n{reason}\n{kind}\n{window}".encode()).hexdigest()
    await common.post_event(
        ctx, build_body, reason, message, warning=warning, name=f"{meta['name']}.{tag[:12]}"
    )

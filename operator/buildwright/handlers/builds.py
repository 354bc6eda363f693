"""Build registration: validate each Build and write status.registered/reason/message.

Re-checked on every Build event, and (an improvement over upstream, which only reacts to
generation changes and Secret events) also when a referenced strategy appears or changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import kopf
import pydantic

from buildwright import kube, logs, metrics
from buildwright.api.v1beta1 import Build
from buildwright.core import metrics as observed
from buildwright.core import preflight, validation
from buildwright.core.reasons import Reason
from buildwright.handlers import common
from buildwright.handlers.context import Context, current

logger = logging.getLogger("buildwright")
PROBE_TIMEOUT_SECONDS = 15.0


@kopf.on.event("shipwright.io", "v1beta1", "builds")
async def build_event(type: str, body: kopf.Body, **_: Any) -> None:
    ctx = current()
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    from buildwright.handlers.buildruns import reconcile_later

    if type == "DELETED":
        ctx.builds.drop(namespace, name)
        ctx.secret_dependents.forget((namespace, name))
        ctx.strategy_dependents.forget((namespace, name))
        ctx.scheduler.cancel((namespace, name), "register")
        common.succeeded(ctx, (namespace, name), "register")
    else:
        ctx.builds.put(dict(body))
        await register_or_retry(ctx, namespace, name)
    # BuildRuns that waited for this Build to be validated go on now: with its registration,
    # or, when it was deleted before that, to BuildNotFound.
    for waiter in ctx.build_waiters.of((namespace, name)):
        reconcile_later(ctx, *waiter)


async def probe_repository(url: str, policy: validation.ProbePolicy) -> str | None:
    """Anonymous reachability check of an http(s) Git URL (smart-HTTP ref advertisement).

    The request goes to `validation.probe_url` (the Build's own host, nothing smuggled in
    through userinfo or a fragment), follows no redirect, and reads no answer body: only its
    status code reaches the Build's status."""
    probe = validation.probe_url(url, policy)
    if probe is None:
        logger.info("repository %s is not probed (BUILDWRIGHT_REPOSITORY_PROBE*)", url)
        return None
    try:
        async with (
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS)
            ) as session,
            session.get(probe, allow_redirects=False) as response,
        ):
            if response.status in (401, 403, 404):
                return validation.PROBE_AUTH_REQUIRED
            if response.status >= 400:
                return f"remote answered HTTP {response.status}"
            return None
    except aiohttp.ClientConnectorError as error:
        cause = error.os_error
        return validation.probe_unreachable_message(
            error.host,
            error.port,
            no_such_host=isinstance(error, aiohttp.ClientConnectorDNSError),
            refused=isinstance(cause, ConnectionRefusedError),
            detail=cause.strerror or str(cause),
        )
    except TimeoutError:
        return f"{url}: no answer within {PROBE_TIMEOUT_SECONDS:.0f}s; check the source URL"
    except aiohttp.ClientError as error:
        return f"{url}: {error or type(error).__name__}"


_background: set[asyncio.Task[None]] = set()
# A new leader re-validates every Build it knows; each may probe a Git server and list the
# Build's runs, so a few at a time.
CATCH_UP_CONCURRENCY = 4


def register_all_later(ctx: Context, keys: list[tuple[str, str]]) -> None:
    """Validate these Builds in the background, a few at a time (a new leader catching up
    with what changed while it followed)."""
    limit = asyncio.Semaphore(CATCH_UP_CONCURRENCY)

    async def one(namespace: str, name: str) -> None:
        async with limit:
            await register_or_retry(ctx, namespace, name)

    for key in keys:
        task = asyncio.create_task(one(*key))
        _background.add(task)
        task.add_done_callback(_background.discard)


async def register_or_retry(ctx: Context, namespace: str, name: str) -> None:
    """Validate the Build; after a transient API failure try again later (with backoff). An
    answer that will not change on retry is logged and left until the Build changes. Only the
    leader does; a follower validates every Build it knows once it leads."""
    if not ctx.leading():
        return
    key = (namespace, name)
    started = time.monotonic()
    result = "success"
    try:
        await register(ctx, namespace, name)
    except kube.NotLeading:
        result = "not_leading"
    except kube.API_ERRORS as error:
        if isinstance(error, kube.ApiError) and error.not_found:
            # Only writes raise it (reads answer None): the Build, or a BuildRun it owns, was
            # deleted meanwhile. Its own event tells what there is left to do.
            logger.info("Build %s/%s: %s (deleted meanwhile)", namespace, name, error)
        elif not kube.is_transient(error):
            result = "rejected"
            common.log_rejected("Build", key, error)
        else:
            result = "retry"
            common.retry_later(
                ctx, key, "register", "Build", error,
                lambda: register_or_retry(ctx, namespace, name),
            )  # fmt: skip
    except Exception:
        result = "error"
        raise
    else:
        common.succeeded(ctx, key, "register")
    finally:
        metrics.current().reconcile_duration.labels("Build", result).observe(
            time.monotonic() - started
        )


async def register(ctx: Context, namespace: str, name: str) -> None:
    body = ctx.builds.get(namespace, name)
    if body is None:
        return
    try:
        build = Build.model_validate(body)
    except pydantic.ValidationError as error:
        logger.error(
            "Build %s/%s does not match the schema: %s", namespace, name, error,
            extra=logs.about("Build", namespace, name),
        )  # fmt: skip
        return

    secrets = validation.referenced_secrets(build.spec)
    ctx.secret_dependents.link((namespace, name), {(namespace, s) for s in secrets})
    strategy_kind = preflight.strategy_kind(build.spec.strategy.kind)
    strategy_ns = "" if strategy_kind == preflight.CLUSTER_BUILD_STRATEGY else namespace
    ctx.strategy_dependents.link(
        (namespace, name), {(f"{strategy_kind}/{strategy_ns}", build.spec.strategy.name)}
    )

    strategy_body = None
    if preflight.unknown_strategy_kind(strategy_kind) is None:
        strategy_body = await common.get_strategy(
            ctx, strategy_kind, namespace, build.spec.strategy.name
        )
    probe_url = validation.repository_to_probe(build)
    probe = await probe_repository(probe_url, ctx.config.repository_probe) if probe_url else None

    facts = validation.BuildFacts(
        existing_secrets=await common.existing_secrets(ctx, namespace, secrets),
        strategy=validation.parse_strategy(strategy_body) if strategy_body else None,
        repository_probe=probe,
        forbidden_env=ctx.config.forbidden_env,
        extra_volume_sources=ctx.config.extra_volume_sources,
    )
    outcome = validation.validate_build(build, facts)
    if validation.validate_build_name(name) is None:
        # A name that is no label value cannot select BuildRuns (the API answers 400), and
        # no BuildRun can carry it as its label: there is nothing to own.
        await sync_buildrun_owners(ctx, build)
    from buildwright.handlers.buildruns import enforce_limits

    await enforce_limits(ctx, namespace, name)  # limits apply at once to existing runs

    status = outcome.to_status()
    current_status = body.get("status") or {}
    if all(current_status.get(k) == v for k, v in status.items()):
        return
    updated = await ctx.kube.merge_patch(
        kube.BUILDS, namespace, name, {"status": status}, status=True
    )
    ctx.builds.put(updated)
    if outcome.registered and current_status.get("registered") != "True":
        # Counted on the write that registered it, by the replica that wrote it.
        metrics.current().observe(observed.build_registered(updated))
    if outcome.reason != Reason.SUCCEEDED:
        await common.post_event(ctx, updated, outcome.reason, outcome.message, warning=True)
    logger.info(
        "Build %s/%s registered=%s reason=%s", namespace, name, status["registered"],
        outcome.reason, extra=logs.about("Build", namespace, name),
    )  # fmt: skip


async def sync_buildrun_owners(ctx: Context, build: Build) -> None:
    """`retention.atBuildDeletion`: make the Build the controller owner of its BuildRuns
    (garbage-collected with it), or remove that ownership when switched off."""
    meta = build.metadata
    want = bool(build.spec.retention and build.spec.retention.at_build_deletion)
    runs = await ctx.kube.list_objects(
        kube.BUILDRUNS, meta["namespace"], f"build.shipwright.io/name={meta['name']}"
    )
    for run in runs:
        patch = preflight.ownership_patch(run, meta, want)
        if patch is not None:
            updated = await ctx.kube.merge_patch(
                kube.BUILDRUNS, meta["namespace"], run["metadata"]["name"], patch
            )
            ctx.buildruns.put(updated)

"""Reads shared by the Build and BuildRun handlers: cache first, API to confirm a miss."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from buildwright import kube
from buildwright.core import references
from buildwright.core.formats import rfc3339
from buildwright.core.preflight import CLUSTER_BUILD_STRATEGY
from buildwright.handlers.context import Context
from buildwright.state import Store

logger = logging.getLogger("buildwright")


def now() -> datetime:
    return datetime.now(UTC)


# Backoff of retries after transient API errors: 1 s, 2 s, 4 s, … up to 5 minutes.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 300.0


def retry_delay(attempt: int) -> timedelta:
    """The wait before retry number `attempt` (0 for the first)."""
    return timedelta(seconds=min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** min(attempt, 20)))


def retry_later(
    ctx: Context,
    key: tuple[str, str],
    purpose: str,
    what: str,
    error: BaseException,
    callback: Callable[[], Awaitable[None]],
) -> None:
    """After a transient API error: call `callback` again, later each time in a row."""
    attempt = ctx.retry_attempts.get((key, purpose), 0)
    ctx.retry_attempts[(key, purpose)] = attempt + 1
    delay = retry_delay(attempt)
    logger.warning("%s %s/%s: %s; retrying in %.0fs", what, *key, error, delay.total_seconds())
    ctx.scheduler.at(key, purpose, now() + delay, callback)


def retries_scheduled(ctx: Context) -> int:
    """Backoffs in `retry_attempts` whose timer has not fired yet (`buildwright_retries_scheduled`):
    retries after transient errors, and BuildRuns re-checking a Build not validated yet."""
    return sum(1 for key, purpose in ctx.retry_attempts if ctx.scheduler.is_pending(key, purpose))


def succeeded(ctx: Context, key: tuple[str, str], purpose: str) -> None:
    """The next transient error of (key, purpose) starts the backoff afresh."""
    ctx.retry_attempts.pop((key, purpose), None)


def log_rejected(what: str, key: tuple[str, str], error: BaseException) -> None:
    """An API answer that will not change on retry and names no reason on the object: said
    once, with what to change, and not retried (the object's next change runs it again)."""
    hint = {
        403: "grant the operator's ServiceAccount this permission (deploy/ holds its RBAC)",
        404: "create the object it names",
    }.get(getattr(error, "status", 0), "change the object so that the request is valid")
    logger.error("%s %s/%s: the API server refused: %s; not retried: %s", what, *key, error, hint)


async def cached_get(
    ctx: Context, store: Store, resource: kube.Resource, namespace: str, name: str
) -> dict[str, Any] | None:
    """The object from the store, else from the API; None when it does not exist.

    Every lookup by a name taken from a user's object goes through here or the getters below:
    a name no object can have (`core.references`) is "not found" without a request, so it
    never reaches an API path."""
    if not references.can_exist(name):
        return None
    body = store.get(namespace, name)
    if body is not None:
        return body
    body = await ctx.kube.get(resource, namespace or None, name)
    if body is not None:
        store.put(body)
    return body


async def get_configmap(ctx: Context, namespace: str, name: str) -> dict[str, Any] | None:
    if not references.can_exist(name):
        return None
    return await ctx.kube.get(kube.CONFIGMAPS, namespace, name)


async def get_strategy(ctx: Context, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    if kind == CLUSTER_BUILD_STRATEGY:
        return await cached_get(ctx, ctx.cluster_strategies, kube.CLUSTERBUILDSTRATEGIES, "", name)
    return await cached_get(ctx, ctx.strategies, kube.BUILDSTRATEGIES, namespace, name)


DOCKER_CONFIG_TYPE = "kubernetes.io/dockerconfigjson"


async def get_secret(ctx: Context, namespace: str, name: str) -> dict[str, Any] | None:
    """The Secret's metadata: from the watch's record, else (a miss is not trusted) the API,
    asked for metadata only and by list (the operator may list Secrets, not get them)."""
    if not references.can_exist(name):
        return None
    summary = ctx.secrets.get(namespace, name)
    if summary is not None:
        return summary
    found = await _secret_metadata(ctx, namespace, f"metadata.name={name}")
    if found is None:
        return None
    ctx.secrets.put(found)
    return ctx.secrets.get(namespace, name)


async def is_docker_config(ctx: Context, namespace: str, name: str) -> bool:
    """Whether the Secret exists with type kubernetes.io/dockerconfigjson (metadata does not
    carry the type: a watch and, on a miss, a list select Secrets by it)."""
    if not references.can_exist(name):
        return False
    if ctx.docker_secrets.get(namespace, name) is not None:
        return True
    found = await _secret_metadata(
        ctx, namespace, f"metadata.name={name},type={DOCKER_CONFIG_TYPE}"
    )
    if found is not None:
        ctx.docker_secrets.put(found)
    return found is not None


async def _secret_metadata(
    ctx: Context, namespace: str, field_selector: str
) -> dict[str, Any] | None:
    page = await ctx.kube.list_page(
        kube.SECRETS, namespace, {"fieldSelector": field_selector}, metadata_only=True
    )
    items: list[dict[str, Any]] = page.get("items") or []
    return items[0] if items else None


async def existing_secrets(ctx: Context, namespace: str, names: set[str]) -> frozenset[str]:
    """Which of these Secrets exist (metadata only is needed; nothing of them is logged)."""
    found = set()
    for name in names:
        if await get_secret(ctx, namespace, name) is not None:
            found.add(name)
    return frozenset(found)


# How long a ServiceAccount lookup is reused. Accounts are not watched (the operator may
# not list them), so a change is seen this much later; at 100 BuildRuns/s it saves two GETs
# per BuildRun.
ACCOUNT_TTL_SECONDS = 1.0


async def get_account(ctx: Context, namespace: str, name: str) -> dict[str, Any] | None:
    """A ServiceAccount (None when absent), read at most once per ACCOUNT_TTL_SECONDS."""
    if not references.can_exist(name):
        return None
    cached = fresh_account(ctx, namespace, name)
    if cached is not None:
        return cached[0]
    # A burst of BuildRuns in one namespace asks for the same account at once: one GET.
    async with ctx.lock(account_key(namespace, name)):
        cached = fresh_account(ctx, namespace, name)
        if cached is not None:
            return cached[0]
        account = await ctx.kube.get(kube.SERVICEACCOUNTS, namespace, name)
        remember_account(ctx, namespace, name, account)
        return account


def account_key(namespace: str, name: str) -> tuple[str, str]:
    """The lock key of a ServiceAccount (apart from BuildRun keys, which share ctx.lock)."""
    return (f"serviceaccount:{namespace}", name)


def fresh_account(
    ctx: Context, namespace: str, name: str
) -> tuple[dict[str, Any] | None] | None:
    """The account as last read, in a 1-tuple (its content may be None: absent), while that
    reading is fresh; None when it has to be read again."""
    cached = ctx.accounts.get((namespace, name))
    if cached is not None and cached[0] > time.monotonic():
        return (cached[1],)
    return None


def remember_account(
    ctx: Context, namespace: str, name: str, account: dict[str, Any] | None
) -> None:
    if len(ctx.accounts) > 10_000:  # only recent lookups are worth keeping
        moment = time.monotonic()
        for key in [k for k, (expiry, _) in ctx.accounts.items() if expiry <= moment]:
            del ctx.accounts[key]
    ctx.accounts[(namespace, name)] = (time.monotonic() + ACCOUNT_TTL_SECONDS, account)


async def post_event(
    ctx: Context,
    body: dict[str, Any],
    reason: str,
    message: str,
    *,
    warning: bool = False,
    name: str | None = None,
    at: str | None = None,
) -> bool:
    """A Kubernetes Event on the object, so `kubectl describe` tells its story.

    With `name`, posting is idempotent: an Event of that name that exists already (409) was
    posted by an earlier attempt. `at` is its time (now when absent). True when the Event
    exists afterwards."""
    meta = body["metadata"]
    # Events are namespaced; those of cluster-scoped objects go to `default`, as kubectl
    # describe looks for them there.
    namespace = meta.get("namespace") or "default"
    stamp = at or rfc3339(now())
    identity = {"name": name} if name else {"generateName": f"{meta['name']}."}
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {**identity, "namespace": namespace},
        "involvedObject": {
            "apiVersion": body.get("apiVersion", kube.GROUP_VERSION),
            "kind": body.get("kind"),
            "name": meta["name"],
            "namespace": meta.get("namespace", ""),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": "buildwright"},
        "reportingComponent": "buildwright",
        "reportingInstance": "buildwright",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        manager = kube.BUILD_CONTROLLER if body.get("kind") == "Build" else None
        await ctx.kube.create(kube.EVENTS, namespace, event, manager=manager)
        return True
    except kube.API_ERRORS as error:  # an Event is a courtesy; never fail a reconcile for it
        if isinstance(error, kube.ApiError):
            if name and error.conflict:
                return True
            if error.status == 403 and "being terminated" in error.message:
                return False  # its namespace is going away, and the object with it
        logger.warning("could not post event %s on %s: %s", reason, meta["name"], error)
        return False

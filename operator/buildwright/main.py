"""kopf wiring: settings, credentials, start-up and shutdown of the operator process.

Only `@kopf.on.event` handlers are used. They run on every watch event, hold no
per-object progress, and so kopf writes no annotations or finalizers onto users' objects
(no `kopf.zalando.org/*` bookkeeping): our reconciliation is level-triggered and computes
everything from the current objects, so it needs none. BuildRuns, build Pods and Secrets are
watched by the operator itself (`buildwright.informer`), started here.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import kopf

from buildwright import health, informer, leader, memory, metrics, readiness
from buildwright.config import Settings
from buildwright.handlers import buildruns, builds, common, context, watches
from buildwright.handlers.login import connection_info
from buildwright.kube import Kube
from buildwright.state import Key
from buildwright.triggers import service as triggers

logger = logging.getLogger("buildwright")

LIST_PAGE_SIZE = 500
# BuildRuns reconciled at once, on their own changes and their Pods'. Each mostly waits on
# the API, whose connection pool (`Kube`, 16) bounds the requests in flight. New BuildRuns
# share these workers with the changes of running ones (through kopf, each BuildRun had a
# worker of its own): enough of them that a slow apiserver, not the workers, sets the pace.
RECONCILE_WORKERS = 128


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff-base: with only `on.event` handlers nothing ever reads it.

    kopf builds the "essence" of every object on every watch event regardless, deep-copying
    the whole body (status and all) only to discard it; that was the largest single CPU cost
    per event in the benchmark (bench/results.md).
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


class RetryForever:
    """kopf's pauses between attempts of a failed request, never running out.

    With a finite list kopf gives up a list or watch the apiserver keeps refusing (403: a
    permission is missing) after ~1 minute, and the whole operator exits. Endless, the other
    watches go on and the operator reports itself not ready (`KopfRefusals`)."""

    def __iter__(self) -> Iterator[float]:
        return itertools.chain((1, 1, 2, 3, 5, 8, 13, 21), itertools.repeat(30))


_ATTEMPT = re.compile(r"Request attempt #\d+(?:/\d+)? (failed; will retry|succeeded): GET (\S+)")


class KopfRefusals(logging.Filter):
    """Turns kopf's retries of a refused list or watch into readiness (`buildwright.readiness`).

    kopf logs every attempt at ERROR, and one that finally succeeds at DEBUG; this filter
    sits on kopf's list and watch loggers, records the first as a failing watch (logged once,
    by readiness, with the permission) and the second as its recovery, and drops both."""

    def __init__(self, show_debug: bool) -> None:
        super().__init__()
        self._show_debug = show_debug

    def filter(self, record: logging.LogRecord) -> bool:
        match = _ATTEMPT.match(record.getMessage())
        if match is None:
            return record.levelno > logging.DEBUG or self._show_debug
        watch = kopf_permission(match.group(2))
        if match.group(1) == "succeeded":
            readiness.watch_recovered(watch)
            return self._show_debug
        message = record.getMessage()
        if "APIForbiddenError" in message:
            readiness.watch_failed(watch, message.partition(" -> ")[2][:300] or "403 Forbidden")
            return False
        return True


def kopf_permission(url: str) -> str:
    """'watch builds.shipwright.io in all namespaces' for the URL of a kopf list or watch."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    verb = "watch" if "watch=true" in parts.query else "list"
    namespace = None
    if "namespaces" in segments[:-1]:
        namespace = segments[segments.index("namespaces") + 1]
    plural = segments[-1] if segments else "?"
    group = segments[1] if segments[:1] == ["apis"] and len(segments) > 1 else ""
    kind = f"{plural}.{group}" if group else plural
    return f"{verb} {kind} " + (f"in namespace {namespace}" if namespace else "in all namespaces")


def install_kopf_refusals() -> None:
    for name in ("kopf._cogs.clients.fetching", "kopf._cogs.clients.watching"):
        kopf_logger = logging.getLogger(name)
        show_debug = kopf_logger.getEffectiveLevel() <= logging.DEBUG
        kopf_logger.addFilter(KopfRefusals(show_debug))
        kopf_logger.setLevel(logging.DEBUG)  # the filter needs the "succeeded" records


STARTUP_CHECK = "startup"
health.set_not_ready(STARTUP_CHECK, "the operator is starting")
_metrics_server: Any = None
_triggers: triggers.Triggers | None = None


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    global _metrics_server, _triggers
    configured: Settings = memo.settings
    # Events are ours to post, few and meaningful; kopf's per-handler ones would double the
    # API writes (docs/kopf.md: ~20% throughput).
    settings.posting.enabled = False
    settings.peering.standalone = True
    # Discover resources once instead of watching CRDs and namespaces: fewer permissions.
    settings.scanning.disabled = True
    # Under bursts kopf may re-run handlers for objects it wrote itself while the watch lags
    # (docs/kopf.md); our handlers are idempotent, and a long timeout avoids the work.
    settings.persistence.consistency_timeout = 60
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.networking.error_backoffs = RetryForever()
    install_kopf_refusals()
    # Initial lists in pages: one response of thousands of Pods would be read, decoded and
    # held whole (tens of MB) before the first object is handled.
    settings.watching.chunk_size = LIST_PAGE_SIZE
    metrics.install(metrics.Metrics(configured.metrics))
    if _metrics_server is None:
        host, port = configured.metrics_address
        try:
            _metrics_server = await metrics.serve(host, port)
        except OSError as error:
            if configured.metrics_port_chosen:
                raise
            # Out of a cluster on the default port: another operator on this machine has it.
            logger.warning("port %s is taken (%s); serving metrics on a free port", port, error)
            _metrics_server = await metrics.serve(host, 0)
        bound = _metrics_server.addresses[0][1] if _metrics_server.addresses else port
        logger.info("metrics and probes on http://%s:%s (/metrics, /healthz, /readyz)", host, bound)
    kube = Kube(connection_info(settings))
    ctx = context.Context(kube=kube, config=configured.reconcile)
    context.install(ctx)
    election = configured.election
    if election.enabled:
        # The elector writes its Lease through a client of its own, which no guard stops.
        elector = leader.Elector(
            Kube(connection_info(settings)), election, on_started=lambda: reconcile_all(ctx)
        )
        ctx.elector = elector
        ctx.leading = elector.leading
        kube.guard_writes(elector.guard)
    else:
        metrics.current().leader.set(1)
    ctx.scheduler.start()
    metrics.current().retries_scheduled.set_function(lambda: common.retries_scheduled(ctx))
    ctx.reconcile_queue = informer.KeyQueue(
        lambda namespace, name: buildruns.reconcile(ctx, namespace, name), RECONCILE_WORKERS
    )
    ctx.reconcile_queue.start()
    ctx.pod_informer = informer.PodInformer(
        kube, ctx.pods, lambda key, urgent=False: buildruns.pod_changed(ctx, key, urgent=urgent),
        namespaces=list(configured.namespaces),
    )  # fmt: skip
    ctx.pod_informer.start()
    namespaces = list(configured.namespaces)
    ctx.buildrun_informer = informer.BuildRunInformer(
        kube, ctx.buildruns, ctx.reconcile_queue.add,
        lambda key, uid: buildruns.buildrun_gone(ctx, key, uid), namespaces=namespaces,
    )  # fmt: skip
    ctx.buildrun_informer.start()
    ctx.secret_informers = [
        informer.SecretInformer(kube, ctx.secrets, watches.secret_appeared_or_went,
                                namespaces=namespaces),
        informer.SecretInformer(kube, ctx.docker_secrets, _ignore, namespaces=namespaces,
                                field_selector=f"type={common.DOCKER_CONFIG_TYPE}"),
    ]  # fmt: skip
    for secret_informer in ctx.secret_informers:
        secret_informer.start()
    if ctx.elector is not None:
        ctx.elector.start()
    if configured.triggers.enabled and _triggers is None:
        _triggers = await triggers.start(
            ctx, Kube(connection_info(settings)), configured.triggers, configured.namespaces
        )
    memory.start_trimming()
    health.set_ready(STARTUP_CHECK)
    logger.info("buildwright started; step image %s", ctx.config.step_image)


async def _ignore(_: Key) -> None:
    """Docker-config Secrets matter when a BuildRun starts; their arrival wakes nothing."""


def reconcile_all(ctx: context.Context) -> None:
    """Just became the leader: reconcile every Build and BuildRun the caches hold (a hot
    standby saw them all; what the previous leader left half done is finished now)."""
    builds.register_all_later(ctx, list(ctx.builds.stored_keys()))
    if ctx.reconcile_queue is not None:
        for key in ctx.buildruns.stored_keys():
            ctx.reconcile_queue.add(key)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    global _metrics_server, _triggers
    ctx = context.current()
    if _triggers is not None:
        await _triggers.stop()
        _triggers = None
    if ctx.elector is not None:
        await ctx.elector.stop()
        await ctx.elector.close()
    if ctx.buildrun_informer is not None:
        await ctx.buildrun_informer.stop()
    if ctx.pod_informer is not None:
        await ctx.pod_informer.stop()
    for secret_informer in ctx.secret_informers:
        await secret_informer.stop()
    if ctx.reconcile_queue is not None:
        await ctx.reconcile_queue.stop()
    await ctx.scheduler.stop()
    await memory.stop_trimming()
    await ctx.kube.close()
    if _metrics_server is not None:
        await _metrics_server.cleanup()
        _metrics_server = None


def load_handlers() -> None:
    """Import the handler modules so their decorators register with kopf."""
    from buildwright.handlers import buildruns, builds, login, watches, webhook  # noqa: F401

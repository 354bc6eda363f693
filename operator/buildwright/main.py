"""kopf wiring: settings, credentials, start-up and shutdown of the operator process.

Only `@kopf.on.event` handlers are used. They run on every watch event, hold no
per-object progress, and so kopf writes no annotations or finalizers onto users' objects
(no `kopf.zalando.org/*` bookkeeping): our reconciliation is level-triggered and computes
everything from the current objects, so it needs none.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import kopf

from buildwright import health, informer, leader, memory, metrics
from buildwright.core import metrics as observed
from buildwright.handlers import buildruns, builds, context
from buildwright.kube import Kube

logger = logging.getLogger("buildwright")

_connection: kopf.ConnectionInfo | None = None
LIST_PAGE_SIZE = 500
# BuildRuns reconciled at once on behalf of their Pods (each mostly waits on the API).
RECONCILE_WORKERS = 32
# The namespaces the operator serves (empty: all); set by the command line before start-up.
NAMESPACES: tuple[str, ...] = ()


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


def connection_info(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """Credentials from the in-cluster service account, else from the kubeconfig."""
    global _connection
    if _connection is None:
        info = None
        if (
            os.environ.get("KUBERNETES_SERVICE_HOST")
            and Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()
        ):
            info = kopf.login_with_service_account(settings=settings)
        if info is None:
            info = kopf.login_with_kubeconfig(settings=settings)
        if info is None:
            raise kopf.LoginError("no in-cluster service account and no kubeconfig found")
        _connection = info
    return _connection


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    return connection_info(settings)


STARTUP_CHECK = "startup"
health.set_not_ready(STARTUP_CHECK, "the operator is starting")
_metrics_server: Any = None


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _metrics_server
    # Events are ours to post, few and meaningful; kopf's per-handler ones would double the
    # API writes (kopf-measurements.md: ~20% throughput).
    settings.posting.enabled = False
    settings.peering.standalone = True
    # Discover resources once instead of watching CRDs and namespaces: fewer permissions.
    settings.scanning.disabled = True
    # Under bursts kopf may re-run handlers for objects it wrote itself while the watch lags
    # (kopf-measurements.md); our handlers are idempotent, and a long timeout avoids the work.
    settings.persistence.consistency_timeout = 60
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    # Initial lists in pages: one response of thousands of Pods would be read, decoded and
    # held whole (tens of MB) before the first object is handled.
    settings.watching.chunk_size = LIST_PAGE_SIZE
    metrics.install(metrics.Metrics(observed.MetricsSettings.from_env(os.environ)))
    if _metrics_server is None:
        host, port = metrics.listen_address()
        try:
            _metrics_server = await metrics.serve(host, port)
        except OSError as error:
            if os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get(metrics.PORT_ENV):
                raise
            # Out of a cluster on the default port: another operator on this machine has it.
            logger.warning("port %s is taken (%s); serving metrics on a free port", port, error)
            _metrics_server = await metrics.serve(host, 0)
        bound = _metrics_server.addresses[0][1] if _metrics_server.addresses else port
        logger.info("metrics and probes on http://%s:%s (/metrics, /healthz, /readyz)", host, bound)
    kube = Kube(connection_info(settings))
    ctx = context.Context(kube=kube, config=context.Config.from_env())
    context.install(ctx)
    election = leader.ElectionConfig.from_env()
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
    ctx.reconcile_queue = informer.KeyQueue(
        lambda namespace, name: buildruns.reconcile(ctx, namespace, name), RECONCILE_WORKERS
    )
    ctx.reconcile_queue.start()
    ctx.pod_informer = informer.PodInformer(
        kube, ctx.pods, ctx.reconcile_queue.add, namespaces=list(NAMESPACES)
    )
    ctx.pod_informer.start()
    if ctx.elector is not None:
        ctx.elector.start()
    memory.start_trimming()
    health.set_ready(STARTUP_CHECK)
    logger.info("buildwright started; step image %s", ctx.config.step_image)


def reconcile_all(ctx: context.Context) -> None:
    """Just became the leader: reconcile every Build and BuildRun the caches hold (a hot
    standby saw them all; what the previous leader left half done is finished now)."""
    builds.register_all_later(ctx, list(ctx.builds.stored_keys()))
    if ctx.reconcile_queue is not None:
        for key in ctx.buildruns.stored_keys():
            ctx.reconcile_queue.add(key)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    global _metrics_server
    ctx = context.current()
    if ctx.elector is not None:
        await ctx.elector.stop()
        await ctx.elector.close()
    if ctx.pod_informer is not None:
        await ctx.pod_informer.stop()
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
    from buildwright.handlers import buildruns, builds, conversion, watches  # noqa: F401

"""Prometheus metrics and the health endpoints, served on one port (8383, like Shipwright).

Two families:

- Shipwright's seven `build_*` metrics, with upstream's names, types, buckets and opt-in
  labels. What each one observes is decided in `core.metrics`; here the observations are
  recorded. See docs/metrics.md for what they measure when the executor is a Pod.
- The operator's own, `buildwright_*`: the reconcile work queue (depth, wait), reconcile
  durations, API requests by verb, resource and code, watch restarts, and leadership.

`GET /metrics` (text format), `GET /healthz` (the process answers) and `GET /readyz`
(`buildwright.health`: every readiness check passed). A private registry, not the global
one: two operators in one test process, or a re-import, do not collide.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from buildwright import health
from buildwright.core import metrics as decided

logger = logging.getLogger("buildwright")

# Upstream's Go client exports no `*_created` series; neither do we.
disable_created_metrics()  # type: ignore[no-untyped-call]

DEFAULT_PORT = 8383
PORT_ENV = "BUILDWRIGHT_METRICS_PORT"
HOST_ENV = "BUILDWRIGHT_METRICS_HOST"

# Seconds: reconciles take milliseconds to a few seconds; queue waits up to minutes in a
# burst.
_RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_QUEUE_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """Every instrument of one operator process, in its own registry."""

    def __init__(self, settings: decided.MetricsSettings | None = None) -> None:
        self.settings = settings or decided.MetricsSettings()
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        s = self.settings
        self._shipwright: dict[str, Counter | Histogram] = {
            decided.BUILDS_REGISTERED: Counter(
                decided.BUILDS_REGISTERED.removesuffix("_total"),
                "Number of total registered Builds.",
                s.label_names(decided.BUILDS_REGISTERED), registry=registry,
            ),
            decided.BUILDRUNS_COMPLETED: Counter(
                decided.BUILDRUNS_COMPLETED.removesuffix("_total"),
                "Number of total completed BuildRuns.",
                s.label_names(decided.BUILDRUNS_COMPLETED), registry=registry,
            ),
        }  # fmt: skip
        helps = {
            decided.ESTABLISH_DURATION: "BuildRun establish duration in seconds.",
            decided.COMPLETION_DURATION: "BuildRun completion duration in seconds.",
            decided.RAMPUP_DURATION: "BuildRun ramp-up duration in seconds (time between "
            "buildrun creation and taskrun creation).",
            decided.TASKRUN_RAMPUP_DURATION: "BuildRun taskrun ramp-up duration in seconds "
            "(time between taskrun creation and taskrun pod creation).",
            decided.TASKRUN_POD_RAMPUP_DURATION: "BuildRun taskrun pod ramp-up duration in "
            "seconds (time between pod creation and last init container completion).",
        }
        for name, text in helps.items():
            self._shipwright[name] = Histogram(
                name, text, s.label_names(name), buckets=s.buckets(name), registry=registry
            )

        self.queue_depth = Gauge(
            "buildwright_workqueue_depth", "BuildRuns waiting in the reconcile queue.",
            registry=registry,
        )  # fmt: skip
        self.retries_scheduled = Gauge(
            "buildwright_retries_scheduled",
            "Builds and BuildRuns whose next attempt waits on a backoff timer (after a transient "
            "API error, or for a Build not validated yet).",
            registry=registry,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "buildwright_workqueue_queue_duration_seconds",
            "How long a BuildRun waited in the reconcile queue before a worker took it.",
            buckets=_QUEUE_BUCKETS, registry=registry,
        )  # fmt: skip
        self.reconcile_duration = Histogram(
            "buildwright_reconcile_duration_seconds",
            "Duration of one reconcile, by kind and result (success, retry, error).",
            ["kind", "result"], buckets=_RECONCILE_BUCKETS, registry=registry,
        )  # fmt: skip
        self.api_requests = Counter(
            "buildwright_api_requests",
            "Requests to the Kubernetes API, by verb, resource and HTTP code "
            "(`error` when no answer came).",
            ["verb", "resource", "code"], registry=registry,
        )  # fmt: skip
        self.watch_restarts = Counter(
            "buildwright_watch_restarts",
            "Watches the operator had to start again (ended with an error or expired).",
            ["resource", "reason"], registry=registry,
        )  # fmt: skip
        self.leader = Gauge(
            "buildwright_leader",
            "1 while this replica holds the leader Lease and reconciles, else 0.",
            registry=registry,
        )  # fmt: skip
        self.trigger_deliveries = Counter(
            "buildwright_trigger_deliveries",
            "Webhook deliveries by provider and outcome (triggered, duplicate, no_match, "
            "ignored, refused_signature, refused_malformed, refused_too_large, error).",
            ["provider", "outcome"], registry=registry,
        )  # fmt: skip
        self.trigger_image_polls = Counter(
            "buildwright_trigger_image_polls",
            "Digest lookups of images Image triggers watch, by outcome (unchanged, baseline, "
            "triggered, absent, failed).",
            ["outcome"], registry=registry,
        )  # fmt: skip
        self.leader_transitions = Counter(
            "buildwright_leader_transitions",
            "Times this replica started or stopped leading.", ["to"], registry=registry,
        )  # fmt: skip

    def observe(self, observations: Iterable[decided.Observation]) -> None:
        """Record what `core.metrics` decided, keeping only the enabled labels."""
        for observation in observations:
            instrument = self._shipwright[observation.metric]
            names = self.settings.label_names(observation.metric)
            if names:
                instrument = instrument.labels(*(observation.labels.get(n, "") for n in names))
            if isinstance(instrument, Histogram):
                instrument.observe(observation.value)
            else:
                instrument.inc(observation.value)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


_current: Metrics | None = None


def current() -> Metrics:
    """The process's metrics (created with default settings on first use)."""
    global _current
    if _current is None:
        _current = Metrics()
    return _current


def install(metrics: Metrics) -> None:
    global _current
    _current = metrics


# --------------------------------------------------------------------------- HTTP


async def _metrics_endpoint(_request: web.Request) -> web.Response:
    body = current().exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz_endpoint(_request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _readyz_endpoint(_request: web.Request) -> web.Response:
    missing = health.not_ready()
    if not missing:
        return web.Response(text="ok\n")
    lines = "".join(f"{key}: {reason}\n" for key, reason in sorted(missing.items()))
    return web.Response(status=503, text=lines)


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/metrics", _metrics_endpoint)
    app.router.add_get("/healthz", _healthz_endpoint)
    app.router.add_get("/readyz", _readyz_endpoint)
    return app


def listen_address(env: Mapping[str, str]) -> tuple[str, int]:
    """Where to serve: `BUILDWRIGHT_METRICS_HOST` (0.0.0.0 in a cluster, else 127.0.0.1) and
    `BUILDWRIGHT_METRICS_PORT` (8383; 0 picks a free port)."""
    in_cluster = bool(env.get("KUBERNETES_SERVICE_HOST"))
    host = env.get(HOST_ENV) or ("0.0.0.0" if in_cluster else "127.0.0.1")
    text = env.get(PORT_ENV) or str(DEFAULT_PORT)
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{PORT_ENV} must be a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{PORT_ENV} out of range: {port}")
    return host, port


async def serve(host: str, port: int) -> web.AppRunner:
    """Serve /metrics, /healthz and /readyz; the caller awaits `runner.cleanup()`."""
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner

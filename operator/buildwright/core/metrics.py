"""What the Shipwright metrics observe, decided from the objects alone.

Shipwright's controller exports seven metrics that dashboards and alerts are written
against (`docs/metrics.md`). Their values are durations between timestamps the objects
already carry, so they are computed here, purely; the shell (`buildwright.metrics`) only
records the observations, and only on a transition it wrote itself (the Pod it created, the
status write that finished the run), so a handler that runs twice, or another replica,
cannot count a run twice.

Labels follow upstream: none by default, `PROMETHEUS_ENABLED_LABELS` picks some of
`buildstrategy`, `namespace`, `build` and (BuildRun metrics only) `buildrun`, in that order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from buildwright.core.formats import parse_time

BUILDS_REGISTERED = "build_builds_registered_total"
BUILDRUNS_COMPLETED = "build_buildruns_completed_total"
ESTABLISH_DURATION = "build_buildrun_establish_duration_seconds"
COMPLETION_DURATION = "build_buildrun_completion_duration_seconds"
RAMPUP_DURATION = "build_buildrun_rampup_duration_seconds"
TASKRUN_RAMPUP_DURATION = "build_buildrun_taskrun_rampup_duration_seconds"
TASKRUN_POD_RAMPUP_DURATION = "build_buildrun_taskrun_pod_rampup_duration_seconds"

COUNTERS = (BUILDS_REGISTERED, BUILDRUNS_COMPLETED)
HISTOGRAMS = (
    ESTABLISH_DURATION,
    COMPLETION_DURATION,
    RAMPUP_DURATION,
    TASKRUN_RAMPUP_DURATION,
    TASKRUN_POD_RAMPUP_DURATION,
)

BUILD_LABELS = ("buildstrategy", "namespace", "build")
BUILDRUN_LABELS = ("buildstrategy", "namespace", "build", "buildrun")

# Upstream's defaults (pkg/config): fixed establish buckets, 50..500 step 50 for completion,
# 0..9 step 1 for the three ramp-up histograms.
DEFAULT_ESTABLISH_BUCKETS = (0.0, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0)
DEFAULT_COMPLETION_BUCKETS = tuple(float(50 * i) for i in range(1, 11))
DEFAULT_RAMPUP_BUCKETS = tuple(float(i) for i in range(10))

ESTABLISH_BUCKETS_ENV = "PROMETHEUS_BR_EST_DUR_BUCKETS"
COMPLETION_BUCKETS_ENV = "PROMETHEUS_BR_COMP_DUR_BUCKETS"
RAMPUP_BUCKETS_ENV = "PROMETHEUS_BR_RAMPUP_DUR_BUCKETS"
ENABLED_LABELS_ENV = "PROMETHEUS_ENABLED_LABELS"


@dataclass(frozen=True)
class MetricsSettings:
    """Buckets and enabled labels, as upstream's environment variables set them."""

    establish_buckets: tuple[float, ...] = DEFAULT_ESTABLISH_BUCKETS
    completion_buckets: tuple[float, ...] = DEFAULT_COMPLETION_BUCKETS
    rampup_buckets: tuple[float, ...] = DEFAULT_RAMPUP_BUCKETS
    enabled_labels: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> MetricsSettings:
        """Read the settings; a bucket list that is not comma-separated numbers is refused
        with the variable's name (upstream refuses to start, too)."""
        labels = environ.get(ENABLED_LABELS_ENV, "")
        return cls(
            establish_buckets=_buckets(environ, ESTABLISH_BUCKETS_ENV, DEFAULT_ESTABLISH_BUCKETS),
            completion_buckets=_buckets(
                environ, COMPLETION_BUCKETS_ENV, DEFAULT_COMPLETION_BUCKETS
            ),
            rampup_buckets=_buckets(environ, RAMPUP_BUCKETS_ENV, DEFAULT_RAMPUP_BUCKETS),
            enabled_labels=frozenset(p.strip() for p in labels.split(",") if p.strip()),
        )

    def label_names(self, metric: str) -> tuple[str, ...]:
        """The labels `metric` carries, in upstream's order."""
        names = BUILD_LABELS if metric == BUILDS_REGISTERED else BUILDRUN_LABELS
        return tuple(n for n in names if n in self.enabled_labels)

    def buckets(self, metric: str) -> tuple[float, ...]:
        if metric == ESTABLISH_DURATION:
            return self.establish_buckets
        if metric == COMPLETION_DURATION:
            return self.completion_buckets
        return self.rampup_buckets


def _buckets(
    environ: Mapping[str, str], name: str, default: tuple[float, ...]
) -> tuple[float, ...]:
    if name not in environ:
        return default
    text = environ[name]
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a comma-separated list of numbers") from None
    if list(values) != sorted(set(values)):
        raise ValueError(f"{name}={text!r}: bucket bounds must increase")
    return values


@dataclass(frozen=True)
class Observation:
    """One sample: a counter increment (`value` 1) or a histogram observation in seconds,
    with the values of every label it could carry (the shell keeps the enabled ones)."""

    metric: str
    value: float
    labels: Mapping[str, str]


def build_registered(build: Mapping[str, Any]) -> list[Observation]:
    """A Build whose status the operator just set to registered."""
    meta = _mapping(build.get("metadata"))
    strategy = _mapping(_mapping(build.get("spec")).get("strategy"))
    labels = {
        "buildstrategy": str(strategy.get("name") or ""),
        "namespace": str(meta.get("namespace") or ""),
        "build": str(meta.get("name") or ""),
    }
    return [Observation(BUILDS_REGISTERED, 1, labels)]


def pod_created(
    buildrun: Mapping[str, Any], strategy: str, build_pod: Mapping[str, Any]
) -> list[Observation]:
    """The operator created the build Pod (its executor): upstream counts a "completed"
    BuildRun at this point, despite the name, and observes the ramp-up from the BuildRun's
    creation to the executor's."""
    labels = _run_labels(buildrun, strategy)
    observations = [Observation(BUILDRUNS_COMPLETED, 1, labels)]
    rampup = _seconds_between(_created(buildrun), _created(build_pod))
    if rampup is not None:
        observations.append(Observation(RAMPUP_DURATION, rampup, labels))
    return observations


def run_finished(
    buildrun: Mapping[str, Any], build_pod: Mapping[str, Any] | None
) -> list[Observation]:
    """The operator wrote the BuildRun's completion (it had a Pod): creation → start and
    creation → completion; executor → Pod (always 0: the Pod is the executor); Pod creation
    → its last init container finished."""
    status = _mapping(buildrun.get("status"))
    strategy = _mapping(_mapping(status.get("buildSpec")).get("strategy"))
    labels = _run_labels(buildrun, str(strategy.get("name") or ""))
    created = _created(buildrun)
    observations = []
    establish = _seconds_between(created, _timestamp(status.get("startTime")))
    if establish is not None:
        observations.append(Observation(ESTABLISH_DURATION, establish, labels))
    completion = _seconds_between(created, _timestamp(status.get("completionTime")))
    if completion is not None:
        observations.append(Observation(COMPLETION_DURATION, completion, labels))
    if build_pod is not None:
        observations.append(Observation(TASKRUN_RAMPUP_DURATION, 0.0, labels))
        pod_rampup = _seconds_between(_created(build_pod), last_init_container_finished(build_pod))
        if pod_rampup is not None:
            observations.append(Observation(TASKRUN_POD_RAMPUP_DURATION, pod_rampup, labels))
    return observations


def last_init_container_finished(build_pod: Mapping[str, Any]) -> datetime | None:
    """When the last of the Pod's init containers that ran ended (None: none ended). Init
    containers that never ran (after a failed one) do not count."""
    last = None
    for container in _mapping(build_pod.get("status")).get("initContainerStatuses") or []:
        terminated = _mapping(_mapping(_mapping(container).get("state")).get("terminated"))
        finished = _timestamp(terminated.get("finishedAt"))
        if finished is not None and (last is None or finished > last):
            last = finished
    return last


def _run_labels(buildrun: Mapping[str, Any], strategy: str) -> dict[str, str]:
    meta = _mapping(buildrun.get("metadata"))
    build = _mapping(_mapping(buildrun.get("spec")).get("build"))
    return {
        "buildstrategy": strategy,
        "namespace": str(meta.get("namespace") or ""),
        "build": str(build.get("name") or ""),
        "buildrun": str(meta.get("name") or ""),
    }


def _created(obj: Mapping[str, Any]) -> datetime | None:
    return _timestamp(_mapping(obj.get("metadata")).get("creationTimestamp"))


def _timestamp(value: Any) -> datetime | None:
    return parse_time(value) if isinstance(value, str) else None


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}

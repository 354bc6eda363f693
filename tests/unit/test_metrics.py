"""Shipwright's metrics: what is observed (core.metrics) and how it is exported."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from buildwright.core import metrics as observed
from buildwright.metrics import Metrics


def buildrun(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "run-1",
                     "creationTimestamp": "2026-01-01T10:00:00Z"},
        "spec": {"build": {"name": "b"}},
        "status": {"buildSpec": {"strategy": {"name": "kaniko"}}, **status},
    }  # fmt: skip


def build_pod(**status: Any) -> dict[str, Any]:
    return {"metadata": {"creationTimestamp": "2026-01-01T10:00:02Z"}, "status": status}


def families(metrics: Metrics) -> dict[str, Any]:
    text = metrics.exposition().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_defaults_are_upstreams_buckets_and_no_labels() -> None:
    settings = observed.MetricsSettings.from_env({})
    assert settings.establish_buckets == (0, 1, 2, 3, 5, 7, 10, 15, 20, 30)
    assert settings.completion_buckets == (50, 100, 150, 200, 250, 300, 350, 400, 450, 500)
    assert settings.rampup_buckets == tuple(range(10))
    assert settings.label_names(observed.BUILDRUNS_COMPLETED) == ()


def test_env_sets_buckets_and_labels_in_upstreams_order() -> None:
    settings = observed.MetricsSettings.from_env({
        "PROMETHEUS_BR_EST_DUR_BUCKETS": "1,2,4",
        "PROMETHEUS_BR_COMP_DUR_BUCKETS": "10,20",
        "PROMETHEUS_BR_RAMPUP_DUR_BUCKETS": "0.5,1",
        "PROMETHEUS_ENABLED_LABELS": "buildrun, namespace,buildstrategy,build",
    })  # fmt: skip
    assert settings.buckets(observed.ESTABLISH_DURATION) == (1, 2, 4)
    assert settings.buckets(observed.COMPLETION_DURATION) == (10, 20)
    assert settings.buckets(observed.TASKRUN_POD_RAMPUP_DURATION) == (0.5, 1)
    assert settings.label_names(observed.COMPLETION_DURATION) == (
        "buildstrategy", "namespace", "build", "buildrun"
    )  # fmt: skip
    # Builds have no buildrun label.
    assert settings.label_names(observed.BUILDS_REGISTERED) == (
        "buildstrategy",
        "namespace",
        "build",
    )


@pytest.mark.parametrize("value", ["1,x", "", "3,2"])
def test_bad_buckets_name_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match="PROMETHEUS_BR_EST_DUR_BUCKETS"):
        observed.MetricsSettings.from_env({"PROMETHEUS_BR_EST_DUR_BUCKETS": value})


def test_pod_created_counts_a_run_and_its_rampup() -> None:
    run = buildrun()
    [count, rampup] = observed.pod_created(run, "kaniko", build_pod())
    assert (count.metric, count.value) == (observed.BUILDRUNS_COMPLETED, 1)
    assert (rampup.metric, rampup.value) == (observed.RAMPUP_DURATION, 2.0)
    assert rampup.labels == {"buildstrategy": "kaniko", "namespace": "ns", "build": "b",
                             "buildrun": "run-1"}  # fmt: skip


def test_run_finished_observes_durations_from_the_timestamps() -> None:
    run = buildrun(startTime="2026-01-01T10:00:03Z", completionTime="2026-01-01T10:01:40Z")
    pod = build_pod(initContainerStatuses=[
        {"name": "prepare", "state": {"terminated": {"finishedAt": "2026-01-01T10:00:04Z"}}},
        {"name": "place", "state": {"terminated": {"finishedAt": "2026-01-01T10:00:07Z"}}},
    ])  # fmt: skip
    values = {o.metric: o.value for o in observed.run_finished(run, pod)}
    assert values == {
        observed.ESTABLISH_DURATION: 3.0,
        observed.COMPLETION_DURATION: 100.0,
        observed.TASKRUN_RAMPUP_DURATION: 0.0,
        observed.TASKRUN_POD_RAMPUP_DURATION: 5.0,
    }


def test_pod_rampup_ends_with_the_last_init_container_that_ran() -> None:
    pod = build_pod(initContainerStatuses=[
        {"name": "a", "state": {"terminated": {"finishedAt": "2026-01-01T10:00:04Z"}}},
        {"name": "b", "state": {"waiting": {}}},  # never ran: a failed before it
    ])  # fmt: skip
    assert observed.last_init_container_finished(pod) == datetime(2026, 1, 1, 10, 0, 4, tzinfo=UTC)
    assert observed.last_init_container_finished(build_pod()) is None
    run = buildrun(completionTime="2026-01-01T10:00:05Z")
    metrics = {o.metric for o in observed.run_finished(run, build_pod())}
    assert metrics == {observed.COMPLETION_DURATION, observed.TASKRUN_RAMPUP_DURATION}


def test_exported_names_types_and_buckets_match_upstream() -> None:
    metrics = Metrics()
    metrics.observe(observed.pod_created(buildrun(), "kaniko", build_pod()))
    metrics.observe(observed.build_registered({"metadata": {"name": "b"}, "spec": {}}))
    found = families(metrics)
    assert found["build_buildruns_completed"].type == "counter"
    [sample] = found["build_buildruns_completed"].samples
    assert (sample.name, sample.labels, sample.value) == ("build_buildruns_completed_total", {}, 1)
    [sample] = found["build_builds_registered"].samples
    assert (sample.name, sample.value) == ("build_builds_registered_total", 1)
    rampup = found["build_buildrun_rampup_duration_seconds"]
    assert rampup.type == "histogram"
    bounds = [s.labels["le"] for s in rampup.samples if s.name.endswith("_bucket")]
    assert bounds == [*(f"{float(i)}" for i in range(10)), "+Inf"]
    counts = {s.labels["le"]: s.value for s in rampup.samples if s.name.endswith("_bucket")}
    assert counts["1.0"] == 0 and counts["2.0"] == 1
    assert not any(name.endswith("_created") for name in found)


def test_enabled_labels_are_exported() -> None:
    metrics = Metrics(observed.MetricsSettings(enabled_labels=frozenset({"namespace", "buildrun"})))
    metrics.observe(observed.pod_created(buildrun(), "kaniko", build_pod()))
    [sample] = families(metrics)["build_buildruns_completed"].samples
    assert sample.labels == {"namespace": "ns", "buildrun": "run-1"}


def test_the_grafana_dashboard_queries_only_exported_metrics() -> None:
    import json
    import re
    from pathlib import Path

    exported: set[str] = set()
    for family in families(Metrics()).values():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
        exported |= {family.name + s for s in suffixes.get(family.type, [""])}
    dashboard = json.loads(
        (Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text()
    )
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(?:build|buildwright)_[a-z_]+", target["expr"])
    }
    assert queried, "the dashboard queries nothing"
    assert queried <= exported, sorted(queried - exported)

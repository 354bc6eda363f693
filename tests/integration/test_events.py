"""End-of-run Events survive crashes (issue 15): one per run, posted even when the operator
stopped between writing the run's final status and posting its Event."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from buildwright_localcluster.kubelet import Outcome
from buildwright_localcluster.wait import wait_until
from tests.integration.harness import GROUP, SUCCESSFUL_RESULTS, VERSION, Cluster, buildrun
from tests.integration.test_buildruns import _registered_book_build


def end_events(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(cluster.kubectl(
        "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
    ))["items"]  # fmt: skip
    return events


def test_the_end_event_has_a_deterministic_name(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    _registered_book_build(cluster)
    run = cluster.create("buildruns", buildrun())
    name, uid = run["metadata"]["name"], run["metadata"]["uid"]
    cluster.wait_buildrun(name, "True", "Succeeded")
    [event] = wait_until(lambda: end_events(cluster, name), timeout=30, description="the Event")
    assert event["metadata"]["name"] == f"{name}.{uid}.end"
    assert (event["type"], event["reason"]) == ("Normal", "Succeeded")


def test_a_restarted_operator_posts_the_event_it_missed_once(cluster: Cluster) -> None:
    """The run's final status was written, then the operator died before the Event."""
    _registered_book_build(cluster)
    cluster.operator.kill()
    try:
        run = cluster.create("buildruns", buildrun())
        name, uid = run["metadata"]["name"], run["metadata"]["uid"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        cluster.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, cluster.namespace, "buildruns", name, {"status": {
                "startTime": now, "completionTime": now,
                "conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed",
                                "message": "step build failed", "lastTransitionTime": now}],
            }},
        )  # fmt: skip
    finally:
        cluster.operator.start()
    [event] = wait_until(lambda: end_events(cluster, name), timeout=30, description="the Event")
    assert event["metadata"]["name"] == f"{name}.{uid}.end"
    assert (event["type"], event["reason"], event["message"]) == (
        "Warning", "Failed", "step build failed"
    )
    # Another restart finds it posted: still one.
    cluster.operator.kill()
    cluster.operator.start()
    marker = cluster.create("buildruns", buildrun("no-such-build"))["metadata"]["name"]
    cluster.wait_buildrun(marker, "False", "BuildNotFound")  # the restarted operator is at work
    wait_until(lambda: end_events(cluster, marker), timeout=30, description="the marker's Event")
    assert len(end_events(cluster, name)) == 1

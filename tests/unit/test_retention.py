"""Retention: TTL after completion and per-Build run limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from buildwright.api.v1beta1 import BuildRun
from buildwright.core.retention import outcome, runs_to_delete, ttl_expiry

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def run(
    name: str = "r",
    *,
    result: str | None = "True",
    reason: str = "Succeeded",
    created: int = 0,
    completed: int | None = 60,
    retention: dict[str, Any] | None = None,
    snapshot_retention: dict[str, Any] | None = None,
    embedded_retention: dict[str, Any] | None = None,
    state: str | None = None,
) -> BuildRun:
    build: dict[str, Any] = {"name": "sample"}
    if embedded_retention is not None:
        build = {"spec": {"strategy": {"name": "buildah"}, "output": {"image": "r/i"},
                          "retention": embedded_retention}}
    spec: dict[str, Any] = {"build": build}
    if retention is not None:
        spec["retention"] = retention
    if state is not None:
        spec["state"] = state
    status: dict[str, Any] = {}
    if result is not None:
        status["conditions"] = [{
            "type": "Succeeded", "status": result, "reason": reason, "message": "m",
            "lastTransitionTime": stamp(T0),
        }]
    if completed is not None:
        status["completionTime"] = stamp(T0 + timedelta(seconds=completed))
    if snapshot_retention is not None:
        status["buildSpec"] = {"strategy": {"name": "buildah"}, "output": {"image": "r/i"},
                               "retention": snapshot_retention}
    return BuildRun.model_validate({
        "metadata": {"name": name, "namespace": "ns",
                     "creationTimestamp": stamp(T0 + timedelta(seconds=created))},
        "spec": spec,
        "status": status,
    })


def test_outcome() -> None:
    assert outcome(run()) is True
    assert outcome(run(result="False", reason="Failed")) is False
    canceled = run(result="False", reason="BuildRunCanceled", state="BuildRunCanceled")
    assert outcome(canceled) is False
    assert outcome(run(result="Unknown", reason="Running", completed=None)) is None
    assert outcome(run(result=None, completed=None)) is None


def test_ttl_from_the_buildrun() -> None:
    finished = T0 + timedelta(seconds=60)
    assert ttl_expiry(run(retention={"ttlAfterSucceeded": "10m"})) == finished + timedelta(
        minutes=10
    )
    failed = run(result="False", reason="Failed", retention={"ttlAfterFailed": "1h"})
    assert ttl_expiry(failed) == finished + timedelta(hours=1)


def test_canceled_counts_as_failed() -> None:
    canceled = run(result="False", reason="BuildRunCanceled", state="BuildRunCanceled",
                   retention={"ttlAfterSucceeded": "1m", "ttlAfterFailed": "2m"})
    assert ttl_expiry(canceled) == T0 + timedelta(seconds=60) + timedelta(minutes=2)


def test_buildrun_wins_per_field_over_the_build_snapshot() -> None:
    both = {"ttlAfterSucceeded": "1h", "ttlAfterFailed": "2h"}
    finished = T0 + timedelta(seconds=60)
    succeeded = run(retention={"ttlAfterFailed": "5m"}, snapshot_retention=both)
    # The BuildRun only sets ttlAfterFailed: a success falls back to the Build's.
    assert ttl_expiry(succeeded) == finished + timedelta(hours=1)
    failed = run(result="False", reason="Failed", retention={"ttlAfterFailed": "5m"},
                 snapshot_retention=both)
    assert ttl_expiry(failed) == finished + timedelta(minutes=5)


def test_embedded_spec_retention_when_no_snapshot_was_written() -> None:
    early_failure = run(result="False", reason="BuildRunBuildFieldOverrideForbidden",
                        embedded_retention={"ttlAfterFailed": "30s"})
    assert ttl_expiry(early_failure) == T0 + timedelta(seconds=90)


@pytest.mark.parametrize(
    "buildrun",
    [
        run(),  # no TTL anywhere
        run(result="Unknown", reason="Running", completed=None,
            retention={"ttlAfterSucceeded": "1m", "ttlAfterFailed": "1m"}),
        run(result="False", reason="Failed", retention={"ttlAfterSucceeded": "1m"}),
    ],
)
def test_no_expiry(buildrun: BuildRun) -> None:
    assert ttl_expiry(buildrun) is None


def test_runs_to_delete_keeps_the_newest_per_outcome() -> None:
    runs = [
        run("s-old", created=0),
        run("s-mid", created=10),
        run("s-new", created=20),
        run("f-old", result="False", reason="Failed", created=5),
        run("c-new", result="False", reason="BuildRunCanceled", state="BuildRunCanceled",
            created=25),
        run("busy-oldest", result="Unknown", reason="Running", completed=None, created=-100),
        run("pending", result=None, completed=None, created=-50),
    ]
    assert runs_to_delete(runs, succeeded_limit=1, failed_limit=1) == [
        "s-old", "f-old", "s-mid"
    ]
    assert runs_to_delete(runs, succeeded_limit=2, failed_limit=None) == ["s-old"]
    assert runs_to_delete(runs, succeeded_limit=None, failed_limit=None) == []
    assert runs_to_delete(runs, succeeded_limit=5, failed_limit=2) == []

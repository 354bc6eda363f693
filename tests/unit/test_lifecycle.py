"""Lifecycle decisions: deadline, cancellation, vanished Pod, controller-side failures."""

from __future__ import annotations

from datetime import timedelta

from buildwright.core import lifecycle, status
from buildwright.core.reasons import Failure, Reason
from buildwright.core.status import status_from_pod
from buildwright.core.status_writes import status_patch
from tests.unit.test_status import (
    BR,
    CREATED,
    NOW,
    POD,
    buildrun,
    condition,
    make_pod,
    merge,
    outcome,
    running,
    scheduled_conditions,
    succeeded_pod,
    terminated,
    ts,
    waiting,
)


def test_pod_missing_is_taskrun_is_missing() -> None:
    update = status.missing_pod_update(buildrun(), POD, NOW)
    assert outcome(update) == ("False", "TaskRunIsMissing", f"taskRun {POD} doesn't exist")
    assert update.completion_time == ts(90)


def test_pod_missing_after_a_cancel_is_the_cancel() -> None:
    update = status.missing_pod_update(buildrun(state="BuildRunCanceled"), POD, NOW)
    assert outcome(update) == (
        "False", "BuildRunCanceled",
        "The BuildRun and underlying TaskRun were canceled successfully.",
    )


def test_canceled_before_a_pod_exists() -> None:
    failure = lifecycle.canceled_before_start(buildrun(state="BuildRunCanceled"))
    assert failure is not None
    assert lifecycle.canceled_before_start(buildrun()) is None
    update = lifecycle.failure_status(failure, NOW)
    assert outcome(update) == ("False", "BuildRunCanceled", "the BuildRun is marked canceled.")
    assert update.completion_time == ts(90)
    assert update.executor is None


def test_canceled_with_a_pending_or_running_pod_stops_it() -> None:
    canceled = buildrun(state="BuildRunCanceled")
    unscheduled = make_pod(started=False, conditions=[
        condition("PodScheduled", "False", "Unschedulable", "no nodes")])
    busy = make_pod({"step-source-default": running(4)}, waiting("PodInitializing"),
                    conditions=scheduled_conditions(initialized=False, ready=False))
    for pod in (unscheduled, busy):
        update = status.status_from_pod(canceled, pod, NOW)
        assert outcome(update) == (
            "False", "BuildRunCanceled",
            "The BuildRun and underlying TaskRun were canceled successfully.",
        )
        assert update.stop_pod
        assert update.completion_time == ts(90)


def test_canceled_after_the_pod_succeeded() -> None:
    update = status.status_from_pod(
        buildrun(state="BuildRunCanceled"), succeeded_pod({}), NOW
    )
    assert outcome(update) == (
        "True", "Succeeded",
        "The TaskRun completed before the request to cancel the TaskRun could be processed.",
    )
    assert not update.stop_pod


def test_timeout_deadline_counts_from_buildrun_creation() -> None:
    assert lifecycle.timeout_deadline(buildrun(timeout="10m")) == CREATED + timedelta(minutes=10)
    assert lifecycle.timeout_deadline(buildrun(snapshot_timeout="1h30m")) == (
        CREATED + timedelta(minutes=90)
    )
    # The BuildRun's own timeout wins over the Build's.
    assert lifecycle.timeout_deadline(buildrun(timeout="2m", snapshot_timeout="1h")) == (
        CREATED + timedelta(minutes=2)
    )
    assert lifecycle.timeout_deadline(buildrun()) is None
    assert lifecycle.timeout_deadline(buildrun(), 30) == CREATED + timedelta(seconds=30)


def test_timed_out() -> None:
    run = buildrun(timeout="1m")
    assert not lifecycle.timed_out(run, CREATED + timedelta(seconds=59))
    assert lifecycle.timed_out(run, CREATED + timedelta(seconds=60))
    # Naive times are UTC.
    assert lifecycle.timed_out(run, (CREATED + timedelta(seconds=61)).replace(tzinfo=None))
    assert not lifecycle.timed_out(buildrun(), CREATED + timedelta(days=30))
    done = buildrun(timeout="1m", status={"completionTime": ts(30)})
    assert not lifecycle.timed_out(done, CREATED + timedelta(hours=1))


def test_timeout_status() -> None:
    update = lifecycle.timeout_status(buildrun(snapshot_timeout="1h"), NOW)
    assert outcome(update) == ("False", "BuildRunTimeout",
                               f"BuildRun {BR} failed to finish within 1h0m0s")
    assert update.completion_time == ts(90)
    assert update.stop_pod
    half = lifecycle.timeout_status(buildrun(), NOW, 0.5)
    assert outcome(half)[2] == f"BuildRun {BR} failed to finish within 500ms"


def test_timeout_wins_over_a_pod_that_is_still_running_but_not_over_a_finished_one() -> None:
    run = buildrun(timeout="1m")
    busy = make_pod({"step-source-default": terminated(0, 4, 10),
                     "step-build-and-push": running(11)}, waiting("PodInitializing"),
                    conditions=scheduled_conditions(initialized=False, ready=False))
    assert lifecycle.timed_out(run, NOW)
    update = status_from_pod(run, busy, NOW)
    assert outcome(update)[1] == "BuildRunTimeout" and update.stop_pod
    assert outcome(status_from_pod(run, succeeded_pod({}), NOW))[1] == "Succeeded"


def test_failure_status_and_its_patch() -> None:
    failure = Failure(Reason.BUILD_NOT_FOUND, 'build.shipwright.io "sample" not found')
    update = lifecycle.failure_status(failure, NOW)
    assert outcome(update) == ("False", "BuildNotFound", 'build.shipwright.io "sample" not found')
    patch = status_patch({}, update)
    assert patch == {
        "conditions": [{
            "type": "Succeeded", "status": "False", "reason": "BuildNotFound",
            "message": 'build.shipwright.io "sample" not found', "lastTransitionTime": ts(90),
        }],
        "completionTime": ts(90),
    }
    # Written once; a second decision (another reconcile) writes nothing.
    written = merge({}, patch)
    assert status_patch(written, lifecycle.failure_status(failure, NOW + timedelta(1))) is None


def test_the_end_event_name_is_one_per_run() -> None:
    name = lifecycle.end_event_name("run-1", "0b7d5c3e-1111-2222-3333-444455556666")
    assert name == "run-1.0b7d5c3e-1111-2222-3333-444455556666.end"
    assert name != lifecycle.end_event_name("run-1", "another-uid")


def test_a_missed_end_event_is_posted_only_while_events_are_kept() -> None:
    assert not lifecycle.end_event_missed(buildrun(), NOW)  # not finished
    finished = buildrun(status={"completionTime": ts(60)})
    assert lifecycle.end_event_missed(finished, NOW)
    assert not lifecycle.end_event_missed(finished, NOW + timedelta(hours=1))

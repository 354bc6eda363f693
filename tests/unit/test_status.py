"""BuildRun status from the build Pod: every reason and message of upstream's condition and
failureDetails, results into output/source, and the minimal status patch.

Most Pods here have the shape of the operator's earlier releases, as a kubelet reports them:
steps are init containers, the Pod stays in phase Pending while they run, and only
`step-results` is a regular container; BuildRuns still running in such Pods when the operator
is upgraded must end right. The tests at the end use today's shape: a `prepare` init
container, then every step a regular container behind Tekton's entrypoint.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from buildwright.api.base import Condition
from buildwright.api.v1beta1 import BuildRun
from buildwright.core.contract import render_termination_message
from buildwright.core.formats import go_quote
from buildwright.core.podview import pod_ending
from buildwright.core.reasons import Reason
from buildwright.core.status import (
    LOG_TAIL_BYTES,
    LOG_TAIL_LINES,
    StatusUpdate,
    log_tail_wanted,
    status_from_pod,
    with_log_tail,
)
from buildwright.core.status_writes import announced_condition, status_patch, write_deadline

NS = "builds"
BR = "sample-run"
POD = f"{BR}-pod"
CREATED = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
NOW = CREATED + timedelta(seconds=90)
DIGEST = "sha256:" + "ab" * 32
SHA = "0123456789abcdef0123456789abcdef01234567"
STEPS = ["step-source-default", "step-build-and-push"]


def ts(seconds: int) -> str:
    return (CREATED + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def buildrun(
    *, timeout: str | None = None, state: str | None = None, status: dict[str, Any] | None = None,
    snapshot_timeout: str | None = None,
) -> BuildRun:
    spec: dict[str, Any] = {"build": {"name": "sample"}}
    if timeout:
        spec["timeout"] = timeout
    if state:
        spec["state"] = state
    body: dict[str, Any] = {
        "apiVersion": "shipwright.io/v1beta1",
        "kind": "BuildRun",
        "metadata": {"name": BR, "namespace": NS, "creationTimestamp": ts(0), "uid": "u-1"},
        "spec": spec,
        "status": dict(status or {}),
    }
    if snapshot_timeout:
        body["status"]["buildSpec"] = {
            "strategy": {"name": "buildah", "kind": "ClusterBuildStrategy"},
            "output": {"image": "registry.local/app"},
            "timeout": snapshot_timeout,
        }
    return BuildRun.model_validate(body)


# --- container states as the kubelet writes them ----------------------------------------------


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason}
    if message is not None:
        state["message"] = message
    return {"waiting": state}


def running(started: int) -> dict[str, Any]:
    return {"running": {"startedAt": ts(started)}}


def terminated(
    exit_code: int, started: int, finished: int, *, reason: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": ts(started),
        "finishedAt": ts(finished),
        "containerID": "containerd://" + "0" * 64,
    }
    if message is not None:
        state["message"] = message
    return {"terminated": state}


def container_status(name: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "state": state,
        "lastState": {},
        "ready": "terminated" in state and state["terminated"]["exitCode"] == 0,
        "restartCount": 0,
        "image": "registry.local/step:latest",
        "imageID": "",
        "started": "running" in state,
    }


def condition(kind: str, status: str, reason: str | None = None, message: str | None = None,
              ) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": kind, "status": status, "lastProbeTime": None,
                             "lastTransitionTime": ts(1)}
    if reason:
        entry["reason"] = reason
    if message:
        entry["message"] = message
    return entry


def scheduled_conditions(initialized: bool, ready: bool) -> list[dict[str, Any]]:
    return [
        condition("PodReadyToStartContainers", "True"),
        condition("Initialized", "True") if initialized else condition(
            "Initialized", "False", "ContainersNotInitialized",
            "containers with incomplete status: [step-build-and-push]",
        ),
        condition("Ready", "True" if ready else "False",
                  None if ready else "ContainersNotReady",
                  None if ready else "containers with unready status: [step-results]"),
        condition("ContainersReady", "True" if ready else "False",
                  None if ready else "ContainersNotReady",
                  None if ready else "containers with unready status: [step-results]"),
        condition("PodScheduled", "True"),
    ]


def make_pod(
    init_states: dict[str, dict[str, Any]] | None = None,
    results_state: dict[str, Any] | None = None,
    *,
    phase: str = "Pending",
    conditions: list[dict[str, Any]] | None = None,
    steps: list[str] | None = None,
    reason: str | None = None,
    message: str | None = None,
    started: bool = True,
    metadata: dict[str, Any] | None = None,
    status_order: list[str] | None = None,
) -> dict[str, Any]:
    """A build Pod; containers without a state are left out of the statuses (as before the
    kubelet has seen the Pod)."""
    step_names = steps if steps is not None else STEPS
    init_states = init_states or {}
    status: dict[str, Any] = {"phase": phase, "qosClass": "BestEffort"}
    if conditions is not None:
        status["conditions"] = conditions
    if started:
        status.update(hostIP="10.0.0.5", podIP="10.244.0.7", startTime=ts(3))
    order = status_order or step_names
    if init_states:
        status["initContainerStatuses"] = [
            container_status(name, init_states[name]) for name in order if name in init_states
        ]
    if results_state is not None:
        status["containerStatuses"] = [container_status("step-results", results_state)]
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD, "namespace": NS, "uid": "p-1", "creationTimestamp": ts(1),
                     **(metadata or {})},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [{"name": name, "image": "img"} for name in step_names],
            "containers": [{"name": "step-results", "image": "img"}],
        },
        "status": status,
    }


def results_message(results: dict[str, str]) -> str:
    return render_termination_message(results)


def succeeded_pod(results: dict[str, str]) -> dict[str, Any]:
    return make_pod(
        {
            "step-source-default": terminated(0, 4, 10),
            "step-build-and-push": terminated(0, 11, 70),
        },
        terminated(0, 71, 72, message=results_message(results)),
        phase="Succeeded",
        conditions=[
            condition("PodReadyToStartContainers", "False"),
            condition("Initialized", "True"),
            condition("Ready", "False", "PodCompleted"),
            condition("ContainersReady", "False", "PodCompleted"),
            condition("PodScheduled", "True"),
        ],
    )


def failed_pod(
    init_states: dict[str, dict[str, Any]], *, steps: list[str] | None = None, **kwargs: Any
) -> dict[str, Any]:
    return make_pod(
        init_states,
        waiting("PodInitializing"),
        phase="Failed",
        conditions=[
            condition("Initialized", "False", "ContainersNotInitialized"),
            condition("Ready", "False", "PodFailed"),
            condition("ContainersReady", "False", "PodFailed"),
            condition("PodScheduled", "True"),
        ],
        steps=steps,
        **kwargs,
    )


def logs(container: str) -> str:
    return f"kubectl --namespace {NS} logs {POD} --container={container}"


def outcome(update: StatusUpdate) -> tuple[str, str, str]:
    assert update.condition is not None
    return update.condition.status, update.condition.reason, update.condition.message


# --- in progress ------------------------------------------------------------------------------


def test_a_pod_nobody_has_looked_at_yet_is_pending() -> None:
    pod = make_pod(started=False)
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == ("Unknown", "Pending", "Pending")
    assert update.completion_time is None
    assert update.start_time is None
    assert update.executor is not None and update.executor.to_wire() == {
        "name": POD, "kind": "Pod"
    }
    assert update.task_run_name == POD


def test_unscheduled_pod_reports_the_scheduler_condition() -> None:
    message = (
        "0/1 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }. preemption: 0/1 nodes are available: "
        "1 Preemption is not helpful for scheduling."
    )
    pod = make_pod(
        started=False,
        conditions=[condition("PodScheduled", "False", "Unschedulable", message)],
    )
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == (
        "Unknown", "Pending", f'pod status "PodScheduled":"False"; message: "{message}"'
    )


def test_insufficient_resources_is_exceeded_node_resources() -> None:
    pod = make_pod(
        started=False,
        conditions=[condition(
            "PodScheduled", "False", "Unschedulable",
            "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are "
            "available: 1 No preemption victims found for incoming pod.",
        )],
    )
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == (
        "Unknown", "ExceededNodeResources", "TaskRun Pod exceeded available resources"
    )
    assert update.completion_time is None


def test_pending_falls_back_to_the_pod_message() -> None:
    pod = make_pod(started=False, conditions=[condition("PodScheduled", "True")],
                   message="Pod is waiting for a volume")
    assert outcome(status_from_pod(buildrun(), pod, NOW)) == (
        "Unknown", "Pending", "Pod is waiting for a volume"
    )


def test_first_waiting_message_in_spec_order_wins_and_is_go_quoted() -> None:
    pod = make_pod(
        {
            "step-build-and-push": waiting("CreateContainerConfigError",
                                           'failed to create subPath directory "a"'),
            "step-source-default": waiting("PodInitializing"),
        },
        waiting("PodInitializing"),
        conditions=scheduled_conditions(initialized=False, ready=False),
        status_order=["step-build-and-push", "step-source-default"],
    )
    # A subPath that cannot be created yet is recoverable: Pending, not a config error.
    assert outcome(status_from_pod(buildrun(), pod, NOW)) == (
        "Unknown",
        "Pending",
        'build step "step-build-and-push" is pending with reason '
        '"failed to create subPath directory \\"a\\""',
    )


def test_waiting_without_message_uses_the_first_condition_that_is_not_true() -> None:
    pod = make_pod(
        {"step-source-default": waiting("PodInitializing"),
         "step-build-and-push": waiting("PodInitializing")},
        waiting("PodInitializing"),
        conditions=[condition("PodReadyToStartContainers", "False"),
                    *scheduled_conditions(initialized=False, ready=False)[1:]],
    )
    assert outcome(status_from_pod(buildrun(), pod, NOW)) == (
        "Unknown", "Pending", 'pod status "PodReadyToStartContainers":"False"; message: ""'
    )


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("ErrImagePull", 'failed to pull and unpack image "registry.local/nope:1": not found'),
        ("ImagePullBackOff", 'Back-off pulling image "registry.local/nope:1"'),
        ("InvalidImageName", 'Failed to apply default image tag "Bad Image": invalid reference'),
    ],
)
def test_image_pull_errors(reason: str, message: str) -> None:
    pod = make_pod(
        {"step-source-default": terminated(0, 4, 10),
         "step-build-and-push": waiting(reason, message)},
        waiting("PodInitializing"),
        conditions=scheduled_conditions(initialized=False, ready=False),
    )
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == (
        "Unknown",
        "PullImageFailed",
        f'build step "step-build-and-push" is pending with reason {go_quote(message)}',
    )
    assert update.completion_time is None


def test_config_error_is_terminal_and_stops_the_pod() -> None:
    pod = make_pod(
        {"step-source-default": waiting("CreateContainerConfigError",
                                        'secret "git-creds" not found')},
        waiting("PodInitializing"),
        conditions=scheduled_conditions(initialized=False, ready=False),
    )
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == (
        "False", "CreateContainerConfigError", "Failed to create pod due to config error"
    )
    assert update.completion_time == ts(90)
    assert update.stop_pod


def test_a_running_init_step_means_running_although_the_pod_is_pending() -> None:
    pod = make_pod(
        {"step-source-default": terminated(0, 4, 10),
         "step-build-and-push": running(11)},
        waiting("PodInitializing"),
        conditions=scheduled_conditions(initialized=False, ready=False),
    )
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == (
        "Unknown", "Running", "Not all Steps in the Task have finished executing"
    )
    assert update.start_time == ts(3)
    assert update.completion_time is None
    assert update.failure_details is None


def test_phase_running_while_results_are_collected() -> None:
    pod = make_pod(
        {"step-source-default": terminated(0, 4, 10),
         "step-build-and-push": terminated(0, 11, 70)},
        running(71),
        phase="Running",
        conditions=scheduled_conditions(initialized=True, ready=True),
    )
    assert outcome(status_from_pod(buildrun(), pod, NOW))[1] == "Running"


# --- success and results ----------------------------------------------------------------------


def test_success_with_results_into_output_and_source() -> None:
    pod = succeeded_pod({
        "shp-image-digest": DIGEST,
        "shp-image-size": "12345678",
        "shp-source-default-commit-sha": SHA,
        "shp-source-default-commit-author": "Ada Lovelace",
        "shp-source-default-branch-name": "main",
        "shp-source-default-source-timestamp": "1714557600",
    })
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == ("True", "Succeeded", "All Steps have completed executing")
    assert update.start_time == ts(3)
    # completionTime: when the last container finished, not when we happened to look.
    assert update.completion_time == ts(72)
    assert update.output is not None and update.output.to_wire() == {
        "digest": DIGEST, "size": 12345678
    }
    assert update.source is not None and update.source.to_wire() == {
        "git": {"commitSha": SHA, "commitAuthor": "Ada Lovelace", "branchName": "main"},
        "timestamp": "2024-05-01T10:00:00Z",
    }
    assert update.failure_details is None
    assert not update.stop_pod


def test_oci_source_digest_vulnerabilities_and_bad_size() -> None:
    pod = succeeded_pod({
        "shp-image-digest": DIGEST,
        "shp-image-size": "not-a-number",
        "shp-source-default-image-digest": "sha256:" + "cd" * 32,
        "shp-image-vulnerabilities": "CVE-2024-1:C,CVE-2024-2:H,CVE-2024-3:M,CVE-2024-4:L,"
                                     "CVE-2024-5:X",
    })
    update = status_from_pod(buildrun(), pod, NOW)
    assert update.output is not None and update.output.to_wire() == {
        "digest": DIGEST,
        "vulnerabilities": [
            {"id": "CVE-2024-1", "severity": "critical"},
            {"id": "CVE-2024-2", "severity": "high"},
            {"id": "CVE-2024-3", "severity": "medium"},
            {"id": "CVE-2024-4", "severity": "low"},
            {"id": "CVE-2024-5", "severity": "unknown"},
        ],
    }
    assert update.source is not None and update.source.to_wire() == {
        "ociArtifact": {"digest": "sha256:" + "cd" * 32}
    }


def test_success_without_results_leaves_output_and_source_alone() -> None:
    update = status_from_pod(buildrun(), succeeded_pod({}), NOW)
    assert update.output is None
    assert update.source is None


# --- failures ---------------------------------------------------------------------------------


def test_failing_strategy_step_with_plain_text_termination_message() -> None:
    pod = failed_pod({
        "step-source-default": terminated(0, 4, 10),
        "step-build-and-push": terminated(
            1, 11, 30, message="Dockerfile not found in context directory\n"
        ),
    })
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == (
        "False", "Failed",
        "buildrun step step-build-and-push failed, for detailed information: "
        + logs("step-build-and-push"),
    )
    assert update.completion_time == ts(30)
    assert update.failure_details is not None
    assert update.failure_details.to_wire() == {
        "message": "Dockerfile not found in context directory",
        "location": {"pod": POD, "container": "step-build-and-push"},
    }


def test_failing_git_step_json_termination_message_gives_the_reason() -> None:
    message = json.dumps([
        {"key": "shp-error-reason", "value": "GitAuthInvalidUserOrPass", "type": 1},
        {"key": "shp-error-message",
         "value": "Invalid username or password for https://git.local/org/app", "type": 1},
    ])
    pod = failed_pod({"step-source-default": terminated(1, 4, 6, message=message),
                      "step-build-and-push": waiting("PodInitializing")})
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == (
        "False", "Failed",
        "buildrun step step-source-default failed, for detailed information: "
        + logs("step-source-default"),
    )
    assert update.failure_details is not None
    assert update.failure_details.to_wire() == {
        "reason": Reason.GIT_AUTH_INVALID_USER_OR_PASS,
        "message": "Invalid username or password for https://git.local/org/app",
        "location": {"pod": POD, "container": "step-source-default"},
    }
    # Error results are failure details, not build results.
    assert update.output is None and update.source is None


def test_failing_step_without_termination_message_has_location_only() -> None:
    pod = failed_pod({"step-source-default": terminated(0, 4, 10),
                      "step-build-and-push": terminated(2, 11, 12)})
    update = status_from_pod(buildrun(), pod, NOW)
    assert update.failure_details is not None
    assert update.failure_details.to_wire() == {
        "location": {"pod": POD, "container": "step-build-and-push"}
    }


def test_first_failing_container_is_chosen_in_spec_order_not_status_order() -> None:
    steps = ["step-source-default", "step-prepare", "step-build"]
    pod = failed_pod(
        {
            "step-source-default": terminated(0, 4, 10),
            "step-prepare": terminated(3, 11, 12, message="prepare broke"),
            "step-build": terminated(4, 13, 14, message="build broke"),
        },
        steps=steps,
        status_order=["step-build", "step-source-default", "step-prepare"],
    )
    pod["status"]["containerStatuses"] = [
        container_status("step-results", terminated(5, 15, 16, message="results broke"))
    ]
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update)[2] == (
        "buildrun step step-prepare failed, for detailed information: " + logs("step-prepare")
    )
    assert update.failure_details is not None
    assert update.failure_details.location is not None
    assert update.failure_details.location.container == "step-prepare"
    # The message comes from the failed steps in step order, the last one with a value.
    assert update.failure_details.message == "results broke"
    assert update.completion_time == ts(16)


def test_step_failure_is_final_before_the_pod_phase_catches_up() -> None:
    pod = make_pod(
        {"step-source-default": terminated(128, 4, 5, message="boom"),
         "step-build-and-push": waiting("PodInitializing")},
        waiting("PodInitializing"),
        conditions=scheduled_conditions(initialized=False, ready=False),
    )
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update)[:2] == ("False", "Failed")
    assert update.completion_time == ts(5)


def test_out_of_memory() -> None:
    pod = failed_pod({
        "step-source-default": terminated(0, 4, 10),
        "step-build-and-push": terminated(137, 11, 40, reason="OOMKilled"),
    })
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == (
        "False", "StepOutOfMemory",
        "buildrun step step-build-and-push failed due to out-of-memory, for detailed "
        "information: " + logs("step-build-and-push"),
    )
    assert update.failure_details is not None
    assert update.failure_details.to_wire() == {
        "location": {"pod": POD, "container": "step-build-and-push"}
    }


def test_evicted_pod() -> None:
    message = (
        "The node was low on resource: ephemeral-storage. Threshold quantity: 1Gi, "
        "available: 512Mi. Container step-build-and-push was using 3Gi, request is 0, has "
        "larger consumption of ephemeral-storage. "
    )
    pod = failed_pod(
        {"step-source-default": terminated(0, 4, 10),
         "step-build-and-push": terminated(137, 11, 50, reason="ContainerStatusUnknown",
                                           message="The container could not be located when "
                                                   "the pod was terminated")},
        reason="Evicted",
        message=message,
    )
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == ("False", "PodEvicted", message)
    assert update.failure_details is not None
    assert update.failure_details.to_wire() == {
        "location": {"pod": POD, "container": "step-build-and-push"}
    }


def test_evicted_before_any_step_ran() -> None:
    pod = failed_pod({}, reason="Evicted", message="Pod The node had condition: [DiskPressure].")
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == ("False", "PodEvicted", "Pod The node had condition: [DiskPressure].")
    assert update.completion_time == ts(90)
    assert update.failure_details is not None
    assert update.failure_details.to_wire() == {"location": {"pod": POD}}


@pytest.mark.parametrize(
    ("run_timeout", "snapshot_timeout", "shown"),
    [("5m", "1h", "5m0s"), (None, "1h", "1h0m0s"), ("90s", None, "1m30s"), (None, None, "1m30s")],
)
def test_deadline_exceeded_is_buildrun_timeout(
    run_timeout: str | None, snapshot_timeout: str | None, shown: str
) -> None:
    pod = failed_pod(
        {"step-source-default": terminated(0, 4, 10),
         "step-build-and-push": terminated(137, 11, 60)},
        reason="DeadlineExceeded",
        message="Pod was active on the node longer than the specified deadline",
    )
    run = buildrun(timeout=run_timeout, snapshot_timeout=snapshot_timeout)
    update = status_from_pod(run, pod, NOW)
    assert outcome(update) == (
        "False", "BuildRunTimeout", f"BuildRun {BR} failed to finish within {shown}"
    )
    assert update.failure_details is None
    assert update.completion_time == ts(60)


def test_vulnerabilities_found() -> None:
    steps = [*STEPS, "step-image-processing"]
    pod = failed_pod(
        {"step-source-default": terminated(0, 4, 10),
         "step-build-and-push": terminated(0, 11, 50),
         "step-image-processing": terminated(22, 51, 60, message=render_termination_message(
             {"shp-image-vulnerabilities": "CVE-2024-9:C"}))},
        steps=steps,
    )
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == (
        "False", "VulnerabilitiesFound",
        "Vulnerabilities have been found in the image which can be seen in the buildrun "
        "status. For detailed information,see " + logs("step-image-processing"),
    )
    assert update.failure_details is not None
    assert update.failure_details.location is not None
    assert update.failure_details.location.container == "step-image-processing"
    assert update.output is not None and update.output.to_wire() == {
        "vulnerabilities": [{"id": "CVE-2024-9", "severity": "critical"}]
    }


def test_image_processing_failing_with_another_code_is_failed() -> None:
    steps = [*STEPS, "step-image-processing"]
    pod = failed_pod(
        {"step-source-default": terminated(0, 4, 10),
         "step-build-and-push": terminated(0, 11, 50),
         "step-image-processing": terminated(1, 51, 60, message="push denied")},
        steps=steps,
    )
    assert outcome(status_from_pod(buildrun(), pod, NOW))[1] == "Failed"


def test_failed_pod_without_a_failing_container() -> None:
    pod = failed_pod(
        {"step-source-default": terminated(0, 4, 10)},
        reason="UnexpectedAdmissionError",
        message="Allocate failed due to no healthy devices present",
    )
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == (
        "False", "Failed",
        f"buildrun failed due to an unexpected error in pod {POD}: for detailed information: "
        f"kubectl --namespace {NS} logs {POD} --all-containers",
    )
    assert update.failure_details is not None
    assert update.failure_details.to_wire() == {"location": {"pod": POD}}


# --- operator-side timeout, cancellation, missing Pod -----------------------------------------


def test_unscheduled_pod_times_out_from_buildrun_creation() -> None:
    pod = make_pod(started=False, conditions=[condition("PodScheduled", "False",
                                                        "Unschedulable", "no nodes")])
    run = buildrun(timeout="1m")
    update = status_from_pod(run, pod, NOW)
    assert outcome(update) == ("False", "BuildRunTimeout",
                               f"BuildRun {BR} failed to finish within 1m0s")
    assert update.stop_pod
    assert update.completion_time == ts(90)
    # Before the deadline it is still pending.
    assert outcome(status_from_pod(run, pod, CREATED + timedelta(seconds=59)))[1] == "Pending"


def test_cancel_of_a_running_pod() -> None:
    pod = make_pod({"step-source-default": running(4)}, waiting("PodInitializing"),
                   conditions=scheduled_conditions(initialized=False, ready=False))
    update = status_from_pod(buildrun(state="BuildRunCanceled"), pod, NOW)
    assert outcome(update) == (
        "False", "BuildRunCanceled",
        "The BuildRun and underlying TaskRun were canceled successfully.",
    )
    assert update.stop_pod and update.completion_time == ts(90)


def test_cancel_after_success_keeps_success() -> None:
    update = status_from_pod(buildrun(state="BuildRunCanceled"),
                             succeeded_pod({"shp-image-digest": DIGEST}), NOW)
    assert outcome(update) == (
        "True", "Succeeded",
        "The TaskRun completed before the request to cancel the TaskRun could be processed.",
    )
    assert update.output is not None and update.output.digest == DIGEST


def test_cancel_after_own_failure_keeps_the_failure_but_our_kill_is_a_cancel() -> None:
    states = {"step-source-default": terminated(1, 4, 5, message="nope")}
    canceled = buildrun(state="BuildRunCanceled")
    assert outcome(status_from_pod(canceled, failed_pod(states), NOW))[1] == "Failed"
    killed = failed_pod(states, metadata={"deletionTimestamp": ts(80),
                                          "deletionGracePeriodSeconds": 30})
    assert outcome(status_from_pod(canceled, killed, NOW))[1] == "BuildRunCanceled"


def test_missing_pod() -> None:
    run = buildrun(status={"executor": {"name": POD, "kind": "Pod"}, "taskRunName": POD})
    update = status_from_pod(run, None, NOW)
    assert outcome(update) == ("False", "TaskRunIsMissing", f"taskRun {POD} doesn't exist")
    assert update.completion_time == ts(90)


# --- lastTransitionTime and the patch ---------------------------------------------------------


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch, as the apiserver applies it."""
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def test_running_pod_patch_then_no_patch_when_nothing_changed() -> None:
    pod = make_pod({"step-source-default": running(4)}, waiting("PodInitializing"),
                   conditions=scheduled_conditions(initialized=False, ready=False))
    current = {"executor": {"name": POD, "kind": "Pod"}, "taskRunName": POD,
               "buildSpec": {"strategy": {"name": "x"}, "output": {"image": "i"}}}
    first = status_patch(current, status_from_pod(buildrun(status=current), pod, NOW))
    assert first == {
        "conditions": [{
            "type": "Succeeded", "status": "Unknown", "reason": "Running",
            "message": "Not all Steps in the Task have finished executing",
            "lastTransitionTime": ts(90),
        }],
        "startTime": ts(3),
    }
    written = merge(current, first)
    later = NOW + timedelta(seconds=30)
    update = status_from_pod(buildrun(status=written), pod, later)
    assert update.condition is not None and update.condition.last_transition_time == ts(90)
    assert status_patch(written, update) is None


def test_start_time_is_never_overwritten() -> None:
    current = {"startTime": ts(2)}
    pod = make_pod({"step-source-default": running(4)}, waiting("PodInitializing"),
                   conditions=scheduled_conditions(initialized=False, ready=False))
    patch = status_patch(current, status_from_pod(buildrun(status=current), pod, NOW))
    assert patch is not None and "startTime" not in patch


def test_completion_is_final() -> None:
    pod = succeeded_pod({"shp-image-digest": DIGEST})
    first = status_patch({}, status_from_pod(buildrun(), pod, NOW))
    assert first is not None and first["completionTime"] == ts(72)
    written = merge({}, first)
    # Whatever happens afterwards (the Pod vanishes, fails, a cancel arrives), nothing moves.
    later = NOW + timedelta(minutes=5)
    assert status_patch(written, status_from_pod(buildrun(status=written), None, later)) is None
    failing = failed_pod({"step-source-default": terminated(1, 4, 5)})
    assert status_patch(written, status_from_pod(buildrun(status=written), failing, later)) is None


def test_failure_details_are_replaced_as_a_whole() -> None:
    current = {"failureDetails": {"reason": "Old", "message": "old",
                                  "location": {"pod": POD, "container": "step-a"}}}
    pod = failed_pod({"step-source-default": terminated(0, 4, 10),
                      "step-build-and-push": terminated(1, 11, 12)})
    patch = status_patch(current, status_from_pod(buildrun(status=current), pod, NOW))
    assert patch is not None
    written = merge(current, patch)
    assert written["failureDetails"] == {
        "location": {"pod": POD, "container": "step-build-and-push"}
    }


def test_other_conditions_survive_and_a_changed_message_gets_a_new_transition() -> None:
    current = {"conditions": [
        {"type": "Other", "status": "True", "reason": "X", "message": "x",
         "lastTransitionTime": ts(0)},
        {"type": "Succeeded", "status": "Unknown", "reason": "Pending", "message": "Pending",
         "lastTransitionTime": ts(1)},
    ]}
    pod = make_pod({"step-source-default": running(4)}, waiting("PodInitializing"),
                   conditions=scheduled_conditions(initialized=False, ready=False))
    patch = status_patch(current, status_from_pod(buildrun(status=current), pod, NOW))
    assert patch is not None
    assert [c["type"] for c in patch["conditions"]] == ["Other", "Succeeded"]
    assert patch["conditions"][1]["lastTransitionTime"] == ts(90)


def test_go_quote_matches_go() -> None:
    assert go_quote('say "hi"\n\tnow\\') == '"say \\"hi\\"\\n\\tnow\\\\"'
    assert go_quote("naïve ✓") == '"naïve ✓"'
    assert go_quote("\x00\x7f") == '"\\x00\\x7f"'


# --- when to write and what to announce ---------------------------------------------------------

MOMENT = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)


def in_progress(reason: str = "Pending") -> StatusUpdate:
    return StatusUpdate(condition=succeeded("Unknown", reason))


def test_first_in_progress_change_waits_for_the_window() -> None:
    assert write_deadline(in_progress(), due=None, now=MOMENT, window=1.0) == MOMENT + timedelta(
        seconds=1
    )


def test_later_in_progress_changes_keep_the_first_deadline() -> None:
    due = MOMENT + timedelta(milliseconds=400)
    assert write_deadline(in_progress("Running"), due=due, now=MOMENT, window=1.0) == due


def test_in_progress_change_is_written_once_its_deadline_has_come() -> None:
    assert write_deadline(in_progress(), due=MOMENT, now=MOMENT, window=1.0) is None
    overdue = MOMENT - timedelta(seconds=3)
    assert write_deadline(in_progress(), due=overdue, now=MOMENT, window=1.0) is None


def test_the_end_of_a_run_and_stopping_its_pod_are_written_at_once() -> None:
    finished = StatusUpdate(completion_time="2026-11-29T10:00:00Z")
    stopping = StatusUpdate(stop_pod=True)
    later = MOMENT + timedelta(seconds=1)
    assert write_deadline(finished, due=later, now=MOMENT, window=1.0) is None
    assert write_deadline(stopping, due=None, now=MOMENT, window=1.0) is None


def test_no_window_writes_every_change_at_once() -> None:
    assert write_deadline(in_progress(), due=None, now=MOMENT, window=0) is None


def succeeded(status: str, reason: str) -> Condition:
    return Condition.model_validate(
        {"type": "Succeeded", "status": status, "reason": reason, "message": "m",
         "lastTransitionTime": "2026-11-29T10:00:00Z"}
    )


@pytest.mark.parametrize(
    ("before", "after", "announced"),
    [
        (None, succeeded("Unknown", "Pending"), False),
        (succeeded("Unknown", "Pending"), succeeded("Unknown", "Running"), False),
        (succeeded("Unknown", "Running"), succeeded("True", "Succeeded"), True),
        (None, succeeded("True", "Succeeded"), True),
        (succeeded("Unknown", "Running"), succeeded("False", "Failed"), True),
        (succeeded("False", "Failed"), succeeded("False", "Failed"), False),
        (succeeded("Unknown", "Running"), None, False),
    ],
)
def test_only_the_end_of_a_run_is_announced(
    before: Condition | None, after: Condition | None, announced: bool
) -> None:
    assert announced_condition(before, after) == (after if announced else None)


def test_a_pod_ends_when_its_phase_is_final_or_it_is_being_deleted() -> None:
    assert not pod_ending(make_pod({"step-source-default": running(4)}))
    assert pod_ending(succeeded_pod({"shp-image-digest": DIGEST}))
    assert pod_ending(make_pod(phase="Failed"))
    assert pod_ending(make_pod(metadata={"deletionTimestamp": ts(9)}))


# --- today's shape: steps as ordered containers behind the entrypoint -------------------------

ORDERED = ["step-source-default", "step-build-and-push", "step-image-processing", "step-results"]


def entrypoint_message(*entries: tuple[str, str], skipped: bool = False) -> str:
    """A termination message as Tekton's entrypoint leaves it: results (type 1) after its
    own bookkeeping (type 3)."""
    written = [{"key": "StartedAt", "value": "2024-05-01T10:00:11.000Z", "type": 3}]
    if skipped:
        written.append({"key": "Reason", "value": "Skipped", "type": 3})
    written += [{"key": key, "value": value, "type": 1} for key, value in entries]
    return json.dumps(written)


SKIPPED = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": ts(0),
                          "finishedAt": ts(31), "message": entrypoint_message(skipped=True)}}


def ordered_pod(states: dict[str, dict[str, Any]], *, phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD, "namespace": NS, "uid": "p-1", "creationTimestamp": ts(1)},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [{"name": "prepare", "image": "img"}],
            "containers": [{"name": name, "image": "img"} for name in ORDERED],
        },
        "status": {
            "phase": phase,
            "startTime": ts(3),
            "initContainerStatuses": [container_status("prepare", terminated(0, 3, 4))],
            "containerStatuses": [
                container_status(name, states[name]) for name in ORDERED if name in states
            ],
        },
    }


def test_ordered_steps_waiting_for_their_turn_are_running() -> None:
    # All containers run from the start: the entrypoint holds back all but the first.
    update = status_from_pod(buildrun(), ordered_pod({name: running(5) for name in ORDERED}), NOW)
    assert outcome(update) == (
        "Unknown", "Running", "Not all Steps in the Task have finished executing"
    )


def test_ordered_steps_success_reads_the_results_step() -> None:
    results = entrypoint_message(("shp-image-digest", DIGEST), ("shp-image-size", "1234"))
    pod = ordered_pod(
        {
            "step-source-default": terminated(0, 5, 10, message=entrypoint_message(
                ("shp-source-default-commit-sha", SHA))),
            "step-build-and-push": terminated(0, 10, 20, message=entrypoint_message()),
            "step-image-processing": terminated(0, 20, 25, message=entrypoint_message()),
            "step-results": terminated(0, 25, 26, message=results),
        },
        phase="Succeeded",
    )
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update)[:2] == ("True", "Succeeded")
    assert update.output is not None and update.output.digest == DIGEST
    assert update.output.size == 1234
    assert update.completion_time == ts(26)


def test_ordered_step_failure_reports_reason_and_message_and_skips_are_not_blamed() -> None:
    pod = ordered_pod(
        {
            "step-source-default": terminated(0, 5, 10, message=entrypoint_message()),
            "step-build-and-push": terminated(1, 10, 30, message=entrypoint_message(
                ("shp-error-reason", "DockerfileNotFound"),
                ("shp-error-message", "the Dockerfile 'Dockerfile' is not in docker-build"),
            )),
            "step-image-processing": SKIPPED,
            "step-results": SKIPPED,
        },
        phase="Failed",
    )
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update) == (
        "False", "Failed",
        "buildrun step step-build-and-push failed, for detailed information: "
        + logs("step-build-and-push"),
    )
    assert update.failure_details is not None
    assert update.failure_details.to_wire() == {
        "reason": "DockerfileNotFound",
        "message": "the Dockerfile 'Dockerfile' is not in docker-build",
        "location": {"pod": POD, "container": "step-build-and-push"},
    }
    # The entrypoint's bookkeeping (StartedAt, Reason) never reads as a result.
    assert update.output is None and update.source is None


def test_ordered_step_failure_without_error_results_has_location_only() -> None:
    pod = ordered_pod(
        {
            "step-source-default": terminated(0, 5, 10, message=entrypoint_message()),
            "step-build-and-push": terminated(2, 10, 30, message=entrypoint_message()),
            "step-image-processing": SKIPPED,
            "step-results": SKIPPED,
        },
        phase="Failed",
    )
    update = status_from_pod(buildrun(), pod, NOW)
    assert update.failure_details is not None
    assert update.failure_details.to_wire() == {
        "location": {"pod": POD, "container": "step-build-and-push"}
    }


def test_ordered_step_out_of_memory_falls_back_to_the_log_tail_message() -> None:
    pod = ordered_pod(
        {
            "step-source-default": terminated(0, 5, 10, message=entrypoint_message()),
            "step-build-and-push": terminated(137, 10, 30, reason="OOMKilled"),
            "step-image-processing": SKIPPED,
            "step-results": SKIPPED,
        },
        phase="Failed",
    )
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update)[:2] == ("False", "StepOutOfMemory")
    assert "step-build-and-push" in outcome(update)[2]


def test_a_failed_prepare_container_fails_the_run() -> None:
    pod = ordered_pod({name: waiting("PodInitializing") for name in ORDERED}, phase="Failed")
    pod["status"]["initContainerStatuses"] = [
        container_status("prepare", terminated(1, 3, 4, message="open /tekton/bin/entrypoint"))
    ]
    update = status_from_pod(buildrun(), pod, NOW)
    assert outcome(update)[:2] == ("False", "Failed")
    assert update.failure_details is not None
    assert update.failure_details.location is not None
    assert update.failure_details.location.container == "prepare"


def _failed_without_cause() -> dict[str, Any]:
    return ordered_pod(
        {
            "step-source-default": terminated(0, 5, 10, message=entrypoint_message()),
            "step-build-and-push": terminated(1, 10, 30, message=entrypoint_message()),
            "step-image-processing": SKIPPED,
            "step-results": SKIPPED,
        },
        phase="Failed",
    )


def test_a_step_failing_without_a_cause_asks_for_its_log_tail_once() -> None:
    update = status_from_pod(buildrun(), _failed_without_cause(), NOW)
    assert log_tail_wanted(buildrun(), update) == "step-build-and-push"
    told = with_log_tail(update, "\n".join(f"line {i}" for i in range(200)) + "\n")
    assert told.failure_details is not None and told.failure_details.message is not None
    assert told.failure_details.message.splitlines()[-1] == "line 199"
    assert len(told.failure_details.message.splitlines()) <= LOG_TAIL_LINES
    assert len(told.failure_details.message.encode()) <= LOG_TAIL_BYTES
    assert told.failure_details.location == update.failure_details.location  # type: ignore[union-attr]
    # An empty log (or none to be had) leaves the failure as it was.
    assert with_log_tail(update, "  \n") == update
    # Once the end is written, later events do not ask again.
    ended = buildrun(status={"conditions": [{
        "type": "Succeeded", "status": "False", "reason": "Failed", "message": "m",
        "lastTransitionTime": ts(30)}]})  # fmt: skip
    assert log_tail_wanted(ended, status_from_pod(ended, _failed_without_cause(), NOW)) is None


def test_a_step_that_reported_its_cause_or_ran_out_of_memory_needs_no_log_tail() -> None:
    reported = _failed_without_cause()
    reported["status"]["containerStatuses"][1]["state"] = terminated(
        1, 10, 30, message=entrypoint_message(("shp-error-message", "said why"))
    )
    assert log_tail_wanted(buildrun(), status_from_pod(buildrun(), reported, NOW)) is None
    oom = _failed_without_cause()
    oom["status"]["containerStatuses"][1]["state"] = terminated(137, 10, 30, reason="OOMKilled")
    assert log_tail_wanted(buildrun(), status_from_pod(buildrun(), oom, NOW)) is None
    in_progress = ordered_pod({name: running(5) for name in ORDERED})
    assert log_tail_wanted(buildrun(), status_from_pod(buildrun(), in_progress, NOW)) is None


def test_a_skipped_steps_end_reported_first_does_not_make_it_the_failed_step() -> None:
    """The entrypoint of the next step sees the failure's post file before the failed step's
    own process has ended: the skipped step's end can reach the Pod status first."""
    states = {
        "step-source-default": terminated(0, 5, 10, message=entrypoint_message()),
        "step-build-and-push": running(10),
        "step-image-processing": SKIPPED,
        "step-results": SKIPPED,
    }
    early = status_from_pod(buildrun(), ordered_pod(states), NOW)
    assert outcome(early)[:2] == ("Unknown", "Running")
    states["step-build-and-push"] = terminated(1, 10, 30, message=entrypoint_message(
        ("shp-error-reason", "DockerfileNotFound"), ("shp-error-message", "no Dockerfile")))
    later = status_from_pod(buildrun(), ordered_pod(states), NOW)
    assert outcome(later)[:2] == ("False", "Failed")
    assert later.failure_details is not None and later.failure_details.location is not None
    assert later.failure_details.location.container == "step-build-and-push"
    assert later.failure_details.reason == "DockerfileNotFound"


def test_a_failed_pod_with_only_skipped_steps_still_names_one() -> None:
    states = {name: SKIPPED for name in ORDERED}
    update = status_from_pod(buildrun(), ordered_pod(states, phase="Failed"), NOW)
    assert outcome(update)[:2] == ("False", "Failed")
    assert update.failure_details is not None and update.failure_details.location is not None
    assert update.failure_details.location.container == "step-source-default"

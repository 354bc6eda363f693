"""From the build Pod to the BuildRun's status (docs/buildrun-lifecycle.md, "While the Pod runs").

Shipwright reads a Tekton TaskRun, which Tekton derived from a Pod. We have no TaskRun, so
this module applies both translations at once: Tekton's Pod → condition rules (`Pending`,
`Running`, `PullImageFailed`, …) and Shipwright's rewrites of failures (`Failed`,
`StepOutOfMemory`, `PodEvicted`, `VulnerabilitiesFound`, `BuildRunTimeout`, cancellation).

Our Pod differs from Tekton's in one way that matters here: the steps are *init* containers,
so the Pod stays in phase `Pending` while they run. "A step has started" therefore counts as
`Running`, and every "container" rule walks init containers first, then regular containers,
each in Pod spec order.

Decisions made where upstream gives no direct answer:
- `ExceededNodeResources` is reported (status Unknown, as Tekton does) when a Pod condition has
  reason `Unschedulable` and its message mentions `Insufficient` (the scheduler's wording for
  missing cpu/memory/ephemeral-storage/extended resources). The BuildRun's timeout ends it.
- `CreateContainerConfigError` is terminal (False) unless the kubelet's message says the
  subPath directory could not be created yet, which Tekton treats as recoverable.
- `completionTime` is the latest `finishedAt` of the Pod's containers when known, else `now`:
  an operator that was down for a while must not stretch the run's recorded duration.
- A terminated step with a non-zero exit code is final (restartPolicy Never), even before the
  kubelet has moved the Pod to phase `Failed`.

The result is a :class:`StatusUpdate`; :func:`status_patch` turns it into the smallest JSON
merge patch for `status`, or None when there is nothing to write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from buildwright.api.base import Condition
from buildwright.api.v1beta1 import (
    BuildRun,
    Executor,
    FailureDetails,
    Location,
    OutputResult,
    SourceResult,
)
from buildwright.core.contract import (
    IMAGE_PROCESSING_CONTAINER,
    VULNERABILITIES_EXIT_CODE,
)
from buildwright.core.formats import as_utc, format_go_duration, parse_time, rfc3339
from buildwright.core.podview import (
    PodStep,
    config_error,
    error_details,
    exceeds_node_resources,
    finished_at,
    image_pull_error,
    logs_hint,
    output_result,
    pod_steps,
    source_result,
    step_results,
    waiting_message,
)
from buildwright.core.reasons import Reason
from buildwright.core.resolve import buildrun_timeout_seconds

SUCCEEDED_CONDITION = "Succeeded"
EXECUTOR_KIND = "Pod"
CANCELED_STATE = "BuildRunCanceled"

MSG_RUNNING = "Not all Steps in the Task have finished executing"
MSG_SUCCEEDED = "All Steps have completed executing"
MSG_EXCEEDED_NODE_RESOURCES = "TaskRun Pod exceeded available resources"
MSG_CONFIG_ERROR = "Failed to create pod due to config error"
MSG_CANCELED = "The BuildRun and underlying TaskRun were canceled successfully."
MSG_CANCELED_BEFORE_START = "the BuildRun is marked canceled."
MSG_COMPLETED_BEFORE_CANCEL = (
    "The TaskRun completed before the request to cancel the TaskRun could be processed."
)




@dataclass(frozen=True)
class StatusUpdate:
    """What the BuildRun's status should say now. Fields left None are not touched.

    `stop_pod` tells the shell that the run is over while its Pod may still be running or
    waiting (timeout, cancellation, config error): the Pod should be deleted.
    """

    condition: Condition | None = None
    start_time: str | None = None
    completion_time: str | None = None
    output: OutputResult | None = None
    source: SourceResult | None = None
    failure_details: FailureDetails | None = None
    executor: Executor | None = None
    task_run_name: str | None = None
    stop_pod: bool = False

    @property
    def terminal(self) -> bool:
        return self.completion_time is not None


def make_condition(
    buildrun: BuildRun | None, status: str, reason: str, message: str, now: datetime
) -> Condition:
    """The Succeeded condition; keeps lastTransitionTime when nothing about it changed."""
    previous = current_condition(buildrun) if buildrun is not None else None
    if previous is not None and (previous.status, previous.reason, previous.message) == (
        status, reason, message
    ):
        transition = previous.last_transition_time
    else:
        transition = rfc3339(now)
    return Condition(
        type=SUCCEEDED_CONDITION,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
    )


def current_condition(buildrun: BuildRun) -> Condition | None:
    for condition in (buildrun.status.conditions if buildrun.status else None) or []:
        if condition.type == SUCCEEDED_CONDITION:
            return condition
    return None


def timeout_message(buildrun: BuildRun, seconds: float) -> str:
    return f"BuildRun {buildrun.metadata.get('name', '')} failed to finish within " + (
        format_go_duration(seconds)
    )


def is_canceled(buildrun: BuildRun) -> bool:
    return buildrun.spec.state == CANCELED_STATE


def executor_fields(pod_name: str) -> dict[str, Any]:
    return {"executor": Executor(name=pod_name, kind=EXECUTOR_KIND), "task_run_name": pod_name}


def missing_pod_update(buildrun: BuildRun, pod_name: str, now: datetime) -> StatusUpdate:
    """The Pod disappeared before the run completed (`TaskRunIsMissing`).

    A canceled run whose Pod is gone was stopped by us; should the status write after the
    Pod's deletion have been lost, the retry still reports the cancellation."""
    if is_canceled(buildrun):
        reason, message = Reason.BUILDRUN_CANCELED, MSG_CANCELED
    else:
        reason, message = Reason.TASKRUN_IS_MISSING, f"taskRun {pod_name} doesn't exist"
    return StatusUpdate(
        condition=make_condition(buildrun, "False", reason, message, now),
        completion_time=rfc3339(now),
        **executor_fields(pod_name),
    )


# --- the decision ---------------------------------------------------------------------------


def status_from_pod(buildrun: BuildRun, pod: dict[str, Any] | None, now: datetime) -> StatusUpdate:
    """The BuildRun status the Pod's current state calls for.

    `pod` None means the Pod the BuildRun's executor names is gone (`TaskRunIsMissing`).
    Cancellation and the operator-side timeout are decided here as well, so a caller that
    only ever calls this function still gets every outcome; they set `stop_pod`.
    """
    if pod is None:
        executor = buildrun.status.executor if buildrun.status else None
        pod_name = executor.name if executor else buildrun.metadata.get("name", "")
        return missing_pod_update(buildrun, pod_name, now)

    pod_name = str((pod.get("metadata") or {}).get("name", ""))
    steps = pod_steps(pod)
    results = step_results(steps)
    outcome = _decide(buildrun, pod, steps, now)
    if not outcome.terminal:
        completion = None
    elif outcome.stop_pod:
        completion = rfc3339(now)
    else:
        completion = finished_at(steps, now)
    return StatusUpdate(
        condition=make_condition(buildrun, outcome.status, outcome.reason, outcome.message, now),
        start_time=(pod.get("status") or {}).get("startTime") or None,
        completion_time=completion,
        output=output_result(results),
        source=source_result(results),
        failure_details=outcome.details,
        executor=Executor(name=pod_name, kind=EXECUTOR_KIND),
        task_run_name=pod_name,
        stop_pod=outcome.stop_pod,
    )


@dataclass(frozen=True)
class _Outcome:
    status: str
    reason: str
    message: str
    terminal: bool = False
    stop_pod: bool = False
    details: FailureDetails | None = None


def _decide(
    buildrun: BuildRun, pod: Mapping[str, Any], steps: list[PodStep], now: datetime
) -> _Outcome:
    metadata = pod.get("metadata") or {}
    pod_name = str(metadata.get("name", ""))
    namespace = str(metadata.get("namespace") or buildrun.metadata.get("namespace", ""))
    status = pod.get("status") or {}
    phase = status.get("phase")

    # The failed step is the first that failed by itself; a skipped step's end can be reported
    # before the end of the step that made it skip (their processes end in either order).
    failed_step = next((step for step in steps if step.failed and not step.skipped), None)
    if failed_step is None and phase == "Failed":
        failed_step = next((step for step in steps if step.failed), None)
    succeeded = phase == "Succeeded" or (
        bool(steps) and all(step.exit_code == 0 for step in steps)
    )
    failed = not succeeded and (phase == "Failed" or failed_step is not None)

    if is_canceled(buildrun):
        if succeeded:
            return _Outcome("True", Reason.SUCCEEDED, MSG_COMPLETED_BEFORE_CANCEL, terminal=True)
        if not failed or metadata.get("deletionTimestamp"):
            # Ours to stop; a Pod we are deleting reports its killed steps as failures.
            return _Outcome(
                "False", Reason.BUILDRUN_CANCELED, MSG_CANCELED, terminal=True, stop_pod=True
            )

    if succeeded:
        return _Outcome("True", Reason.SUCCEEDED, MSG_SUCCEEDED, terminal=True)
    if failed:
        return _failure(buildrun, pod_name, namespace, status, steps, failed_step, now)

    timeout = buildrun_timeout_seconds(buildrun)
    elapsed = elapsed_seconds(buildrun, now)
    if timeout is not None and elapsed is not None and elapsed >= timeout:
        return _Outcome(
            "False", Reason.BUILDRUN_TIMEOUT, timeout_message(buildrun, timeout),
            terminal=True, stop_pod=True,
        )

    if exceeds_node_resources(pod):
        return _Outcome("Unknown", Reason.EXCEEDED_NODE_RESOURCES, MSG_EXCEEDED_NODE_RESOURCES)
    if config_error(steps):
        return _Outcome(
            "False", Reason.CREATE_CONTAINER_CONFIG_ERROR, MSG_CONFIG_ERROR,
            terminal=True, stop_pod=True,
        )
    if image_pull_error(steps):
        return _Outcome("Unknown", Reason.PULL_IMAGE_FAILED, waiting_message(pod, steps))
    started = any(step.running is not None or step.terminated is not None for step in steps)
    if phase == "Running" or started:
        return _Outcome("Unknown", Reason.RUNNING, MSG_RUNNING)
    return _Outcome("Unknown", Reason.PENDING, waiting_message(pod, steps))


def _failure(
    buildrun: BuildRun,
    pod_name: str,
    namespace: str,
    status: Mapping[str, Any],
    steps: list[PodStep],
    failed_step: PodStep | None,
    now: datetime,
) -> _Outcome:
    """Shipwright's rewrite of a failed executor: reason, message and failureDetails."""
    location = Location(pod=pod_name, container=failed_step.name if failed_step else None)
    where_only = FailureDetails(location=location)

    if status.get("reason") == "DeadlineExceeded":
        seconds = buildrun_timeout_seconds(buildrun)
        if seconds is None:
            # Whole seconds: the message shows how long the run had, not clock jitter.
            seconds = float(int(elapsed_seconds(buildrun, now, status.get("startTime")) or 0))
        return _Outcome(
            "False", Reason.BUILDRUN_TIMEOUT, timeout_message(buildrun, seconds), terminal=True
        )
    if status.get("reason") == "Evicted":
        return _Outcome(
            "False", Reason.POD_EVICTED, str(status.get("message", "")),
            terminal=True, details=where_only,
        )
    if failed_step is None:
        return _Outcome(
            "False", Reason.FAILED,
            f"buildrun failed due to an unexpected error in pod {pod_name}: for detailed "
            f"information: kubectl --namespace {namespace} logs {pod_name} --all-containers",
            terminal=True, details=where_only,
        )

    container = failed_step.name
    hint = logs_hint(namespace, pod_name, container)
    if (failed_step.terminated or {}).get("reason") == "OOMKilled":
        return _Outcome(
            "False", Reason.STEP_OUT_OF_MEMORY,
            f"buildrun step {container} failed due to out-of-memory, for detailed information: "
            + hint,
            terminal=True, details=where_only,
        )
    error_reason, error_message = error_details(steps)
    full = FailureDetails(reason=error_reason, message=error_message, location=location)
    vulnerable = failed_step.exit_code == VULNERABILITIES_EXIT_CODE
    if container == IMAGE_PROCESSING_CONTAINER and vulnerable:
        return _Outcome(
            "False", Reason.VULNERABILITIES_FOUND,
            "Vulnerabilities have been found in the image which can be seen in the buildrun "
            "status. For detailed information,see " + hint,
            terminal=True, details=full,
        )
    return _Outcome(
        "False", Reason.FAILED,
        f"buildrun step {container} failed, for detailed information: " + hint,
        terminal=True, details=full,
    )


LOG_TAIL_LINES = 80
LOG_TAIL_BYTES = 2048
"""How much of a failed step's log becomes its failure message: what a kubelet keeps with
`terminationMessagePolicy: FallbackToLogsOnError`."""


def log_tail_wanted(buildrun: BuildRun, update: StatusUpdate) -> str | None:
    """The container whose log tail should become `failureDetails.message`: the run ends
    now, `Failed` at a step that reported no cause of its own (a step behind the entrypoint
    always leaves a termination message, so the kubelet's fallback to the log never comes).
    Asked once, when the end is first written, not on every later event."""
    condition = update.condition
    details = update.failure_details
    if not update.terminal or condition is None or condition.reason != Reason.FAILED:
        return None
    if details is None or details.message or details.location is None:
        return None
    previous = current_condition(buildrun)
    if previous is not None and previous.status in ("True", "False"):
        return None
    return details.location.container or None


def with_log_tail(update: StatusUpdate, tail: str) -> StatusUpdate:
    """`update` with the failed step's log tail (bounded as a kubelet bounds it) as the
    failure message; unchanged when the log is empty."""
    details = update.failure_details
    lines = tail.strip().splitlines()[-LOG_TAIL_LINES:]
    text = "\n".join(lines).encode()[-LOG_TAIL_BYTES:].decode(errors="ignore").strip()
    if details is None or not text:
        return update
    return replace(update, failure_details=details.model_copy(update={"message": text}))


def elapsed_seconds(
    buildrun: BuildRun, now: datetime, fallback_start: str | None = None
) -> float | None:
    """Seconds since the BuildRun was created (else since `fallback_start`)."""
    created = parse_time(buildrun.metadata.get("creationTimestamp")) or parse_time(fallback_start)
    if created is None:
        return None
    return max(0.0, (as_utc(now) - created).total_seconds())





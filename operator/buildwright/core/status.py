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

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from buildwright.api.base import Condition
from buildwright.api.v1beta1 import (
    BuildRun,
    Executor,
    FailureDetails,
    GitSourceResult,
    Location,
    OCIArtifactSourceResult,
    OutputResult,
    SourceResult,
    Vulnerability,
)
from buildwright.core.contract import (
    ERROR_RESULTS,
    IMAGE_PROCESSING_CONTAINER,
    RESULT_BRANCH_NAME,
    RESULT_COMMIT_AUTHOR,
    RESULT_COMMIT_SHA,
    RESULT_ERROR_MESSAGE,
    RESULT_ERROR_REASON,
    RESULT_IMAGE_DIGEST,
    RESULT_IMAGE_SIZE,
    RESULT_IMAGE_VULNERABILITIES,
    RESULT_SOURCE_IMAGE_DIGEST,
    RESULT_SOURCE_TIMESTAMP,
    VULNERABILITIES_EXIT_CODE,
    parse_termination_message,
)
from buildwright.core.formats import as_utc, format_go_duration, go_quote, parse_time, rfc3339
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

_IMAGE_PULL_ERRORS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
_CONFIG_ERROR = "CreateContainerConfigError"
_RECOVERABLE_CONFIG_ERROR = "failed to create subPath directory"


Severity = Literal["critical", "high", "medium", "low", "unknown"]
_SEVERITIES: dict[str, Severity] = {"L": "low", "M": "medium", "H": "high", "C": "critical"}


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


# --- reading the Pod ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    """One container of the Pod with its status, in spec order."""

    name: str
    state: Mapping[str, Any]

    @property
    def waiting(self) -> Mapping[str, Any] | None:
        return self.state.get("waiting")

    @property
    def running(self) -> Mapping[str, Any] | None:
        return self.state.get("running")

    @property
    def terminated(self) -> Mapping[str, Any] | None:
        return self.state.get("terminated")

    @property
    def exit_code(self) -> int | None:
        terminated = self.terminated
        if terminated is None:
            return None
        code = terminated.get("exitCode")
        return code if isinstance(code, int) else None

    @property
    def failed(self) -> bool:
        code = self.exit_code
        return code is not None and code != 0

    @property
    def termination_message(self) -> str:
        terminated = self.terminated or {}
        message = terminated.get("message")
        return message if isinstance(message, str) else ""

    @property
    def skipped(self) -> bool:
        """The entrypoint skipped this step (a step before it failed): it never ran its
        command, so it is never the failed step, even when its end is reported first."""
        if not self.failed or "Skipped" not in self.termination_message:
            return False
        try:
            entries = json.loads(self.termination_message)
        except (ValueError, RecursionError):
            return False
        return isinstance(entries, list) and any(
            isinstance(entry, dict)
            and (entry.get("key"), entry.get("value")) == ("Reason", "Skipped")
            for entry in entries
        )


def _ordered(specs: list[Any], statuses: list[Any]) -> Iterator[_Step]:
    """Statuses in spec order; statuses of containers the spec does not name come last."""
    by_name = {s.get("name"): s for s in statuses if isinstance(s, dict)}
    seen: set[str] = set()
    for spec in specs:
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or name in seen:
            continue
        seen.add(name)
        found = by_name.get(name) or {}
        yield _Step(name, found.get("state") or {})
    for name, found in by_name.items():
        if isinstance(name, str) and name not in seen:
            yield _Step(name, found.get("state") or {})


def _steps(pod: Mapping[str, Any]) -> list[_Step]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    return [
        *_ordered(spec.get("initContainers") or [], status.get("initContainerStatuses") or []),
        *_ordered(spec.get("containers") or [], status.get("containerStatuses") or []),
    ]


def _json_results(text: str) -> dict[str, str] | None:
    """Results of a Tekton-style termination message; None when it is not such a list."""
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(decoded, list):
        return None
    return parse_termination_message(text)


def _results(steps: list[_Step]) -> dict[str, str]:
    """All results reported through termination messages; later containers win, so
    `step-results` (the last one) has the final word. A failed step's results count too
    (image-processing reports the vulnerabilities it failed on), except its error details,
    which belong to failureDetails."""
    results: dict[str, str] = {}
    for step in steps:
        if step.terminated is None:
            continue
        parsed = _json_results(step.termination_message) or {}
        results.update(
            (key, value) for key, value in parsed.items() if key not in ERROR_RESULTS
        )
    return results


def _output(results: Mapping[str, str]) -> OutputResult | None:
    digest = results.get(RESULT_IMAGE_DIGEST) or None
    size: int | None = None
    try:
        size = int(results.get(RESULT_IMAGE_SIZE, "").strip())
    except ValueError:
        size = None
    vulnerabilities = _vulnerabilities(results.get(RESULT_IMAGE_VULNERABILITIES, ""))
    if digest is None and size is None and not vulnerabilities:
        return None
    return OutputResult(digest=digest, size=size, vulnerabilities=vulnerabilities or None)


def _vulnerabilities(text: str) -> list[Vulnerability]:
    found: list[Vulnerability] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        ident, _, letter = item.rpartition(":") if ":" in item else (item, "", "")
        severity: Severity = _SEVERITIES.get(letter.strip()[:1].upper(), "unknown")
        found.append(Vulnerability(id=ident.strip(), severity=severity))
    return found


def _source(results: Mapping[str, str]) -> SourceResult | None:
    git = GitSourceResult(
        commit_sha=results.get(RESULT_COMMIT_SHA) or None,
        commit_author=results.get(RESULT_COMMIT_AUTHOR) or None,
        branch_name=results.get(RESULT_BRANCH_NAME) or None,
    )
    has_git = any((git.commit_sha, git.commit_author, git.branch_name))
    digest = results.get(RESULT_SOURCE_IMAGE_DIGEST) or None
    timestamp = _epoch_to_rfc3339(results.get(RESULT_SOURCE_TIMESTAMP, ""))
    if not has_git and digest is None and timestamp is None:
        return None
    return SourceResult(
        git=git if has_git else None,
        oci_artifact=OCIArtifactSourceResult(digest=digest) if digest else None,
        timestamp=timestamp,
    )


def _epoch_to_rfc3339(text: str) -> str | None:
    try:
        seconds = float(text.strip())
        return rfc3339(datetime.fromtimestamp(int(seconds), tz=UTC))
    except (ValueError, OverflowError, OSError):
        return None


def _error_details(steps: list[_Step]) -> tuple[str | None, str | None]:
    """shp-error-reason/-message of the failed steps, in step order, the last value winning.

    A failing step's termination message is either our JSON results (the git step) or plain
    text: a strategy step's own shp-error-message file, or its log tail (FallbackToLogsOnError).
    """
    reason: str | None = None
    message: str | None = None
    for step in steps:
        if not step.failed:
            continue
        text = step.termination_message
        parsed = _json_results(text)
        if parsed is None:
            if text.strip():
                message = text.strip()
            continue
        reason = parsed.get(RESULT_ERROR_REASON) or reason
        message = parsed.get(RESULT_ERROR_MESSAGE) or message
    return reason, message


def _waiting_message(pod: Mapping[str, Any], steps: list[_Step]) -> str:
    """Tekton's getWaitingMessage: first match wins."""
    for step in steps:
        waiting = step.waiting
        if waiting and waiting.get("message"):
            return (
                f"build step {go_quote(step.name)} is pending with reason "
                f"{go_quote(str(waiting['message']))}"
            )
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            return (
                f"pod status {go_quote(str(condition.get('type', '')))}:"
                f"{go_quote(str(condition.get('status', '')))}; message: "
                f"{go_quote(str(condition.get('message', '')))}"
            )
    if status.get("message"):
        return str(status["message"])
    return Reason.PENDING


def _exceeds_node_resources(pod: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("reason") == "Unschedulable" and "Insufficient" in str(
            condition.get("message", "")
        ):
            return True
    return False


def _config_error(steps: list[_Step]) -> bool:
    for step in steps:
        waiting = step.waiting
        if waiting and waiting.get("reason") == _CONFIG_ERROR:
            return _RECOVERABLE_CONFIG_ERROR not in str(waiting.get("message", ""))
    return False


def _image_pull_error(steps: list[_Step]) -> bool:
    return any(step.waiting and step.waiting.get("reason") in _IMAGE_PULL_ERRORS for step in steps)


def _finished_at(steps: list[_Step], now: datetime) -> str:
    latest: datetime | None = None
    for step in steps:
        moment = parse_time((step.terminated or {}).get("finishedAt"))
        if moment is not None and (latest is None or moment > latest):
            latest = moment
    return rfc3339(latest if latest is not None else now)


def _logs_hint(namespace: str, pod_name: str, container: str) -> str:
    return f"kubectl --namespace {namespace} logs {pod_name} --container={container}"


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
    steps = _steps(pod)
    results = _results(steps)
    outcome = _decide(buildrun, pod, steps, now)
    if not outcome.terminal:
        completion = None
    elif outcome.stop_pod:
        completion = rfc3339(now)
    else:
        completion = _finished_at(steps, now)
    return StatusUpdate(
        condition=make_condition(buildrun, outcome.status, outcome.reason, outcome.message, now),
        start_time=(pod.get("status") or {}).get("startTime") or None,
        completion_time=completion,
        output=_output(results),
        source=_source(results),
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
    buildrun: BuildRun, pod: Mapping[str, Any], steps: list[_Step], now: datetime
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

    if _exceeds_node_resources(pod):
        return _Outcome("Unknown", Reason.EXCEEDED_NODE_RESOURCES, MSG_EXCEEDED_NODE_RESOURCES)
    if _config_error(steps):
        return _Outcome(
            "False", Reason.CREATE_CONTAINER_CONFIG_ERROR, MSG_CONFIG_ERROR,
            terminal=True, stop_pod=True,
        )
    if _image_pull_error(steps):
        return _Outcome("Unknown", Reason.PULL_IMAGE_FAILED, _waiting_message(pod, steps))
    started = any(step.running is not None or step.terminated is not None for step in steps)
    if phase == "Running" or started:
        return _Outcome("Unknown", Reason.RUNNING, MSG_RUNNING)
    return _Outcome("Unknown", Reason.PENDING, _waiting_message(pod, steps))


def _failure(
    buildrun: BuildRun,
    pod_name: str,
    namespace: str,
    status: Mapping[str, Any],
    steps: list[_Step],
    failed_step: _Step | None,
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
    hint = _logs_hint(namespace, pod_name, container)
    if (failed_step.terminated or {}).get("reason") == "OOMKilled":
        return _Outcome(
            "False", Reason.STEP_OUT_OF_MEMORY,
            f"buildrun step {container} failed due to out-of-memory, for detailed information: "
            + hint,
            terminal=True, details=where_only,
        )
    error_reason, error_message = _error_details(steps)
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


# --- the Pod's progress ---------------------------------------------------------------------


def pod_finished(pod: Mapping[str, Any]) -> bool:
    """Whether the Pod ran to its end (its phase is final)."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_ending(pod: Mapping[str, Any]) -> bool:
    """Whether the Pod finished or is being deleted: its BuildRun's end is near, and worth
    reconciling before runs that merely progress."""
    return pod_finished(pod) or "deletionTimestamp" in (pod.get("metadata") or {})



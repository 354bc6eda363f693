"""What the status decision reads from a build Pod: its steps in spec order with their
states (init containers of Pods from before the steps became ordered containers included),
the results in their termination messages, a failed step's reason and message, and the
waiting message Tekton would show."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from buildwright.api.v1beta1 import (
    GitSourceResult,
    OCIArtifactSourceResult,
    OutputResult,
    SourceResult,
    Vulnerability,
)
from buildwright.core.contract import (
    ERROR_RESULTS,
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
    parse_termination_message,
)
from buildwright.core.formats import go_quote, parse_time, rfc3339
from buildwright.core.reasons import Reason

IMAGE_PULL_ERRORS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})

Severity = Literal["critical", "high", "medium", "low", "unknown"]
SEVERITIES: dict[str, Severity] = {"L": "low", "M": "medium", "H": "high", "C": "critical"}



CONFIG_ERROR = "CreateContainerConfigError"


RECOVERABLE_CONFIG_ERROR = "failed to create subPath directory"


@dataclass(frozen=True)
class PodStep:
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


def ordered_steps(specs: list[Any], statuses: list[Any]) -> Iterator[PodStep]:
    """Statuses in spec order; statuses of containers the spec does not name come last."""
    by_name = {s.get("name"): s for s in statuses if isinstance(s, dict)}
    seen: set[str] = set()
    for spec in specs:
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or name in seen:
            continue
        seen.add(name)
        found = by_name.get(name) or {}
        yield PodStep(name, found.get("state") or {})
    for name, found in by_name.items():
        if isinstance(name, str) and name not in seen:
            yield PodStep(name, found.get("state") or {})


def pod_steps(pod: Mapping[str, Any]) -> list[PodStep]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    return [
        *ordered_steps(spec.get("initContainers") or [], status.get("initContainerStatuses") or []),
        *ordered_steps(spec.get("containers") or [], status.get("containerStatuses") or []),
    ]


def json_results(text: str) -> dict[str, str] | None:
    """Results of a Tekton-style termination message; None when it is not such a list."""
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(decoded, list):
        return None
    return parse_termination_message(text)


def step_results(steps: list[PodStep]) -> dict[str, str]:
    """All results reported through termination messages; later containers win, so
    `step-results` (the last one) has the final word. A failed step's results count too
    (image-processing reports the vulnerabilities it failed on), except its error details,
    which belong to failureDetails."""
    results: dict[str, str] = {}
    for step in steps:
        if step.terminated is None:
            continue
        parsed = json_results(step.termination_message) or {}
        results.update(
            (key, value) for key, value in parsed.items() if key not in ERROR_RESULTS
        )
    return results


def output_result(results: Mapping[str, str]) -> OutputResult | None:
    digest = results.get(RESULT_IMAGE_DIGEST) or None
    size: int | None = None
    try:
        size = int(results.get(RESULT_IMAGE_SIZE, "").strip())
    except ValueError:
        size = None
    vulnerabilities = parse_vulnerabilities(results.get(RESULT_IMAGE_VULNERABILITIES, ""))
    if digest is None and size is None and not vulnerabilities:
        return None
    return OutputResult(digest=digest, size=size, vulnerabilities=vulnerabilities or None)


def parse_vulnerabilities(text: str) -> list[Vulnerability]:
    found: list[Vulnerability] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        ident, _, letter = item.rpartition(":") if ":" in item else (item, "", "")
        severity: Severity = SEVERITIES.get(letter.strip()[:1].upper(), "unknown")
        found.append(Vulnerability(id=ident.strip(), severity=severity))
    return found


def source_result(results: Mapping[str, str]) -> SourceResult | None:
    git = GitSourceResult(
        commit_sha=results.get(RESULT_COMMIT_SHA) or None,
        commit_author=results.get(RESULT_COMMIT_AUTHOR) or None,
        branch_name=results.get(RESULT_BRANCH_NAME) or None,
    )
    has_git = any((git.commit_sha, git.commit_author, git.branch_name))
    digest = results.get(RESULT_SOURCE_IMAGE_DIGEST) or None
    timestamp = epoch_to_rfc3339(results.get(RESULT_SOURCE_TIMESTAMP, ""))
    if not has_git and digest is None and timestamp is None:
        return None
    return SourceResult(
        git=git if has_git else None,
        oci_artifact=OCIArtifactSourceResult(digest=digest) if digest else None,
        timestamp=timestamp,
    )


def epoch_to_rfc3339(text: str) -> str | None:
    try:
        seconds = float(text.strip())
        return rfc3339(datetime.fromtimestamp(int(seconds), tz=UTC))
    except (ValueError, OverflowError, OSError):
        return None


def error_details(steps: list[PodStep]) -> tuple[str | None, str | None]:
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
        parsed = json_results(text)
        if parsed is None:
            if text.strip():
                message = text.strip()
            continue
        reason = parsed.get(RESULT_ERROR_REASON) or reason
        message = parsed.get(RESULT_ERROR_MESSAGE) or message
    return reason, message


def waiting_message(pod: Mapping[str, Any], steps: list[PodStep]) -> str:
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


def exceeds_node_resources(pod: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("reason") == "Unschedulable" and "Insufficient" in str(
            condition.get("message", "")
        ):
            return True
    return False


def config_error(steps: list[PodStep]) -> bool:
    for step in steps:
        waiting = step.waiting
        if waiting and waiting.get("reason") == CONFIG_ERROR:
            return RECOVERABLE_CONFIG_ERROR not in str(waiting.get("message", ""))
    return False


def image_pull_error(steps: list[PodStep]) -> bool:
    return any(step.waiting and step.waiting.get("reason") in IMAGE_PULL_ERRORS for step in steps)


def finished_at(steps: list[PodStep], now: datetime) -> str:
    latest: datetime | None = None
    for step in steps:
        moment = parse_time((step.terminated or {}).get("finishedAt"))
        if moment is not None and (latest is None or moment > latest):
            latest = moment
    return rfc3339(latest if latest is not None else now)


def logs_hint(namespace: str, pod_name: str, container: str) -> str:
    return f"kubectl --namespace {namespace} logs {pod_name} --container={container}"


def pod_finished(pod: Mapping[str, Any]) -> bool:
    """Whether the Pod ran to its end (its phase is final)."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_ending(pod: Mapping[str, Any]) -> bool:
    """Whether the Pod finished or is being deleted: its BuildRun's end is near, and worth
    reconciling before runs that merely progress."""
    return pod_finished(pod) or "deletionTimestamp" in (pod.get("metadata") or {})

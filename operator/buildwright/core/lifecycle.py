"""Decisions about a BuildRun's life that do not come from the Pod's own state
(docs/buildrun-lifecycle.md): the run's deadline, cancellation, a vanished Pod, and failures
the controller decides itself before or instead of running a Pod.

Every function returns a :class:`~buildwright.core.status.StatusUpdate`, so the shell writes
all outcomes the same way (`status_patch`, then a merge patch of `status`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from buildwright.api.v1beta1 import BuildRun
from buildwright.core.formats import as_utc, parse_time, rfc3339
from buildwright.core.reasons import Failure, Reason
from buildwright.core.resolve import buildrun_timeout_seconds as declared_timeout_seconds
from buildwright.core.status import (
    MSG_CANCELED_BEFORE_START,
    StatusUpdate,
    elapsed_seconds,
    is_canceled,
    make_condition,
    timeout_message,
)


def canceled_before_start(buildrun: BuildRun) -> Failure | None:
    """`spec.state: BuildRunCanceled` on a run that has no Pod yet ends it at once."""
    if not is_canceled(buildrun):
        return None
    return Failure(Reason.BUILDRUN_CANCELED, MSG_CANCELED_BEFORE_START)


def timeout_deadline(
    buildrun: BuildRun, effective_timeout_seconds: float | None = None
) -> datetime | None:
    """When the run must be over: creationTimestamp + the effective timeout.

    Measured from the BuildRun's creation, not the Pod's start, so a Pod that never gets
    scheduled still times out (its activeDeadlineSeconds only counts from its start).
    `effective_timeout_seconds` None means: BuildRun `timeout` ?? the Build's (embedded spec,
    else the `status.buildSpec` snapshot). None when there is no timeout.
    """
    seconds = effective_timeout_seconds
    if seconds is None:
        seconds = declared_timeout_seconds(buildrun)
    created = parse_time(buildrun.metadata.get("creationTimestamp"))
    if seconds is None or created is None:
        return None
    return created + timedelta(seconds=seconds)


def timed_out(
    buildrun: BuildRun, now: datetime, effective_timeout_seconds: float | None = None
) -> bool:
    """Whether the run's deadline has passed (a completed run never times out)."""
    if buildrun.status is not None and buildrun.status.completion_time:
        return False
    deadline = timeout_deadline(buildrun, effective_timeout_seconds)
    return deadline is not None and as_utc(now) >= deadline


def timeout_status(
    buildrun: BuildRun, now: datetime, effective_timeout_seconds: float | None = None
) -> StatusUpdate:
    """False/`BuildRunTimeout` `BuildRun <name> failed to finish within <d>`; `stop_pod`."""
    seconds = effective_timeout_seconds
    if seconds is None:
        seconds = declared_timeout_seconds(buildrun)
    if seconds is None:
        # Only reachable when a caller decided on a timeout this BuildRun does not declare:
        # report the time the run actually had.
        seconds = float(int(elapsed_seconds(buildrun, now) or 0))
    return StatusUpdate(
        condition=make_condition(
            buildrun, "False", Reason.BUILDRUN_TIMEOUT, timeout_message(buildrun, seconds), now
        ),
        completion_time=rfc3339(now),
        stop_pod=True,
    )


def failure_status(failure: Failure, now: datetime) -> StatusUpdate:
    """A terminal failure the controller decided (validation, missing objects, generation):
    condition False with the failure's reason and message, completionTime now."""
    return StatusUpdate(
        condition=make_condition(None, "False", failure.reason, failure.message, now),
        completion_time=rfc3339(now),
    )



def quota_exceeded(status: int, message: str) -> bool:
    """Whether the API server refused a Pod because a ResourceQuota is used up (403)."""
    return status == 403 and "exceeded quota" in message


def pod_rejection(pod_name: str, status: int, message: str) -> Failure | None:
    """`PodCreationFailed` (Tekton's reason) when the API server refused the build Pod with an
    answer that will not change on retry: invalid (400, 422) or forbidden (403, e.g. by Pod
    Security admission). The message keeps the server's own words, which name the field.
    None for answers worth retrying (conflict, throttling, server errors) and for 404 (the
    namespace is gone, and the BuildRun with it)."""
    if status in (404, 408, 409, 429) or status >= 500 or status < 400:
        return None
    if quota_exceeded(status, message):
        return None
    return Failure(
        Reason.POD_CREATION_FAILED,
        f'failed to create the build Pod "{pod_name}": {message}'
        " (change the field of the Build, BuildRun or strategy it names)",
    )


# --- the end-of-run Event ----------------------------------------------------------------------

# How long after its end a run's Event is still worth posting when it was missed (the operator
# stopped between the status write and the Event): the apiserver keeps Events an hour.
END_EVENT_RECOVERY = timedelta(hours=1)


def end_event_name(buildrun_name: str, uid: str) -> str:
    """The name of a run's one end-of-run Event: the same for every attempt to post it, so
    that the apiserver's AlreadyExists says it was posted. The uid keeps a re-created run of
    the same name apart."""
    return f"{buildrun_name}.{uid}.end"


def end_event_missed(buildrun: BuildRun, now: datetime) -> bool:
    """Whether a finished run seen for the first time since start-up may lack its Event: it
    ended recently enough that the Event would still be kept."""
    ended = buildrun.status.completion_time if buildrun.status else None
    if not ended:
        return False
    moment = parse_time(ended)
    return moment is not None and now - as_utc(moment) < END_EVENT_RECOVERY

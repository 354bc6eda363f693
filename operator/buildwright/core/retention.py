"""Which completed BuildRuns to delete, and when (docs/buildrun-lifecycle.md, "After the end").

Two independent rules: a run's own TTL after it completed (`ttlAfterSucceeded` /
`ttlAfterFailed`), and per-Build limits on how many succeeded and failed runs to keep.
A canceled run counts as failed: its condition is False like any other failure.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from buildwright.api.v1beta1 import BuildRun
from buildwright.core.formats import parse_duration, parse_time
from buildwright.core.status import current_condition

_OLDEST = datetime.min.replace(tzinfo=UTC)


def outcome(buildrun: BuildRun) -> bool | None:
    """True for a succeeded run, False for a failed (or canceled) one, None while running."""
    if buildrun.status is None or not buildrun.status.completion_time:
        return None
    condition = current_condition(buildrun)
    if condition is None or condition.status not in ("True", "False"):
        return None
    return condition.status == "True"


def ttl_expiry(buildrun: BuildRun) -> datetime | None:
    """When a completed run is to be deleted: completionTime + its TTL, or None.

    TTL = the BuildRun's `retention` ?? the Build's, taken from the `status.buildSpec`
    snapshot (later Build edits do not affect old runs) or, for a run that failed before the
    snapshot was written, from its embedded Build spec.
    """
    succeeded = outcome(buildrun)
    if succeeded is None:
        return None
    assert buildrun.status is not None
    completed = parse_time(buildrun.status.completion_time)
    if completed is None:
        return None
    candidates: list[str | None] = []
    if buildrun.spec.retention is not None:
        retention = buildrun.spec.retention
        candidates.append(
            retention.ttl_after_succeeded if succeeded else retention.ttl_after_failed
        )
    for spec in (buildrun.status.build_spec, buildrun.spec.build.spec):
        if spec is not None and spec.retention is not None:
            retention_of_build = spec.retention
            candidates.append(
                retention_of_build.ttl_after_succeeded
                if succeeded
                else retention_of_build.ttl_after_failed
            )
    for text in candidates:
        if not text:
            continue
        try:
            return completed + timedelta(seconds=parse_duration(text))
        except ValueError:
            continue
    return None


def runs_to_delete(
    buildruns: list[BuildRun], succeeded_limit: int | None, failed_limit: int | None
) -> list[str]:
    """Names of the completed runs beyond the limits, oldest first (by creationTimestamp).

    Runs still in progress are never counted nor deleted; a limit of None keeps everything.
    """
    succeeded = [run for run in buildruns if outcome(run) is True]
    failed = [run for run in buildruns if outcome(run) is False]
    victims: list[BuildRun] = []
    for runs, limit in ((succeeded, succeeded_limit), (failed, failed_limit)):
        if limit is None or len(runs) <= limit:
            continue
        ordered = sorted(runs, key=_age_key)
        victims.extend(ordered[: len(ordered) - max(limit, 0)])
    return [str(run.metadata.get("name", "")) for run in sorted(victims, key=_age_key)]


def _age_key(buildrun: BuildRun) -> tuple[datetime, str]:
    created = parse_time(buildrun.metadata.get("creationTimestamp")) or _OLDEST
    return created, str(buildrun.metadata.get("name", ""))

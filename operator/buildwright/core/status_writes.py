"""How a decided BuildRun status reaches the API: the merge patch that writes only what
changed, when an in-progress change is written (coalesced) and which change gets an Event.

The decision itself, from a BuildRun and its Pod to a `StatusUpdate`, is `core.status`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from buildwright.api.base import Condition
from buildwright.core.status import SUCCEEDED_CONDITION, StatusUpdate


def _diff(current: Any, desired: Any, *, replace: bool) -> Any:
    """Merge-patch fragment turning `current` into `desired`; `_UNCHANGED` when equal.

    With `replace`, keys `desired` lacks are removed (null); without, they are kept."""
    if isinstance(desired, dict) and isinstance(current, dict):
        fragment: dict[str, Any] = {}
        for key, value in desired.items():
            sub = _diff(current.get(key), value, replace=replace)
            if sub is not _UNCHANGED:
                fragment[key] = sub
        if replace:
            for key in current:
                if key not in desired:
                    fragment[key] = None
        return fragment or _UNCHANGED
    return _UNCHANGED if current == desired else desired


_UNCHANGED = object()


def status_patch(
    current_status: dict[str, Any] | None, update: StatusUpdate
) -> dict[str, Any] | None:
    """The JSON merge patch body for `status` (None when nothing would change).

    A completed BuildRun is final: once `completionTime` is set nothing is written.
    `startTime` is written once; the condition keeps its lastTransitionTime while its status,
    reason and message stay the same; failureDetails is replaced as a whole, as upstream does.
    """
    current = current_status or {}
    if current.get("completionTime"):
        return None
    patch: dict[str, Any] = {}

    if update.condition is not None:
        conditions = [c for c in current.get("conditions") or [] if isinstance(c, dict)]
        old = next((c for c in conditions if c.get("type") == SUCCEEDED_CONDITION), None)
        new = update.condition.to_wire()
        same = old is not None and all(
            old.get(key) == new[key] for key in ("status", "reason", "message")
        )
        if not same:
            others = [c for c in conditions if c.get("type") != SUCCEEDED_CONDITION]
            patch["conditions"] = [*others, new]

    if update.start_time and not current.get("startTime"):
        patch["startTime"] = update.start_time
    if update.completion_time:
        patch["completionTime"] = update.completion_time

    wholesale = {"failureDetails"}
    for key, model in (
        ("output", update.output),
        ("source", update.source),
        ("failureDetails", update.failure_details),
        ("executor", update.executor),
    ):
        if model is None:
            continue
        fragment = _diff(current.get(key), model.to_wire(), replace=key in wholesale)
        if fragment is not _UNCHANGED:
            patch[key] = fragment
    if update.task_run_name and current.get("taskRunName") != update.task_run_name:
        patch["taskRunName"] = update.task_run_name
    return patch or None


def write_deadline(
    update: StatusUpdate, *, due: datetime | None, now: datetime, window: float
) -> datetime | None:
    """When a status change should be written: None means now, a moment means not before then.

    A build Pod passes through several in-progress states within milliseconds (scheduled,
    initialising, the first step running); each would be a status write and a watch event of
    its own. In-progress changes are therefore written at most `window` seconds after the first
    one was noticed, with whatever the Pod says by then, and a run that finishes inside the
    window gets a single write. The end of a run (and stopping its Pod) is written at once:
    that is the moment users and the timing figures wait for. `due` is the deadline already
    set for this BuildRun, if any.
    """
    if update.terminal or update.stop_pod or window <= 0:
        return None
    if due is None:
        return now + timedelta(seconds=window)
    return None if due <= now else due


def reconcile_on_pod_change(
    *, ending: bool, write_due: datetime | None, now: datetime, reconciling: bool
) -> bool:
    """Whether a change of a build Pod calls for a reconcile of its BuildRun now.

    Not for a change in progress (the Pod neither `ending` nor gone) while the BuildRun's
    status write is due within the coalescing window (`write_deadline`): that write reads
    the Pod as it is then, and a reconcile now would only decide to wait for it. A failure
    the Pod shows before it ends (a failed step, a container config error) is written at that
    deadline too. Always while a reconcile of the run is under way (`reconciling`): it may
    have read the Pod before this change.
    """
    return ending or reconciling or write_due is None or write_due <= now


def announced_condition(before: Condition | None, after: Condition | None) -> Condition | None:
    """The condition to announce with an Event: the run's end, once.

    In-progress transitions stay in the status (and `kubectl get buildruns`); an Event per
    transition would double the writes of every run for little `kubectl describe` value.
    """
    if after is None or after.status not in ("True", "False"):
        return None
    if before is not None and (before.status, before.reason) == (after.status, after.reason):
        return None
    return after

"""When a build Pod's change wakes its BuildRun (core.status_writes.reconcile_on_pod_change)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from buildwright.core.status_writes import reconcile_on_pod_change

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=0.5)


def test_a_change_in_progress_waits_for_the_status_write_already_due() -> None:
    assert not reconcile_on_pod_change(ending=False, write_due=LATER, now=NOW, reconciling=False)


def test_a_change_without_a_pending_write_is_reconciled() -> None:
    assert reconcile_on_pod_change(ending=False, write_due=None, now=NOW, reconciling=False)


def test_a_write_due_by_now_does_not_hold_a_change_back() -> None:
    # Its reconcile may have read the Pod already, or be about to: this change must be seen.
    assert reconcile_on_pod_change(ending=False, write_due=NOW, now=NOW, reconciling=False)


def test_the_end_of_a_pod_is_reconciled_at_once() -> None:
    assert reconcile_on_pod_change(ending=True, write_due=LATER, now=NOW, reconciling=False)


def test_a_change_during_a_reconcile_is_reconciled_again() -> None:
    # The running reconcile may have read the Pod before the change arrived.
    assert reconcile_on_pod_change(ending=False, write_due=LATER, now=NOW, reconciling=True)

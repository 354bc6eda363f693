"""The Lease state machine of leader election (client-go's rules), with explicit times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from buildwright.core.leader import (
    LeaderSettings,
    LeaseRecord,
    lease_valid,
    next_record,
    released,
    still_leading,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SETTINGS = LeaderSettings()  # 15 s lease, 10 s renew deadline, 2 s retry


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def test_defaults_are_shipwrights_controller() -> None:
    assert (SETTINGS.lease_duration, SETTINGS.renew_deadline, SETTINGS.retry_period) == (
        seconds(15), seconds(10), seconds(2)
    )  # fmt: skip


def test_settings_from_shipwrights_variables() -> None:
    settings = LeaderSettings.from_env({
        "BUILD_CONTROLLER_LEASE_DURATION": "4s",
        "BUILD_CONTROLLER_RENEW_DEADLINE": "3s",
        "BUILD_CONTROLLER_RETRY_PERIOD": "500ms",
    })  # fmt: skip
    assert settings == LeaderSettings(seconds(4), seconds(3), seconds(0.5))


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "complaint"),
    [(10, 10, 2, "lease duration"), (15, 2, 2, "renew deadline"), (15, 10, 0, "retry period")],
)
def test_inconsistent_settings_are_refused(
    lease: float, renew: float, retry: float, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        LeaderSettings(seconds(lease), seconds(renew), seconds(retry))


def test_bad_duration_names_the_variable() -> None:
    with pytest.raises(ValueError, match="BUILD_CONTROLLER_RETRY_PERIOD"):
        LeaderSettings.from_env({"BUILD_CONTROLLER_RETRY_PERIOD": "two"})


def test_no_lease_is_created_with_us_as_holder() -> None:
    record = next_record(None, T0, "a", T0, SETTINGS)
    assert record == LeaseRecord("a", 15, T0, T0, 0)


def test_holder_renews_keeping_acquire_time_and_transitions() -> None:
    held = LeaseRecord("a", 15, T0, T0, 3)
    renewed = next_record(held, T0, "a", T0 + seconds(2), SETTINGS)
    assert renewed == LeaseRecord("a", 15, T0, T0 + seconds(2), 3)


def test_another_holders_lease_is_respected_until_it_expires_from_our_observation() -> None:
    # Their renewTime is in the past by our clock (skew); what counts is when we saw it.
    theirs = LeaseRecord("b", 15, T0 - seconds(100), T0 - seconds(100), 1)
    observed = T0
    assert next_record(theirs, observed, "a", T0 + seconds(14.9), SETTINGS) is None
    assert lease_valid(theirs, observed, T0 + seconds(14.9))
    taken = next_record(theirs, observed, "a", T0 + seconds(15), SETTINGS)
    assert taken == LeaseRecord("a", 15, T0 + seconds(15), T0 + seconds(15), 2)


def test_the_record_holders_lease_duration_counts_not_ours() -> None:
    theirs = LeaseRecord("b", 60, T0, T0, 0)
    assert next_record(theirs, T0, "a", T0 + seconds(30), SETTINGS) is None


def test_a_released_lease_is_taken_at_once() -> None:
    record = released(LeaseRecord("b", 15, T0, T0, 4), T0 + seconds(1))
    assert (record.holder, record.lease_duration_seconds) == ("", 1)
    taken = next_record(record, T0 + seconds(1), "a", T0 + seconds(1.1), SETTINGS)
    assert taken is not None and (taken.holder, taken.transitions) == ("a", 5)


def test_leader_stops_before_its_lease_can_expire_for_others() -> None:
    last_renewal = T0
    assert still_leading(last_renewal, T0 + seconds(9.9), SETTINGS)
    assert not still_leading(last_renewal, T0 + seconds(10), SETTINGS)
    # Another candidate saw that renewal no earlier than it was written: it cannot take the
    # lease before T0 + 15 s, after we stopped at T0 + 10 s.
    assert SETTINGS.renew_deadline < SETTINGS.lease_duration


def test_spec_round_trip_in_micro_time() -> None:
    record = LeaseRecord("a", 15, T0, T0 + timedelta(microseconds=1234), 2)
    spec = record.to_spec()
    assert spec["renewTime"] == "2026-01-01T12:00:00.001234Z"
    assert spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 2
    assert LeaseRecord.from_spec(spec) == record

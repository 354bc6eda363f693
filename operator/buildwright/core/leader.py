"""Leader election on a `coordination.k8s.io/v1` Lease, decided purely.

The rules are client-go's `leaderelection`, so that buildwright replicas behave like every
other controller's (and `kubectl get lease` reads the same):

- A candidate reads the Lease. When its holder is someone else, the lease counts as valid
  for `leaseDurationSeconds` *from the moment this candidate saw the record change* (its own
  clock, never the holder's `renewTime`: clocks of two nodes need not agree).
- A valid lease of another holder: wait and look again after the retry period.
- Expired, released (empty holder) or absent: take it: holder = me, acquireTime = renewTime
  = now, `leaseTransitions` + 1 when the holder changes.
- The holder renews every retry period (renewTime = now). A holder that could not renew
  for `renew_deadline` stops leading: with renew deadline < lease duration it stops before
  any other candidate may take the lease.
- Writes are conditional on the resourceVersion read (the shell's PUT): of two candidates
  racing for an expired lease one gets 409 Conflict and stays a candidate.

Defaults are Shipwright's controller's (controller-runtime's): 15 s lease, 10 s renew
deadline, 2 s retry period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from buildwright.core.formats import parse_duration_nanos, parse_time

DEFAULT_LEASE_DURATION = timedelta(seconds=15)
DEFAULT_RENEW_DEADLINE = timedelta(seconds=10)
DEFAULT_RETRY_PERIOD = timedelta(seconds=2)
# client-go refuses a renew deadline within JitterFactor × retry period of the lease.
JITTER_FACTOR = 1.2

LEASE_DURATION_ENV = "BUILD_CONTROLLER_LEASE_DURATION"
RENEW_DEADLINE_ENV = "BUILD_CONTROLLER_RENEW_DEADLINE"
RETRY_PERIOD_ENV = "BUILD_CONTROLLER_RETRY_PERIOD"


@dataclass(frozen=True)
class LeaderSettings:
    lease_duration: timedelta = DEFAULT_LEASE_DURATION
    """How long a lease is valid after its holder's last renewal was seen."""

    renew_deadline: timedelta = DEFAULT_RENEW_DEADLINE
    """How long the leader keeps trying to renew before it stops leading."""

    retry_period: timedelta = DEFAULT_RETRY_PERIOD
    """How often candidates try to acquire and the leader renews."""

    def __post_init__(self) -> None:
        if self.retry_period <= timedelta(0):
            raise ValueError("the leader election retry period must be positive")
        if self.renew_deadline <= self.retry_period * JITTER_FACTOR:
            raise ValueError(
                f"the renew deadline ({self.renew_deadline.total_seconds()}s) must be longer "
                f"than {JITTER_FACTOR} x the retry period ({self.retry_period.total_seconds()}s)"
            )
        if self.lease_duration <= self.renew_deadline:
            raise ValueError(
                f"the lease duration ({self.lease_duration.total_seconds()}s) must be longer "
                f"than the renew deadline ({self.renew_deadline.total_seconds()}s)"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LeaderSettings:
        """Go durations (`15s`, `1m`) in Shipwright's variables; unset ones keep defaults."""
        return cls(
            lease_duration=_duration(environ, LEASE_DURATION_ENV, DEFAULT_LEASE_DURATION),
            renew_deadline=_duration(environ, RENEW_DEADLINE_ENV, DEFAULT_RENEW_DEADLINE),
            retry_period=_duration(environ, RETRY_PERIOD_ENV, DEFAULT_RETRY_PERIOD),
        )


def _duration(environ: Mapping[str, str], name: str, default: timedelta) -> timedelta:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        return timedelta(microseconds=parse_duration_nanos(text) / 1000)
    except ValueError as error:
        raise ValueError(f"{name}={text!r}: {error}") from None


@dataclass(frozen=True)
class LeaseRecord:
    """The spec of a Lease, the fields leader election reads and writes."""

    holder: str = ""
    lease_duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> LeaseRecord:
        spec = spec or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=_micro_time(spec.get("acquireTime")),
            renew_time=_micro_time(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = micro_time(self.acquire_time)
        if self.renew_time is not None:
            spec["renewTime"] = micro_time(self.renew_time)
        return spec


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 with microseconds, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _micro_time(value: Any) -> datetime | None:
    return parse_time(value) if isinstance(value, str) else None


def lease_valid(record: LeaseRecord, observed_at: datetime, now: datetime) -> bool:
    """Whether another holder's lease still stands, counted from when *we* saw it change."""
    if not record.holder:
        return False  # released
    return now < observed_at + timedelta(seconds=record.lease_duration_seconds)


def next_record(
    current: LeaseRecord | None,
    observed_at: datetime,
    identity: str,
    now: datetime,
    settings: LeaderSettings,
) -> LeaseRecord | None:
    """What to write to hold the lease (acquire or renew), or None: another holder's lease is
    still valid, so keep waiting. `current` None: no Lease exists yet (create it)."""
    duration = int(settings.lease_duration.total_seconds())
    if current is None:
        return LeaseRecord(identity, duration, now, now, 0)
    if current.holder == identity:
        return replace(current, lease_duration_seconds=duration, renew_time=now)
    if lease_valid(current, observed_at, now):
        return None
    return LeaseRecord(identity, duration, now, now, current.transitions + 1)


def released(record: LeaseRecord, now: datetime) -> LeaseRecord:
    """The record a leader writes when it steps down on shutdown: no holder and a 1 s lease,
    so a candidate takes over at its next try instead of after the whole lease duration."""
    return replace(record, holder="", lease_duration_seconds=1, renew_time=now)


def still_leading(last_renewal: datetime, now: datetime, settings: LeaderSettings) -> bool:
    """A leader that has not renewed for the renew deadline must stop acting as leader."""
    return now - last_renewal < settings.renew_deadline

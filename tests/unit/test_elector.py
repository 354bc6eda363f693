"""Two electors sharing one Lease (an in-memory store with the apiserver's resourceVersion
rules): one leads, and a leader cut off from the API stops before the other takes over."""

from __future__ import annotations

import copy
import time
from datetime import timedelta
from typing import Any

import aiohttp

from buildwright import kube
from buildwright.core.leader import LeaderSettings
from buildwright.leader import ElectionConfig, Elector
from buildwright_localcluster.wait import async_wait_until

SETTINGS = LeaderSettings(
    lease_duration=timedelta(seconds=1.2),
    renew_deadline=timedelta(seconds=0.8),
    retry_period=timedelta(seconds=0.1),
)


class LeaseStore:
    """One Lease: GET, POST (409 when it exists), PUT (409 on a stale resourceVersion)."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.cut_off: set[str] = set()  # identities whose requests fail to connect
        self.reads: dict[str, int] = {}  # GETs of the Lease per identity: its attempts

    def attempts_after(self, identity: str, count: int) -> Any:
        """A condition: `identity` has read the Lease `count` more times than it had now."""
        start = self.reads.get(identity, 0)
        return lambda: self.reads.get(identity, 0) >= start + count

    def client(self, identity: str) -> Any:
        store = self

        class Client:
            def _check(self) -> None:
                if identity in store.cut_off:
                    raise aiohttp.ClientConnectionError("network partition")

            async def get(self, resource: kube.Resource, namespace: str, name: str) -> Any:
                self._check()
                store.reads[identity] = store.reads.get(identity, 0) + 1
                return copy.deepcopy(store.lease)

            async def create(self, resource: kube.Resource, namespace: str, body: Any) -> Any:
                self._check()
                if store.lease is not None:
                    raise kube.ApiError(409, "AlreadyExists", "exists")
                return store._write(body)

            async def replace(
                self, resource: kube.Resource, namespace: str, name: str, body: Any
            ) -> Any:
                self._check()
                assert store.lease is not None
                current = store.lease["metadata"]["resourceVersion"]
                if body["metadata"]["resourceVersion"] != current:
                    raise kube.ApiError(409, "Conflict", "the object has been modified")
                return store._write(body)

            async def close(self) -> None:
                pass

        return Client()

    def _write(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        metadata = {**body["metadata"], "resourceVersion": str(self.version)}
        self.lease = {**copy.deepcopy(body), "metadata": metadata}
        return copy.deepcopy(self.lease)

    def holder(self) -> str | None:
        return None if self.lease is None else self.lease["spec"]["holderIdentity"] or None


async def until(condition: Any, timeout: float = 5.0) -> None:
    await async_wait_until(condition, timeout=timeout, description="the elector's state")


def elector(store: LeaseStore, identity: str, events: list[tuple[str, str, float]]) -> Elector:
    config = ElectionConfig(namespace="ns", identity=identity, settings=SETTINGS)
    return Elector(
        store.client(identity), config,
        on_started=lambda: events.append((identity, "started", time.monotonic())),
        on_stopped=lambda: events.append((identity, "stopped", time.monotonic())),
    )  # fmt: skip


async def test_one_leads_and_a_cut_off_leader_stops_before_the_other_starts() -> None:
    store = LeaseStore()
    events: list[tuple[str, str, float]] = []
    a, b = elector(store, "a", events), elector(store, "b", events)
    a.start()
    await until(a.leading)
    b.start()
    await until(store.attempts_after("b", 4))  # several tries: b must keep following
    assert a.leading() and not b.leading()
    assert store.holder() == "a" and store.lease is not None
    assert store.lease["spec"]["leaseTransitions"] == 0

    store.cut_off.add("a")
    await until(b.leading)
    stopped = next(t for who, what, t in events if (who, what) == ("a", "stopped"))
    started = next(t for who, what, t in events if (who, what) == ("b", "started"))
    assert stopped < started
    assert not a.leading()
    try:
        a.guard("create", kube.PODS)
        raise AssertionError("a write of a replica that lost its lease went through")
    except kube.NotLeading:
        pass
    assert store.holder() == "b" and store.lease["spec"]["leaseTransitions"] == 1
    await a.stop(release=False)
    await b.stop()
    assert store.holder() is None  # released on shutdown: the next one starts at once


async def test_of_two_candidates_racing_for_a_new_lease_one_wins() -> None:
    store = LeaseStore()
    events: list[tuple[str, str, float]] = []
    a, b = elector(store, "a", events), elector(store, "b", events)
    a.start()
    b.start()
    await until(lambda: a.leading() or b.leading())
    loser = "b" if a.leading() else "a"
    await until(store.attempts_after(loser, 3))  # the loser tried again and still follows
    assert a.leading() != b.leading()
    await a.stop()
    await b.stop()

"""The BuildRun work queue fed by build Pod events: each key once while it waits."""

from __future__ import annotations

import asyncio

from buildwright.informer import KeyQueue


class Calls(list[tuple[str, str]]):
    """The handler's calls, and a way to wait for the n-th one without polling."""

    def __init__(self) -> None:
        super().__init__()
        self._grew = asyncio.Event()

    def note(self, namespace: str, name: str) -> None:
        self.append((namespace, name))
        self._grew.set()

    async def reach(self, count: int) -> None:
        async def grown() -> None:
            while len(self) < count:
                self._grew.clear()
                await self._grew.wait()

        await asyncio.wait_for(grown(), timeout=5)


async def test_a_key_added_many_times_while_waiting_is_handled_once() -> None:
    calls = Calls()

    async def handle(namespace: str, name: str) -> None:
        calls.note(namespace, name)

    queue = KeyQueue(handle, workers=1)
    for _ in range(50):
        queue.add(("ns", "a"))
    queue.add(("ns", "b"))
    queue.start()
    try:
        await calls.reach(2)
        # One worker serves in order: a repeated "a" would come before this marker.
        queue.add(("ns", "marker"))
        await calls.reach(3)
    finally:
        await queue.stop()
    assert calls == [("ns", "a"), ("ns", "b"), ("ns", "marker")]


async def test_a_key_added_while_it_is_handled_is_handled_again() -> None:
    calls = Calls()
    started, release = asyncio.Event(), asyncio.Event()

    async def handle(namespace: str, name: str) -> None:
        calls.note(namespace, name)
        if len(calls) == 1:
            started.set()
            await release.wait()

    queue = KeyQueue(handle, workers=1)
    queue.add(("ns", "a"))
    queue.start()
    try:
        await asyncio.wait_for(started.wait(), timeout=5)
        queue.add(("ns", "a"))  # a change while the first run is in progress
        release.set()
        await calls.reach(2)
    finally:
        await queue.stop()
    assert calls == [("ns", "a"), ("ns", "a")]


async def test_a_failing_handler_does_not_stop_the_queue() -> None:
    calls = Calls()

    async def handle(namespace: str, name: str) -> None:
        calls.note(namespace, name)
        if name == "bad":
            raise RuntimeError("boom")

    queue = KeyQueue(handle, workers=1)
    queue.start()
    try:
        queue.add(("ns", "bad"))
        queue.add(("ns", "good"))
        await calls.reach(2)
    finally:
        await queue.stop()
    assert calls == [("ns", "bad"), ("ns", "good")]


async def test_urgent_keys_are_served_first_and_once() -> None:
    calls = Calls()

    async def handle(namespace: str, name: str) -> None:
        calls.note(namespace, name)

    queue = KeyQueue(handle, workers=1)
    for name in ("a", "b", "c"):
        queue.add(("ns", name))
    queue.add(("ns", "c"), urgent=True)  # already waiting, now urgent
    queue.add(("ns", "d"), urgent=True)
    queue.add(("ns", "d"))  # waiting as urgent already
    queue.start()
    try:
        await calls.reach(4)
        queue.add(("ns", "marker"))
        await calls.reach(5)
    finally:
        await queue.stop()
    assert calls == [("ns", n) for n in ("c", "d", "a", "b", "marker")]

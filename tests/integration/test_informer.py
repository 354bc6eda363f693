"""The build Pod informer against the real apiserver: list, watch, and the relist that forgets
Pods deleted while nobody watched (what an operator restart or an expired watch relies on)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
import pytest
from kubernetes import client

from buildwright.core.cached import build_pod_for_status
from buildwright.informer import PodInformer
from buildwright.kube import Kube
from buildwright.state import Key, Store


def build_pod(name: str, buildrun: str, *, managed: bool = True) -> client.V1Pod:
    labels = {"buildrun.shipwright.io/name": buildrun}
    if managed:
        labels["app.kubernetes.io/managed-by"] = "buildwright"
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        # Bound to a node that does not exist: nothing runs it, it stays as created.
        spec=client.V1PodSpec(node_name="nowhere", containers=[
            client.V1Container(name="step-results", image="registry.invalid/x")
        ]),
    )  # fmt: skip


class Notes:
    """What the informer reported, by urgency, and a way to wait for a state it reports.

    The informer updates its store before it reports a change, so a state of the store is
    checked again on each report instead of on a timer.
    """

    def __init__(self) -> None:
        self.changed: list[Key] = []
        self.urgent: list[Key] = []
        self._reported = asyncio.Event()

    def __call__(self, key: Key, *, urgent: bool = False) -> None:
        (self.urgent if urgent else self.changed).append(key)
        self._reported.set()

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 20) -> None:
        async def reported() -> None:
            while not check():
                self._reported.clear()
                await self._reported.wait()

        try:
            await asyncio.wait_for(reported(), timeout)
        except TimeoutError:
            raise AssertionError(f"not within {timeout}s: {what}") from None


def delete_now(core_v1: client.CoreV1Api, namespace: str, name: str) -> None:
    core_v1.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


async def test_pods_are_listed_watched_and_forgotten_on_relist(
    kubeconfig: Path, core_v1: client.CoreV1Api, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    assert info is not None
    kube = Kube(info)
    store = Store(build_pod_for_status)
    notes = Notes()

    def informer() -> PodInformer:
        return PodInformer(kube, store, notes, namespaces=[namespace])

    def stored() -> set[str]:
        return {name for ns, name in store.stored_keys() if ns == namespace}

    core_v1.create_namespaced_pod(namespace, build_pod("run-a-pod", "run-a"))
    core_v1.create_namespaced_pod(namespace, build_pod("other", "run-x", managed=False))
    first = informer()
    first.start()
    try:
        await notes.until(lambda: stored() == {"run-a-pod"}, "the listed Pod stored")
        assert (namespace, "run-a") in notes.changed
        kept: Any = store.get(namespace, "run-a-pod")
        assert kept["spec"] == {"initContainers": [], "containers": [{"name": "step-results"}]}

        core_v1.create_namespaced_pod(namespace, build_pod("run-b-pod", "run-b"))
        await notes.until(lambda: "run-b-pod" in stored(), "a watched Pod stored")
        assert (namespace, "run-b") in notes.changed
    finally:
        await first.stop()

    # While nobody watches: run-a's Pod goes, run-c's comes.
    delete_now(core_v1, namespace, "run-a-pod")
    core_v1.create_namespaced_pod(namespace, build_pod("run-c-pod", "run-c"))
    notes.changed.clear()
    second = informer()
    second.start()
    try:
        await notes.until(
            lambda: stored() == {"run-b-pod", "run-c-pod"}, "the relist's view stored"
        )
        assert (namespace, "run-c") in notes.changed
        # A Pod that went is urgent: its BuildRun is reconciled before in-progress ones.
        assert (namespace, "run-a") in notes.urgent

        delete_now(core_v1, namespace, "run-b-pod")
        await notes.until(lambda: stored() == {"run-c-pod"}, "a deleted Pod forgotten")
        assert (namespace, "run-b") in notes.urgent  # reported with the drop
    finally:
        await second.stop()
        await kube.close()

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


async def until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), timeout)
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
    changed: list[Key] = []
    urgent_keys: list[Key] = []

    def note(key: Key, *, urgent: bool = False) -> None:
        (urgent_keys if urgent else changed).append(key)

    def informer() -> PodInformer:
        return PodInformer(kube, store, note, namespaces=[namespace])

    def stored() -> set[str]:
        return {name for ns, name in store.stored_keys() if ns == namespace}

    core_v1.create_namespaced_pod(namespace, build_pod("run-a-pod", "run-a"))
    core_v1.create_namespaced_pod(namespace, build_pod("other", "run-x", managed=False))
    first = informer()
    first.start()
    try:
        await until(lambda: stored() == {"run-a-pod"}, "the listed Pod stored")
        assert (namespace, "run-a") in changed
        kept: Any = store.get(namespace, "run-a-pod")
        assert kept["spec"] == {"initContainers": [], "containers": [{"name": "step-results"}]}

        core_v1.create_namespaced_pod(namespace, build_pod("run-b-pod", "run-b"))
        await until(lambda: "run-b-pod" in stored(), "a watched Pod stored")
        assert (namespace, "run-b") in changed
    finally:
        await first.stop()

    # While nobody watches: run-a's Pod goes, run-c's comes.
    delete_now(core_v1, namespace, "run-a-pod")
    core_v1.create_namespaced_pod(namespace, build_pod("run-c-pod", "run-c"))
    changed.clear()
    second = informer()
    second.start()
    try:
        await until(lambda: stored() == {"run-b-pod", "run-c-pod"}, "the relist's view stored")
        assert (namespace, "run-c") in changed
        # A Pod that went is urgent: its BuildRun is reconciled before in-progress ones.
        assert (namespace, "run-a") in urgent_keys

        delete_now(core_v1, namespace, "run-b-pod")
        await until(lambda: stored() == {"run-c-pod"}, "a deleted Pod forgotten")
        await until(lambda: (namespace, "run-b") in urgent_keys, "the deletion noted as urgent")
    finally:
        await second.stop()
        await kube.close()

"""The build Pod and BuildRun informers against the real apiserver: list, watch, and the relist
that forgets objects deleted while nobody watched (what an operator restart or an expired watch
relies on); what comes back of the operator's own writes is not reported again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
import pytest
from kubernetes import client

from buildwright import kube as kube_api
from buildwright.core.cached import build_pod_for_status, without_bookkeeping
from buildwright.informer import BuildRunInformer, PodInformer
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


def api_client_of(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Kube:
    """The operator's API client, logged in as the operator logs in (here: the kubeconfig)."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    assert info is not None
    return Kube(info)


def pod_informer_parts(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Kube, Store, Notes]:
    """A client, a store keeping what the operator keeps of build Pods, and a report log."""
    return api_client_of(kubeconfig, monkeypatch), Store(build_pod_for_status), Notes()


def delete_now(core_v1: client.CoreV1Api, namespace: str, name: str) -> None:
    core_v1.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


async def test_pods_are_listed_watched_and_forgotten_on_relist(
    kubeconfig: Path, core_v1: client.CoreV1Api, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube, store, notes = pod_informer_parts(kubeconfig, monkeypatch)

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


async def test_a_pod_change_to_nothing_kept_is_not_reported(
    kubeconfig: Path, core_v1: client.CoreV1Api, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube, store, notes = pod_informer_parts(kubeconfig, monkeypatch)
    informer = PodInformer(kube, store, notes, namespaces=[namespace])
    core_v1.create_namespaced_pod(namespace, build_pod("run-d-pod", "run-d"))
    informer.start()
    try:
        await notes.until(lambda: (namespace, "run-d") in notes.changed, "the Pod reported")
        # The node's address, as a kubelet writes it: no decision reads it (core.cached).
        address = {"hostIP": "10.1.2.3", "hostIPs": [{"ip": "10.1.2.3"}]}
        core_v1.patch_namespaced_pod_status("run-d-pod", namespace, {"status": address})
        # Then a label, which is kept: the watch delivers both in order, so once the label is
        # reported the address change has been seen, and it was not reported.
        core_v1.patch_namespaced_pod("run-d-pod", namespace, {"metadata": {"labels": {"x": "y"}}})
        await notes.until(lambda: len(notes.changed) >= 2, "the label change reported")
        assert notes.changed == [(namespace, "run-d")] * 2
        latest = core_v1.read_namespaced_pod("run-d-pod", namespace).metadata.resource_version
        kept: Any = store.get(namespace, "run-d-pod")
        assert kept["metadata"]["resourceVersion"] == latest
    finally:
        await informer.stop()
        await kube.close()


def a_buildrun(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "shipwright.io/v1beta1", "kind": "BuildRun",
        "metadata": {"name": name}, "spec": {"build": {"name": "some-build"}},
    }  # fmt: skip


async def test_buildruns_are_listed_watched_and_their_own_writes_not_reported_again(
    kubeconfig: Path,
    custom_objects: client.CustomObjectsApi,
    namespace: str,
    crds: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube = api_client_of(kubeconfig, monkeypatch)
    store = Store(without_bookkeeping)
    changed: list[Key] = []
    gone: list[tuple[Key, str]] = []
    notes = Notes()

    def on_change(key: Key) -> None:
        changed.append(key)
        notes(key)

    def on_gone(key: Key, uid: str) -> None:
        gone.append((key, uid))
        notes(key)

    def create(name: str) -> dict[str, Any]:
        made: dict[str, Any] = custom_objects.create_namespaced_custom_object(
            "shipwright.io", "v1beta1", namespace, "buildruns", a_buildrun(name)
        )
        return made

    def informer() -> BuildRunInformer:
        return BuildRunInformer(kube, store, on_change, on_gone, namespaces=[namespace])

    create("listed")
    first = informer()
    first.start()
    try:
        await notes.until(lambda: (namespace, "listed") in changed, "the listed BuildRun")
        # A list's items do not say their kind; stored, they do (Events name it).
        listed: Any = store.get(namespace, "listed")
        assert (listed["apiVersion"], listed["kind"]) == ("shipwright.io/v1beta1", "BuildRun")
        watched = create("watched")
        await notes.until(lambda: (namespace, "watched") in changed, "a watched BuildRun")
    finally:
        await first.stop()

    # While nobody watches: a status write whose answer the writer stores, as the operator
    # does (the same version then arrives on the watch, or here in the relist), and
    # "listed" goes. The relist forgets it, says with which uid, and reports nothing else.
    answer = await kube.merge_patch(
        kube_api.BUILDRUNS, namespace, "watched", {"status": {"taskRunName": "x"}}, status=True
    )
    assert store.put(answer)
    listed_uid = (store.get(namespace, "listed") or {})["metadata"]["uid"]
    custom_objects.delete_namespaced_custom_object(
        "shipwright.io", "v1beta1", namespace, "buildruns", "listed"
    )
    changed.clear()
    stored_version = answer["metadata"]["resourceVersion"]
    second = informer()
    second.start()
    try:
        await notes.until(lambda: ((namespace, "listed"), listed_uid) in gone, "the relist")
        # Unchanged since the store last saw it: nothing to reconcile again. (An operator
        # serving the test cluster may have written it meanwhile: then it is a change.)
        kept = store.get(namespace, "watched") or {}
        written_since = kept["metadata"]["resourceVersion"] != stored_version
        assert ((namespace, "watched") in changed) == written_since
        assert kept["status"]["taskRunName"] == "x"
        custom_objects.delete_namespaced_custom_object(
            "shipwright.io", "v1beta1", namespace, "buildruns", "watched"
        )
        uid = watched["metadata"]["uid"]
        await notes.until(lambda: ((namespace, "watched"), uid) in gone, "a watched deletion")
        assert store.get(namespace, "watched") is None
    finally:
        await second.stop()
        await kube.close()

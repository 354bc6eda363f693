"""Lifecycle around a BuildRun: retention TTLs and limits, atBuildDeletion, generated
service accounts, embedded Build specs."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from buildwright_localcluster.kubelet import Outcome
from tests.integration.harness import (
    SUCCESSFUL_RESULTS,
    Cluster,
    book_build,
    buildrun,
    wait_for,
)


def _gone(cluster: Cluster, plural: str, name: str) -> bool:
    try:
        cluster.get(plural, name)
        return False
    except ApiException as error:
        if error.status == 404:
            return True
        raise


def _succeeding(cluster: Cluster, **build_spec: object) -> None:
    cluster.kubelet.script(cluster.namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    cluster.push_secret()
    cluster.create("builds", book_build(**build_spec))
    cluster.wait_build("kaniko-nodejs-build", "True")


def test_ttl_after_succeeded_deletes_the_buildrun(cluster: Cluster) -> None:
    _succeeding(cluster, retention={"ttlAfterSucceeded": "2s"})
    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    cluster.wait_buildrun(name, "True", "Succeeded")
    wait_for(lambda: _gone(cluster, "buildruns", name), 30, f"BuildRun {name} deleted by its TTL",
             cluster.diagnostics)  # fmt: skip


def test_buildrun_ttl_overrides_the_build_snapshot(cluster: Cluster) -> None:
    _succeeding(cluster, retention={"ttlAfterSucceeded": "1h"})
    name = cluster.create("buildruns", buildrun(retention={"ttlAfterSucceeded": "1s"}))["metadata"][
        "name"
    ]
    cluster.wait_buildrun(name, "True", "Succeeded")
    wait_for(lambda: _gone(cluster, "buildruns", name), 30, f"BuildRun {name} deleted",
             cluster.diagnostics)  # fmt: skip


def test_succeeded_limit_keeps_the_newest_runs(cluster: Cluster) -> None:
    _succeeding(cluster, retention={"succeededLimit": 2})
    created = [cluster.create("buildruns", buildrun()) for _ in range(4)]
    # Newest first by creationTimestamp (one-second resolution), ties broken by name: the
    # core's documented order.
    by_age = sorted(created, key=lambda b: (b["metadata"]["creationTimestamp"],
                                            b["metadata"]["name"]))  # fmt: skip
    names = [b["metadata"]["name"] for b in by_age]

    def kept() -> list[str] | None:
        left = [n for n in names if not _gone(cluster, "buildruns", n)]
        return left if len(left) == 2 else None

    assert wait_for(kept, 60, "only two BuildRuns left", cluster.diagnostics) == names[2:]
    for name in names[2:]:
        cluster.wait_buildrun(name, "True", "Succeeded")


def test_at_build_deletion_garbage_collects_buildruns(cluster: Cluster) -> None:
    _succeeding(cluster, retention={"atBuildDeletion": True})
    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    done = cluster.wait_buildrun(name, "True", "Succeeded")
    owners = done["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"]) for o in owners] == [("Build", "kaniko-nodejs-build")]
    cluster.custom.delete_namespaced_custom_object(
        "shipwright.io", "v1beta1", cluster.namespace, "builds", "kaniko-nodejs-build"
    )
    wait_for(lambda: _gone(cluster, "buildruns", name), 60, "BuildRun collected with its Build",
             cluster.diagnostics)  # fmt: skip


def test_without_at_build_deletion_buildruns_survive_their_build(cluster: Cluster) -> None:
    _succeeding(cluster)
    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    done = cluster.wait_buildrun(name, "True", "Succeeded")
    assert not done["metadata"].get("ownerReferences")


def test_generated_service_account_is_used_then_deleted(cluster: Cluster) -> None:
    _succeeding(cluster)
    name = cluster.create("buildruns", buildrun(serviceAccount=".generate"))["metadata"]["name"]
    cluster.wait_buildrun(name, "True", "Succeeded")
    pod = cluster.core.read_namespaced_pod(f"{name}-pod", cluster.namespace)
    assert pod.spec.service_account_name == name

    def account_gone() -> bool:
        try:
            cluster.core.read_namespaced_service_account(name, cluster.namespace)
            return False
        except ApiException as error:
            return error.status == 404

    wait_for(account_gone, 30, f"ServiceAccount {name} deleted", cluster.diagnostics)


def test_named_service_account_must_exist(cluster: Cluster) -> None:
    _succeeding(cluster)
    name = cluster.create("buildruns", buildrun(serviceAccount="builder"))["metadata"]["name"]
    cluster.wait_buildrun(name, "False", "ServiceAccountNotFound")
    assert cluster.condition(name)["message"] == "service account builder not found"  # type: ignore[index]


def test_embedded_build_spec_runs_without_a_build(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    cluster.push_secret()
    spec = book_build()["spec"]
    body = {
        "apiVersion": "shipwright.io/v1beta1",
        "kind": "BuildRun",
        "metadata": {"generateName": "one-off-"},
        "spec": {"build": {"spec": spec}},
    }
    name = cluster.create("buildruns", body)["metadata"]["name"]
    done = cluster.wait_buildrun(name, "True", "Succeeded")
    assert "build.shipwright.io/name" not in (done["metadata"].get("labels") or {})
    pod = cluster.core.read_namespaced_pod(f"{name}-pod", cluster.namespace)
    assert "build.shipwright.io/name" not in (pod.metadata.labels or {})
    assert pod.metadata.labels["clusterbuildstrategy.shipwright.io/name"] == "kaniko"


def test_embedded_spec_with_an_override_is_rejected(cluster: Cluster) -> None:
    body = {
        "apiVersion": "shipwright.io/v1beta1",
        "kind": "BuildRun",
        "metadata": {"generateName": "one-off-"},
        "spec": {"build": {"spec": book_build()["spec"]}, "timeout": "5m"},
    }
    name = cluster.create("buildruns", body)["metadata"]["name"]
    cluster.wait_buildrun(name, "False", "BuildRunBuildFieldOverrideForbidden")


def test_a_limit_added_later_applies_to_existing_runs(cluster: Cluster) -> None:
    _succeeding(cluster)
    created = [cluster.create("buildruns", buildrun()) for _ in range(3)]
    names = [b["metadata"]["name"] for b in sorted(
        created, key=lambda b: (b["metadata"]["creationTimestamp"], b["metadata"]["name"])
    )]  # fmt: skip
    for name in names:
        cluster.wait_buildrun(name, "True", "Succeeded")
    cluster.custom.patch_namespaced_custom_object(
        "shipwright.io", "v1beta1", cluster.namespace, "builds", "kaniko-nodejs-build",
        {"spec": {"retention": {"succeededLimit": 1}}},
    )  # fmt: skip

    def kept() -> list[str] | None:
        left = [n for n in names if not _gone(cluster, "buildruns", n)]
        return left if len(left) == 1 else None

    assert wait_for(kept, 30, "one BuildRun left", cluster.diagnostics) == names[2:]

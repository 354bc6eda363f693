"""deploy-namespaced/ on the real apiserver: the operator, under a token that holds only the
namespaced install's Role (in the one namespace it serves) and its small ClusterRole, runs
the book's build there and reads nothing of other namespaces."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from buildwright_localcluster.controlplane import ControlPlane
from buildwright_localcluster.kubelet import KubeletStandIn, Outcome
from tests.integration.harness import SUCCESSFUL_RESULTS, Cluster, book_build, buildrun
from tests.integration.operator_process import REPO, OperatorProcess
from tests.integration.test_deploy import assert_nothing_forbidden, service_account_kubeconfig

Doc = dict[str, Any]


def namespaced_rbac(account_namespace: str, served: str, suffix: str) -> list[Doc]:
    """deploy-namespaced/rbac.yaml for account `buildwright` in `account_namespace`, serving
    namespace `served` (instead of `builds`), cluster-scoped names made unique."""
    docs = [d for d in yaml.safe_load_all((REPO / "deploy-namespaced" / "rbac.yaml").read_text())
            if d]  # fmt: skip
    for doc in docs:
        if doc["kind"].startswith("Cluster"):
            doc["metadata"]["name"] += suffix
        else:
            doc["metadata"]["namespace"] = served
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] += suffix
        for subject in doc.get("subjects", []):
            subject["namespace"] = account_namespace
    return docs


@pytest.fixture
def namespaced_operator(
    kubeconfig: Path, core_v1: client.CoreV1Api, namespace: str, operator: OperatorProcess,
    strategies: None, tmp_path: Path,
) -> Iterator[tuple[OperatorProcess, str]]:  # fmt: skip
    home = f"bw-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=home)))
    core_v1.create_namespaced_service_account(
        home, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="buildwright"))
    )
    docs = namespaced_rbac(home, namespace, f"-{home}")
    # The operator's own Role (the Lease, the webhook certificate) in its namespace, as
    # deploy-namespaced/ takes it from deploy/.
    for doc in yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text()):
        if doc and doc["kind"] in ("Role", "RoleBinding"):
            doc["metadata"]["namespace"] = home
            for subject in doc.get("subjects", []):
                subject["namespace"] = home
            docs.append(doc)
    manifest = yaml.safe_dump_all(docs)
    apply = ["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", "-"]
    subprocess.run(apply, input=manifest, text=True, check=True, capture_output=True, timeout=60)
    token = service_account_kubeconfig(kubeconfig, core_v1, tmp_path / "ns.kubeconfig",
                                       namespace=home)  # fmt: skip
    operator.stop()
    process = OperatorProcess(
        token, tmp_path, {"BUILDWRIGHT_NAMESPACE": home}, extra_args=["--namespace", namespace]
    )
    try:
        process.start()
        yield process, home
    finally:
        process.stop()
        subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "delete", "-f", "-"],
                       input=manifest, text=True, capture_output=True, timeout=60)  # fmt: skip
        core_v1.delete_namespace(home)
        operator.start()


def test_the_namespaced_install_runs_a_build_under_its_own_token(
    namespaced_operator: tuple[OperatorProcess, str], kubelet: KubeletStandIn, namespace: str,
    custom_objects: client.CustomObjectsApi, core_v1: client.CoreV1Api,
    control_plane: ControlPlane,
) -> None:  # fmt: skip
    process, home = namespaced_operator
    cluster = Cluster(namespace, custom_objects, core_v1, kubelet, process)
    kubelet.script(namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    cluster.push_secret()
    cluster.create("builds", book_build())
    cluster.wait_build("kaniko-nodejs-build", "True")
    name = cluster.create("buildruns", buildrun(serviceAccount=".generate"))["metadata"]["name"]
    done = cluster.wait_buildrun(name, "True", "Succeeded")
    assert done["status"]["output"]["size"] == 4242
    assert [p["metadata"]["name"] for p in cluster.pods()] == [f"{name}-pod"]
    assert_nothing_forbidden(process)

    # Every namespaced read was in the namespace it serves, or its own Lease in its home
    # namespace (the rest: discovery, its CRDs and ClusterBuildStrategies).
    user = f"system:serviceaccount:{home}:buildwright"
    reads = [json.loads(line) for line in control_plane.audit_log_path.read_text().splitlines()]
    paths = {e["requestURI"].split("?")[0] for e in reads if e["user"]["username"] == user}
    assert any(f"/namespaces/{namespace}/" in p for p in paths)
    lease = f"/apis/coordination.k8s.io/v1/namespaces/{home}/leases/buildwright-leader"
    elsewhere = [p for p in paths if "/namespaces/" in p
                 and f"/namespaces/{namespace}/" not in p and p != lease]  # fmt: skip
    assert elsewhere == []
    cluster_scoped = {p.rsplit("/", 1)[-1] for p in paths if "/namespaces/" not in p}
    assert {"clusterbuildstrategies"} <= cluster_scoped

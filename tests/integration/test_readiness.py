"""A refused list or watch does not stop the operator (issue 15), against the real apiserver.

The operator runs under a token whose ClusterRole is the deploy one without Secrets and
without BuildStrategies. It must stay up, say once per watch which permission it lacks, go on
registering Builds that need neither, and pick both up once the permissions are granted —
before, a missing list/watch on Secrets made it exit after about a minute.
"""

from __future__ import annotations

import copy
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from buildwright_localcluster.kubelet import KubeletStandIn
from buildwright_localcluster.wait import wait_until
from tests.integration.harness import GROUP, VERSION, Cluster, book_build
from tests.integration.operator_process import REPO, OperatorProcess
from tests.integration.test_deploy import service_account_kubeconfig

WITHHELD = {"secrets", "buildstrategies"}


def deploy_cluster_role() -> dict[str, Any]:
    docs = yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text())
    role: dict[str, Any] = next(d for d in docs if d and d["kind"] == "ClusterRole")
    return role


def without(role: dict[str, Any], resources: set[str]) -> dict[str, Any]:
    limited = copy.deepcopy(role)
    limited["rules"] = [
        {**rule, "resources": [r for r in rule["resources"] if r not in resources]}
        for rule in limited["rules"]
    ]
    limited["rules"] = [rule for rule in limited["rules"] if rule["resources"]]
    return limited


@pytest.fixture
def limited_operator(
    api_client: client.ApiClient, core_v1: client.CoreV1Api, kubeconfig: Path,
    operator: OperatorProcess, tmp_path: Path,
) -> Iterator[tuple[OperatorProcess, str]]:  # fmt: skip
    """The operator under an account that may not list or watch Secrets and BuildStrategies
    (the session's operator stopped meanwhile, so that it cannot do the work)."""
    rbac = client.RbacAuthorizationV1Api(api_client)
    name = f"limited-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core_v1.create_namespaced_service_account(
        name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="operator"))
    )
    role = without(deploy_cluster_role(), WITHHELD)
    role["metadata"] = {"name": name}
    rbac.create_cluster_role(role)
    rbac.create_cluster_role_binding({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": name}],
    })  # fmt: skip
    operator.stop()
    token = service_account_kubeconfig(kubeconfig, core_v1, tmp_path / "limited.kubeconfig",
                                       account="operator", namespace=name)  # fmt: skip
    # The Lease is not what this test withholds: without leader election the account needs
    # no Role in a namespace of its own.
    process = OperatorProcess(token, tmp_path, extra_env={"BUILDWRIGHT_LEADER_ELECTION": "off"})
    try:
        process.start(wait_ready=False)
        yield process, name
    finally:
        process.stop()
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)
        core_v1.delete_namespace(name)
        operator.start()


def readyz(process: OperatorProcess) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(process.metrics_url + "/readyz", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def log_lines(process: OperatorProcess, start: str) -> list[str]:
    text = process.log_path.read_text(errors="replace")
    return [line for line in text.splitlines() if start in line]


def test_refused_watches_mark_not_ready_and_recover_when_granted(
    limited_operator: tuple[OperatorProcess, str], api_client: client.ApiClient,
    kubelet: KubeletStandIn, namespace: str, custom_objects: client.CustomObjectsApi,
    core_v1: client.CoreV1Api,
) -> None:  # fmt: skip
    process, role_name = limited_operator
    cluster = Cluster(namespace, custom_objects, core_v1, kubelet, process)

    # The rest of the operator works: a Build that needs no Secret registers.
    cluster.create("builds", book_build("plain", output={"image": "quay.io/x/y:latest"}))
    cluster.wait_build("plain", "True")
    for permission in ("list secrets in all namespaces",
                       "list buildstrategies.shipwright.io in all namespaces"):  # fmt: skip
        wait_until(lambda p=permission: log_lines(process, f"cannot {p}: "), timeout=60,
                   description=f"the operator reports it cannot {permission}")  # fmt: skip
    assert process.process is not None and process.process.poll() is None
    code, text = readyz(process)
    assert code == 503 and "list secrets in all namespaces" in text, (code, text)

    # Granted: both watches start, and what depends on them works.
    client.RbacAuthorizationV1Api(api_client).replace_cluster_role(
        role_name, {**deploy_cluster_role(), "metadata": {"name": role_name}}
    )
    for permission in ("list secrets in all namespaces",
                       "list buildstrategies.shipwright.io in all namespaces"):  # fmt: skip
        wait_until(lambda p=permission: log_lines(process, f"can {p} again"), timeout=90,
                   description=f"the operator reports it can {permission} again")  # fmt: skip
        assert len(log_lines(process, f"cannot {permission}: ")) == 1, "logged more than once"
    wait_until(lambda: readyz(process)[0] == 200, timeout=30, description="/readyz ready")
    cluster.push_secret()
    cluster.create("builds", book_build("with-secret"))
    cluster.wait_build("with-secret", "True")
    cluster.create("buildstrategies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildStrategy", "metadata": {"name": "own"},
        "spec": {"steps": [{"name": "build", "image": "busybox:1.36", "command": ["true"]}]},
    })  # fmt: skip
    build = book_build("with-strategy")
    build["spec"]["strategy"] = {"kind": "BuildStrategy", "name": "own"}
    cluster.create("builds", build)
    cluster.wait_build("with-strategy", "True")
    assert process.process is not None and process.process.poll() is None

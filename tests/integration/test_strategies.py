"""The shipped strategies and samples against a real apiserver with our CRDs.

Every strategy installs with strict server-side apply and reads back unchanged (nothing pruned
by the CRD schema), `kubectl get cbs` lists what Shipwright users expect, the build Pod the core
renders for every strategy passes the apiserver's own Pod validation (server-side dry-run), and
the sample Builds and BuildRuns pass our CRDs' validation.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.unit.test_strategy_rendering import (
    HOSTILE,
    STRATEGIES,
    file_id,
    load_document,
    parameters,
    pod_inputs,
    render,
    representative_pod,
    representative_values,
    strategy_files,
)

from .conftest import REPO

GROUP, VERSION = "shipwright.io", "v1beta1"
FIELD_MANAGER = "buildwright-strategy-tests"
SAMPLES = sorted((REPO / "samples" / "v1beta1").glob("*.yaml"))

FILES = strategy_files()
CLUSTER_FILES = [p for p in FILES if load_document(p)["kind"] == "ClusterBuildStrategy"]
NAMESPACED_FILES = [p for p in FILES if load_document(p)["kind"] == "BuildStrategy"]
EXPECTED_CBS = {
    "buildah",
    "buildkit",
    "buildpacks-v3",
    "buildpacks-v3-heroku",
    "kaniko",
    "kaniko-trivy",
    "ko",
    "source-to-image",
    "source-to-image-redhat",
    "jib",
}
# Every hostile string at once: one value that a shell, Tekton or the kubelet would each misread.
ALL_HOSTILE = "".join(HOSTILE.values())


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


def json_documents(text: str) -> list[dict[str, Any]]:
    """The objects kubectl printed one after another with `-o json`."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    index = 0
    while text[index:].strip():
        while text[index].isspace():
            index += 1
        document, index = decoder.raw_decode(text, index)
        found.extend(document["items"] if document.get("kind") == "List" else [document])
    return found


def strict_apply(kubeconfig: Path, path: Path, *extra: str) -> dict[str, Any]:
    out = kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "--validate=strict",
        f"--field-manager={FIELD_MANAGER}",
        "-f",
        str(path),
        "-o",
        "json",
        *extra,
    )
    applied: dict[str, Any] = json.loads(out)
    return applied


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=[file_id(p) for p in CLUSTER_FILES])
def test_cluster_strategy_installs_strictly_and_reads_back_unchanged(
    crds: list[str], kubeconfig: Path, custom_objects: client.CustomObjectsApi, path: Path
) -> None:
    document = load_document(path)
    applied = strict_apply(kubeconfig, path)
    assert applied["kind"] == "ClusterBuildStrategy"
    stored: dict[str, Any] = custom_objects.get_cluster_custom_object(  # type: ignore[assignment]
        GROUP, VERSION, "clusterbuildstrategies", document["metadata"]["name"]
    )
    assert stored["spec"] == document["spec"]


@pytest.mark.parametrize("path", NAMESPACED_FILES, ids=[file_id(p) for p in NAMESPACED_FILES])
def test_namespaced_strategy_installs_strictly_and_reads_back_unchanged(
    crds: list[str],
    kubeconfig: Path,
    custom_objects: client.CustomObjectsApi,
    namespace: str,
    path: Path,
) -> None:
    document = load_document(path)
    applied = strict_apply(kubeconfig, path, "-n", namespace)
    assert applied["kind"] == "BuildStrategy"
    assert applied["metadata"]["namespace"] == namespace
    stored: dict[str, Any] = custom_objects.get_namespaced_custom_object(  # type: ignore[assignment]
        GROUP, VERSION, namespace, "buildstrategies", document["metadata"]["name"]
    )
    assert stored["spec"] == document["spec"]


def test_kustomization_installs_and_kubectl_get_cbs_lists_them(
    crds: list[str], kubeconfig: Path
) -> None:
    kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "--validate=strict",
        f"--field-manager={FIELD_MANAGER}",
        "-k",
        str(STRATEGIES),
    )
    out = kubectl(kubeconfig, "get", "cbs")
    listed = {line.split()[0] for line in out.splitlines()[1:] if line.strip()}
    assert listed >= EXPECTED_CBS
    assert {load_document(p)["metadata"]["name"] for p in CLUSTER_FILES} <= listed


def _dry_run_create(core_v1: client.CoreV1Api, namespace: str, pod: dict[str, Any]) -> Any:
    # The client sends a plain manifest as it is; the V1Pod annotation is narrower than that.
    body: Any = pod
    return core_v1.create_namespaced_pod(namespace, body, dry_run="All", field_validation="Strict")


@pytest.mark.parametrize("mutations", [False, True], ids=["plain-output", "labels-annotations"])
@pytest.mark.parametrize("path", FILES, ids=[file_id(p) for p in FILES])
def test_rendered_pod_is_accepted_by_a_server_side_dry_run(
    crds: list[str], core_v1: client.CoreV1Api, namespace: str, path: Path, mutations: bool
) -> None:
    pod = representative_pod(
        path, mutations=mutations, namespace=namespace, service_account="default"
    )
    created = _dry_run_create(core_v1, namespace, pod)
    assert created.metadata.name == pod["metadata"]["name"]
    assert [c.name for c in created.spec.init_containers] == ["prepare"]
    assert [c.name for c in created.spec.containers] == [
        c["name"] for c in pod["spec"]["containers"]
    ]
    assert created.spec.containers[-1].name == "step-results"


@pytest.mark.parametrize("path", FILES, ids=[file_id(p) for p in FILES])
def test_pod_with_hostile_values_is_accepted_by_a_server_side_dry_run(
    crds: list[str], core_v1: client.CoreV1Api, namespace: str, path: Path
) -> None:
    document = load_document(path)
    # Values placed in `image` are left alone: the apiserver rightly rejects whitespace there.
    in_images = {
        name
        for step in document["spec"]["steps"]
        for name in (p["name"] for p in parameters(document))
        if f"$(params.{name})" in step["image"]
    }
    values: dict[str, str | list[str]] = {}
    for parameter in parameters(document):
        name = parameter["name"]
        if name in in_images:
            values[name] = representative_values(document)[name]
        elif parameter.get("type") == "array":
            values[name] = [ALL_HOSTILE, "--after"]
        else:
            values[name] = ALL_HOSTILE
    pod = render(pod_inputs(path, values, namespace=namespace, service_account="default"))
    created = _dry_run_create(core_v1, namespace, pod)
    sent = {c["name"]: c for c in pod["spec"]["containers"]}
    for stored in created.spec.containers:
        assert (stored.args or []) == sent[stored.name].get("args", [])
        assert (stored.command or []) == sent[stored.name].get("command", [])


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_validates_against_our_crds(
    crds: list[str], kubeconfig: Path, namespace: str, path: Path
) -> None:
    kinds = [d["kind"] for d in yaml.safe_load_all(path.read_text()) if d]
    out = kubectl(
        kubeconfig,
        "create",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        str(path),
        "-o",
        "json",
    )
    items = json_documents(out)
    assert [item["kind"] for item in items] == kinds
    assert all(item["apiVersion"] == f"{GROUP}/{VERSION}" for item in items)


def test_strict_apply_rejects_a_field_the_crd_does_not_know(
    crds: list[str], kubeconfig: Path, tmp_path: Path
) -> None:
    """The control for the install tests: strict validation is really in force."""
    document = load_document(STRATEGIES / "kaniko.yaml")
    document["metadata"]["name"] = "kaniko-with-a-typo"
    document["spec"]["steps"][0]["workDir"] = "/workspace"
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(document))
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "apply", "--server-side",
         "--validate=strict", f"--field-manager={FIELD_MANAGER}", "-f", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "workDir" in proc.stderr


def test_dry_run_rejects_an_invalid_pod(
    crds: list[str], core_v1: client.CoreV1Api, namespace: str
) -> None:
    """The control for the Pod tests: a dry-run create does validate the Pod."""
    pod = representative_pod(STRATEGIES / "kaniko.yaml", namespace=namespace)
    pod["spec"]["serviceAccountName"] = "default"
    pod["spec"]["containers"][1]["name"] = "step_with_underscore"
    with pytest.raises(ApiException) as raised:
        _dry_run_create(core_v1, namespace, pod)
    assert raised.value.status == 422

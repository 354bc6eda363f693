"""Fixtures for the integration tier: a real control plane per session, a namespace per test.

Everything under tests/integration is marked `integration`. If the control-plane binaries
cannot be built, the session errors out; nothing here skips silently.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from buildwright_localcluster.controlplane import ControlPlane
from buildwright_localcluster.kubelet import KubeletStandIn
from buildwright_localcluster.wait import wait_until
from tests.integration.harness import Cluster
from tests.integration.operator_process import OperatorProcess

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CRD_DIR = REPO / "crds"


def crd_files() -> list[Path]:
    return sorted(CRD_DIR.glob("*.shipwright.io.yaml"))  # not kustomization.yaml


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


# Every read (get, list, watch) is recorded with its path and user agent, so that tests can
# tell which objects the operator really asked for (tests/integration/test_tenancy.py).
AUDIT_READS = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
    verbs: [get, list, watch]
  - level: None
"""


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    cp = ControlPlane(audit_policy=AUDIT_READS)
    cp.start()
    previous = os.environ.get("KUBECONFIG")
    # Subprocesses the tests start (kubectl, the operator) find the cluster the usual way.
    os.environ["KUBECONFIG"] = str(cp.kubeconfig_path)
    try:
        yield cp
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
        cp.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig_path


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="session")
def core_v1(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def custom_objects(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def namespace(core_v1: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace, ready for Pods (its default ServiceAccount exists), deleted after."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core_v1.create_namespace(body=client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # The ServiceAccount admission plugin rejects Pods until the controller made "default".
    wait_until(
        lambda: core_v1.read_namespaced_service_account("default", name),
        timeout=30,
        description=f"ServiceAccount {name}/default",
    )
    try:
        yield name
    finally:
        # The namespace controller finishes this in the background; tests don't wait for it.
        try:
            core_v1.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane, api_client: client.ApiClient) -> list[str]:
    """Install every CRD in crds/ with server-side apply and wait until each is Established."""
    files = crd_files()
    if not files:
        pytest.fail(f"no CRD YAML in {CRD_DIR}: generate it first (make crds)", pytrace=False)
    proc = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(control_plane.kubeconfig_path),
            "apply",
            "--server-side",
            "--force-conflicts",
            *[arg for f in files for arg in ("-f", str(f))],
            "-o",
            "name",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        pytest.fail(f"kubectl apply of {CRD_DIR} failed:\n{proc.stderr}", pytrace=False)
    names = [line.split("/", 1)[1] for line in proc.stdout.split() if "/" in line]
    ext = client.ApiextensionsV1Api(api_client)

    def established(name: str) -> bool:
        crd = ext.read_custom_resource_definition(name)
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    for name in names:
        wait_until(lambda n=name: established(n), timeout=60, description=f"CRD {name} Established")
    return names


@pytest.fixture(scope="session")
def kubelet_standin(control_plane: ControlPlane) -> Iterator[KubeletStandIn]:
    with KubeletStandIn(control_plane.kubeconfig_path) as kubelet:
        yield kubelet


@pytest.fixture
def kubelet(kubelet_standin: KubeletStandIn, namespace: str) -> Iterator[KubeletStandIn]:
    """The session's kubelet stand-in; scripts set for this test's namespace are reset after."""
    try:
        yield kubelet_standin
    finally:
        kubelet_standin.reset(namespace)


# --- the operator under test ---------------------------------------------------------------


@pytest.fixture(scope="session")
def strategies(control_plane: ControlPlane, crds: list[str]) -> None:
    """Every ClusterBuildStrategy in strategies/, installed once per session."""
    subprocess.run(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig_path), "apply",
         "--server-side", "--force-conflicts", "-k", str(REPO / "strategies")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="session")
def operator(
    control_plane: ControlPlane,
    crds: list[str],
    strategies: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """`buildwright run` as a subprocess for the whole session (tests may kill and restart it)."""
    process = OperatorProcess(control_plane.kubeconfig_path, tmp_path_factory.mktemp("operator"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def cluster(
    operator: OperatorProcess, kubelet: KubeletStandIn, namespace: str,
    custom_objects: client.CustomObjectsApi, core_v1: client.CoreV1Api,
) -> Cluster:  # fmt: skip
    """The running operator and stand-in kubelet, seen from this test's namespace."""
    if operator.process is None:
        operator.start()  # a test that killed it and failed before restarting
    return Cluster(namespace, custom_objects, core_v1, kubelet, operator)

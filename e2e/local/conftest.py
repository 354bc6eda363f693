"""Fixtures for the local end-to-end suite: real builds without Docker or internet.

One session runs the control plane, the operator (`buildwright run` as a subprocess), the node
agent in-process (the kubelet stand-in with `ProcessExecutor`, so build Pods really run on this
machine), Debian's docker-registry on loopback (open, and a second one demanding htpasswd
auth), a git daemon and an HTTP Git server with basic auth, both serving repositories the
session makes. Each test gets its own namespace.

The suite needs root and the tools the build steps call; it fails (never skips) without them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.gitserver import (
    HTTP_PASSWORD,
    HTTP_USERNAME,
    GitDaemon,
    GitHttpServer,
    commit,
    git,
)
from tests.integration.conftest import (  # noqa: F401  the same fixtures as the integration tier
    api_client,
    control_plane,
    kubeconfig,
)
from tests.integration.operator_process import OperatorProcess
from tests.registry import REGISTRY_PASSWORD, REGISTRY_USERNAME, LocalRegistry

from buildwright_localcluster.binaries import ensure_entrypoint
from buildwright_localcluster.controlplane import ControlPlane
from buildwright_localcluster.kubelet import KubeletStandIn
from buildwright_localcluster.process_executor import ProcessExecutor
from buildwright_localcluster.wait import wait_until

REPO = Path(__file__).resolve().parents[2]

TOOLS = ("git", "buildah", "skopeo", "docker-registry", "htpasswd", "kubectl")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e_local)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e_local: real builds through the local node agent")


@pytest.fixture(scope="session", autouse=True)
def host_requirements() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"missing tools {missing}: apt-get install -y buildah skopeo docker-registry git "
            "apache2-utils (see .ci/run)",
            pytrace=False,
        )
    if os.geteuid() != 0:
        pytest.fail("the node agent needs root (mount namespaces, bind mounts)", pytrace=False)


# --- repositories ----------------------------------------------------------------------------


@dataclass
class AppRepo:
    """`app`: Dockerfile `FROM scratch` + `COPY hello.txt /`, two commits with different
    hello.txt; `broken`: a Dockerfile that cannot build."""

    base: Path
    first: str
    head: str
    broken_head: str


@pytest.fixture(scope="session")
def repos(tmp_path_factory: pytest.TempPathFactory) -> AppRepo:
    base = tmp_path_factory.mktemp("git")
    app = base / "app"
    app.mkdir()
    git("init", "--quiet", "--initial-branch", "main", cwd=app)
    dockerfile = "FROM scratch\nCOPY hello.txt /hello.txt\n"
    first = commit(app, "first", {"Dockerfile": dockerfile, "hello.txt": "hello one\n"},
                   "Alice Author", 1_700_000_000)  # fmt: skip
    head = commit(app, "second", {"hello.txt": "hello two\n"}, "Bob Builder", 1_700_000_100)
    broken = base / "broken"
    broken.mkdir()
    git("init", "--quiet", "--initial-branch", "main", cwd=broken)
    broken_head = commit(
        broken, "broken", {"Dockerfile": "FROM scratch\nCOPY no-such-file.txt /\n"},
        "Carol Coder", 1_700_000_200,
    )  # fmt: skip
    return AppRepo(base=base, first=first, head=head, broken_head=broken_head)


@pytest.fixture(scope="session")
def git_daemon(repos: AppRepo) -> Iterator[GitDaemon]:
    with GitDaemon(repos.base) as daemon:
        yield daemon


@pytest.fixture(scope="session")
def git_http_auth(repos: AppRepo) -> Iterator[GitHttpServer]:
    with GitHttpServer(repos.base, HTTP_USERNAME, HTTP_PASSWORD) as server:
        yield server


# --- registries ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="session")
def registry_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    root = tmp_path_factory.mktemp("registry-auth")
    with LocalRegistry(root, REGISTRY_USERNAME, REGISTRY_PASSWORD) as server:
        yield server


# --- cluster, operator, node agent -----------------------------------------------------------


def _kubectl_apply(kubeconfig: Path, *args: str) -> str:
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "apply", "--server-side",
         "--force-conflicts", *args, "-o", "name"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"kubectl apply {args} failed:\n{proc.stderr}", pytrace=False)
    return proc.stdout


@pytest.fixture(scope="session")
def installed(control_plane: ControlPlane, api_client: client.ApiClient) -> None:
    """The CRDs (Established) and the buildah ClusterBuildStrategy."""
    files = sorted((REPO / "crds").glob("*.shipwright.io.yaml"))
    out = _kubectl_apply(control_plane.kubeconfig_path, *[a for f in files for a in ("-f", str(f))])
    ext = client.ApiextensionsV1Api(api_client)

    def established(name: str) -> bool:
        crd = ext.read_custom_resource_definition(name)
        conditions = crd.status.conditions if crd.status else None
        return any(c.type == "Established" and c.status == "True" for c in conditions or [])

    for name in [line.split("/", 1)[1] for line in out.split() if "/" in line]:
        wait_until(partial(established, name), timeout=60, description=f"CRD {name}")
    _kubectl_apply(control_plane.kubeconfig_path, "-f", str(REPO / "strategies" / "buildah.yaml"))


@pytest.fixture(scope="session")
def operator(
    control_plane: ControlPlane, installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(control_plane.kubeconfig_path, tmp_path_factory.mktemp("operator"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def executor(
    api_client: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessExecutor]:
    ex = ProcessExecutor(
        api_client,
        state_dir=tmp_path_factory.mktemp("agent"),
        entrypoint_binary=ensure_entrypoint(),
        sweep_interval=2,
    )
    ex.start_sweeper()
    try:
        yield ex
    finally:
        ex.close()


@pytest.fixture(scope="session")
def node_agent(control_plane: ControlPlane, executor: ProcessExecutor) -> Iterator[KubeletStandIn]:
    with KubeletStandIn(
        control_plane.kubeconfig_path,
        executor=executor,
        tls=control_plane.kubelet_tls,
        events=True,
    ) as kubelet:
        yield kubelet


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    core.create_namespace(body=client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_until(lambda: core.read_namespaced_service_account("default", name), timeout=30,
               description=f"ServiceAccount {name}/default")  # fmt: skip
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise

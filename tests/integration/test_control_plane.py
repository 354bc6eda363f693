"""The local control plane: serves, enforces RBAC, runs the garbage collector, cleans up."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlparse

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from buildwright_localcluster.controlplane import ControlPlane
from buildwright_localcluster.wait import wait_until

PYTHON = sys.executable


def _port_open(url: str) -> bool:
    parsed = urlparse(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parsed.hostname or "127.0.0.1", parsed.port or 443)) == 0


def _pid_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_kubectl_get_namespaces(control_plane: ControlPlane) -> None:
    for argv in (
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig_path), "get", "ns", "-o", "name"],
        # The session fixture exports KUBECONFIG for subprocesses.
        ["kubectl", "get", "ns", "-o", "name"],
    ):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert proc.returncode == 0, proc.stderr
        assert "namespace/default" in proc.stdout.split()
        assert "namespace/kube-system" in proc.stdout.split()
    assert os.environ["KUBECONFIG"] == str(control_plane.kubeconfig_path)
    assert control_plane.server_url.startswith("https://127.0.0.1:")


def test_rbac_denies_unprivileged_service_account(
    control_plane: ControlPlane,
    core_v1: client.CoreV1Api,
    api_client: client.ApiClient,
    namespace: str,
) -> None:
    core_v1.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = core_v1.create_namespaced_service_account_token(
        "nobody",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    ).status.token
    cfg = client.Configuration(host=control_plane.server_url)
    cfg.ssl_ca_cert = str(control_plane.ca_cert_path)
    cfg.api_key = {"BearerToken": token}
    cfg.api_key_prefix = {"BearerToken": "Bearer"}
    with client.ApiClient(cfg) as sa_client:
        sa_core = client.CoreV1Api(sa_client)
        with pytest.raises(ApiException) as denied:
            sa_core.list_namespaced_secret(namespace)
        # 403, not 401: the token authenticates, RBAC refuses.
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:nobody" in str(denied.value.body)

        rbac = client.RbacAuthorizationV1Api(api_client)
        rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="read-secrets"),
                rules=[client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["list"])],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="read-secrets"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="read-secrets"
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name="nobody", namespace=namespace)
                ],
            ),
        )
        # Granting the permission flips the answer, so the 403 above was RBAC's doing.
        wait_until(
            lambda: sa_core.list_namespaced_secret(namespace) is not None,
            timeout=15,
            description="the RoleBinding to take effect",
        )
        with pytest.raises(ApiException) as still_denied:
            sa_core.list_namespaced_config_map(namespace)
        assert still_denied.value.status == 403


def test_garbage_collector_deletes_dependents(core_v1: client.CoreV1Api, namespace: str) -> None:
    owner = core_v1.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    core_v1.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name="dependent",
                owner_references=[
                    client.V1OwnerReference(
                        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
                    )
                ],
            )
        ),
    )
    core_v1.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="bystander"))
    )
    core_v1.delete_namespaced_config_map("owner", namespace)

    def dependent_gone() -> bool:
        try:
            core_v1.read_namespaced_config_map("dependent", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_until(dependent_gone, timeout=60, description="garbage collection of the dependent")
    assert core_v1.read_namespaced_config_map("bystander", namespace).metadata.name == "bystander"


def test_namespace_controller_finalizes_deleted_namespace(core_v1: client.CoreV1Api) -> None:
    name = "t-nsdelete-" + os.urandom(3).hex()
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core_v1.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="content"))
    )
    core_v1.delete_namespace(name)

    def gone() -> bool:
        try:
            core_v1.read_namespace(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, timeout=60, description=f"namespace {name} to be finalized")


def test_stop_leaves_no_process_port_or_directory() -> None:
    cp = ControlPlane()
    cp.start()
    pids, url, workdir = cp.pids, cp.server_url, cp.workdir
    assert len(pids) == 3 and all(_pid_running(p) for p in pids)
    assert _port_open(url)
    cp.stop()
    assert not any(_pid_running(p) for p in pids)
    assert not _port_open(url)
    assert not workdir.exists()


HOLDER = textwrap.dedent(
    """
    import json, sys, threading
    from buildwright_localcluster.controlplane import ControlPlane
    with ControlPlane() as cp:
        print(json.dumps({"pids": cp.pids, "url": cp.server_url, "dir": str(cp.workdir)}),
              flush=True)
        threading.Event().wait()
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_interrupted_holder_takes_its_children_along(sig: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    proc = subprocess.Popen(
        [PYTHON, "-c", HOLDER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # A killed multi-threaded child can look dead (zombie leader) while its other threads
    # still hold its sockets for a moment, so wait for the port as well.
    wait_until(
        lambda: not any(_pid_running(p) for p in info["pids"]) and not _port_open(info["url"]),
        timeout=20,
        description="the control-plane children to exit and release their ports",
    )
    if sig != signal.SIGKILL:
        # A clean interruption removes its directory; after SIGKILL the next start sweeps it.
        assert not Path(info["dir"]).exists()


def test_cli_up_is_idempotent_and_down_cleans_up(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    cli = [PYTHON, "-m", "buildwright_localcluster"]
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args, "--kubeconfig", str(kubeconfig)],
            capture_output=True,
            text=True,
            timeout=180,
            env=env,
            check=False,
        )

    up = run("up")
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads((tmp_path / "cluster" / "state.json").read_text())
        again = run("up")
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        assert json.loads((tmp_path / "cluster" / "state.json").read_text())["pid"] == state["pid"]
        ns = subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), "get", "ns"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
        assert ns.returncode == 0 and "kube-system" in ns.stdout, ns.stderr
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
    pids = [state["pid"], *state["component_pids"]]
    assert not any(_pid_running(p) for p in pids)
    assert not _port_open(state["server"])
    assert not Path(state["workdir"]).exists()
    assert run("status").returncode == 1

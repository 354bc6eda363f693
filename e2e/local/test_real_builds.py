"""Real builds on this machine: BuildRuns clone from a local Git server, buildah builds and
pushes to a local registry, and the BuildRun status matches what the registry holds."""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from tests.gitserver import HTTP_PASSWORD, HTTP_USERNAME, GitDaemon, GitHttpServer
from tests.integration.operator_process import OperatorProcess
from tests.registry import REGISTRY_PASSWORD, REGISTRY_USERNAME, LocalRegistry

from buildwright_localcluster.kubelet import KubeletStandIn
from buildwright_localcluster.process_executor import ProcessExecutor
from buildwright_localcluster.wait import wait_until
from e2e.local.conftest import AppRepo

GROUP, VERSION = "shipwright.io", "v1beta1"
BUILD_TIMEOUT = 180.0
Body = dict[str, Any]


class Env:
    """The running pieces seen from one test's namespace."""

    def __init__(self, namespace: str, api: client.ApiClient, operator: OperatorProcess,
                 executor: ProcessExecutor) -> None:  # fmt: skip
        self.namespace = namespace
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.operator = operator
        self.executor = executor

    def create(self, plural: str, body: Body) -> Body:
        return cast(Body, self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, body
        ))  # fmt: skip

    def get(self, plural: str, name: str) -> Body:
        return cast(Body, self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name
        ))  # fmt: skip

    def secret(self, name: str, kind: str, data: dict[str, str]) -> None:
        self.core.create_namespaced_secret(self.namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name), type=kind, string_data=data,
        ))  # fmt: skip

    def build(self, name: str, git: Body, image: str, *, strategy: str = "buildah",
              strategy_kind: str = "ClusterBuildStrategy", **output: Any) -> None:
        self.create("builds", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Build", "metadata": {"name": name},
            "spec": {
                "source": {"type": "Git", "git": git},
                "strategy": {"name": strategy, "kind": strategy_kind},
                "output": {"image": image, "insecure": True, **output},
            },
        })  # fmt: skip

    def start(self, build: str) -> str:
        """Create a BuildRun of `build`; its name."""
        body = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildRun",
            "metadata": {"generateName": f"{build}-"}, "spec": {"build": {"name": build}},
        }  # fmt: skip
        return str(self.create("buildruns", body)["metadata"]["name"])

    def run(self, build: str) -> Body:
        """Create a BuildRun of `build` and wait until it finished (either way)."""
        return self.finished(self.start(build))

    def finished(self, name: str) -> Body:
        """Wait until BuildRun `name` finished (either way)."""

        def finished() -> Body | None:
            run = self.get("buildruns", name)
            condition = condition_of(run)
            return run if condition and condition["status"] in ("True", "False") else None

        try:
            return wait_until(finished, timeout=BUILD_TIMEOUT, interval=0.2,
                              description=f"BuildRun {name} to finish")  # fmt: skip
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.diagnostics(name)}") from None

    def logs(self, buildrun: Body, container: str) -> str:
        return self.executor.logs(self.namespace, f"{buildrun['metadata']['name']}-pod", container)

    def diagnostics(self, buildrun_name: str) -> str:
        parts = [f"operator log tail:\n{self.operator.log_tail(30)}"]
        pod = f"{buildrun_name}-pod"
        for c in ("step-source-default", "step-build-and-push", "step-results"):
            with contextlib.suppress(KeyError, OSError):
                parts.append(f"--- {c}:\n{self.executor.logs(self.namespace, pod, c)[-2000:]}")
        return "\n".join(parts)


def condition_of(run: Body) -> Body | None:
    for condition in (run.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Succeeded":
            return dict(condition)
    return None


def succeeded(run: Body) -> Body:
    """The Succeeded condition of a finished BuildRun."""
    condition = condition_of(run)
    assert condition is not None, run.get("status")
    return condition


def skopeo_digest(image: str, creds: str | None = None) -> str:
    args = ["skopeo", "inspect", "--tls-verify=false", f"docker://{image}"]
    if creds:
        args[2:2] = ["--creds", creds]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    digest: str = json.loads(out)["Digest"]
    return digest


def image_file(image: str, path: str, workdir: Path) -> bytes:
    """The content of `path` in the (single-layer) image, fetched with skopeo."""
    target = workdir / "image"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{image}",
                    f"dir:{target}"], capture_output=True, check=True, timeout=60)  # fmt: skip
    manifest = json.loads((target / "manifest.json").read_text())
    for layer in manifest["layers"]:
        blob = (target / layer["digest"].split(":", 1)[1]).read_bytes()
        if blob[:2] == b"\x1f\x8b":
            blob = gzip.decompress(blob)
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            for member in tar.getmembers():
                if member.name.lstrip("./") == path.lstrip("/"):
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    return extracted.read()
    raise AssertionError(f"{path} not in {image}")


@pytest.fixture
def env(
    namespace: str, api_client: client.ApiClient, operator: OperatorProcess,
    executor: ProcessExecutor, node_agent: KubeletStandIn,
) -> Env:  # fmt: skip
    return Env(namespace, api_client, operator, executor)


# --- scenarios -------------------------------------------------------------------------------


def test_buildrun_builds_and_pushes_head(
    env: Env, repos: AppRepo, git_daemon: GitDaemon, registry: LocalRegistry, tmp_path: Path
) -> None:
    image = f"{registry.host}/{env.namespace}/app:latest"
    env.build("app", {"url": git_daemon.url("app")}, image)
    run = env.run("app")
    assert succeeded(run)["status"] == "True", env.diagnostics(run["metadata"]["name"])
    status = run["status"]
    assert status["output"]["digest"] == skopeo_digest(image)
    assert status["source"]["git"]["commitSha"] == repos.head
    assert status["source"]["git"]["branchName"] == "main"
    assert image_file(image, "hello.txt", tmp_path) == b"hello two\n"
    assert "[buildah] pushing" in env.logs(run, "step-build-and-push")


def test_revision_builds_that_commit(
    env: Env, repos: AppRepo, git_daemon: GitDaemon, registry: LocalRegistry, tmp_path: Path
) -> None:
    image = f"{registry.host}/{env.namespace}/app:first"
    env.build("app-first", {"url": git_daemon.url("app"), "revision": repos.first}, image)
    run = env.run("app-first")
    assert succeeded(run)["status"] == "True", env.diagnostics(run["metadata"]["name"])
    assert run["status"]["source"]["git"]["commitSha"] == repos.first
    assert run["status"]["output"]["digest"] == skopeo_digest(image)
    assert image_file(image, "hello.txt", tmp_path) == b"hello one\n"


def test_broken_dockerfile_fails_in_the_build_step(
    env: Env, git_daemon: GitDaemon, registry: LocalRegistry
) -> None:
    env.build("broken", {"url": git_daemon.url("broken")}, f"{registry.host}/x/broken:latest")
    run = env.run("broken")
    condition = succeeded(run)
    assert (condition["status"], condition["reason"]) == ("False", "Failed")
    details = run["status"]["failureDetails"]
    pod = f"{run['metadata']['name']}-pod"
    assert details["location"] == {"pod": pod, "container": "step-build-and-push"}
    log = env.logs(run, "step-build-and-push")
    assert "no-such-file.txt" in log and "[buildah] pushing" not in log
    # The operator read the step's log tail through the apiserver from the node's kubelet API.
    last = log.strip().splitlines()[-1].strip()
    assert "no-such-file.txt" in details["message"] and details["message"].endswith(last), details
    # The entrypoint skipped the steps after the failed one: they never ran their commands.
    # (The BuildRun fails as soon as the step does; the Pod ends a moment later.)
    pod_status = wait_until(
        lambda: (found := env.core.read_namespaced_pod(pod, env.namespace).status).phase
        in ("Failed", "Succeeded") and found,
        timeout=30, description="the failed build Pod to end",
    )  # fmt: skip
    assert pod_status.phase == "Failed"
    ended = {c.name: c.state.terminated for c in pod_status.container_statuses}
    assert ended["step-build-and-push"].exit_code != 0
    skipped = json.loads(ended["step-results"].message)
    assert {"key": "Reason", "value": "Skipped", "type": 3} in skipped
    assert (
        env.logs(run, "step-results")
        .strip()
        .endswith("Skipping step because a previous step failed")
    )


def test_wrong_git_url_reports_the_git_reason(
    env: Env, git_daemon: GitDaemon, registry: LocalRegistry
) -> None:
    env.build("nowhere", {"url": git_daemon.url("no-such-repo")}, f"{registry.host}/x/n:latest")
    run = env.run("nowhere")
    condition = succeeded(run)
    assert condition["status"] == "False"
    details = run["status"]["failureDetails"]
    assert details.get("reason") == "GitRemoteRepositoryNotFound", details
    assert details["location"]["container"] == "step-source-default"
    assert "no-such-repo" in details["message"]


def test_private_repository_with_basic_auth_clone_secret(
    env: Env, repos: AppRepo, git_http_auth: GitHttpServer, registry: LocalRegistry
) -> None:
    env.secret("git-creds", "kubernetes.io/basic-auth",
               {"username": HTTP_USERNAME, "password": HTTP_PASSWORD})  # fmt: skip
    image = f"{registry.host}/{env.namespace}/private:latest"
    env.build("private", {"url": git_http_auth.url("app"), "cloneSecret": "git-creds"}, image)
    run = env.run("private")
    assert succeeded(run)["status"] == "True", env.diagnostics(run["metadata"]["name"])
    assert run["status"]["source"]["git"]["commitSha"] == repos.head
    assert run["status"]["output"]["digest"] == skopeo_digest(image)
    assert HTTP_PASSWORD not in env.logs(run, "step-source-default")


def test_private_repository_with_wrong_password(
    env: Env, git_http_auth: GitHttpServer, registry: LocalRegistry
) -> None:
    env.secret("git-creds", "kubernetes.io/basic-auth",
               {"username": HTTP_USERNAME, "password": "not-the-password"})  # fmt: skip
    env.build("private", {"url": git_http_auth.url("app"), "cloneSecret": "git-creds"},
              f"{registry.host}/x/p:latest")  # fmt: skip
    run = env.run("private")
    condition = succeeded(run)
    assert condition["status"] == "False"
    details = run["status"]["failureDetails"]
    assert details.get("reason") == "GitAuthInvalidUserOrPass", details
    assert "not-the-password" not in json.dumps(run["status"])


def test_push_to_registry_with_auth_uses_the_push_secret(
    env: Env, repos: AppRepo, git_daemon: GitDaemon, registry_auth: LocalRegistry
) -> None:
    auth = base64.b64encode(f"{REGISTRY_USERNAME}:{REGISTRY_PASSWORD}".encode()).decode()
    config = {"auths": {registry_auth.host: {"auth": auth}}}
    env.secret("push-creds", "kubernetes.io/dockerconfigjson",
               {".dockerconfigjson": json.dumps(config)})  # fmt: skip
    image = f"{registry_auth.host}/{env.namespace}/app:latest"
    env.build("pushed", {"url": git_daemon.url("app")}, image, pushSecret="push-creds")
    run = env.run("pushed")
    assert succeeded(run)["status"] == "True", env.diagnostics(run["metadata"]["name"])
    creds = f"{REGISTRY_USERNAME}:{REGISTRY_PASSWORD}"
    assert run["status"]["output"]["digest"] == skopeo_digest(image, creds)
    assert REGISTRY_PASSWORD not in env.logs(run, "step-build-and-push")


def test_push_without_secret_is_refused_by_the_registry(
    env: Env, git_daemon: GitDaemon, registry_auth: LocalRegistry
) -> None:
    env.build("unauthorised", {"url": git_daemon.url("app")},
              f"{registry_auth.host}/{env.namespace}/app:latest")  # fmt: skip
    run = env.run("unauthorised")
    condition = succeeded(run)
    assert condition["status"] == "False"
    assert run["status"]["failureDetails"]["location"]["container"] == "step-build-and-push"
    assert "unauthorized" in env.logs(run, "step-build-and-push").lower()


def test_failing_strategy_step_reports_its_reason_and_message_and_later_steps_skip(
    env: Env, git_daemon: GitDaemon, registry: LocalRegistry
) -> None:
    """Through Tekton's entrypoint for real: the failed step's error results reach
    failureDetails, and the step after it never runs its command."""
    env.create("buildstrategies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildStrategy",
        "metadata": {"name": "checks-first"},
        "spec": {"steps": [
            {"name": "check", "image": "busybox", "command": [
                "/bin/sh", "-c",
                'echo checking "$1"; printf DockerfileNotFound > "$2";'
                ' printf "no Dockerfile in %s" "$1" > "$3"; exit 3',
                "--", "$(params.shp-source-context)",
                "$(results.shp-error-reason.path)", "$(results.shp-error-message.path)",
            ]},
            {"name": "never", "image": "busybox",
             "command": ["/bin/sh", "-c", "echo ran > /workspace/source/never-ran"]},
        ]},
    })  # fmt: skip
    env.build("checked", {"url": git_daemon.url("app")}, f"{registry.host}/x/checked:latest",
              strategy="checks-first", strategy_kind="BuildStrategy")
    run = env.run("checked")
    condition = succeeded(run)
    assert (condition["status"], condition["reason"]) == ("False", "Failed")
    pod = f"{run['metadata']['name']}-pod"
    assert run["status"]["failureDetails"] == {
        "reason": "DockerfileNotFound",
        "message": "no Dockerfile in /workspace/source",
        "location": {"pod": pod, "container": "step-check"},
    }
    pod_status = wait_until(
        lambda: (found := env.core.read_namespaced_pod(pod, env.namespace).status).phase
        in ("Failed", "Succeeded") and found,
        timeout=30, description="the failed build Pod to end",
    )  # fmt: skip
    ended = {c.name: c.state.terminated for c in pod_status.container_statuses}
    assert ended["step-check"].exit_code == 3
    assert {"key": "Reason", "value": "Skipped", "type": 3} in json.loads(
        ended["step-never"].message
    )
    assert "checking /workspace/source" in env.logs(run, "step-check")
    assert "Skipping step because a previous step failed" in env.logs(run, "step-never")

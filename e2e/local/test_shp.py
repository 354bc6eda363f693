"""The upstream Shipwright CLI (`shp` v0.19.0, built from its Go module by hack/build-shp.sh)
against the local cluster: it follows a build through `pods/log`, reads a finished one, and
uploads a local directory through `pods/exec` into the step-source-local container."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from tests.gitserver import GitDaemon
from tests.integration.operator_process import OperatorProcess
from tests.registry import LocalRegistry

from buildwright_localcluster.binaries import ensure_shp
from buildwright_localcluster.controlplane import ControlPlane
from buildwright_localcluster.kubelet import KubeletStandIn
from buildwright_localcluster.process_executor import ProcessExecutor
from buildwright_localcluster.wait import wait_until
from e2e.local.test_real_builds import GROUP, VERSION, Env, condition_of, image_file, skopeo_digest

SHP_TIMEOUT = 240


@pytest.fixture(scope="session")
def shp() -> Path:
    try:
        return ensure_shp()
    except RuntimeError as exc:
        pytest.skip(
            f"the upstream shp CLI could not be built ({exc}); hack/build-shp.sh needs the Go "
            "toolchain and the Go module proxy"
        )


@pytest.fixture
def env(
    namespace: str, api_client: client.ApiClient, operator: OperatorProcess,
    executor: ProcessExecutor, node_agent: KubeletStandIn,
) -> Iterator[Env]:  # fmt: skip
    yield Env(namespace, api_client, operator, executor)


def run_shp(shp: Path, cp: ControlPlane, env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(shp), *args, "-n", env.namespace],
        capture_output=True, text=True, timeout=SHP_TIMEOUT, check=False,
        env={**os.environ, "KUBECONFIG": str(cp.kubeconfig_path), "NO_COLOR": "1"},
    )  # fmt: skip


def only_buildrun(env: Env) -> dict[str, object]:
    """The namespace's one BuildRun, once it finished (shp may return as the Pod ends, a
    moment before the operator writes the BuildRun's end)."""

    def finished() -> dict[str, object] | None:
        runs = env.custom.list_namespaced_custom_object(GROUP, VERSION, env.namespace, "buildruns")
        (run,) = runs["items"]
        condition = condition_of(run)
        return dict(run) if condition and condition["status"] in ("True", "False") else None

    return wait_until(finished, timeout=60, description="the BuildRun to finish")


def test_shp_build_run_follow_and_buildrun_logs(
    shp: Path, env: Env, control_plane: ControlPlane, git_daemon: GitDaemon,
    registry: LocalRegistry,
) -> None:  # fmt: skip
    image = f"{registry.host}/{env.namespace}/app:latest"
    env.build("app", {"url": git_daemon.url("app")}, image)
    started = time.monotonic()
    out = run_shp(shp, control_plane, env, "build", "run", "app", "--follow")
    print(f"shp build run --follow: {time.monotonic() - started:.1f}s")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[buildah] pushing" in out.stdout, out.stdout
    run = only_buildrun(env)
    condition = condition_of(run)  # type: ignore[arg-type]
    assert condition is not None and condition["status"] == "True"
    assert run["status"]["output"]["digest"] == skopeo_digest(image)  # type: ignore[index]
    name = str(run["metadata"]["name"])  # type: ignore[index]
    logs = run_shp(shp, control_plane, env, "buildrun", "logs", name)
    assert logs.returncode == 0, logs.stderr
    assert "[buildah] pushing" in logs.stdout and "step-build-and-push" in logs.stdout, logs.stdout


def test_shp_build_run_follow_of_a_failing_build(
    shp: Path, env: Env, control_plane: ControlPlane, git_daemon: GitDaemon,
    registry: LocalRegistry,
) -> None:  # fmt: skip
    env.build("broken", {"url": git_daemon.url("broken")}, f"{registry.host}/x/broken:latest")
    out = run_shp(shp, control_plane, env, "build", "run", "broken", "--follow")
    assert out.returncode != 0, out.stdout
    text = out.stdout + out.stderr
    assert "no-such-file.txt" in text, text  # buildah's error, streamed from the step
    assert "has failed" in text, text


def test_shp_build_upload_streams_a_local_directory(
    shp: Path, env: Env, control_plane: ControlPlane, registry: LocalRegistry, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    (source / "hello.txt").write_text("uploaded from here\n")
    image = f"{registry.host}/{env.namespace}/uploaded:latest"
    env.create("builds", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Build", "metadata": {"name": "local"},
        "spec": {
            "source": {"type": "Local", "local": {"name": "local", "timeout": "2m"}},
            "strategy": {"name": "buildah", "kind": "ClusterBuildStrategy"},
            "output": {"image": image, "insecure": True},
        },
    })  # fmt: skip
    started = time.monotonic()
    out = run_shp(shp, control_plane, env, "build", "upload", "local", str(source), "--follow")
    print(f"shp build upload --follow: {time.monotonic() - started:.1f}s")
    assert out.returncode == 0, out.stdout + out.stderr
    run = only_buildrun(env)
    condition = condition_of(run)  # type: ignore[arg-type]
    assert condition is not None and condition["status"] == "True", run.get("status")
    assert run["status"]["output"]["digest"] == skopeo_digest(image)  # type: ignore[index]
    # The image holds the uploaded file: tar really unpacked it into the Pod's source volume.
    assert image_file(image, "hello.txt", tmp_path) == b"uploaded from here\n"
    assert not Path("/workspace/source/hello.txt").exists()  # unpacked in the Pod, not the host

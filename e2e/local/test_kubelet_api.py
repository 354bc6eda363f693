"""The node agent's kubelet API, through the real apiserver, with the real kubectl: a step's
log streams live with `kubectl logs -f`, and --tail, --timestamps, --since-time,
--limit-bytes and --previous answer as a kubelet answers them."""

from __future__ import annotations

import datetime as dt
import os
import queue
import re
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from kubernetes import client
from tests.gitserver import GitDaemon
from tests.integration.operator_process import OperatorProcess
from tests.registry import LocalRegistry

from buildwright_localcluster.controlplane import ControlPlane
from buildwright_localcluster.kubelet import KubeletStandIn
from buildwright_localcluster.process_executor import ProcessExecutor
from buildwright_localcluster.wait import wait_until
from e2e.local.test_real_builds import GROUP, VERSION, Env, succeeded


@pytest.fixture
def env(
    namespace: str, api_client: client.ApiClient, operator: OperatorProcess,
    executor: ProcessExecutor, node_agent: KubeletStandIn,
) -> Env:  # fmt: skip
    return Env(namespace, api_client, operator, executor)


TICK_UNTIL_GO = "while [ ! -e /workspace/source/.go ]; do echo tick; sleep 0.1; done"
STAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z"


def kubectl(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig_path), *args],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def _lines(proc: subprocess.Popen[str], into: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        into.put(line)
    into.put(None)


def test_kubectl_logs_follows_a_running_step_and_reads_a_finished_one(
    env: Env, control_plane: ControlPlane, git_daemon: GitDaemon, registry: LocalRegistry
) -> None:
    # The step prints, then waits for a file the test drops into the Pod's source volume.
    env.create("buildstrategies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildStrategy",
        "metadata": {"name": "talker"},
        "spec": {"steps": [{"name": "talk", "image": "busybox", "command": [
            "/bin/sh", "-c",
            "echo first; while [ ! -e /workspace/source/.go ]; do sleep 0.05; done; echo second",
        ]}]},
    })  # fmt: skip
    env.build("talk", {"url": git_daemon.url("app")}, f"{registry.host}/x/talk:latest",
              strategy="talker", strategy_kind="BuildStrategy")
    name = env.start("talk")
    pod = f"{name}-pod"

    def running() -> client.V1Pod | None:
        found = env.core.read_namespaced_pod(pod, env.namespace)
        states = {c.name: c.state for c in found.status.container_statuses or []}
        talk = states.get("step-talk")
        return found if talk is not None and talk.running is not None else None

    uid = wait_until(running, timeout=60, description="step-talk to run").metadata.uid
    follower = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig_path), "-n", env.namespace,
         "logs", "-f", pod, "-c", "step-talk"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_lines, args=(follower, lines), daemon=True).start()
    try:
        assert lines.get(timeout=60) == "first\n"
        # The step is still running (it waits for .go), and kubectl is still following.
        assert follower.poll() is None
        released = time.monotonic()
        release = env.executor.pod_dir(uid) / "volumes" / "shp-source" / ".go"
        release.touch()
        assert lines.get(timeout=30) == "second\n"
        latency = time.monotonic() - released
        # It ends when the container ends.
        assert lines.get(timeout=30) is None
        assert follower.wait(timeout=30) == 0, follower.stderr.read() if follower.stderr else ""
    finally:
        follower.kill()
        follower.wait()
    print(f"kubectl logs -f: a line reached kubectl {latency:.3f}s after the step was released")

    def finished() -> dict[str, object] | None:
        current = env.get("buildruns", name)
        return current if succeeded_or_none(current) else None

    run = wait_until(finished, timeout=60, description="the BuildRun to finish")
    assert succeeded(run)["status"] == "True", run.get("status")

    def logs(*args: str) -> subprocess.CompletedProcess[str]:
        return kubectl(control_plane, "-n", env.namespace, "logs", pod, "-c", "step-talk", *args)

    assert logs().stdout == "first\nsecond\n"
    # kubectl describe tells the Pod's story from its Events.
    described = kubectl(control_plane, "-n", env.namespace, "describe", "pod", pod).stdout
    assert f"Successfully assigned {env.namespace}/{pod} to buildwright-node" in described
    assert "Started container step-talk" in described and "Created container: prepare" in described
    assert logs("--tail=1").stdout == "second\n"
    assert logs("--limit-bytes=3").stdout == "fir"
    stamped = logs("--timestamps").stdout.splitlines()
    assert [re.fullmatch(rf"({STAMP}) (.*)", line) is not None for line in stamped] == [True] * 2
    (t1, l1), (t2, l2) = (line.split(" ", 1) for line in stamped)
    assert (l1, l2) == ("first", "second") and t1 < t2
    # sinceTime travels at whole seconds (metav1.Time), as it does to a real kubelet.
    later = dt.datetime.fromisoformat(t2[:19] + "+00:00") + dt.timedelta(seconds=1)
    assert logs(f"--since-time={later.strftime('%Y-%m-%dT%H:%M:%SZ')}").stdout == ""
    assert logs(f"--since-time={t1[:19]}Z").stdout == "first\nsecond\n"
    assert logs("--since=1h").stdout == "first\nsecond\n"
    previous = logs("--previous")
    assert previous.returncode != 0
    assert f'previous terminated container "step-talk" in pod "{pod}" not found' in previous.stderr


def succeeded_or_none(run: dict[str, object]) -> bool:
    status = run.get("status") or {}
    assert isinstance(status, dict)
    return any(c["type"] == "Succeeded" and c["status"] in ("True", "False")
               for c in status.get("conditions") or [])  # fmt: skip


def test_the_kubelet_api_accepts_only_the_apiserver(
    control_plane: ControlPlane, node_agent: KubeletStandIn
) -> None:
    assert node_agent.server is not None
    url = f"https://127.0.0.1:{node_agent.server.port}/healthz"
    ctx = ssl.create_default_context(cafile=str(control_plane.ca_cert_path))
    # The cluster admin's certificate is signed by the same CA, but is not the apiserver.
    ctx.load_cert_chain(str(control_plane.workdir / "admin.crt"),
                        str(control_plane.workdir / "admin.key"))  # fmt: skip
    try:
        urllib.request.urlopen(url, context=ctx, timeout=10)
        raise AssertionError("the admin certificate was accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403
    anonymous = ssl.create_default_context(cafile=str(control_plane.ca_cert_path))
    try:
        urllib.request.urlopen(url, context=anonymous, timeout=10)
        raise AssertionError("a client without a certificate was accepted")
    except (urllib.error.URLError, ssl.SSLError, ConnectionError):
        pass
    # The apiserver reaches it by the Node's InternalIP and kubelet port (its nodes/proxy
    # refuses loopback addresses, so only logs, exec and attach go there).
    out = kubectl(control_plane, "get", "node", node_agent.node_name, "-o",
                  "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port} "
                  "{.status.addresses[?(@.type=='InternalIP')].address}")  # fmt: skip
    assert out.stdout == f"{node_agent.server.port} 127.0.0.1", out.stderr


def test_kubectl_exec_runs_in_the_running_step_with_stdin_and_exit_codes(
    env: Env, control_plane: ControlPlane, git_daemon: GitDaemon, registry: LocalRegistry
) -> None:
    """kubectl 1.32 opens a WebSocket to the apiserver, which speaks SPDY/3.1 to the node."""
    env.create("buildstrategies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildStrategy",
        "metadata": {"name": "holder"},
        "spec": {"steps": [{"name": "hold", "image": "busybox",
                            "workingDir": "/workspace/source",
                            "env": [{"name": "GREETING", "value": "hello from the step"}],
                            "command": ["/bin/sh", "-c", TICK_UNTIL_GO]}]},
    })  # fmt: skip
    env.build("hold", {"url": git_daemon.url("app")}, f"{registry.host}/x/hold:latest",
              strategy="holder", strategy_kind="BuildStrategy")
    name = env.start("hold")
    pod = f"{name}-pod"
    base = ["-n", env.namespace, "exec", pod, "-c", "step-hold", "--"]

    def hold_started() -> bool:
        # The step's command runs once the source step is done: its source is then cloned.
        out = kubectl(control_plane, *base, "cat", "/workspace/source/hello.txt")
        return out.returncode == 0

    wait_until(hold_started, timeout=60, interval=0.5, description="step-hold to run")
    # The step's env, workingDir and mounts (its private /workspace/source).
    out = kubectl(control_plane, *base, "/bin/sh", "-c", 'echo "$GREETING in $(pwd)"; ls')
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "hello from the step in /workspace/source"
    assert "hello.txt" in out.stdout.split()
    # stdin, stdout and stderr, and the exit code.
    started = time.monotonic()
    piped = subprocess.run(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig_path), *base[:-1], "-i", "--",
         "/bin/sh", "-c", "tr a-z A-Z; echo to-stderr >&2; exit 3"],
        input="shout this\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert (piped.returncode, piped.stdout) == (3, "SHOUT THIS\n"), piped.stderr
    assert "to-stderr" in piped.stderr
    # An older client's SPDY/3.1, which the apiserver passes through to the node as it is.
    spdy_client = subprocess.run(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig_path), *base[:-1], "-i", "--",
         "/bin/sh", "-c", "cat; exit 5"],
        input="over spdy\n", capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"},
    )  # fmt: skip
    assert (spdy_client.returncode, spdy_client.stdout) == (5, "over spdy\n"), spdy_client.stderr
    print(f"kubectl exec -i round trip: {elapsed:.2f}s")
    missing = kubectl(control_plane, *base, "no-such-command")
    assert missing.returncode != 0
    # Only running containers: the finished source step refuses.
    done = kubectl(control_plane, "-n", env.namespace, "exec", pod, "-c", "step-source-default",
                   "--", "true")  # fmt: skip
    assert done.returncode != 0 and "not running" in done.stderr, done.stderr
    # kubectl attach shows what the step writes from now on, until it ends.
    attach = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig_path), "-n", env.namespace,
         "attach", pod, "-c", "step-hold"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    attached: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_lines, args=(attach, attached), daemon=True).start()
    # A process exec'd into the step ends with the step, as on a runtime.
    lingering = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig_path), *base,
         "/bin/sh", "-c", "echo in; exec sleep 300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lingering_out: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_lines, args=(lingering, lingering_out), daemon=True).start()
    try:
        assert attached.get(timeout=30) == "tick\n"
        assert lingering_out.get(timeout=30) == "in\n"
        # Deleting the Pod stops its running containers, and the node says so in Events.
        uid = _uid(env, pod)
        env.core.delete_namespaced_pod(pod, env.namespace)
        assert attach.wait(timeout=30) == 0, attach.stderr.read() if attach.stderr else ""
        assert lingering.wait(timeout=30) != 0
    finally:
        for proc in (attach, lingering):
            proc.kill()
            proc.wait()

    def killing() -> list[str]:
        events = env.core.list_namespaced_event(
            env.namespace, field_selector=f"involvedObject.uid={uid}"
        ).items
        return [e.involved_object.field_path for e in events if e.reason == "Killing"]

    assert "spec.containers{step-hold}" in wait_until(
        killing, timeout=30, description="a Killing event for step-hold"
    )


def _uid(env: Env, pod: str) -> str:
    return str(env.core.read_namespaced_pod(pod, env.namespace).metadata.uid)

"""ProcessExecutor on its own: `$(VAR)` expansion, env and volumes from the API, read-only
mounts, per-Pod isolation, termination messages, killing a process tree, cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from buildwright_localcluster import process_executor
from buildwright_localcluster.kubelet import Outcome
from buildwright_localcluster.process_executor import ProcessExecutor, expand
from buildwright_localcluster.wait import wait_until


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)-$(B)", "a-$(B)"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$a"),
        ("cost $5 and $", "cost $5 and $"),
        ("${context%/} $$x", "${context%/} $x"),
        ("$(A", "$(A"),
    ],
)
def test_expand_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "a"}) == expected


@pytest.fixture
def executor(api_client: client.ApiClient, tmp_path: Path) -> Iterator[ProcessExecutor]:
    ex = ProcessExecutor(api_client, state_dir=tmp_path / "agent")
    try:
        yield ex
    finally:
        ex.close()


def _pod(namespace: str, volumes: list[dict[str, Any]], name: str = "p") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
        "spec": {"volumes": volumes},
    }


def _run(ex: ProcessExecutor, pod: dict[str, Any], container: dict[str, Any]) -> Outcome:
    done = threading.Event()
    run = ex.start(pod, container, done.set)
    assert done.wait(30), "container did not finish"
    outcome = run.result()
    assert outcome is not None
    return outcome


def _shell(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "command": ["/bin/bash", "-c"], "args": [script], **extra}


def test_env_volumes_and_termination_message(
    executor: ProcessExecutor, api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="creds"), type="kubernetes.io/basic-auth",
        string_data={"username": "u", "password": "p4ss"},
    ))  # fmt: skip
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cfg"), data={"greeting": "hello"},
    ))  # fmt: skip
    pod = _pod(namespace, [
        {"name": "work", "emptyDir": {}},
        {"name": "secret", "secret": {"secretName": "creds", "defaultMode": 0o444,
                                      "items": [{"key": "password", "path": "pw/file"}]}},
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "missing", "secret": {"secretName": "absent", "optional": True}},
    ])  # fmt: skip
    script = (
        'printf "%s|%s|%s|%s|%s" "$POD" "$NS" "$PW" "$GREETING" "$DERIVED" > /work/env; '
        "cat /etc/creds/pw/file > /work/pw; stat -c %a /etc/creds/pw/file > /work/mode; "
        "ls /etc/cfg > /work/cfg; ls -A /opt/missing | wc -l > /work/missing; "
        "touch /etc/creds/x 2>/dev/null || echo ro > /work/ro; "
        "echo 'my message' > /dev/termination-log; exit 4"
    )
    container = _shell("c", script, env=[
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
        {"name": "DERIVED", "value": "$(GREETING)-$(NOPE)"},
    ], volumeMounts=[
        {"name": "work", "mountPath": "/work"},
        {"name": "secret", "mountPath": "/etc/creds"},
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "missing", "mountPath": "/opt/missing"},
    ])  # fmt: skip
    outcome = _run(executor, pod, container)
    assert (outcome.exit_code, outcome.message) == (4, "my message\n")
    work = executor.pod_dir(pod["metadata"]["uid"]) / "volumes" / "work"
    assert (work / "env").read_text() == f"p|{namespace}|p4ss|hello|hello-$(NOPE)"
    assert (work / "pw").read_text() == "p4ss"
    assert (work / "mode").read_text().strip() == "444"
    assert (work / "cfg").read_text() == "greeting\n"
    assert (work / "missing").read_text().strip() == "0"
    assert (work / "ro").read_text() == "ro\n"


def test_missing_secret_is_a_config_error(executor: ProcessExecutor, namespace: str) -> None:
    pod = _pod(namespace, [{"name": "s", "secret": {"secretName": "absent"}}])
    outcome = _run(executor, pod, _shell("c", "true", volumeMounts=[
        {"name": "s", "mountPath": "/etc/s"}]))  # fmt: skip
    assert outcome.reason == "CreateContainerConfigError"
    assert outcome.exit_code != 0 and "absent" in outcome.message


def test_concurrent_pods_see_only_their_own_volumes(
    executor: ProcessExecutor, namespace: str
) -> None:
    pods = [_pod(namespace, [{"name": "src", "emptyDir": {}}], name=f"p{i}") for i in range(3)]
    script = 'echo "$HOSTNAME" > /workspace/source/me; sleep 0.3; cat /workspace/source/me'
    done = [threading.Event() for _ in pods]
    runs = [
        executor.start(pod, _shell("c", script, env=[], volumeMounts=[
            {"name": "src", "mountPath": "/workspace/source"}]), event.set)
        for pod, event in zip(pods, done, strict=True)
    ]  # fmt: skip
    for event in done:
        assert event.wait(30)
    for i, (pod, run) in enumerate(zip(pods, runs, strict=True)):
        outcome = run.result()
        assert outcome is not None and outcome.exit_code == 0
        assert executor.logs(namespace, pod["metadata"]["name"], "c") == f"p{i}\n"
    assert not Path("/workspace/source/me").exists()


def test_fallback_to_logs_and_kill_of_a_process_tree(
    executor: ProcessExecutor, namespace: str, tmp_path: Path
) -> None:
    pod = _pod(namespace, [])
    outcome = _run(executor, pod, _shell("fails", "for i in $(seq 100); do echo line $i; done; "
                                         "exit 2"))  # fmt: skip
    assert outcome.exit_code == 2 and outcome.message == ""
    assert outcome.logs.splitlines()[-1] == "line 100" and len(outcome.logs.splitlines()) == 80

    pidfile = tmp_path / "grandchild"
    done = threading.Event()
    # The grandchild leaves the process group, as some tools do.
    run = executor.start(pod, _shell("hangs", f"setsid sleep 300 & echo $! > {pidfile}; wait",
                                     env=[]), done.set)  # fmt: skip
    grandchild = int(str(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(),
                                timeout=10, description="grandchild pid")))  # fmt: skip
    run.kill()
    assert done.wait(10)
    outcome_killed = run.result()
    assert outcome_killed is not None and outcome_killed.exit_code == 137
    wait_until(lambda: not Path(f"/proc/{grandchild}").exists()
               or "Z" in Path(f"/proc/{grandchild}/stat").read_text().split()[2],
               timeout=10, description="grandchild killed")  # fmt: skip


def test_sweep_removes_directories_of_deleted_pods(
    executor: ProcessExecutor, namespace: str
) -> None:
    pod = _pod(namespace, [{"name": "src", "emptyDir": {}}])
    assert _run(executor, pod, _shell("c", "true")).exit_code == 0
    pod_dir = executor.pod_dir(pod["metadata"]["uid"])
    assert pod_dir.is_dir()
    assert pod["metadata"]["uid"] in executor.sweep()  # no such Pod in the API
    assert not pod_dir.exists()


def test_exec_right_after_start_runs_in_the_containers_mounts(
    executor: ProcessExecutor, namespace: str
) -> None:
    """An exec that arrives while the launcher is still mounting waits for the container's
    mount namespace instead of running on the host (shp build upload's tar did, once)."""
    pod = _pod(namespace, [{"name": "src", "emptyDir": {}}], name="ex")
    (executor.pod_dir(pod["metadata"]["uid"])).mkdir(parents=True, exist_ok=True)
    done = threading.Event()
    run = executor.start(pod | {"spec": {**pod["spec"], "containers": [{"name": "c"}]}},
                         _shell("c", "echo inside > /workspace/source/where; sleep 300",
                                env=[{"name": "WHO", "value": "the container"}],
                                volumeMounts=[{"name": "src", "mountPath": "/workspace/source"}]),
                         done.set)  # fmt: skip
    try:
        process = executor.exec_in(
            namespace, "ex", "c", ["/bin/sh", "-c", 'echo "$WHO"; mount'], False
        )
        out, _ = process.communicate(timeout=30)
        assert process.returncode == 0
        lines = out.decode().splitlines()
        assert lines[0] == "the container"
        assert any(" /workspace/source " in line for line in lines[1:]), out
    finally:
        run.kill()
        assert done.wait(30)
    assert not Path("/workspace/source/where").exists()


def test_exec_waits_until_the_launcher_has_execd_the_command(tmp_path: Path) -> None:
    """The launcher blocks on a FIFO in place of its spec: until it gets one it is still
    mounting, as far as exec is concerned, and exec must not join its namespace yet."""
    fifo = tmp_path / "spec"
    os.mkfifo(fifo)
    launcher = subprocess.Popen([sys.executable, "-m", process_executor.__name__, str(fifo)])
    try:
        assert not process_executor._wait_for_exec(launcher.pid, 0.5)
        with fifo.open("w") as fh:
            json.dump({"argv": ["sleep", "30"], "env": {"PATH": "/usr/bin:/bin"}, "cwd": "/",
                       "mounts": []}, fh)  # fmt: skip
        assert process_executor._wait_for_exec(launcher.pid, 10)
    finally:
        launcher.kill()
        launcher.wait()

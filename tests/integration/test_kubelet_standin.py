"""The kubelet stand-in reports Pod lifecycles the way a kubelet does, per scripted outcome."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from buildwright_localcluster.kubelet import HANG, OOM_KILLED, KubeletStandIn, Outcome
from buildwright_localcluster.wait import wait_until

Pod = dict[str, Any]


def make_pod(
    name: str,
    inits: Sequence[str] = (),
    containers: Sequence[str] = ("main",),
    **spec: Any,
) -> Pod:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [{"name": n, "image": "example.test/step"} for n in inits],
            "containers": [{"name": n, "image": "example.test/step"} for n in containers],
            **spec,
        },
    }


def read_pod(core_v1: client.CoreV1Api, namespace: str, name: str) -> Pod:
    resp = core_v1.read_namespaced_pod(name, namespace, _preload_content=False)
    pod: Pod = json.loads(resp.data)
    return pod


def wait_for_phase(
    core_v1: client.CoreV1Api, namespace: str, name: str, *phases: str, timeout: float = 20
) -> Pod:
    def check() -> Pod | None:
        pod = read_pod(core_v1, namespace, name)
        return pod if pod.get("status", {}).get("phase") in phases else None

    return wait_until(check, timeout=timeout, description=f"pod {name} phase in {phases}")


def condition(pod: Pod, ctype: str) -> dict[str, Any]:
    for cond in pod["status"].get("conditions", []):
        if cond["type"] == ctype:
            return dict(cond)
    raise AssertionError(f"pod has no {ctype} condition: {pod['status'].get('conditions')}")


def statuses(pod: Pod, key: str = "containerStatuses") -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in pod["status"].get(key, [])}


@contextmanager
def recorded_statuses(core_v1: client.CoreV1Api, namespace: str) -> Iterator[list[Pod]]:
    """Record every version of every Pod in `namespace` while the block runs."""
    seen: list[Pod] = []
    resp = core_v1.list_namespaced_pod(
        namespace, watch=True, timeout_seconds=60, _preload_content=False
    )

    def reader() -> None:
        buffer = b""
        try:
            for chunk in resp.stream(None):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        seen.append(json.loads(line)["object"])
        except Exception:
            return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        resp.shutdown()
        thread.join(timeout=5)
        resp.release_conn()


def test_plain_pod_runs_init_containers_then_containers_to_success(
    core_v1: client.CoreV1Api, kubelet: KubeletStandIn, namespace: str
) -> None:
    # Long enough that every intermediate state is a separate write a watch must see.
    step = Outcome(duration=0.3)
    kubelet.script(namespace, {"prepare": step, "fetch": step, "main": step})
    with recorded_statuses(core_v1, namespace) as seen:
        core_v1.create_namespaced_pod(namespace, make_pod("plain", ["prepare", "fetch"]))
        pod = wait_for_phase(core_v1, namespace, "plain", "Succeeded", "Failed")

        def final_seen() -> bool:
            return any(p["status"].get("phase") == "Succeeded" for p in seen)

        wait_until(final_seen, timeout=10, description="the watch to deliver the final status")

    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"] == kubelet.node_name
    assert pod["status"]["startTime"]
    assert condition(pod, "PodScheduled")["status"] == "True"
    assert condition(pod, "Initialized")["status"] == "True"
    assert condition(pod, "Ready") | {"lastTransitionTime": None} == {
        "type": "Ready",
        "status": "False",
        "reason": "PodCompleted",
        "lastProbeTime": None,
        "lastTransitionTime": None,
    }
    for s in [*statuses(pod, "initContainerStatuses").values(), *statuses(pod).values()]:
        terminated = s["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
        assert terminated["startedAt"] <= terminated["finishedAt"]
        assert s["restartCount"] == 0

    # The recorded history shows the kubelet's order: each init container alone, then main.
    def states(p: Pod) -> tuple[str, ...]:
        ordered = [
            *p["status"].get("initContainerStatuses", []),
            *p["status"].get("containerStatuses", []),
        ]
        return tuple(next(iter(s["state"])) for s in ordered)

    # Versions before the stand-in's first write (creation, binding) carry no container states.
    history = [(p["status"].get("phase"), states(p)) for p in seen if states(p)]
    expected = [
        ("Pending", ("waiting", "waiting", "waiting")),
        ("Pending", ("running", "waiting", "waiting")),
        ("Pending", ("terminated", "running", "waiting")),
        ("Running", ("terminated", "terminated", "running")),
        ("Succeeded", ("terminated", "terminated", "terminated")),
    ]
    deduped = [h for i, h in enumerate(history) if i == 0 or history[i - 1] != h]
    assert deduped == expected
    waiting_main = next(
        p
        for p in seen
        if p["status"].get("phase") == "Pending" and p["status"].get("containerStatuses")
    )
    assert statuses(waiting_main)["main"]["state"] == {"waiting": {"reason": "PodInitializing"}}
    running = next(p for p in seen if p["status"].get("phase") == "Running")
    assert condition(running, "Ready")["status"] == "True"
    assert condition(running, "ContainersReady")["status"] == "True"
    assert statuses(running)["main"]["ready"] is True


def test_failing_init_container_fails_the_pod_and_stops_it(
    core_v1: client.CoreV1Api, kubelet: KubeletStandIn, namespace: str
) -> None:
    kubelet.script(
        namespace,
        {"source": Outcome(exit_code=1, message="fatal: repository 'x' not found")},
    )
    core_v1.create_namespaced_pod(namespace, make_pod("fails", ["source", "prepare"], ["main"]))
    pod = wait_for_phase(core_v1, namespace, "fails", "Succeeded", "Failed")

    assert pod["status"]["phase"] == "Failed"
    inits = statuses(pod, "initContainerStatuses")
    terminated = inits["source"]["state"]["terminated"]
    assert terminated["exitCode"] == 1
    assert terminated["reason"] == "Error"
    assert terminated["message"] == "fatal: repository 'x' not found"
    # Nothing after the failed init container ever ran.
    assert inits["prepare"]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert statuses(pod)["main"]["state"] == {"waiting": {"reason": "PodInitializing"}}
    initialized = condition(pod, "Initialized")
    assert initialized["status"] == "False"
    assert initialized["reason"] == "ContainersNotInitialized"


def test_oom_killed_and_fallback_to_logs(
    core_v1: client.CoreV1Api, kubelet: KubeletStandIn, namespace: str
) -> None:
    logs = "\n".join(f"line {i}" for i in range(200))
    kubelet.script(
        namespace,
        {"build": OOM_KILLED, "scan": Outcome(exit_code=2, logs=logs)},
    )
    pod = make_pod("oom", [], ["build", "scan"])
    pod["spec"]["containers"][1]["terminationMessagePolicy"] = "FallbackToLogsOnError"
    core_v1.create_namespaced_pod(namespace, pod)
    done = wait_for_phase(core_v1, namespace, "oom", "Succeeded", "Failed")

    assert done["status"]["phase"] == "Failed"
    build = statuses(done)["build"]["state"]["terminated"]
    assert (build["exitCode"], build["reason"]) == (137, "OOMKilled")
    scan = statuses(done)["scan"]["state"]["terminated"]
    assert (scan["exitCode"], scan["reason"]) == (2, "Error")
    # The kubelet keeps the tail of the log: the last 80 lines at most.
    assert scan["message"].splitlines()[-1] == "line 199"
    assert "line 119" not in scan["message"].splitlines()


def test_eviction(core_v1: client.CoreV1Api, kubelet: KubeletStandIn, namespace: str) -> None:
    kubelet.script(namespace, {"main": HANG}, evict_after=0.3)
    core_v1.create_namespaced_pod(namespace, make_pod("evicted"))
    pod = wait_for_phase(core_v1, namespace, "evicted", "Succeeded", "Failed")

    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["reason"] == "Evicted"
    assert "low on resource" in pod["status"]["message"]
    disruption = condition(pod, "DisruptionTarget")
    assert (disruption["status"], disruption["reason"]) == ("True", "TerminationByKubelet")
    assert statuses(pod)["main"]["state"]["terminated"]["exitCode"] == 137


def test_active_deadline_exceeded(
    core_v1: client.CoreV1Api, kubelet: KubeletStandIn, namespace: str
) -> None:
    kubelet.script(namespace, {"main": HANG})
    core_v1.create_namespaced_pod(
        namespace, make_pod("deadline", ["prepare"], activeDeadlineSeconds=1)
    )
    pod = wait_for_phase(core_v1, namespace, "deadline", "Succeeded", "Failed")

    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert pod["status"]["message"]
    assert statuses(pod, "initContainerStatuses")["prepare"]["state"]["terminated"]["exitCode"] == 0
    assert statuses(pod)["main"]["state"]["terminated"]["exitCode"] == 137


def test_graceful_deletion_of_a_running_pod_completes(
    core_v1: client.CoreV1Api, kubelet: KubeletStandIn, namespace: str
) -> None:
    kubelet.script(namespace, {"main": HANG})
    core_v1.create_namespaced_pod(namespace, make_pod("deleted"))
    wait_for_phase(core_v1, namespace, "deleted", "Running")
    # The default grace period is 30s; the stand-in finishes the deletion long before that.
    core_v1.delete_namespaced_pod("deleted", namespace)

    def gone() -> bool:
        try:
            read_pod(core_v1, namespace, "deleted")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, timeout=10, description="the stand-in to finish the Pod's deletion")


def test_pending_script_keeps_containers_waiting(
    core_v1: client.CoreV1Api, kubelet: KubeletStandIn, namespace: str
) -> None:
    kubelet.script(namespace, pod_pending=True, pending_reason="ImagePullBackOff")
    core_v1.create_namespaced_pod(namespace, make_pod("stuck"))

    def waiting() -> Pod | None:
        pod = read_pod(core_v1, namespace, "stuck")
        main = statuses(pod).get("main")
        return pod if main and "waiting" in main["state"] else None

    pod = wait_until(waiting, timeout=10, description="a waiting status")
    assert pod["status"]["phase"] == "Pending"
    assert pod["spec"]["nodeName"] == kubelet.node_name
    assert statuses(pod)["main"]["state"]["waiting"]["reason"] == "ImagePullBackOff"


def test_unschedulable_pods_stay_unscheduled(
    core_v1: client.CoreV1Api, kubelet: KubeletStandIn, namespace: str
) -> None:
    core_v1.create_namespaced_pod(
        namespace, make_pod("other-scheduler", schedulerName="someone-else")
    )
    core_v1.create_namespaced_pod(
        namespace, make_pod("wrong-arch", nodeSelector={"kubernetes.io/arch": "s390x-nope"})
    )
    core_v1.create_namespaced_pod(
        namespace, make_pod("right-arch", nodeSelector={"kubernetes.io/os": "linux"})
    )

    def unschedulable() -> Pod | None:
        pod = read_pod(core_v1, namespace, "wrong-arch")
        conds = {c["type"]: c for c in pod["status"].get("conditions", [])}
        sched = conds.get("PodScheduled")
        return pod if sched and sched.get("reason") == "Unschedulable" else None

    wrong = wait_until(unschedulable, timeout=10, description="PodScheduled=False/Unschedulable")
    # The stand-in sees Pods in creation order, so once the last one ran, it has decided on
    # the first two.
    wait_for_phase(core_v1, namespace, "right-arch", "Succeeded")
    assert "nodeName" not in wrong["spec"]
    other = read_pod(core_v1, namespace, "other-scheduler")
    assert "nodeName" not in other["spec"]
    assert other["status"]["phase"] == "Pending"
    assert "conditions" not in other["status"]
    assert "nodeName" not in read_pod(core_v1, namespace, "wrong-arch")["spec"]


def test_thirty_pods_at_once(
    core_v1: client.CoreV1Api, kubelet: KubeletStandIn, namespace: str
) -> None:
    names = [f"many-{i}" for i in range(30)]
    for name in names:
        core_v1.create_namespaced_pod(namespace, make_pod(name, ["prepare"], ["a", "b"]))

    def phases() -> dict[str, str]:
        resp = core_v1.list_namespaced_pod(namespace, _preload_content=False)
        items = json.loads(resp.data)["items"]
        return {p["metadata"]["name"]: p.get("status", {}).get("phase", "") for p in items}

    def all_done() -> dict[str, str] | None:
        current = phases()
        return current if all(v in ("Succeeded", "Failed") for v in current.values()) else None

    final = wait_until(all_done, timeout=60, description="30 pods to finish")
    assert sorted(final) == sorted(names)
    assert set(final.values()) == {"Succeeded"}


@pytest.mark.parametrize("key", ["twin-a/main", "*"])
def test_script_keys_single_out_pods(
    core_v1: client.CoreV1Api, kubelet: KubeletStandIn, namespace: str, key: str
) -> None:
    kubelet.script(namespace, {key: Outcome(exit_code=3)})
    core_v1.create_namespaced_pod(namespace, make_pod("twin-a"))
    core_v1.create_namespaced_pod(namespace, make_pod("twin-b"))
    a = wait_for_phase(core_v1, namespace, "twin-a", "Succeeded", "Failed")
    b = wait_for_phase(core_v1, namespace, "twin-b", "Succeeded", "Failed")
    assert a["status"]["phase"] == "Failed"
    assert b["status"]["phase"] == ("Failed" if key == "*" else "Succeeded")


def sequenced_pod(name: str, steps: Sequence[str]) -> Pod:
    """A Pod whose containers run behind Tekton's entrypoint, ordered by post files, as the
    operator renders build Pods."""
    containers = []
    for index, step in enumerate(steps):
        flags = [] if index == 0 else ["-wait_file", f"/tekton/run/{index - 1}/out"]
        flags += ["-post_file", f"/tekton/run/{index}/out", "-termination_path",
                  "/tekton/termination", "-results", "shp-error-reason,shp-error-message",
                  "-entrypoint", "/bin/tool", "--", step]  # fmt: skip
        containers.append({
            "name": step, "image": "example.test/step", "command": ["/tekton/bin/entrypoint"],
            "args": flags, "terminationMessagePath": "/tekton/termination",
        })  # fmt: skip
    pod = make_pod(name, ["prepare"], [])
    pod["spec"]["containers"] = containers
    return pod


def test_steps_behind_the_entrypoint_run_in_order_and_skip_after_a_failure(
    core_v1: client.CoreV1Api, kubelet: KubeletStandIn, namespace: str
) -> None:
    kubelet.script(namespace, {
        "first": Outcome(duration=0.3),
        "second": Outcome(exit_code=1, duration=0.2, results={
            "shp-error-reason": "Broken", "shp-error-message": "it broke",
            "shp-image-digest": "not reported by this step",
        }),
    })  # fmt: skip
    core_v1.create_namespaced_pod(namespace, sequenced_pod("ordered", ["first", "second", "third"]))
    seen_running = wait_for_phase(core_v1, namespace, "ordered", "Running", "Failed")
    assert seen_running["status"]["phase"] == "Running"
    # Like a kubelet, every container runs from the start; the entrypoint holds them back.
    assert all("running" in s["state"] or "terminated" in s["state"]
               for s in seen_running["status"]["containerStatuses"])  # fmt: skip
    pod = wait_for_phase(core_v1, namespace, "ordered", "Succeeded", "Failed")

    assert pod["status"]["phase"] == "Failed"
    ended = {name: s["state"]["terminated"] for name, s in statuses(pod).items()}
    assert [ended[n]["exitCode"] for n in ("first", "second", "third")] == [0, 1, 1]
    assert ended["first"]["finishedAt"] <= ended["second"]["finishedAt"]
    second = {e["key"]: e for e in json.loads(ended["second"]["message"])}
    assert second["shp-error-reason"] == {"key": "shp-error-reason", "value": "Broken", "type": 1}
    assert second["shp-error-message"]["value"] == "it broke"
    assert "shp-image-digest" not in second, "only the results the entrypoint is told to report"
    assert second["StartedAt"]["type"] == 3
    third = json.loads(ended["third"]["message"])
    assert {"key": "Reason", "value": "Skipped", "type": 3} in third

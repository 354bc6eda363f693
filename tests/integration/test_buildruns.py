"""The operator end to end against the real apiserver, with the kubelet stand-in for Pods.

The book's scenario and every failure path of issue 4: what `kubectl get builds/buildruns`
shows, what the Pod looks like, and what status the BuildRun ends with.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from buildwright_localcluster.kubelet import HANG, OOM_KILLED, Outcome
from buildwright_localcluster.wait import wait_until
from tests.integration.harness import (
    DIGEST,
    GROUP,
    SUCCESSFUL_RESULTS,
    VERSION,
    Cluster,
    book_build,
    buildrun,
    wait_for,
)
from tests.integration.operator_process import REPO

# --- the book's scenario -------------------------------------------------------------------------


def test_book_scenario_runs_to_succeeded(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    cluster.push_secret()
    cluster.create("builds", book_build())
    status = cluster.wait_build("kaniko-nodejs-build", "True")
    assert status["reason"] == "Succeeded"
    assert status["message"] == "all validations succeeded"
    builds_table = cluster.kubectl("get", "builds")
    assert builds_table.split()[:6] == [
        "NAME", "REGISTERED", "REASON", "BUILDSTRATEGYKIND", "BUILDSTRATEGYNAME", "CREATIONTIME"
    ]  # fmt: skip
    assert (
        "kaniko-nodejs-build   True         Succeeded   ClusterBuildStrategy   kaniko"
        in builds_table
    )

    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    assert name.startswith("kaniko-nodejs-buildrun-")
    done = cluster.wait_buildrun(name, "True", "Succeeded")

    pods = cluster.pods()
    assert [p["metadata"]["name"] for p in pods] == [f"{name}-pod"]
    pod = pods[0]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["prepare"]
    assert [c["name"] for c in pod["spec"]["containers"]] == [
        "step-source-default", "step-build-and-push", "step-image-processing", "step-results"
    ]  # fmt: skip
    # Each step ran only after the one before it had ended.
    ended = {
        c["name"]: c["state"]["terminated"] for c in pod["status"]["containerStatuses"]
    }
    order = [ended[c["name"]]["finishedAt"] for c in pod["spec"]["containers"]]
    assert order == sorted(order)
    assert pod["status"]["phase"] == "Succeeded"
    assert "$(params." not in json.dumps(pod["spec"]) and "$(results." not in json.dumps(
        pod["spec"]
    )
    owner = pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("BuildRun", name, True)

    status = done["status"]
    assert status["output"] == {"digest": DIGEST, "size": 4242}
    assert status["source"]["git"]["commitSha"] == "0123456789abcdef0123456789abcdef01234567"
    assert status["executor"] == {"name": f"{name}-pod", "kind": "Pod"}
    assert status["buildSpec"]["output"]["pushSecret"] == "push-secret"
    assert status["startTime"] and status["completionTime"]
    assert done["metadata"]["labels"]["build.shipwright.io/name"] == "kaniko-nodejs-build"

    table = cluster.kubectl("get", "buildruns")
    assert table.split()[:5] == ["NAME", "SUCCEEDED", "REASON", "STARTTIME", "COMPLETIONTIME"]
    row = next(line for line in table.splitlines() if line.startswith(name))
    assert row.split()[1:3] == ["True", "Succeeded"]

    # kubectl describe tells how it ended: one Event, for the end of the run.
    events = json.loads(cluster.kubectl(
        "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
    ))["items"]  # fmt: skip
    assert [(e["type"], e["reason"]) for e in events] == [("Normal", "Succeeded")]


def test_a_running_build_shows_its_progress_within_the_coalescing_window(cluster: Cluster) -> None:
    """In-progress changes are written together, about a second after the first one: a run
    longer than that shows Running with its executor and build spec while it runs."""
    cluster.kubelet.script(cluster.namespace, {
        "step-build-and-push": Outcome(duration=4.0),
        "step-results": Outcome(message=SUCCESSFUL_RESULTS),
    })  # fmt: skip
    cluster.push_secret()
    cluster.create("builds", book_build())
    cluster.wait_build("kaniko-nodejs-build", "True")
    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    running = cluster.wait_buildrun(name, "Unknown", "Running", timeout=3.5)
    assert running["status"]["executor"] == {"name": f"{name}-pod", "kind": "Pod"}
    assert running["status"]["buildSpec"]["strategy"]["name"] == "kaniko"
    assert running["status"]["startTime"] and not running["status"].get("completionTime")
    cluster.wait_buildrun(name, "True", "Succeeded")


def test_book_mistake_buildrun_names_a_missing_build(cluster: Cluster) -> None:
    cluster.push_secret()
    cluster.create("builds", book_build("buildpack-nodejs-build"))
    name = cluster.create("buildruns", buildrun("kaniko-nodejs-build"))["metadata"]["name"]
    done = cluster.wait_buildrun(name, "False", "BuildNotFound")
    condition = cluster.condition(name)
    assert condition is not None
    assert condition["message"] == 'build.shipwright.io "kaniko-nodejs-build" not found'
    assert done["status"]["completionTime"]
    assert cluster.pods() == []


def test_missing_push_secret_is_reported_then_revalidated(cluster: Cluster) -> None:
    cluster.create("builds", book_build())
    status = cluster.wait_build("kaniko-nodejs-build", "False")
    assert status["reason"] == "SpecOutputSecretRefNotFound"
    assert status["message"] == "referenced secret push-secret not found"
    cluster.push_secret()
    cluster.wait_build("kaniko-nodejs-build", "True")


def test_missing_strategy_then_created(cluster: Cluster) -> None:
    cluster.push_secret()
    spec = book_build()
    spec["spec"]["strategy"] = {"name": "my-kaniko", "kind": "BuildStrategy"}
    cluster.create("builds", spec)
    status = cluster.wait_build("kaniko-nodejs-build", "False")
    assert status["reason"] == "BuildStrategyNotFound"
    assert (
        status["message"]
        == f"buildStrategy my-kaniko does not exist in namespace {cluster.namespace}"
    )
    strategy = yaml.safe_load((REPO / "strategies" / "kaniko.yaml").read_text())
    strategy["kind"] = "BuildStrategy"
    strategy["metadata"] = {"name": "my-kaniko"}
    cluster.create("buildstrategies", strategy)
    cluster.wait_build("kaniko-nodejs-build", "True")


def test_undefined_parameter(cluster: Cluster) -> None:
    cluster.push_secret()
    cluster.create("builds", book_build(paramValues=[{"name": "no-such-param", "value": "x"}]))
    status = cluster.wait_build("kaniko-nodejs-build", "False")
    assert status["reason"] == "UndefinedParameter"
    assert "no-such-param" in status["message"]


def _registered_book_build(cluster: Cluster, **spec: Any) -> None:
    cluster.push_secret()
    cluster.create("builds", book_build(**spec))
    cluster.wait_build("kaniko-nodejs-build", "True")


def test_failing_step_reports_failure_details(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, {
        "step-build-and-push": Outcome(exit_code=1, results={
            "shp-error-reason": "DockerfileNotFound",
            "shp-error-message": "error building image: no Dockerfile",
        }),
    })  # fmt: skip
    _registered_book_build(cluster)
    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    done = cluster.wait_buildrun(name, "False", "Failed")
    condition = cluster.condition(name)
    assert condition is not None
    pod = f"{name}-pod"
    assert condition["message"] == (
        f"buildrun step step-build-and-push failed, for detailed information: kubectl "
        f"--namespace {cluster.namespace} logs {pod} --container=step-build-and-push"
    )
    details = done["status"]["failureDetails"]
    assert details["location"] == {"pod": pod, "container": "step-build-and-push"}
    assert details["message"] == "error building image: no Dockerfile"
    assert details["reason"] == "DockerfileNotFound"
    # The steps after the failed one were skipped, as the entrypoint skips them, and the Pod
    # ended Failed with the failed step's own exit code.
    found = cluster.core.read_namespaced_pod(pod, cluster.namespace)
    assert found.status.phase == "Failed"
    states = {c.name: c.state.terminated for c in found.status.container_statuses}
    assert states["step-build-and-push"].exit_code == 1
    for skipped in ("step-image-processing", "step-results"):
        entries = json.loads(states[skipped].message)
        assert {"key": "Reason", "value": "Skipped", "type": 3} in entries


def test_out_of_memory(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, {"step-build-and-push": OOM_KILLED})
    _registered_book_build(cluster)
    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    cluster.wait_buildrun(name, "False", "StepOutOfMemory")


def test_eviction(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, {"step-build-and-push": HANG}, evict_after=0.3)
    _registered_book_build(cluster)
    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    cluster.wait_buildrun(name, "False", "PodEvicted")


def test_timeout_while_pod_is_unscheduled(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, pod_pending=True)
    _registered_book_build(cluster)
    name = cluster.create("buildruns", buildrun(timeout="3s"))["metadata"]["name"]
    cluster.wait_buildrun(name, "False", "BuildRunTimeout", timeout=30)
    condition = cluster.condition(name)
    assert condition is not None
    assert condition["message"] == f"BuildRun {name} failed to finish within 3s"
    wait_until(lambda: not cluster.pods() or all(
        p["metadata"].get("deletionTimestamp") for p in cluster.pods()
    ), timeout=20, description="the timed-out Pod deleted")  # fmt: skip


def test_cancel_running_buildrun(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, {"step-build-and-push": HANG})
    _registered_book_build(cluster)
    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    cluster.wait_buildrun(name, "Unknown", "Running")
    cluster.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        cluster.namespace,
        "buildruns",
        name,
        {"spec": {"state": "BuildRunCanceled"}},
    )
    cluster.wait_buildrun(name, "False", "BuildRunCanceled")
    condition = cluster.condition(name)
    assert condition is not None
    assert condition["message"] == "The BuildRun and underlying TaskRun were canceled successfully."


def test_pod_deleted_by_someone_else(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, {"step-build-and-push": HANG})
    _registered_book_build(cluster)
    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    cluster.wait_buildrun(name, "Unknown", "Running")
    cluster.core.delete_namespaced_pod(f"{name}-pod", cluster.namespace, grace_period_seconds=0)
    cluster.wait_buildrun(name, "False", "TaskRunIsMissing")


def test_operator_restart_with_50_running_buildruns(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, {
        "step-build-and-push": Outcome(duration=8),
        "step-results": Outcome(message=SUCCESSFUL_RESULTS),
    })  # fmt: skip
    _registered_book_build(cluster)
    names = [cluster.create("buildruns", buildrun())["metadata"]["name"] for _ in range(50)]
    wait_for(lambda: len(cluster.pods()) == 50, 60, "50 build Pods", cluster.diagnostics)
    cluster.operator.kill()
    # While the operator is down every build finishes; nobody writes the BuildRuns.
    wait_until(
        lambda: all(p.get("status", {}).get("phase") == "Succeeded" for p in cluster.pods()),
        timeout=90, description="all 50 Pods Succeeded",
    )  # fmt: skip
    cluster.operator.start()
    for name in names:
        cluster.wait_buildrun(name, "True", "Succeeded", timeout=60)
    pods = cluster.pods()
    assert sorted(p["metadata"]["name"] for p in pods) == sorted(f"{n}-pod" for n in names)
    for name in names:
        assert cluster.get("buildruns", name)["status"]["output"]["digest"] == DIGEST


def test_schema_rejects_misspelled_field(cluster: Cluster) -> None:
    body = book_build()
    body["spec"]["output"]["pushSecrets"] = "x"
    with pytest.raises(ApiException) as raised:
        cluster.custom.create_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, "builds", body, field_validation="Strict"
        )
    assert "pushSecrets" in str(raised.value.body)


def test_missing_configmap_of_a_volume_override(cluster: Cluster) -> None:
    cluster.create("buildstrategies", {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BuildStrategy",
        "metadata": {"name": "with-cache"},
        "spec": {
            "volumes": [{"name": "cache", "overridable": True, "emptyDir": {}}],
            "steps": [{
                "name": "build", "image": "busybox:1.36", "command": ["true"],
                "volumeMounts": [{"name": "cache", "mountPath": "/cache", "readOnly": True}],
            }],
        },
    })  # fmt: skip
    cluster.push_secret()
    build = book_build(volumes=[{"name": "cache", "configMap": {"name": "absent"}}])
    build["spec"]["strategy"] = {"name": "with-cache", "kind": "BuildStrategy"}
    cluster.create("builds", build)
    cluster.wait_build("kaniko-nodejs-build", "True")
    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    cluster.wait_buildrun(name, "False", "VolumeDoesNotExist")
    assert cluster.condition(name)["message"] == 'configmaps "absent" not found'  # type: ignore[index]
    assert cluster.pods() == []


def test_deleting_the_push_secret_unregisters_the_build(cluster: Cluster) -> None:
    cluster.push_secret()
    cluster.create("builds", book_build())
    cluster.wait_build("kaniko-nodejs-build", "True")
    cluster.core.delete_namespaced_secret("push-secret", cluster.namespace)
    status = cluster.wait_build("kaniko-nodejs-build", "False")
    assert status["reason"] == "SpecOutputSecretRefNotFound"


def test_failing_source_step_reports_its_git_reason_and_the_rest_is_skipped(
    cluster: Cluster,
) -> None:
    git_error = json.dumps([
        {"key": "shp-error-reason", "value": "GitRemoteRepositoryNotFound", "type": 1},
        {"key": "shp-error-message", "value": "remote repository not found", "type": 1},
    ])  # fmt: skip
    cluster.kubelet.script(cluster.namespace, {
        "step-source-default": Outcome(exit_code=1, message=git_error),
    })  # fmt: skip
    _registered_book_build(cluster)
    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    done = cluster.wait_buildrun(name, "False", "Failed")
    assert done["status"]["failureDetails"] == {
        "reason": "GitRemoteRepositoryNotFound",
        "message": "remote repository not found",
        "location": {"pod": f"{name}-pod", "container": "step-source-default"},
    }

    def ended() -> Any:
        found = cluster.core.read_namespaced_pod(f"{name}-pod", cluster.namespace)
        return found if found.status.phase in ("Failed", "Succeeded") else None

    pod = wait_until(ended, timeout=20, description="the failed Pod to end")
    codes = {c.name: c.state.terminated.exit_code for c in pod.status.container_statuses}
    assert codes == {
        "step-source-default": 1, "step-build-and-push": 1, "step-image-processing": 1,
        "step-results": 1,
    }  # fmt: skip


def test_timeout_while_a_step_runs(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, {"step-build-and-push": HANG})
    _registered_book_build(cluster)
    name = cluster.create("buildruns", buildrun(timeout="2s"))["metadata"]["name"]
    cluster.wait_buildrun(name, "False", "BuildRunTimeout", timeout=30)
    condition = cluster.condition(name)
    assert condition is not None
    assert condition["message"] == f"BuildRun {name} failed to finish within 2s"


def _old_shape_pod(name: str, namespace: str, uid: str) -> dict[str, Any]:
    """A build Pod as buildwright rendered it before steps became ordered containers: the
    steps are init containers, a strategy step's message is its shp-error-message file."""
    def step(container: str) -> dict[str, Any]:
        return {"name": container, "image": "example.test/step", "command": ["tool"]}

    strategy_step = {**step("step-build-and-push"),
                     "terminationMessagePath": "/tekton/results/shp-error-message",
                     "terminationMessagePolicy": "FallbackToLogsOnError"}  # fmt: skip
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"{name}-pod", "namespace": namespace,
            "labels": {"buildrun.shipwright.io/name": name,
                       "app.kubernetes.io/managed-by": "buildwright"},
            "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildRun",
                                 "name": name, "uid": uid, "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [step("step-source-default"), strategy_step],
            "containers": [step("step-results")],
        },
    }  # fmt: skip


@pytest.mark.parametrize("fails", [False, True], ids=["succeeds", "fails"])
def test_a_run_whose_pod_has_the_old_shape_ends_right_after_an_upgrade(
    cluster: Cluster, fails: bool
) -> None:
    """BuildRuns in flight when the operator is upgraded keep the Pod the old one made."""
    script: dict[str, Outcome] = {"step-results": Outcome(message=SUCCESSFUL_RESULTS)}
    if fails:
        script["step-build-and-push"] = Outcome(exit_code=1, message="no Dockerfile here")
    cluster.kubelet.script(cluster.namespace, script)
    _registered_book_build(cluster)
    cluster.operator.stop()
    try:
        created = cluster.create("buildruns", buildrun())
        name, uid = created["metadata"]["name"], created["metadata"]["uid"]
        cluster.core.create_namespaced_pod(
            cluster.namespace, _old_shape_pod(name, cluster.namespace, uid)
        )
    finally:
        cluster.operator.start()
    if not fails:
        done = cluster.wait_buildrun(name, "True", "Succeeded")
        assert done["status"]["output"] == {"digest": DIGEST, "size": 4242}
    else:
        done = cluster.wait_buildrun(name, "False", "Failed")
        assert done["status"]["failureDetails"] == {
            "message": "no Dockerfile here",
            "location": {"pod": f"{name}-pod", "container": "step-build-and-push"},
        }
    assert [p["metadata"]["name"] for p in cluster.pods()] == [f"{name}-pod"]

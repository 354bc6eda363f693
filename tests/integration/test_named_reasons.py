"""Every input ends in a named reason (issue 14): objects that used to get no status, requests
retried forever, causes that were lost, and the owners the API server records for our writes.

Each test is one case that was seen on the real apiserver; it waits for the outcome with a
deadline well below what the old behaviour would have needed (never, or minutes).
"""

from __future__ import annotations

import json
import time
from typing import Any

from kubernetes import client

from buildwright_localcluster.kubelet import Outcome
from buildwright_localcluster.wait import wait_until
from tests.integration.harness import (
    GROUP,
    SUCCESSFUL_RESULTS,
    VERSION,
    Body,
    Cluster,
    book_build,
    buildrun,
    wait_for,
)

# --- item 1: a Build deleted while its BuildRun waits for the Build's validation -----------


def test_a_build_deleted_before_its_validation_ends_its_waiting_buildruns(
    cluster: Cluster,
) -> None:
    """Build, BuildRun and the Build's deletion within a few ms, many times over. A BuildRun
    whose Build went before it was validated ends False/BuildNotFound without startTime; one
    whose Build was validated first runs. Each ends within a few seconds (before the fix some
    waited forever: the Build's DELETED event did not wake them)."""
    cluster.kubelet.script(cluster.namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    cluster.push_secret()
    names = []
    for index in range(20):
        build_name = f"gone-{index}"
        cluster.create("builds", book_build(build_name))
        names.append(cluster.create("buildruns", buildrun(build_name))["metadata"]["name"])
        cluster.custom.delete_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, "builds", build_name
        )
    not_found = 0
    for name in names:
        # Below the waiting BuildRun's own re-check (10 s): the Build's events must do it.
        done = wait_for(
            lambda n=name: _ended(cluster, n), 8, f"BuildRun {name} ended", cluster.diagnostics
        )
        condition = cluster.condition(name)
        assert condition is not None
        assert (condition["status"], condition["reason"]) in (
            ("False", "BuildNotFound"), ("True", "Succeeded")
        ), condition  # fmt: skip
        if condition["reason"] == "BuildNotFound":
            not_found += 1
            assert "not found" in condition["message"]
            assert not done["status"].get("startTime")
    assert not_found, "no BuildRun saw its Build gone: the race was not exercised"


def _ended(cluster: Cluster, name: str) -> Body | None:
    body = cluster.get("buildruns", name)
    return body if (body.get("status") or {}).get("completionTime") else None


# --- item 2: an answer that will not change is not retried ----------------------------------


def test_a_build_name_of_64_characters_is_build_name_invalid(cluster: Cluster) -> None:
    name = "b" * 64
    cluster.push_secret()
    cluster.create("builds", book_build(name))
    status = cluster.wait_build(name, "False", timeout=15)
    assert status["reason"] == "BuildNameInvalid"
    # The unit (characters or bytes) follows the apimachinery version core.labels copies.
    assert "must be no more than 63 " in status["message"]
    assert "retrying" not in cluster.operator.log_tail(200).split(name, 1)[-1]


# --- item 4: the cause's own words ----------------------------------------------------------


def test_an_unknown_repository_host_says_no_such_host(cluster: Cluster) -> None:
    cluster.push_secret()
    build = book_build("unknown-host")
    build["metadata"]["annotations"] = {"build.shipwright.io/verify.repository": "true"}
    build["spec"]["source"]["git"]["url"] = "https://git.nonexistent.invalid/org/repo"
    cluster.create("builds", build)
    status = cluster.wait_build("unknown-host", "False", timeout=30)
    assert status["reason"] == "RemoteRepositoryUnreachable"
    assert "lookup git.nonexistent.invalid: no such host" in status["message"]


# --- item 5: one timeout decision ------------------------------------------------------------


def test_timeout_0s_is_no_timeout_for_the_pod_and_for_the_status(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, {
        "step-build-and-push": Outcome(duration=1.5),
        "step-results": Outcome(message=SUCCESSFUL_RESULTS),
    })  # fmt: skip
    _registered(cluster)
    name = cluster.create("buildruns", buildrun(timeout="0s"))["metadata"]["name"]
    cluster.wait_buildrun(name, "True", "Succeeded", timeout=30)
    pod = cluster.pods()[0]
    assert "activeDeadlineSeconds" not in pod["spec"]


# --- item 6: status.buildSpec before the checks that can fail -------------------------------


def test_a_run_that_fails_before_its_pod_still_records_its_build_spec(cluster: Cluster) -> None:
    _registered(cluster)
    run = buildrun(serviceAccount="no-such-account")
    name = cluster.create("buildruns", run)["metadata"]["name"]
    done = cluster.wait_buildrun(name, "False", "ServiceAccountNotFound")
    assert done["status"]["buildSpec"]["strategy"]["name"] == "kaniko"
    assert done["status"]["buildSpec"]["output"]["pushSecret"] == "push-secret"


# --- item 7: upstream's field managers --------------------------------------------------------


def _managers(body: Body) -> set[str]:
    return {entry["manager"] for entry in body["metadata"].get("managedFields") or []}


def test_writes_carry_upstreams_field_managers(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    _registered(cluster)
    name = cluster.create("buildruns", buildrun(serviceAccount=".generate"))["metadata"]["name"]
    # The generated ServiceAccount is deleted when the run ends: look while it runs.
    account = wait_until(
        lambda: _read_account(cluster, name), timeout=30, description="generated account"
    )
    cluster.wait_buildrun(name, "True", "Succeeded")
    assert "shipwright-build-controller" in _managers(cluster.get("builds", "kaniko-nodejs-build"))
    assert "shipwright-buildrun-controller" in _managers(cluster.get("buildruns", name))
    pod = cluster.pods()[0]
    assert "shipwright-buildrun-controller" in _managers(pod)
    assert "shipwright-buildrun-controller" in _managers(account)
    everyone = _managers(cluster.get("builds", "kaniko-nodejs-build")) | _managers(
        cluster.get("buildruns", name)
    ) | _managers(pod)  # fmt: skip
    assert "buildwright" not in everyone


def _read_account(cluster: Cluster, name: str) -> Body | None:
    try:
        response = cluster.core.read_namespaced_service_account(
            name, cluster.namespace, _preload_content=False
        )
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    account: Body = json.loads(response.data)
    return account


# --- item 8: hostile input ---------------------------------------------------------------------


def _strategy(cluster: Cluster, name: str, *steps: dict[str, Any]) -> None:
    cluster.create("buildstrategies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildStrategy",
        "metadata": {"name": name},
        "spec": {"steps": list(steps)},
    })  # fmt: skip


def _step(name: str = "build", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["true"], **fields}


def _run_with_strategy(cluster: Cluster, strategy: str, **run: Any) -> str:
    build = book_build(strategy)
    build["spec"]["strategy"] = {"name": strategy, "kind": "BuildStrategy"}
    cluster.create("builds", build)
    cluster.wait_build(strategy, "True")
    return str(cluster.create("buildruns", buildrun(strategy, **run))["metadata"]["name"])


def test_a_pod_the_apiserver_refuses_ends_the_run_with_its_words(cluster: Cluster) -> None:
    """Found by nothing before the Pod is sent: a string runAsUser, a missing RuntimeClass."""
    cluster.push_secret()
    _strategy(cluster, "string-uid", _step(securityContext={"runAsUser": "root"}))
    name = _run_with_strategy(cluster, "string-uid")
    cluster.wait_buildrun(name, "False", "PodCreationFailed", timeout=15)
    condition = cluster.condition(name)
    assert condition is not None
    assert f'failed to create the build Pod "{name}-pod"' in condition["message"]
    assert "runAsUser" in condition["message"]

    _strategy(cluster, "plain", _step())
    build = book_build("plain")
    build["spec"]["strategy"] = {"name": "plain", "kind": "BuildStrategy"}
    build["spec"]["runtimeClassName"] = "no-such-class"
    cluster.create("builds", build)
    cluster.wait_build("plain", "True")
    name = cluster.create("buildruns", buildrun("plain"))["metadata"]["name"]
    cluster.wait_buildrun(name, "False", "PodCreationFailed", timeout=15)
    condition = cluster.condition(name)
    assert condition is not None and "no-such-class" in condition["message"]
    assert cluster.pods() == []


def test_hostile_strategies_end_with_a_named_reason_before_the_pod(cluster: Cluster) -> None:
    cluster.push_secret()
    cases = {
        "own-step": _step("results"),
        "bad-step-name": _step("Build_Step"),
        "empty-image": _step(image=""),
        "bad-env": _step(env=[{"name": "A=B", "value": "1"}]),
        "bad-quantity": _step(resources={"limits": {"memory": "1gb"}}),
    }
    runs = {}
    for strategy, step in cases.items():
        _strategy(cluster, strategy, step)
        runs[strategy] = _run_with_strategy(cluster, strategy)
    for strategy, name in runs.items():
        cluster.wait_buildrun(name, "False", "TaskRunGenerationFailed", timeout=15)
        condition = cluster.condition(name)
        assert condition is not None, strategy
        assert condition["message"].startswith("the build Pod would be invalid: "), strategy
    assert cluster.pods() == []


def test_a_timeout_beyond_a_pod_deadline_still_runs(cluster: Cluster) -> None:
    cluster.kubelet.script(cluster.namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    _registered(cluster)
    name = cluster.create("buildruns", buildrun(timeout="1000000h"))["metadata"]["name"]
    cluster.wait_buildrun(name, "True", "Succeeded", timeout=30)
    assert cluster.pods()[0]["spec"]["activeDeadlineSeconds"] == 2**31 - 1


def test_a_megabyte_parameter_value_does_not_stop_the_status(cluster: Cluster) -> None:
    """The value goes into the Pod whole; status.buildSpec keeps a cut copy that says so.
    Before, the status write was larger than etcd takes and the run never learned its end."""
    cluster.kubelet.script(cluster.namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    _registered(cluster)
    value = "v" * 1_000_000
    run = buildrun(paramValues=[{"name": "dockerfile", "value": value}])
    name = cluster.create("buildruns", run)["metadata"]["name"]
    done = cluster.wait_buildrun(name, "True", "Succeeded", timeout=45)
    kept = {p["name"]: p for p in done["status"]["buildSpec"]["paramValues"]}["dockerfile"]
    assert kept["value"].startswith("v" * 64)
    assert "characters cut from the status copy" in kept["value"]
    assert len(json.dumps(done["status"]["buildSpec"])) < 70_000


def test_an_empty_strategy_name_is_a_named_reason(cluster: Cluster) -> None:
    cluster.push_secret()
    build = book_build("nameless")
    build["spec"]["strategy"] = {"name": "", "kind": "BuildStrategy"}
    cluster.create("builds", build)
    status = cluster.wait_build("nameless", "False", timeout=15)
    assert status["reason"] == "BuildStrategyNotFound"
    assert "spec.strategy.name is empty" in status["message"]
    name = cluster.create("buildruns", buildrun("nameless"))["metadata"]["name"]
    cluster.wait_buildrun(name, "False", "BuildRegistrationFailed", timeout=15)

    embedded = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildRun",
        "metadata": {"name": "embedded-nameless"},
        "spec": {"build": {"spec": {**build["spec"]}}},
    }  # fmt: skip
    cluster.create("buildruns", embedded)
    cluster.wait_buildrun("embedded-nameless", "False", "BuildRegistrationFailed", timeout=15)
    assert "KeyError" not in cluster.operator.log_tail(300)


def _registered(cluster: Cluster) -> None:
    cluster.push_secret()
    cluster.create("builds", book_build())
    cluster.wait_build("kaniko-nodejs-build", "True")


def test_a_pod_larger_than_etcd_stores_ends_the_run(cluster: Cluster) -> None:
    """The API server answers 500 with etcd's "request is too large": not worth a retry."""
    cluster.push_secret()
    twice = [_step("one", args=["$(params.p)"]), _step("two", args=["$(params.p)"])]
    cluster.create("buildstrategies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildStrategy",
        "metadata": {"name": "twice"},
        "spec": {"parameters": [{"name": "p", "description": "d", "default": ""}],
                 "steps": twice},
    })  # fmt: skip
    name = _run_with_strategy(
        cluster, "twice", paramValues=[{"name": "p", "value": "w" * 900_000}]
    )
    cluster.wait_buildrun(name, "False", "PodCreationFailed", timeout=20)
    condition = cluster.condition(name)
    assert condition is not None and "too large" in condition["message"]


def test_a_run_past_its_timeout_before_its_pod_ends_without_one(cluster: Cluster) -> None:
    """The timeout counts from the BuildRun's creation also while there is no Pod (a used-up
    quota, an operator that was down): past it, no Pod is created and the run times out."""
    _registered(cluster)
    cluster.operator.kill()
    try:
        created = time.time()
        name = cluster.create("buildruns", buildrun(timeout="2s"))["metadata"]["name"]
        wait_until(lambda: time.time() > created + 3, timeout=10, description="the timeout")
    finally:
        cluster.operator.start()
    cluster.wait_buildrun(name, "False", "BuildRunTimeout", timeout=20)
    condition = cluster.condition(name)
    assert condition is not None
    assert condition["message"] == f"BuildRun {name} failed to finish within 2s"
    assert cluster.pods() == []
    assert f"created Pod {name}-pod" not in cluster.operator.log_tail(500)

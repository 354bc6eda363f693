"""What the operator keeps of watched objects: enough for every decision, nothing more."""

from __future__ import annotations

import copy
import json
from typing import Any

from buildwright.core.cached import build_pod_for_status, secret_summary, without_bookkeeping
from buildwright.core.status import status_from_pod
from tests.unit.test_status import (
    DIGEST,
    NOW,
    buildrun,
    make_pod,
    running,
    succeeded_pod,
    terminated,
    waiting,
)

MANAGED = [{"manager": "kubelet", "operation": "Update", "fieldsV1": {"f:status": {}}}]


def with_managed_fields(body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["metadata"]["managedFields"] = MANAGED
    return body


def test_bookkeeping_is_dropped_and_the_rest_kept_without_touching_the_original() -> None:
    pod = with_managed_fields(make_pod())
    before = copy.deepcopy(pod)
    kept = without_bookkeeping(pod)
    assert "managedFields" not in kept["metadata"]
    assert {**kept["metadata"], "managedFields": MANAGED} == pod["metadata"]
    assert kept["spec"] == pod["spec"] and kept["status"] == pod["status"]
    assert pod == before


def test_a_body_without_bookkeeping_is_kept_as_it_is() -> None:
    pod = make_pod()
    assert without_bookkeeping(pod) == pod


def test_the_slim_pod_gives_the_same_status_as_the_whole_pod() -> None:
    """Every state status_from_pod tells apart must come out the same from the slim copy."""
    run = buildrun()
    pods = [
        make_pod(started=False),
        make_pod({"step-source-default": running(4)}),
        make_pod({"step-source-default": terminated(0, 4, 10), "step-build-and-push": running(11)}),
        make_pod(
            {"step-source-default": terminated(0, 4, 10),
             "step-build-and-push": terminated(1, 11, 20, message="boom")},
            phase="Failed",
        ),
        make_pod({"step-source-default": waiting("ImagePullBackOff", "no such image")}),
        succeeded_pod({"shp-image-digest": DIGEST, "shp-source-default-commit-sha": "ab" * 20}),
    ]  # fmt: skip
    for pod in pods:
        whole = with_managed_fields(pod)
        slim = build_pod_for_status(whole)
        assert status_from_pod(run, slim, NOW) == status_from_pod(run, whole, NOW)
        assert len(json.dumps(slim)) < len(json.dumps(whole))


def test_the_slim_pod_keeps_container_names_in_order_and_nothing_else_of_the_spec() -> None:
    pod = with_managed_fields(make_pod({"step-source-default": running(4)}))
    slim = build_pod_for_status(pod)
    assert slim["spec"] == {
        "initContainers": [{"name": c["name"]} for c in pod["spec"]["initContainers"]],
        "containers": [{"name": c["name"]} for c in pod["spec"]["containers"]],
    }
    assert slim["status"]["phase"] == pod["status"]["phase"]
    assert [(c["name"], c["state"]) for c in slim["status"]["initContainerStatuses"]] == [
        (c["name"], c["state"]) for c in pod["status"]["initContainerStatuses"]
    ]
    assert "image" not in json.dumps(slim["status"]) and "hostIP" not in slim["status"]


def test_a_secret_is_kept_without_its_data() -> None:
    secret = {
        "metadata": {"name": "push", "namespace": "ns", "uid": "s-1", "resourceVersion": "7",
                     "annotations": {"note": "x"}, "managedFields": MANAGED},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": "c2VjcmV0"},
        "stringData": {"password": "hunter2"},
    }  # fmt: skip
    kept = secret_summary(secret)
    assert kept == {
        "metadata": {"name": "push", "namespace": "ns", "uid": "s-1", "resourceVersion": "7"},
    }
    assert "c2VjcmV0" not in json.dumps(kept) and "hunter2" not in json.dumps(kept)

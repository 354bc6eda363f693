"""No tenant reaches past its namespace (issue 15), tried against the real apiserver.

A tenant in namespace `attacker` writes names meant to walk out of it into every field that
names another object. Each ends in a named reason, and the apiserver's audit log shows that
the operator asked for nothing in the victim's namespace.
"""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from buildwright_localcluster.controlplane import ControlPlane
from buildwright_localcluster.wait import wait_until
from tests.integration.harness import GROUP, VERSION, Cluster, book_build, buildrun

SECRET_DATA = "tenancy-" + uuid.uuid4().hex  # must never show up anywhere


@pytest.fixture
def victim(core_v1: client.CoreV1Api, custom_objects: client.CustomObjectsApi) -> Iterator[str]:
    """Namespace `victim` (the issue's names use it verbatim; one test per session uses it),
    holding a strategy with an env value and a Secret worth stealing."""
    name = "victim"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core_v1.create_namespaced_secret(name, client.V1Secret(
        metadata=client.V1ObjectMeta(name="topsecret"), string_data={"token": SECRET_DATA},
    ))  # fmt: skip
    custom_objects.create_namespaced_custom_object(GROUP, VERSION, name, "buildstrategies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildStrategy",
        "metadata": {"name": "vstrat"},
        "spec": {"steps": [{
            "name": "build", "image": "busybox:1.36", "command": ["true"],
            "env": [{"name": "VICTIM_TOKEN", "value": SECRET_DATA}],
        }]},
    })  # fmt: skip
    try:
        yield name
    finally:
        core_v1.delete_namespace(name)


def operator_reads(control_plane: ControlPlane) -> list[dict[str, Any]]:
    """The read requests the operator (its own client or kopf's) made, from the audit log."""
    events = []
    for line in control_plane.audit_log_path.read_text().splitlines():
        event = json.loads(line)
        if str(event.get("userAgent", "")).startswith(("buildwright", "kopf")):
            events.append(event)
    return events


def strategy(kind: str, name: str) -> dict[str, str]:
    return {"kind": kind, "name": name}


def test_traversal_names_end_in_named_reasons_and_read_nothing_outside(
    cluster: Cluster, victim: str, control_plane: ControlPlane
) -> None:
    ns = cluster.namespace
    cluster.push_secret()
    vstrat = f"../../{victim}/buildstrategies/vstrat"
    stolen = f"../../{victim}/secrets/topsecret"
    env_ref = {"secretKeyRef": {"name": f"../{victim}", "key": "token"}}
    topsecret = f"../../../../api/v1/namespaces/{victim}/secrets/topsecret"

    cases: dict[str, tuple[dict[str, Any], str, str]] = {
        "ns-strategy": (
            {"strategy": strategy("BuildStrategy", vstrat)},
            "BuildStrategyNotFound", f"buildStrategy {vstrat} does not exist in namespace {ns}",
        ),
        "cluster-strategy": (
            {"strategy": strategy("ClusterBuildStrategy", topsecret)},
            "ClusterBuildStrategyNotFound", f"clusterBuildStrategy {topsecret} does not exist",
        ),
        "push-secret": (
            {"output": {"image": "registry.example.com/x", "pushSecret": stolen}},
            "SpecOutputSecretRefNotFound", f"referenced secret {stolen} not found",
        ),
        "percent": (
            {"strategy": strategy("ClusterBuildStrategy", "kaniko%2F..%2F50%")},
            "ClusterBuildStrategyNotFound", "clusterBuildStrategy kaniko%2F..%2F50% does not exist",
        ),
        "env-secret": (
            {"env": [{"name": "T", "valueFrom": env_ref}]},
            "ReferenceNameInvalid",
            f'spec.env[0].valueFrom.secretKeyRef.name: invalid name "../{victim}": ',
        ),
    }  # fmt: skip
    for name, (spec, _, _) in cases.items():
        body = book_build(name, **spec)
        cluster.create("builds", body)
    for name, (_, reason, message) in cases.items():
        status = cluster.wait_build(name, "False")
        assert status["reason"] == reason and status["message"].startswith(message), name

    # BuildRuns: a Build name, a strategy of an embedded spec and a service account that walk.
    cluster.create("builds", book_build("good"))
    cluster.wait_build("good", "True")
    account = f"../../{victim}/serviceaccounts/default"
    runs = {
        "build-name": (buildrun(f"../../{victim}/builds/x"), "BuildNotFound",
                       f'build.shipwright.io "../../{victim}/builds/x" not found'),
        "embedded-strategy": (
            {**buildrun(), "spec": {"build": {"spec": book_build(
                strategy={"kind": "BuildStrategy", "name": vstrat})["spec"]}}},
            "BuildRegistrationFailed", f"buildStrategy {vstrat} does not exist in namespace {ns}",
        ),
        "service-account": (buildrun("good", serviceAccount=account), "ServiceAccountNotFound",
                            f"service account {account} not found"),
        "percent-build": (buildrun("50%25"), "BuildNotFound",
                          'build.shipwright.io "50%25" not found'),
    }  # fmt: skip
    created = {case: cluster.create("buildruns", body)["metadata"]["name"]
               for case, (body, _, _) in runs.items()}  # fmt: skip
    for case, (_, reason, message) in runs.items():
        cluster.wait_buildrun(created[case], "False", reason)
        condition = cluster.condition(created[case])
        assert condition is not None and condition["message"] == message, case
    assert cluster.pods() == []

    # Nothing of the victim was asked for, and nothing of its data reached the operator's log.
    reads = operator_reads(control_plane)
    assert reads, "the audit log recorded no request of the operator"
    outside = [e["requestURI"] for e in reads if victim in e["requestURI"]]
    assert outside == []
    invalid = [e["requestURI"] for e in reads if e.get("responseStatus", {}).get("code") == 400]
    assert invalid == []
    assert SECRET_DATA not in cluster.operator.log_path.read_text(errors="replace")


def test_a_percent_name_is_answered_at_once_not_retried(cluster: Cluster) -> None:
    """A name with `%` used to reach the API, be answered 400 and be retried forever."""
    cluster.push_secret()
    cluster.create("builds", book_build("pct", strategy=strategy("BuildStrategy", "100%")))
    status = cluster.wait_build("pct", "False")
    assert status["reason"] == "BuildStrategyNotFound"
    log = cluster.operator.log_path.read_text(errors="replace")
    assert f"Build {cluster.namespace}/pct: " not in log  # no "...; retrying" line


def test_own_namespace_lookups_still_work(cluster: Cluster) -> None:
    """The same fields with ordinary names find the tenant's own objects."""
    cluster.create("buildstrategies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildStrategy",
        "metadata": {"name": "mine"},
        "spec": {"steps": [{"name": "build", "image": "busybox:1.36", "command": ["true"]}]},
    })  # fmt: skip
    cluster.push_secret()
    cluster.create("builds", book_build("own", strategy=strategy("BuildStrategy", "mine")))
    cluster.wait_build("own", "True")


def test_a_build_cannot_mount_the_node_root(cluster: Cluster) -> None:
    """ko's overridable `gocache` volume replaced by `hostPath: /` (issue 15)."""
    cluster.push_secret()
    ko = {"name": "ko", "kind": "ClusterBuildStrategy"}
    root = [{"name": "gocache", "hostPath": {"path": "/"}}]
    cluster.create("builds", book_build("root", strategy=ko, volumes=root))
    status = cluster.wait_build("root", "False")
    assert status["reason"] == "VolumeSourceNotAllowed"
    assert status["message"].startswith('Volume "gocache" uses hostPath, which')

    cluster.create("builds", book_build("plain-ko", strategy=ko))
    cluster.wait_build("plain-ko", "True")
    run = cluster.create("buildruns", buildrun("plain-ko", volumes=root))["metadata"]["name"]
    cluster.wait_buildrun(run, "False", "VolumeSourceNotAllowed")
    assert cluster.pods() == []


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A 'Git server' that answers 500 with a body worth leaking and records what it got."""

    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        body = f"internal detail {LEAK}".encode()
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


LEAK = "leak-" + uuid.uuid4().hex


def test_the_repository_probe_asks_only_for_the_builds_own_url(cluster: Cluster) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        cluster.push_secret()
        build = book_build("probed")
        build["metadata"]["annotations"] = {"build.shipwright.io/verify.repository": "true"}
        build["spec"]["source"]["git"]["url"] = (
            f"http://user:hunter2@127.0.0.1:{port}/org/repo?token=x#/../../metadata"
        )
        cluster.create("builds", build)
        status = cluster.wait_build("probed", "False")
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert status["reason"] == "RemoteRepositoryUnreachable"
    assert status["message"] == "remote answered HTTP 500"
    assert LEAK not in json.dumps(cluster.get("builds", "probed"))
    assert _Recorder.seen and set(_Recorder.seen) == {
        ("/org/repo/info/refs?service=git-upload-pack", None)
    }


def _conditions(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    return list((cluster.get("buildstrategies", name).get("status") or {}).get("conditions") or [])


def test_a_strategy_that_pastes_parameters_into_a_script_is_warned(cluster: Cluster) -> None:
    unsafe = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildStrategy",
        "metadata": {"name": "unsafe"},
        "spec": {
            "parameters": [{"name": "tag", "description": "t", "default": "latest"}],
            "steps": [{"name": "build", "image": "busybox:1.36", "command": ["sh", "-c"],
                       "args": ["echo building $(params.tag)"]}],
        },
    }  # fmt: skip
    cluster.create("buildstrategies", unsafe)
    [condition] = wait_until(lambda: _conditions(cluster, "unsafe"), timeout=30,
                             description="the strategy's warning condition")  # fmt: skip
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "ParametersPassedSafely", "False", "ParameterInShellScript"
    )
    assert "$(params.tag) in step build" in condition["message"]
    assert 'value: "$(params.tag)"' in condition["message"]

    def warnings() -> list[dict[str, Any]]:
        events = json.loads(cluster.kubectl("get", "events", "-o", "json", "--field-selector",
                                            "involvedObject.name=unsafe"))["items"]  # fmt: skip
        return [e for e in events if e["reason"] == "ParameterInShellScript"]

    [event] = wait_until(warnings, timeout=30, description="the Warning Event")
    assert event["type"] == "Warning" and event["message"] == condition["message"]

    # Another change that leaves the script as it is: no second Event. Then the fix.
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, "buildstrategies", "unsafe",
        {"metadata": {"labels": {"touched": "yes"}}},
    )  # fmt: skip
    fixed = {"spec": {"steps": [{"name": "build", "image": "busybox:1.36", "command": ["sh", "-c"],
              "args": ['echo building "$TAG"'],
              "env": [{"name": "TAG", "value": "$(params.tag)"}]}]}}  # fmt: skip
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, "buildstrategies", "unsafe", fixed
    )
    wait_until(lambda: not _conditions(cluster, "unsafe"), timeout=30,
               description="the warning condition removed")  # fmt: skip
    assert len(warnings()) == 1

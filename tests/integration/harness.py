"""Verbs for integration tests that drive the operator: create objects, wait for states."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from kubernetes import client

from buildwright_localcluster.kubelet import KubeletStandIn
from buildwright_localcluster.wait import wait_until
from tests.integration.operator_process import OperatorProcess

GROUP, VERSION = "shipwright.io", "v1beta1"
DIGEST = "sha256:" + "ab" * 32
BOOK_IMAGE = "quay.io/gitops-cookbook/sample-nodejs:latest"

Body = dict[str, Any]


def wait_for(predicate: Callable[[], Any], timeout: float, description: str,
             details: Callable[[], str]) -> Any:  # fmt: skip
    """wait_until, plus what the operator logged when it times out."""
    try:
        return wait_until(predicate, timeout=timeout, description=description)
    except TimeoutError as error:
        raise TimeoutError(f"{error}\n{details()}") from None


class Cluster:
    """Small verbs for the tests: create objects, read them, wait for states."""

    def __init__(
        self, namespace: str, custom: client.CustomObjectsApi, core: client.CoreV1Api,
        kubelet: KubeletStandIn, operator: OperatorProcess,
    ) -> None:  # fmt: skip
        self.namespace = namespace
        self.custom = custom
        self.core = core
        self.kubelet = kubelet
        self.operator = operator

    def create(self, plural: str, body: Body) -> Body:
        result: Body = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, body
        )
        return result

    def get(self, plural: str, name: str) -> Body:
        result: Body = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name
        )
        return result

    def push_secret(self, name: str = "push-secret") -> None:
        config = {"auths": {"quay.io": {"auth": "dXNlcjpwYXNz"}}}
        self.core.create_namespaced_secret(self.namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name),
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": json.dumps(config)},
        ))  # fmt: skip

    def wait_build(self, name: str, registered: str, timeout: float = 30) -> Body:
        def check() -> Body | None:
            status = self.get("builds", name).get("status") or {}
            return status if status.get("registered") == registered else None

        return wait_for(check, timeout, f"Build {name} registered={registered}", self.diagnostics)

    def condition(self, name: str) -> Body | None:
        status = self.get("buildruns", name).get("status") or {}
        for condition in status.get("conditions") or []:
            if condition["type"] == "Succeeded":
                return dict(condition)
        return None

    def wait_buildrun(self, name: str, status: str, reason: str, timeout: float = 30) -> Body:
        def check() -> Body | None:
            condition = self.condition(name)
            if condition and condition["status"] == status and condition["reason"] == reason:
                return self.get("buildruns", name)
            return None

        return wait_for(
            check, timeout, f"BuildRun {name} {status}/{reason}",
            lambda: f"condition: {self.condition(name)}\n{self.diagnostics()}",
        )  # fmt: skip

    def pods(self) -> list[Body]:
        listing = self.core.list_namespaced_pod(self.namespace, _preload_content=False)
        items: list[Body] = json.loads(listing.data)["items"]
        return items

    def diagnostics(self) -> str:
        return f"operator log tail:\n{self.operator.log_tail(30)}"

    def kubectl(self, *args: str) -> str:
        return subprocess.run(
            ["kubectl", "-n", self.namespace, *args], check=True, capture_output=True,
            text=True, timeout=30,
        ).stdout  # fmt: skip


def book_build(name: str = "kaniko-nodejs-build", **spec: Any) -> Body:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Build",
        "metadata": {"name": name},
        "spec": {
            "source": {"type": "Git", "git": {"url": "https://github.com/shipwright-io/sample-nodejs"},
                       "contextDir": "docker-build"},
            "strategy": {"name": "kaniko", "kind": "ClusterBuildStrategy"},
            "output": {"image": BOOK_IMAGE, "pushSecret": "push-secret"},
            **spec,
        },
    }  # fmt: skip


def buildrun(build: str = "kaniko-nodejs-build", *, generate: bool = True, **spec: Any) -> Body:
    metadata = {"generateName": "kaniko-nodejs-buildrun-"} if generate else {"name": build + "-run"}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BuildRun",
        "metadata": metadata,
        "spec": {"build": {"name": build}, **spec},
    }


def results_message(**results: str) -> str:
    return json.dumps([{"key": k, "value": v, "type": 1} for k, v in sorted(results.items())])


SUCCESSFUL_RESULTS = results_message(**{
    "shp-image-digest": DIGEST,
    "shp-image-size": "4242",
    "shp-source-default-commit-sha": "0123456789abcdef0123456789abcdef01234567",
    "shp-source-default-commit-author": "Jane Doe",
    "shp-source-default-branch-name": "main",
    "shp-source-default-source-timestamp": "1700000000",
})  # fmt: skip

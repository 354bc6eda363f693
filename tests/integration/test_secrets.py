"""Secrets never enter the operator's memory or log (issue 15), checked in the real process.

The operator under test is a child of this test process, so its whole address space can be
read from /proc/<pid>/mem: every readable mapping is searched for the Secrets' data, raw and
base64-encoded (as the API would send it). Freed buffers keep their bytes until reused, so a
Secret received in full — even once, even if dropped at once — would very likely still be
found. As a control, the same scan must find a marker that the operator does hold: an
annotation of a Build it stores.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path

from kubernetes import client

from buildwright_localcluster.kubelet import Outcome
from tests.integration.harness import SUCCESSFUL_RESULTS, Cluster, book_build, buildrun


def memory_contains(pid: int, needles: dict[str, bytes]) -> set[str]:
    """Which of `needles` occur anywhere in the readable memory of process `pid`."""
    found: set[str] = set()
    overlap = max(len(n) for n in needles.values())
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            match = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            if not match or not match.group(3).startswith("r") or "[vvar" in line:
                continue
            start, end = int(match.group(1), 16), int(match.group(2), 16)
            tail = b""
            for offset in range(start, end, 1 << 22):
                try:
                    mem.seek(offset)
                    chunk = tail + mem.read(min(1 << 22, end - offset))
                except OSError:
                    break
                for name, needle in needles.items():
                    if needle in chunk:
                        found.add(name)
                tail = chunk[-overlap:]
    return found


def forms(value: str) -> list[bytes]:
    """How a Secret value could sit in memory: as given, or base64 as the API serves it."""
    return [value.encode(), base64.b64encode(value.encode())]


def test_secret_data_never_enters_the_operator(cluster: Cluster) -> None:
    marker = uuid.uuid4().hex
    push_password = f"push-{marker}"
    docker_config = json.dumps({"auths": {"quay.io": {"auth": push_password}}})
    other_value = f"other-{marker}"
    cluster.core.create_namespaced_secret(cluster.namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="push-secret"),
        type="kubernetes.io/dockerconfigjson",
        string_data={".dockerconfigjson": docker_config},
    ))  # fmt: skip
    cluster.core.create_namespaced_secret(cluster.namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="unrelated"), string_data={"token": other_value},
    ))  # fmt: skip
    control = f"control-{marker}"
    build = book_build()
    build["metadata"]["annotations"] = {"example.com/note": control}
    cluster.kubelet.script(cluster.namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    cluster.create("builds", build)
    cluster.wait_build("kaniko-nodejs-build", "True")  # the push Secret was found
    name = cluster.create("buildruns", buildrun())["metadata"]["name"]
    cluster.wait_buildrun(name, "True", "Succeeded")
    [pod] = cluster.pods()
    assert "push-secret" in json.dumps(pod["spec"]["volumes"])  # the Secret is used

    needles = {"control": control.encode()}
    for label, value in (("docker config", docker_config), ("push password", push_password),
                         ("unrelated", other_value)):  # fmt: skip
        for index, form in enumerate(forms(value)):
            needles[f"{label} #{index}"] = form
    assert cluster.operator.process is not None
    found = memory_contains(cluster.operator.process.pid, needles)
    assert "control" in found, "the scan did not find what the operator holds: it proves nothing"
    assert sorted(found - {"control"}) == []
    log = cluster.operator.log_path.read_bytes()
    assert [label for label, needle in needles.items() if needle in log] == []


def test_a_docker_config_linked_to_the_service_account_is_mounted(cluster: Cluster) -> None:
    """Without a pushSecret, the first docker-config Secret of the account is mounted: its
    type comes from the type-selected metadata watch, not from reading the Secret."""
    cluster.core.create_namespaced_secret(cluster.namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="opaque-first"), string_data={"a": "b"},
    ))  # fmt: skip
    cluster.push_secret("registry-creds")
    cluster.core.create_namespaced_service_account(cluster.namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="builder"),
        secrets=[client.V1ObjectReference(name="opaque-first"),
                 client.V1ObjectReference(name="registry-creds")],
    ))  # fmt: skip
    cluster.kubelet.script(cluster.namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    cluster.create("builds", book_build(output={"image": "quay.io/x/y:latest"}))
    cluster.wait_build("kaniko-nodejs-build", "True")
    name = cluster.create("buildruns", buildrun(serviceAccount="builder"))["metadata"]["name"]
    cluster.wait_buildrun(name, "True", "Succeeded")
    [pod] = cluster.pods()
    mounted = {v.get("secret", {}).get("secretName") for v in pod["spec"]["volumes"]}
    assert "registry-creds" in mounted and "opaque-first" not in mounted

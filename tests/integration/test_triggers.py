"""spec.trigger against the real apiserver: signed deliveries make exactly one BuildRun each,
across redeliveries and operator restarts; refusals make none; image updates in a real registry
start one BuildRun.

The module runs its own operator (the session's is stopped meanwhile) with the receiver on a
free loopback port over HTTPS (its self-signed certificate), a short poll interval and the
test registry marked insecure (plain HTTP on loopback).
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from buildwright.core import triggers as t
from buildwright.steps import registry as oci
from buildwright_localcluster.kubelet import KubeletStandIn
from tests.integration.harness import GROUP, VERSION, Cluster, wait_for
from tests.integration.operator_process import OperatorProcess, _free_port, in_place_of
from tests.registry import (
    DOCKER_REGISTRY,
    HTPASSWD,
    REGISTRY_PASSWORD,
    REGISTRY_USERNAME,
    LocalRegistry,
)

REPO_URL = "https://github.com/example/app"
SECRET = b"webhook-secret-for-tests"
SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"
POLL_SECONDS = 0.5


@pytest.fixture(scope="module")
def image_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    if DOCKER_REGISTRY is None or HTPASSWD is None:
        pytest.skip("needs docker-registry and htpasswd (apt-get install docker-registry "
                    "apache2-utils)")  # fmt: skip
    with LocalRegistry(tmp_path_factory.mktemp("trigger-registry"), REGISTRY_USERNAME,
                       REGISTRY_PASSWORD) as server:  # fmt: skip
        yield server


@contextmanager
def operator_with_triggers(session: OperatorProcess, log_dir: Path, registry_host: str,
                           poll_seconds: float, **extra: str,
                           ) -> Iterator[tuple[OperatorProcess, int]]:  # fmt: skip
    """The operator, in place of the session's, with its receiver on a known loopback port,
    a short poll interval and `registry_host` polled over plain HTTP: (process, port)."""
    port = _free_port()
    settings = {
        "BUILDWRIGHT_TRIGGER_PORT": str(port),
        "BUILDWRIGHT_TRIGGER_POLL_INTERVAL": str(poll_seconds),
        "BUILDWRIGHT_TRIGGER_INSECURE_REGISTRIES": registry_host,
        **extra,
    }
    with in_place_of(session, log_dir, settings) as process:
        yield process, port


@pytest.fixture(scope="module")
def trigger_operator(
    operator: OperatorProcess, image_registry: LocalRegistry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[OperatorProcess, int]]:  # fmt: skip
    with operator_with_triggers(
        operator, tmp_path_factory.mktemp("trigger-operator"), image_registry.host,
        POLL_SECONDS, BUILDWRIGHT_TRIGGER_BODY_LIMIT="65536",
    ) as running:  # fmt: skip
        yield running


@pytest.fixture
def tc(trigger_operator: tuple[OperatorProcess, int], kubelet: KubeletStandIn, namespace: str,
       custom_objects: client.CustomObjectsApi, core_v1: client.CoreV1Api) -> TriggerCluster:
    process, port = trigger_operator
    return TriggerCluster(namespace, custom_objects, core_v1, kubelet, process, port)


class TriggerCluster(Cluster):
    def __init__(self, namespace: str, custom: client.CustomObjectsApi, core: client.CoreV1Api,
                 kubelet: KubeletStandIn, operator: OperatorProcess, port: int) -> None:
        super().__init__(namespace, custom, core, kubelet, operator)
        self.port = port

    def deliver(self, provider: str, headers: dict[str, str], body: bytes,
                namespace: str | None = None) -> tuple[int, dict[str, Any]]:  # fmt: skip
        ns = self.namespace if namespace is None else namespace
        path = f"/hooks/{ns}/{provider}" if ns else f"/hooks/{provider}"
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.port}{path}", data=body, method="POST",
            headers={"Content-Type": "application/json", **headers},
        )  # fmt: skip
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the receiver's self-signed certificate
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def webhook_secret(self, name: str = "hook", key: str = "github-token",
                       value: bytes = SECRET) -> None:  # fmt: skip
        self.core.create_namespaced_secret(self.namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name),
            data={key: base64.b64encode(value).decode()},
        ))  # fmt: skip

    def runs_of(self, build: str) -> list[dict[str, Any]]:
        listing = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "buildruns",
            label_selector=f"build.shipwright.io/name={build}",
        )  # fmt: skip
        items: list[dict[str, Any]] = listing["items"]
        return items

    def events_of(self, name: str, reason: str) -> list[Any]:
        events = self.core.list_namespaced_event(self.namespace).items
        return [e for e in events if e.involved_object.name == name and e.reason == reason]


def git_build(name: str = "app", url: str = REPO_URL, secret: str | None = "hook",
              branches: list[str] | None = None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    trigger: dict[str, Any] = {"when": [
        {"name": "push", "type": "GitHub",
         "github": {"events": ["Push"], "branches": branches or ["main", "release-*"]}},
    ]}  # fmt: skip
    if secret:
        trigger["triggerSecret"] = secret
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Build", "metadata": {"name": name},
        "spec": {
            "source": {"type": "Git", "git": {"url": url, "revision": "main"}},
            "strategy": {"name": "buildah", "kind": "ClusterBuildStrategy"},
            "output": {"image": "registry.test/app:latest"},
            "trigger": trigger, **extra,
        },
    }  # fmt: skip


def github_push(branch: str = "main", after: str = SHA, url: str = REPO_URL + ".git") -> bytes:
    return json.dumps({"ref": f"refs/heads/{branch}", "after": after,
                       "repository": {"clone_url": url, "html_url": url}}).encode()  # fmt: skip


def signed(body: bytes, delivery: str, secret: bytes = SECRET) -> dict[str, str]:
    return {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": t.hmac_signature(secret, body)}  # fmt: skip


def test_a_signed_push_makes_one_buildrun_of_the_pushed_commit_and_redeliveries_none(
    tc: TriggerCluster, trigger_operator: tuple[OperatorProcess, int],
) -> None:  # fmt: skip
    tc.webhook_secret()
    tc.create("builds", git_build())
    tc.wait_build("app", "True")
    body, delivery = github_push(), str(uuid.uuid4())

    status, answer = tc.deliver("github", signed(body, delivery), body)
    assert status == 202, answer
    assert len(answer["buildRuns"]) == 1 and answer["duplicates"] == []
    name = answer["buildRuns"][0]
    (run,) = tc.runs_of("app")
    assert run["metadata"]["name"] == name
    assert run["spec"] == {"build": {"name": "app"}}
    assert run["metadata"]["labels"][t.LABEL_KIND] == "github"
    assert run["metadata"]["labels"][t.LABEL_DELIVERY] == delivery
    assert run["metadata"]["annotations"][t.ANNOTATION_TRIGGER] == "push"
    assert run["metadata"]["annotations"][t.ANNOTATION_REVISION] == SHA

    # It builds the pushed commit, not the Build's `revision: main`.
    def snapshot_revision() -> str | None:
        spec = (tc.get("buildruns", name).get("status") or {}).get("buildSpec") or {}
        return ((spec.get("source") or {}).get("git") or {}).get("revision")

    assert wait_for(lambda: snapshot_revision() == SHA, 30, "status.buildSpec of the pushed "
                    "commit", tc.diagnostics)  # fmt: skip
    build = tc.get("builds", "app")
    assert build["status"]["lastTriggeredRun"]["name"] == name
    assert build["status"]["lastTriggeredRun"]["trigger"] == "push"
    header, row = tc.kubectl("get", "builds").splitlines()
    assert header.split()[-1] == "LASTTRIGGEREDRUN" and row.split()[-1] == name
    assert wait_for(lambda: tc.events_of("app", t.EVENT_TRIGGERED), 10, "BuildRunTriggered "
                    "Event", tc.diagnostics)  # fmt: skip

    status, answer = tc.deliver("github", signed(body, delivery), body)
    assert (status, answer["buildRuns"], answer["duplicates"]) == (202, [], [name])

    # Across a restart of the operator (SIGKILL: nothing in memory survives), still none.
    process, _ = trigger_operator
    process.kill()
    process.start()
    status, answer = tc.deliver("github", signed(body, delivery), body)
    assert (status, answer["buildRuns"], answer["duplicates"]) == (202, [], [name])
    assert len(tc.runs_of("app")) == 1


def test_refused_deliveries_make_nothing_and_tell_an_unsigned_caller_nothing(
    tc: TriggerCluster,
) -> None:  # fmt: skip
    tc.webhook_secret()
    tc.create("builds", git_build())
    tc.create("builds", git_build("no-secret", url="https://github.com/example/other",
                                  secret="missing"))  # fmt: skip
    body = github_push()

    wrong = tc.deliver("github", signed(body, "d-wrong", secret=b"guessed"), body)
    unknown_body = github_push(url="https://github.com/example/nobody-has-this")
    unknown = tc.deliver("github", signed(unknown_body, "d-unknown"), unknown_body)
    other_body = github_push(url="https://github.com/example/other")
    no_secret = tc.deliver("github", signed(other_body, "d-missing"), other_body)
    # Wrong secret, unknown repository, a Build whose Secret is missing: the same answer.
    assert wrong == unknown == no_secret
    assert wrong[0] == 401 and "Build" not in json.dumps(wrong[1])

    unsigned = tc.deliver("github", {"X-GitHub-Event": "push"}, body)
    assert unsigned == (401, {"reason": "missing X-Hub-Signature-256"})
    assert tc.deliver("github", signed(b"{not json", "d-bad"), b"{not json")[0] == 400
    big = b'{"pad": "' + b"x" * 70000 + b'"}'
    assert tc.deliver("github", signed(big, "d-big"), big)[0] == 413
    assert tc.deliver("bitbucket", signed(body, "d-x"), body)[0] == 404
    # Cluster-wide matching is off unless configured.
    assert tc.deliver("github", signed(body, "d-x"), body, namespace="")[0] == 404

    # A signed push to a branch no trigger lists: accepted, nothing to build.
    feature = github_push(branch="feature/x")
    status, answer = tc.deliver("github", signed(feature, "d-feature"), feature)
    assert (status, answer["buildRuns"]) == (202, [])
    assert "no trigger" in answer["ignored"]
    assert tc.runs_of("app") == [] and tc.runs_of("no-secret") == []

    # The refusals are told where the Build's owner looks: Events on the Build, one per
    # minute and kind however many deliveries (a minute may end between two of these).
    for attempt in range(3):
        forged = tc.deliver("github", signed(body, f"d-wrong-{attempt}", secret=b"x"), body)
        assert forged == wrong
    refused = wait_for(lambda: tc.events_of("app", t.EVENT_REFUSED), 10, "refusal Event",
                       tc.diagnostics)  # fmt: skip
    assert "signature does not match" in refused[0].message
    assert 1 <= len(refused) <= 2, [e.message for e in refused]
    ignored = wait_for(lambda: tc.events_of("app", t.EVENT_IGNORED), 10, "ignored Event",
                       tc.diagnostics)  # fmt: skip
    assert "feature/x" in ignored[0].message and ignored[0].type == "Normal"
    missing = wait_for(lambda: tc.events_of("no-secret", t.EVENT_REFUSED), 10,
                       "missing-secret Event", tc.diagnostics)  # fmt: skip
    assert "trigger Secret missing does not exist" in missing[0].message
    assert SECRET.decode() not in tc.operator.log_tail(400)


def test_gitlab_and_generic_pushes_match_the_github_trigger(tc: TriggerCluster) -> None:
    tc.webhook_secret(key="token")
    tc.create("builds", git_build(url="https://gitlab.example.com/group/app.git"))
    tc.wait_build("app", "True")
    push = json.dumps({
        "object_kind": "push", "ref": "refs/heads/release-2", "after": SHA,
        "project": {"git_http_url": "https://GitLab.example.com/group/app"},
    }).encode()  # fmt: skip
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET.decode(),
               "X-Gitlab-Event-UUID": "g-1"}  # fmt: skip
    status, answer = tc.deliver("gitlab", headers, push)
    assert status == 202 and len(answer["buildRuns"]) == 1, answer
    assert tc.deliver("gitlab", {**headers, "X-Gitlab-Token": "nope"}, push)[0] == 401

    generic = json.dumps({"repository": "https://gitlab.example.com/group/app",
                          "ref": "refs/heads/main", "after": SHA}).encode()  # fmt: skip
    sig = {"X-Hub-Signature-256": t.hmac_signature(SECRET, generic)}
    assert tc.deliver("generic", sig, generic)[0] == 202
    assert tc.deliver("generic", sig, generic)[1]["duplicates"]  # the body is its identity
    kinds = sorted(r["metadata"]["labels"][t.LABEL_KIND] for r in tc.runs_of("app"))
    assert kinds == ["generic", "gitlab"]


def push_image(reg: LocalRegistry, repository: str, tag: str, content: bytes) -> str:
    """A one-layer image pushed with our own registry client; its manifest digest."""
    pusher = oci.RegistryClient(registry=reg.host, repository=repository,
                                credentials=(REGISTRY_USERNAME, REGISTRY_PASSWORD),
                                insecure=True)  # fmt: skip
    layer = content
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [oci.sha256_digest(layer)]}}
                        ).encode()  # fmt: skip
    for blob in (layer, config):
        pusher.upload_blob(oci.sha256_digest(blob), len(blob), blob)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
        "config": {"mediaType": oci.OCI_CONFIG, "digest": oci.sha256_digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": oci.OCI_LAYER_TAR, "digest": oci.sha256_digest(layer),
                    "size": len(layer)}],
    }).encode()  # fmt: skip
    return pusher.put_manifest(tag, manifest, oci.OCI_MANIFEST)


def test_a_new_image_under_a_watched_name_starts_one_buildrun(
    tc: TriggerCluster, image_registry: LocalRegistry,
) -> None:  # fmt: skip
    image = f"{image_registry.host}/base/{tc.namespace}:latest"
    first = push_image(image_registry, f"base/{tc.namespace}", "latest", b"first layer")
    auth = base64.b64encode(f"{REGISTRY_USERNAME}:{REGISTRY_PASSWORD}".encode()).decode()
    tc.core.create_namespaced_secret(tc.namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="pull"), type="kubernetes.io/dockerconfigjson",
        string_data={".dockerconfigjson": json.dumps({"auths": {image_registry.host:
                                                                {"auth": auth}}})},
    ))  # fmt: skip
    build = git_build("app", secret=None)
    build["spec"]["trigger"] = {"when": [{"name": "base image", "type": "Image",
                                          "image": {"names": [image]}}]}  # fmt: skip
    build["spec"]["output"]["pushSecret"] = "pull"
    tc.create("builds", build)

    def recorded() -> str | None:
        digests = (tc.get("builds", "app").get("status") or {}).get("imageDigests") or []
        return next((d["digest"] for d in digests if d["image"] == image), None)

    # First sight is a baseline, made with the Build's pull secret (the registry wants it).
    assert wait_for(lambda: recorded() == first, 30, "the baseline digest", tc.diagnostics)
    assert tc.runs_of("app") == []

    second = push_image(image_registry, f"base/{tc.namespace}", "latest", b"second layer")
    runs = wait_for(lambda: tc.runs_of("app"), 10 + 4 * POLL_SECONDS, "a triggered BuildRun",
                    tc.diagnostics)  # fmt: skip
    assert wait_for(lambda: recorded() == second, 10, "the new digest", tc.diagnostics)
    # Several more poll rounds of the unchanged image: still the one BuildRun.
    polls = wait_for(lambda: _polls(tc) if _polls(tc) >= 4 else None, 20, "more polls",
                     tc.diagnostics)  # fmt: skip
    assert polls >= 4
    (run,) = tc.runs_of("app")
    assert run["metadata"]["name"] == runs[0]["metadata"]["name"]
    annotations = run["metadata"]["annotations"]
    assert annotations[t.ANNOTATION_DIGEST] == second
    assert annotations[t.ANNOTATION_PREVIOUS_DIGEST] == first
    assert annotations[t.ANNOTATION_IMAGE] == image
    assert tc.get("builds", "app")["status"]["lastTriggeredRun"]["trigger"] == "base image"
    assert REGISTRY_PASSWORD not in tc.operator.log_tail(400)


_POLL_BASE: dict[str, float] = {}


def _polls(tc: TriggerCluster) -> float:
    """Unchanged-image polls since this was first asked (the operator's counter)."""
    _, text = tc.operator.scrape()
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith('buildwright_trigger_image_polls_total{outcome="unchanged"}'))
    base = _POLL_BASE.setdefault(tc.namespace, total)
    return total - base


def test_a_follower_answers_deliveries_too_and_never_twice(
    tc: TriggerCluster, kubeconfig: Path, tmp_path: Path, api_client: client.ApiClient,
) -> None:  # fmt: skip
    """Every replica behind the Service answers: the follower creates the BuildRun itself,
    and the same delivery to the leader is a duplicate. The follower matches cluster-wide
    (`/hooks/github`), the leader per namespace."""
    follower_port = _free_port()
    follower = OperatorProcess(kubeconfig, tmp_path, {
        "BUILDWRIGHT_TRIGGER_PORT": str(follower_port), "BUILDWRIGHT_TRIGGER_SCOPE": "cluster",
    })  # fmt: skip
    follower.start()
    try:
        coordination = client.CoordinationV1Api(api_client)
        holder = coordination.read_namespaced_lease("buildwright-leader", "default")
        assert holder.spec.holder_identity == tc.operator.identity != follower.identity
        tc.webhook_secret()
        tc.create("builds", git_build())
        body, delivery = github_push(), str(uuid.uuid4())
        follower_cluster = TriggerCluster(tc.namespace, tc.custom, tc.core, tc.kubelet,
                                          follower, follower_port)  # fmt: skip
        # The follower learns of the Build from its own watch.
        status, answer = wait_for(
            lambda: (r := follower_cluster.deliver("github", signed(body, delivery), body,
                                                   namespace=""))[0] == 202 and r,
            30, "the follower accepting the delivery", follower_cluster.diagnostics,
        )  # fmt: skip
        (name,) = answer["buildRuns"]
        status, answer = tc.deliver("github", signed(body, delivery), body)
        assert (status, answer["buildRuns"], answer["duplicates"]) == (202, [], [name])
        assert [r["metadata"]["name"] for r in tc.runs_of("app")] == [name]
    finally:
        follower.stop()

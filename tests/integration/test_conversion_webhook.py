"""The book's v1alpha1 YAML against the real apiserver, converted by our webhook.

The webhook runs in this process, started by the same `WebhookServer` the operator's start-up
handler uses (generated certificate, CRDs patched with `clientConfig.url` + `caBundle`). It
runs on its own event-loop thread because the tests block in kubectl and the python client,
and it stays up for the whole session (`conversion_webhook` fixture) so that any later test
may read and write v1alpha1 too.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kopf
import pytest
import yaml
from cryptography import x509
from kubernetes import client

from buildwright.kube import CRDS, Kube
from buildwright.webhook.certificates import Certificate, generate_certificate
from buildwright.webhook.config import WebhookConfig
from buildwright.webhook.crds import CRD_NAMES
from buildwright.webhook.serving import WebhookServer, point_crds_at_webhook
from buildwright_localcluster.controlplane import ControlPlane, free_port
from buildwright_localcluster.kubelet import Outcome
from buildwright_localcluster.wait import wait_until
from tests.integration.conftest import CRD_DIR, REPO
from tests.integration.harness import DIGEST, SUCCESSFUL_RESULTS, Cluster

SAMPLES = REPO / "samples" / "v1alpha1"
ALPHA, BETA = "shipwright.io/v1alpha1", "shipwright.io/v1beta1"
BOOK_URL = "https://github.com/shipwright-io/sample-nodejs"
GROUP, CBS = "shipwright.io", "clusterbuildstrategies"
BOOK_IMAGE = "quay.io/gitops-cookbook/sample-nodejs:latest"

T = TypeVar("T")
Doc = dict[str, Any]


# --- the webhook, in-process --------------------------------------------------------------------


class WebhookThread:
    """A `WebhookServer` on a private event loop in a daemon thread."""

    def __init__(self, port: int) -> None:
        self.config = WebhookConfig(
            host="127.0.0.1", port=port, url=f"https://127.0.0.1:{port}/convert"
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="conversion-webhook", daemon=True
        )
        self._server: WebhookServer | None = None

    @property
    def server(self) -> WebhookServer:
        assert self._server is not None, "the webhook thread has not started"
        return self._server

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _start(self) -> WebhookServer:
        # Same credentials path as the operator (kopf reads $KUBECONFIG, set by control_plane).
        info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
        assert info is not None
        server = WebhookServer(self.config, Kube(info))
        await server.start()
        return server

    def start(self) -> None:
        self.thread.start()
        self._server = self.run(self._start())

    def stop(self, restore: dict[str, Any]) -> None:
        try:
            if self._server is not None:
                for name in CRD_NAMES:
                    self.run(self._server.kube.merge_patch(CRDS, None, name, restore))
                self.run(self._server.stop())
                self.run(self._server.kube.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def original_conversion() -> dict[str, Any]:
    """The merge patch that puts the generated CRDs' conversion settings back."""
    crd = yaml.safe_load((CRD_DIR / "builds.shipwright.io.yaml").read_text())
    client_config = crd["spec"]["conversion"]["webhook"]["clientConfig"]
    return {
        "spec": {
            "conversion": {
                "webhook": {"clientConfig": {"url": None, "caBundle": None, **client_config}}
            }
        }
    }


# Module scope: once this module is done the CRDs point at their Service again, so later
# suites (deploy/ re-applies the CRDs) see them as installed from crds/.
@pytest.fixture(scope="module")
def conversion_webhook(
    control_plane: ControlPlane, crds: list[str], core_v1: client.CoreV1Api
) -> Iterator[WebhookThread]:
    """The conversion webhook, serving v1alpha1 while this module runs."""
    webhook = WebhookThread(free_port())
    webhook.start()
    try:
        # The apiserver applies a CRD change asynchronously; a converted read proves it did.
        probe_ns = f"t-webhook-{uuid.uuid4().hex[:8]}"
        core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=probe_ns)))
        kubectl(control_plane.kubeconfig_path, "-n", probe_ns, "apply", "-f", "-",
                stdin=json.dumps(alpha_build("probe")))  # fmt: skip
        wait_until(
            lambda: kubectl(control_plane.kubeconfig_path, "-n", probe_ns, "get",
                            "builds.v1alpha1.shipwright.io", "probe", check=False).returncode == 0,
            timeout=60, interval=0.2, description="v1alpha1 reads converted by the webhook",
        )  # fmt: skip
        core_v1.delete_namespace(probe_ns)
        yield webhook
    finally:
        webhook.stop(original_conversion())


def alpha_build(name: str, **spec: Any) -> Doc:
    return {
        "apiVersion": ALPHA,
        "kind": "Build",
        "metadata": {"name": name},
        "spec": {
            "source": {"url": BOOK_URL, "contextDir": "docker-build"},
            "strategy": {"name": "kaniko", "kind": "ClusterBuildStrategy"},
            "output": {"image": BOOK_IMAGE, "credentials": {"name": "push-secret"}},
            **spec,
        },
    }


def samples(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def get_json(kubeconfig: Path, namespace: str, resource: str, *names: str) -> Doc:
    result: Doc = json.loads(
        kubectl(kubeconfig, "-n", namespace, "get", resource, *names, "-o", "json").stdout
    )
    return result


def by_name(listing: Doc) -> dict[str, Doc]:
    return {item["metadata"]["name"]: item for item in listing["items"]}


# --- the book's objects ------------------------------------------------------------------------


def test_webhook_patched_every_crd_with_url_and_ca(
    conversion_webhook: WebhookThread, kubeconfig: Path
) -> None:
    listing = get_json(kubeconfig, "default", "crd", *CRD_NAMES)
    assert sorted(c["metadata"]["name"] for c in listing["items"]) == sorted(CRD_NAMES)
    for crd in listing["items"]:
        conversion = crd["spec"]["conversion"]
        assert conversion["strategy"] == "Webhook"
        assert conversion["webhook"]["conversionReviewVersions"] == ["v1"]
        config = conversion["webhook"]["clientConfig"]
        assert config["url"] == conversion_webhook.config.url
        assert "service" not in config
        ca = base64.b64decode(config["caBundle"])
        assert ca == conversion_webhook.server.ca_bundle, crd["metadata"]["name"]
    # A second start-up with the same CA changes nothing: restarts must not churn the CRDs.
    server = conversion_webhook.server
    assert server.ca_bundle is not None
    patch = conversion_webhook.config.crd_patch(server.ca_bundle)
    assert conversion_webhook.run(point_crds_at_webhook(server.kube, patch)) == []


def test_book_builds_convert_to_v1beta1_and_back(
    conversion_webhook: WebhookThread, kubeconfig: Path, namespace: str
) -> None:
    path = SAMPLES / "builds.yaml"
    applied = kubectl(kubeconfig, "-n", namespace, "apply", "-f", str(path)).stdout
    assert applied.count("created") == 3, applied

    beta = by_name(get_json(kubeconfig, namespace, "builds.v1beta1.shipwright.io"))
    assert sorted(beta) == ["buildah-nodejs-build", "buildpack-nodejs-build", "kaniko-nodejs-build"]
    kaniko = beta["kaniko-nodejs-build"]
    assert kaniko["apiVersion"] == BETA
    assert kaniko["spec"]["source"] == {
        "type": "Git", "git": {"url": BOOK_URL}, "contextDir": "docker-build"
    }  # fmt: skip
    assert kaniko["spec"]["output"] == {"image": BOOK_IMAGE, "pushSecret": "push-secret"}
    assert kaniko["spec"]["strategy"] == {"name": "kaniko", "kind": "ClusterBuildStrategy"}
    buildah = beta["buildah-nodejs-build"]["spec"]
    assert buildah["source"]["contextDir"] == "source-build"
    assert buildah["paramValues"] == [{"name": "dockerfile", "value": "Dockerfile"}]
    assert "dockerfile" not in buildah

    alpha = by_name(get_json(kubeconfig, namespace, "builds.v1alpha1.shipwright.io"))
    for doc in samples(path):
        name = doc["metadata"]["name"]
        assert alpha[name]["apiVersion"] == ALPHA
        assert alpha[name]["spec"] == doc["spec"], f"{name} did not survive the round trip"

    # kubectl compares what it applied with what it reads back (through the webhook): a
    # lossless round trip leaves nothing to change.
    again = kubectl(kubeconfig, "-n", namespace, "apply", "-f", str(path)).stdout
    assert again.count("unchanged") == 3, again


def test_book_buildrun_and_its_v1alpha1_status(
    conversion_webhook: WebhookThread, kubeconfig: Path, namespace: str
) -> None:
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", str(SAMPLES / "builds.yaml"))
    created = kubectl(
        kubeconfig, "-n", namespace, "create", "-f", str(SAMPLES / "buildrun.yaml"), "-o", "name"
    ).stdout.strip()
    kind, name = created.split("/", 1)
    assert kind == "buildrun.shipwright.io"
    assert name.startswith("kaniko-nodejs-buildrun-") and len(name) > len("kaniko-nodejs-buildrun-")

    beta = get_json(kubeconfig, namespace, "buildruns.v1beta1.shipwright.io", name)
    assert beta["spec"] == {"build": {"name": "kaniko-nodejs-build"}}

    # What the operator writes, through v1beta1's status subresource.
    status: dict[str, Any] = {
        "source": {
            "git": {"commitSha": "0123456789abcdef", "commitAuthor": "Jane", "branchName": "main"},
            "timestamp": "2023-11-14T22:13:20Z",
        },
        "output": {"digest": DIGEST, "size": 4242},
        "executor": {"name": f"{name}-pod", "kind": "Pod"},
        "failureDetails": {
            "reason": "StepFailed", "message": "step failed",
            "location": {"pod": f"{name}-pod", "container": "step-build-and-push"},
        },
    }  # fmt: skip
    patch = json.dumps({"status": status})
    kubectl(kubeconfig, "-n", namespace, "patch", "buildruns.v1beta1.shipwright.io", name,
            "--subresource=status", "--type=merge", "-p", patch)  # fmt: skip

    alpha_yaml = kubectl(
        kubeconfig, "-n", namespace, "get", "buildruns.v1alpha1.shipwright.io", name, "-o", "yaml"
    ).stdout
    alpha = yaml.safe_load(alpha_yaml)
    assert alpha["apiVersion"] == ALPHA
    assert alpha["spec"] == {"buildRef": {"name": "kaniko-nodejs-build"}}
    assert alpha["status"]["sources"] == [{"name": "default", **status["source"]}]
    assert alpha["status"]["output"] == {"digest": DIGEST, "size": 4242}
    assert alpha["status"]["latestTaskRunRef"] == f"{name}-pod"
    location = {"pod": f"{name}-pod", "container": "step-build-and-push"}
    assert alpha["status"]["failedAt"] == location
    assert alpha["status"]["failureDetails"]["location"] == location
    assert "executor" not in alpha["status"] and "source" not in alpha["status"]


def test_v1alpha1_strategies_with_build_steps_install(
    conversion_webhook: WebhookThread, kubeconfig: Path
) -> None:
    # Renamed: the samples carry the names of the session's v1beta1 strategies, which other
    # tests use.
    suffix = uuid.uuid4().hex[:6]
    originals = {}
    docs = []
    for path in sorted((SAMPLES / "buildstrategy").glob("*.yaml")):
        for doc in samples(path):
            doc["metadata"]["name"] = f"{doc['metadata']['name']}-alpha-{suffix}"
            originals[doc["metadata"]["name"]] = doc
            docs.append(doc)
    names = sorted(originals)
    try:
        kubectl(kubeconfig, "apply", "--validate=strict", "-f", "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))  # fmt: skip
        beta = by_name(get_json(kubeconfig, "default", f"{CBS}.v1beta1.{GROUP}", *names))
        alpha = by_name(get_json(kubeconfig, "default", f"{CBS}.v1alpha1.{GROUP}", *names))
        for name in names:
            spec = beta[name]["spec"]
            assert "buildSteps" not in spec
            original_steps = originals[name]["spec"]["buildSteps"]
            assert [s["name"] for s in spec["steps"]] == [s["name"] for s in original_steps]
            text = json.dumps(spec["steps"])
            for legacy in ("$(build.dockerfile)", "$(params.DOCKERFILE)", "$(build.builder.image)"):
                assert legacy not in text, f"{name}: {legacy} left unconverted"
            # The round trip gives the steps back as written.
            assert alpha[name]["spec"]["buildSteps"] == original_steps, name
        buildah = beta[f"buildah-alpha-{suffix}"]["spec"]
        assert "$(params.dockerfile)" in json.dumps(buildah["steps"])
        dockerfile = next(p for p in buildah["parameters"] if p["name"] == "dockerfile")
        assert dockerfile["default"] == "Dockerfile"
        s2i = beta[f"source-to-image-alpha-{suffix}"]["spec"]
        assert "$(params.builder-image)" in json.dumps(s2i["steps"])
        assert any(p["name"] == "builder-image" for p in s2i["parameters"])
    finally:
        kubectl(kubeconfig, "delete", "clusterbuildstrategies.shipwright.io", *names,
                "--ignore-not-found", check=False)  # fmt: skip


def served_certificate(port: int) -> bytes:
    """The certificate the webhook presents now (DER), whoever signed it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_rotation_keeps_v1alpha1_served(
    conversion_webhook: WebhookThread, kubeconfig: Path, namespace: str
) -> None:
    server = conversion_webhook.server
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(alpha_build("rot")))
    before = served_certificate(server.port)
    old = server.certificate
    assert old is not None
    assert not conversion_webhook.run(server.rotate()), "a fresh certificate is not rotated"

    # Due by the clock: two thirds of the lifetime have passed.
    later = old.not_before + (old.not_after - old.not_before) * 0.7
    assert conversion_webhook.run(server.rotate(now=later))
    new = server.certificate
    assert new is not None and new != old
    assert served_certificate(server.port) != before

    # The CRDs trust both CAs while open connections may still present the old certificate.
    listing = get_json(kubeconfig, "default", "crd", *CRD_NAMES)
    for crd in listing["items"]:
        bundle = base64.b64decode(crd["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"])
        assert bundle.count(b"BEGIN CERTIFICATE") == 2
        assert new.ca in bundle and old.ca in bundle
    # Dropping every open connection makes the apiserver verify the new certificate.
    conversion_webhook.run(server.pause())
    conversion_webhook.run(server.restart())
    alpha = get_json(kubeconfig, namespace, "builds.v1alpha1.shipwright.io", "rot")
    assert alpha["spec"]["source"]["url"] == BOOK_URL


def tls_secret(name: str, certificate: Certificate) -> client.V1Secret:
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name=name),
        type="kubernetes.io/tls",
        data={
            key: base64.b64encode(value).decode()
            for key, value in (
                ("tls.crt", certificate.cert),
                ("tls.key", certificate.key),
                ("ca.crt", certificate.ca),
            )
        },
    )


def test_certificate_from_a_secret(
    conversion_webhook: WebhookThread, kubeconfig: Path, namespace: str, core_v1: client.CoreV1Api
) -> None:
    """cert-manager's layout: the webhook serves the Secret's certificate and follows renewals."""
    port = free_port()
    config = WebhookConfig(
        host="127.0.0.1", port=port, url=f"https://127.0.0.1:{port}/convert",
        namespace=namespace, cert_secret="webhook-tls",
    )  # fmt: skip
    issued = generate_certificate(config)
    core_v1.create_namespaced_secret(namespace, tls_secret("webhook-tls", issued))
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(alpha_build("sec")))
    session = conversion_webhook.server
    from_secret = WebhookServer(config, session.kube)
    conversion_webhook.run(from_secret.start())
    # The session's webhook is down: only the Secret-based one can answer now.
    conversion_webhook.run(session.pause())
    try:
        assert from_secret.certificate == issued
        wait_until(
            lambda: kubectl(kubeconfig, "-n", namespace, "get", "builds.v1alpha1.shipwright.io",
                            "sec", check=False).returncode == 0,
            timeout=30, interval=0.2, description="v1alpha1 served with the Secret's certificate",
        )  # fmt: skip
        assert not conversion_webhook.run(from_secret.rotate()), "the Secret did not change"

        renewed = generate_certificate(config)
        core_v1.replace_namespaced_secret(
            "webhook-tls", namespace, tls_secret("webhook-tls", renewed)
        )
        assert conversion_webhook.run(from_secret.rotate())
        assert from_secret.certificate == renewed
        served = ssl.DER_cert_to_PEM_cert(served_certificate(port)).encode()
        assert x509.load_pem_x509_certificate(served) == x509.load_pem_x509_certificate(
            renewed.cert
        )
        conversion_webhook.run(from_secret.pause())
        conversion_webhook.run(from_secret.restart())
        alpha = get_json(kubeconfig, namespace, "builds.v1alpha1.shipwright.io", "sec")
        assert alpha["spec"]["output"]["credentials"] == {"name": "push-secret"}
    finally:
        conversion_webhook.run(from_secret.stop())
        conversion_webhook.run(session.restart())
        assert session.ca_bundle is not None
        conversion_webhook.run(
            point_crds_at_webhook(session.kube, session.config.crd_patch(session.ca_bundle))
        )
    wait_until(
        lambda: kubectl(kubeconfig, "-n", namespace, "get", "builds.v1alpha1.shipwright.io",
                        "sec", check=False).returncode == 0,
        timeout=30, interval=0.2, description="v1alpha1 served by the session webhook again",
    )  # fmt: skip


# --- the apiserver's behaviour around the webhook -----------------------------------------------


def test_webhook_down_v1beta1_keeps_working(
    conversion_webhook: WebhookThread, kubeconfig: Path, namespace: str
) -> None:
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-",
            stdin=json.dumps(alpha_build("kaniko-nodejs-build")))  # fmt: skip
    conversion_webhook.run(conversion_webhook.server.pause())
    try:
        beta = get_json(
            kubeconfig, namespace, "builds.v1beta1.shipwright.io", "kaniko-nodejs-build"
        )
        assert beta["spec"]["output"]["pushSecret"] == "push-secret"
        failed = kubectl(kubeconfig, "-n", namespace, "get", "builds.v1alpha1.shipwright.io",
                         "kaniko-nodejs-build", check=False)  # fmt: skip
        assert failed.returncode != 0
        assert "conversion webhook" in failed.stderr, failed.stderr
        created = kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", check=False,
                          stdin=json.dumps(alpha_build("another")))  # fmt: skip
        assert created.returncode != 0
        assert "conversion webhook" in created.stderr, created.stderr
    finally:
        conversion_webhook.run(conversion_webhook.server.restart())
    wait_until(
        lambda: kubectl(kubeconfig, "-n", namespace, "get", "builds.v1alpha1.shipwright.io",
                        "kaniko-nodejs-build", check=False).returncode == 0,
        timeout=30, interval=0.2, description="v1alpha1 served again after the webhook restart",
    )  # fmt: skip


def test_strict_field_validation_of_a_misspelled_v1alpha1_field(
    conversion_webhook: WebhookThread, kubeconfig: Path, namespace: str
) -> None:
    doc = alpha_build("misspelled")
    doc["spec"]["source"]["urll"] = doc["spec"]["source"].pop("url")
    strict = kubectl(kubeconfig, "-n", namespace, "create", "--validate=strict", "-f", "-",
                     stdin=json.dumps(doc), check=False)  # fmt: skip
    assert strict.returncode != 0
    assert 'unknown field "spec.source.urll"' in strict.stderr, strict.stderr
    # Without strict validation the apiserver prunes the field before conversion, so the
    # Build has no source URL (and would fail registration, visibly).
    kubectl(kubeconfig, "-n", namespace, "create", "--validate=false", "-f", "-",
            stdin=json.dumps(doc))  # fmt: skip
    beta = get_json(kubeconfig, namespace, "builds.v1beta1.shipwright.io", "misspelled")
    assert "source" not in beta["spec"], beta["spec"]
    alpha = get_json(kubeconfig, namespace, "builds.v1alpha1.shipwright.io", "misspelled")
    # What v1beta1 cannot say (a contextDir without a source) still reads back in v1alpha1.
    assert alpha["spec"]["source"] == {"contextDir": "docker-build"}


def test_conversion_latency(
    conversion_webhook: WebhookThread, custom_objects: client.CustomObjectsApi, namespace: str
) -> None:
    """p50/p99 of a single-object GET in v1alpha1 (converted) against v1beta1 (stored)."""
    custom_objects.create_namespaced_custom_object(
        "shipwright.io", "v1alpha1", namespace, "builds", alpha_build("latency")
    )

    def timings(version: str, count: int) -> list[float]:
        samples_ms = []
        for _ in range(count):
            start = time.perf_counter()
            custom_objects.get_namespaced_custom_object(
                "shipwright.io", version, namespace, "builds", "latency"
            )
            samples_ms.append((time.perf_counter() - start) * 1000)
        return samples_ms

    timings("v1alpha1", 10)  # connections and the apiserver's client to the webhook warm up
    alpha = timings("v1alpha1", 200)
    beta = timings("v1beta1", 200)

    def quantiles(values: list[float]) -> tuple[float, float]:
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return cuts[49], cuts[98]

    a50, a99 = quantiles(alpha)
    b50, b99 = quantiles(beta)
    print(
        f"\nGET Build, 200 requests: v1alpha1 (webhook) p50 {a50:.1f} ms p99 {a99:.1f} ms; "
        f"v1beta1 (stored) p50 {b50:.1f} ms p99 {b99:.1f} ms"
    )
    # Generous bounds for a shared 2-core machine; they catch a webhook that blocks or times out.
    assert a50 < 100, f"p50 {a50:.1f} ms"
    assert a99 < 1000, f"p99 {a99:.1f} ms"


# --- with the operator ---------------------------------------------------------------------------


def test_book_buildrun_created_in_v1alpha1_runs_to_succeeded(
    conversion_webhook: WebhookThread, cluster: Cluster, kubeconfig: Path
) -> None:
    ns = cluster.namespace
    cluster.kubelet.script(ns, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    cluster.push_secret()
    kubectl(kubeconfig, "-n", ns, "apply", "-f", str(SAMPLES / "builds.yaml"))
    cluster.wait_build("kaniko-nodejs-build", "True")
    name = kubectl(kubeconfig, "-n", ns, "create", "-f", str(SAMPLES / "buildrun.yaml"),
                   "-o", "jsonpath={.metadata.name}").stdout  # fmt: skip
    cluster.wait_buildrun(name, "True", "Succeeded")

    alpha = yaml.safe_load(kubectl(kubeconfig, "-n", ns, "get", "buildruns.v1alpha1.shipwright.io",
                                   name, "-o", "yaml").stdout)  # fmt: skip
    status = alpha["status"]
    assert status["latestTaskRunRef"] == f"{name}-pod"
    assert status["output"] == {"digest": DIGEST, "size": 4242}
    assert status["sources"][0]["name"] == "default"
    assert status["sources"][0]["git"]["commitSha"] == "0123456789abcdef0123456789abcdef01234567"
    assert status["buildSpec"]["source"]["url"] == BOOK_URL
    assert status["buildSpec"]["output"]["credentials"] == {"name": "push-secret"}
    assert [c["reason"] for c in status["conditions"]] == ["Succeeded"]


def test_v1alpha1_buildah_strategy_runs(
    conversion_webhook: WebhookThread, cluster: Cluster, kubeconfig: Path
) -> None:
    ns = cluster.namespace
    strategy = samples(SAMPLES / "buildstrategy" / "buildah.yaml")[0]
    strategy["metadata"]["name"] = f"buildah-alpha-{ns}"
    build = next(
        d
        for d in samples(SAMPLES / "builds.yaml")
        if d["metadata"]["name"] == "buildah-nodejs-build"
    )
    build["spec"]["strategy"]["name"] = strategy["metadata"]["name"]
    build["spec"]["dockerfile"] = "Containerfile"
    cluster.kubelet.script(ns, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    cluster.push_secret()
    kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(strategy))
    try:
        kubectl(kubeconfig, "-n", ns, "apply", "-f", "-", stdin=json.dumps(build))
        cluster.wait_build("buildah-nodejs-build", "True")
        run = {"apiVersion": ALPHA, "kind": "BuildRun", "metadata": {"name": "buildah-run"},
               "spec": {"buildRef": {"name": "buildah-nodejs-build"}}}  # fmt: skip
        kubectl(kubeconfig, "-n", ns, "create", "-f", "-", stdin=json.dumps(run))
        cluster.wait_buildrun("buildah-run", "True", "Succeeded")
        pod = cluster.pods()[0]
        step = next(c for c in pod["spec"]["containers"] if c["name"] == "step-build-and-push")
        # `$(build.dockerfile)` became the dockerfile parameter, set from spec.dockerfile.
        args = step["args"]  # the entrypoint's flags, then the step's own command line
        assert args[args.index("--dockerfile") + 1] == "Containerfile"
    finally:
        kubectl(kubeconfig, "delete", "clusterbuildstrategy", strategy["metadata"]["name"],
                "--ignore-not-found", check=False)  # fmt: skip

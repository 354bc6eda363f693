"""Running unattended, against the real apiserver: metrics, probes and leader failover.

The metrics are read the way Prometheus reads them (its text parser), and compared before
and after the runs a test makes: the session's operator counts every test's runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from buildwright_localcluster.kubelet import KubeletStandIn, Outcome
from buildwright_localcluster.wait import wait_until
from tests.integration.harness import SUCCESSFUL_RESULTS, Cluster, book_build, buildrun
from tests.integration.operator_process import REPO, OperatorProcess

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

SHIPWRIGHT_HISTOGRAMS = (
    "build_buildrun_establish_duration_seconds",
    "build_buildrun_completion_duration_seconds",
    "build_buildrun_rampup_duration_seconds",
    "build_buildrun_taskrun_rampup_duration_seconds",
    "build_buildrun_taskrun_pod_rampup_duration_seconds",
)


def scrape(operator: OperatorProcess) -> tuple[dict[str, Any], Samples]:
    """The operator's /metrics, parsed: families by name, and every sample's value."""
    status, text = operator.scrape("/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    return families, samples


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_a_succeeded_and_a_failed_run_with_upstreams_names(
    cluster: Cluster,
) -> None:
    cluster.push_secret()
    cluster.create("builds", book_build())
    cluster.wait_build("kaniko-nodejs-build", "True")
    cluster.create("builds", book_build("failing-build"))
    cluster.wait_build("failing-build", "True")
    _, before = scrape(cluster.operator)

    cluster.kubelet.script(cluster.namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    good = cluster.create("buildruns", buildrun())["metadata"]["name"]
    cluster.wait_buildrun(good, "True", "Succeeded")
    cluster.kubelet.script(cluster.namespace, {"step-build-and-push": Outcome(exit_code=1)})
    bad = cluster.create("buildruns", buildrun("failing-build"))["metadata"]["name"]
    cluster.wait_buildrun(bad, "False", "Failed")

    def both_observed() -> tuple[dict[str, Any], Samples] | None:
        families, after = scrape(cluster.operator)
        done = delta(before, after, "build_buildrun_completion_duration_seconds_count")
        return (families, after) if done >= 2 else None

    families, after = wait_until(both_observed, timeout=10, description="completions observed")

    assert families["build_buildruns_completed"].type == "counter"
    assert families["build_builds_registered"].type == "counter"
    assert delta(before, after, "build_buildruns_completed_total") == 2
    for name in SHIPWRIGHT_HISTOGRAMS:
        assert families[name].type == "histogram"
        assert delta(before, after, f"{name}_count") == 2, name
        # Labels are off by default: only `le` on buckets, nothing on the rest.
        assert {tuple(s.labels) for s in families[name].samples} == {("le",), ()}
    completion = families["build_buildrun_completion_duration_seconds"]
    bounds = [s.labels["le"] for s in completion.samples if s.name.endswith("_bucket")]
    assert bounds == [f"{float(50 * i)}" for i in range(1, 11)] + ["+Inf"]
    # Both runs took seconds: inside the first bucket.
    assert delta(before, after, completion.name + "_bucket", le="50.0") == 2
    establish = families["build_buildrun_establish_duration_seconds"]
    assert [s.labels["le"] for s in establish.samples if s.name.endswith("_bucket")] == [
        "0.0", "1.0", "2.0", "3.0", "5.0", "7.0", "10.0", "15.0", "20.0", "30.0", "+Inf"
    ]  # fmt: skip
    # Both Builds were registered (before the first scrape) and counted.
    assert after[("build_builds_registered_total", ())] >= 2

    # The operator's own.
    assert delta(before, after, "buildwright_api_requests_total",
                 verb="create", resource="pods", code="201") == 2  # fmt: skip
    assert after[("buildwright_leader", ())] == 1
    assert ("buildwright_workqueue_depth", ()) in after
    assert delta(before, after, "buildwright_workqueue_queue_duration_seconds_count") >= 2
    assert delta(before, after, "buildwright_reconcile_duration_seconds_count",
                 kind="BuildRun", result="success") >= 2  # fmt: skip


def test_probes_answer(cluster: Cluster) -> None:
    assert cluster.operator.scrape("/healthz") == (200, "ok\n")
    assert cluster.operator.scrape("/readyz") == (200, "ok\n")


# --- leader election -----------------------------------------------------------------------

LEASE_NAMESPACE = "default"
LEASE_NAME = "buildwright-leader"
# Short, so the test takes seconds; the defaults are 15 s / 10 s / 2 s.
LEASE_SECONDS, RENEW_SECONDS, RETRY_SECONDS = 4.0, 3.0, 0.5
FAST_ELECTION = {
    "BUILD_CONTROLLER_LEASE_DURATION": f"{LEASE_SECONDS}s",
    "BUILD_CONTROLLER_RENEW_DEADLINE": f"{RENEW_SECONDS}s",
    "BUILD_CONTROLLER_RETRY_PERIOD": f"{RETRY_SECONDS}s",
}
# `make test` runs a small burst; BUILDWRIGHT_FAILOVER_RUNS=200 the full one.
RUNS = int(os.environ.get("BUILDWRIGHT_FAILOVER_RUNS", "30"))


def read_lease(api_client: client.ApiClient) -> Any:
    try:
        return client.CoordinationV1Api(api_client).read_namespaced_lease(
            LEASE_NAME, LEASE_NAMESPACE
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def lease_holder(api_client: client.ApiClient) -> str | None:
    lease = read_lease(api_client)
    return None if lease is None else (str(lease.spec.holder_identity or "") or None)


@pytest.fixture
def two_operators(
    operator: OperatorProcess, kubeconfig: Path, tmp_path: Path, api_client: client.ApiClient
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    """Two replicas with short leases in place of the session's operator."""
    operator.stop()
    assert lease_holder(api_client) is None, "a stopped leader releases its lease"
    first = OperatorProcess(kubeconfig, tmp_path / "a", FAST_ELECTION)
    # The follower logs JSON: the test reads what it did after taking over.
    second = OperatorProcess(
        kubeconfig, tmp_path / "b", {**FAST_ELECTION, "BUILDWRIGHT_LOG_FORMAT": "json"}
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        first.start()
        wait_until(lambda: lease_holder(api_client) == first.identity, timeout=30,
                   description="the first replica leads")  # fmt: skip
        second.start()
        yield first, second
    finally:
        first.stop()
        second.stop()
        operator.start()


def test_the_follower_takes_over_a_killed_leaders_burst(
    two_operators: tuple[OperatorProcess, OperatorProcess], kubelet: KubeletStandIn,
    namespace: str, custom_objects: client.CustomObjectsApi, core_v1: client.CoreV1Api,
    api_client: client.ApiClient,
) -> None:  # fmt: skip
    leader, follower = two_operators
    cluster = Cluster(namespace, custom_objects, core_v1, kubelet, leader)
    kubelet.script(namespace, {"step-results": Outcome(message=SUCCESSFUL_RESULTS)})
    cluster.push_secret()
    cluster.create("builds", book_build())
    cluster.wait_build("kaniko-nodejs-build", "True")
    _, follower_metrics = scrape(follower)
    assert follower_metrics[("buildwright_leader", ())] == 0
    assert lease_holder(api_client) == leader.identity

    names: list[str] = []

    def create(count: int) -> None:
        for _ in range(count):
            names.append(cluster.create("buildruns", buildrun())["metadata"]["name"])

    create(RUNS // 2)
    # The leader is busy with the first half; the second half arrives while nobody leads.
    rest = threading.Thread(target=create, args=(RUNS - RUNS // 2,))
    killed_at = time.monotonic()
    leader.kill()
    last_renewal = read_lease(api_client).spec.renew_time
    rest.start()
    wait_until(lambda: lease_holder(api_client) == follower.identity,
               timeout=LEASE_SECONDS * 3, interval=0.05,
               description="the follower takes the lease")  # fmt: skip
    failover = time.monotonic() - killed_at
    taken = read_lease(api_client).spec
    rest.join(timeout=120)
    expired = (taken.acquire_time - last_renewal).total_seconds()
    print(f"\nfailover after SIGKILL: {failover:.2f} s; the dead leader's last renewal to the "
          f"follower's acquireTime: {expired:.2f} s (lease {LEASE_SECONDS} s, retry "
          f"{RETRY_SECONDS} s), {RUNS} BuildRuns")  # fmt: skip
    # client-go's rule: the lease runs from when the follower *saw* the last renewal (its
    # next look, up to one jittered retry period later), and the follower finds it expired
    # at its first look after that: lease + 2 x 1.2 x retry, plus API latency under the burst.
    assert expired <= LEASE_SECONDS + 2 * 1.2 * RETRY_SECONDS + 1.0
    assert taken.lease_transitions >= 1

    cluster.operator = follower

    def all_succeeded() -> bool:
        listing = custom_objects.list_namespaced_custom_object(
            "shipwright.io", "v1beta1", namespace, "buildruns"
        )
        done = [
            item for item in listing["items"]
            if any(c["type"] == "Succeeded" and c["status"] == "True"
                   for c in (item.get("status") or {}).get("conditions") or [])
        ]  # fmt: skip
        return len(done) == RUNS

    wait_until(all_succeeded, timeout=60 + RUNS, interval=0.5,
               description=f"all {RUNS} BuildRuns Succeeded")  # fmt: skip
    pods = cluster.pods()
    assert sorted(p["metadata"]["name"] for p in pods) == sorted(f"{n}-pod" for n in names)
    for name in names:
        status = cluster.get("buildruns", name)["status"]
        assert status["executor"] == {"name": f"{name}-pod", "kind": "Pod"}
        assert status["output"]["size"] == 4242
    _, after = scrape(follower)
    assert after[("buildwright_leader", ())] == 1

    # One JSON object a line, naming the object each line is about.
    lines = [json.loads(line) for line in follower.log_path.read_text().splitlines()]
    about = [entry for entry in lines if entry.get("namespace") == namespace]
    assert {entry["kind"] for entry in about} >= {"BuildRun"}
    assert any(entry["message"].startswith("became the leader") for entry in lines)


# --- the webhook certificate across restarts -------------------------------------------------


def crd_client_configs(api_client: client.ApiClient) -> dict[str, tuple[str, str]]:
    """Each shipwright.io CRD's (caBundle, resourceVersion)."""
    ext = client.ApiextensionsV1Api(api_client)
    found = {}
    for name in ("builds", "buildruns", "buildstrategies", "clusterbuildstrategies"):
        crd = ext.read_custom_resource_definition(f"{name}.shipwright.io")
        bundle = crd.spec.conversion.webhook.client_config.ca_bundle
        found[name] = (bundle, crd.metadata.resource_version)
    return found


def test_a_restart_keeps_the_certificate_and_leaves_the_crds_alone(
    operator: OperatorProcess, kubeconfig: Path, tmp_path: Path, api_client: client.ApiClient,
    namespace: str, core_v1: client.CoreV1Api,
) -> None:  # fmt: skip
    from buildwright_localcluster.controlplane import free_port
    from tests.integration.test_conversion_webhook import alpha_build, kubectl, original_conversion

    port = free_port()
    webhook = OperatorProcess(kubeconfig, tmp_path, {
        "BUILDWRIGHT_WEBHOOK": "on",
        "BUILDWRIGHT_WEBHOOK_PORT": str(port),
        "BUILDWRIGHT_WEBHOOK_URL": f"https://127.0.0.1:{port}/convert",
        # The Lease and the certificate Secret in this test's namespace.
        "BUILDWRIGHT_NAMESPACE": namespace,
    })  # fmt: skip
    operator.stop()
    try:
        webhook.start()
        kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-",
                stdin=json.dumps(alpha_build("kept")))  # fmt: skip

        def alpha_readable() -> bool:
            return kubectl(kubeconfig, "-n", namespace, "get", "builds.v1alpha1.shipwright.io",
                           "kept", check=False).returncode == 0  # fmt: skip

        wait_until(alpha_readable, timeout=60, interval=0.2, description="v1alpha1 served")
        secret = core_v1.read_namespaced_secret("buildwright-webhook-cert", namespace)
        assert set(secret.data) == {"tls.crt", "tls.key", "ca.crt"}
        before = crd_client_configs(api_client)

        for _ in range(2):
            webhook.stop()
            webhook.start()
            # Served again at once: no CRD changed, so the apiserver has nothing to reload.
            assert alpha_readable()
            assert crd_client_configs(api_client) == before
            again = core_v1.read_namespaced_secret("buildwright-webhook-cert", namespace)
            assert again.metadata.resource_version == secret.metadata.resource_version
        log = webhook.log_path.read_text()
        assert "conversion webhook set in" not in log, webhook.log_tail()
    finally:
        webhook.stop()
        from buildwright.webhook.crds import CRD_NAMES

        ext = client.ApiextensionsV1Api(api_client)
        for name in CRD_NAMES:
            ext.patch_custom_resource_definition(name, original_conversion())
        operator.start()


def test_run_outside_the_cluster_without_a_webhook_url_says_how_to_fix_it(
    kubeconfig: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILDWRIGHT_")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    proc = subprocess.run(
        [sys.executable, "-m", "buildwright", "run"], cwd=REPO,
        env={**env, "KUBECONFIG": str(kubeconfig)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "cannot reach its conversion webhook" in proc.stderr
    assert "BUILDWRIGHT_WEBHOOK_URL=" in proc.stderr and "BUILDWRIGHT_WEBHOOK=off" in proc.stderr


def test_v1alpha1_reads_keep_working_while_each_replica_restarts(
    operator: OperatorProcess, kubeconfig: Path, tmp_path: Path, api_client: client.ApiClient,
    namespace: str, custom_objects: client.CustomObjectsApi,
) -> None:  # fmt: skip
    """Two replicas behind a Service serve the webhook with one certificate; restarting each
    in turn (taken out of the Service first, as a terminating Pod is) fails no read."""
    from buildwright.webhook.crds import CRD_NAMES
    from buildwright_localcluster.controlplane import free_port
    from tests.integration.test_conversion_webhook import alpha_build, kubectl, original_conversion
    from tests.tcpservice import TcpService

    ports = [free_port(), free_port()]
    with TcpService(ports) as service:
        url = f"https://127.0.0.1:{service.port}/convert"
        settings = {
            "BUILDWRIGHT_WEBHOOK": "on",
            "BUILDWRIGHT_WEBHOOK_URL": url,
            "BUILDWRIGHT_NAMESPACE": namespace,
        }
        replicas = [
            OperatorProcess(
                kubeconfig, tmp_path / f"r{i}", {**settings, "BUILDWRIGHT_WEBHOOK_PORT": str(port)}
            )
            for i, port in enumerate(ports)
        ]
        for replica in replicas:
            Path(replica.log_dir).mkdir()
        operator.stop()
        reads, failures = [0], []
        stop = threading.Event()

        def read_v1alpha1() -> None:
            while not stop.is_set():
                try:
                    custom_objects.get_namespaced_custom_object(
                        "shipwright.io", "v1alpha1", namespace, "builds", "kept"
                    )
                    reads[0] += 1
                except ApiException as error:
                    failures.append(f"{error.status}: {error.body}")

        reader = threading.Thread(target=read_v1alpha1, daemon=True)
        try:
            for replica in replicas:
                replica.start()
            kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-",
                    stdin=json.dumps(alpha_build("kept")))  # fmt: skip
            wait_until(
                lambda: kubectl(kubeconfig, "-n", namespace, "get",
                                "builds.v1alpha1.shipwright.io", "kept",
                                check=False).returncode == 0,
                timeout=60, interval=0.2, description="v1alpha1 served through the Service",
            )  # fmt: skip
            before = crd_client_configs(api_client)
            reader.start()
            for replica, port in zip(replicas, ports, strict=True):
                service.drain(port)
                replica.stop()
                replica.start()
                service.restore(port)
                seen = reads[0]
                wait_until(lambda seen=seen: reads[0] > seen + 20, timeout=30,
                           description="reads go on after the restart")  # fmt: skip
            stop.set()
            reader.join(timeout=30)
            print(f"\n{reads[0]} v1alpha1 reads through two replica restarts, "
                  f"{len(failures)} failed")  # fmt: skip
            assert failures == []
            assert crd_client_configs(api_client) == before
        finally:
            stop.set()
            for replica in replicas:
                replica.stop()
            ext = client.ApiextensionsV1Api(api_client)
            for name in CRD_NAMES:
                ext.patch_custom_resource_definition(name, original_conversion())
            operator.start()

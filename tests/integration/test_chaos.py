"""Crashes and faults lose nothing (issue 15): the operator killed and restarted at random
moments, the apiserver and etcd restarted under running builds, and watches forced to 410
while the operator is cut off. After each, every BuildRun has exactly one Pod, reaches its
final status, never went backwards, and has exactly one end-of-run Event.

A control plane of its own (no watch cache: an etcd compaction then expires the watches for
certain), its own kubelet stand-in, and the operator connected through a loopback proxy that
can cut it off. Short by default (part of `make test`); `make chaos` runs the full sizes
(BUILDWRIGHT_CHAOS=full) and prints the figures.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch

from buildwright_localcluster.controlplane import ControlPlane
from buildwright_localcluster.kubelet import KubeletStandIn, Outcome
from buildwright_localcluster.wait import wait_until
from tests.integration.harness import SUCCESSFUL_RESULTS, Cluster, book_build, buildrun
from tests.integration.operator_process import REPO, OperatorProcess

FULL = os.environ.get("BUILDWRIGHT_CHAOS") == "full"
# (BuildRuns, operator kills), BuildRuns running through the restarts, BuildRuns across a 410.
KILL_RUNS, KILLS = (200, 10) if FULL else (20, 2)
RESTART_RUNS = 50 if FULL else 10
EXPIRE_RUNS = 50 if FULL else 10
FINAL = ("True", "False")


# --- a loopback proxy that can cut its clients off -----------------------------------------


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the apiserver; `cut()` drops every connection and
    refuses new ones until `restore()`. TLS goes through untouched."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                downstream, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self._connections.update((downstream, upstream))
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(sink)


# --- what the test watches ------------------------------------------------------------------


@dataclass
class Record:
    pods: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    conditions: defaultdict[str, list[tuple[str, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    backwards: list[str] = field(default_factory=list)


class Recorder:
    """Watches the namespace's Pods and BuildRuns the whole time (resuming across outages):
    every Pod uid per BuildRun, and every Succeeded condition a BuildRun showed."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.record = Record()
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._namespace = namespace
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(kind,), daemon=True)
                         for kind in ("pods", "buildruns")]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, kind: str) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if kind == "pods":
                    listing = self._core.list_namespaced_pod(self._namespace)
                    items = [item.to_dict() for item in listing.items]
                    version = version or listing.metadata.resource_version
                    lister: Any = self._core.list_namespaced_pod
                    args: tuple[Any, ...] = (self._namespace,)
                else:
                    raw = self._custom.list_namespaced_custom_object(
                        "shipwright.io", "v1beta1", self._namespace, "buildruns")
                    items = raw["items"]  # fmt: skip
                    version = version or raw["metadata"]["resourceVersion"]
                    lister = self._custom.list_namespaced_custom_object
                    args = ("shipwright.io", "v1beta1", self._namespace, "buildruns")
                for item in items:
                    self._observe(kind, item)
                for event in watch.Watch().stream(lister, *args, resource_version=version,
                                                  timeout_seconds=30):  # fmt: skip
                    obj = event["object"]
                    obj = obj if isinstance(obj, dict) else obj.to_dict()
                    meta = obj.get("metadata") or {}
                    version = meta.get("resourceVersion") or meta.get("resource_version") or version
                    self._observe(kind, obj)
                    if self._stop.is_set():
                        return
            except Exception as error:  # an outage, or 410: list again
                if "410" in str(error) or "Expired" in str(error):
                    version = None
                if self._stop.wait(0.2):  # a pause before listing again; ends on stop
                    return

    def _observe(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if kind == "pods":
            run = (meta.get("labels") or {}).get("buildrun.shipwright.io/name")
            if run:
                self.record.pods[run].add(str(meta.get("uid")))
            return
        name = meta.get("name", "")
        status = obj.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("type") != "Succeeded":
                continue
            seen = self.record.conditions[name]
            now = (condition["status"], condition["reason"])
            if seen and seen[-1][0] in FINAL and now != seen[-1]:
                self.record.backwards.append(f"{name}: {seen[-1]} -> {now}")
            if not seen or seen[-1] != now:
                seen.append(now)


# --- the cluster of this module -------------------------------------------------------------


@dataclass
class Chaos:
    control_plane: ControlPlane
    proxy: CuttableProxy
    operator: OperatorProcess
    kubelet: KubeletStandIn
    api: client.ApiClient


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chaos]:
    cp = ControlPlane(extra_apiserver_args=["--watch-cache=false"])
    cp.start()
    try:
        kubectl = ["kubectl", "--kubeconfig", str(cp.kubeconfig_path)]
        crds = [arg for p in sorted((REPO / "crds").glob("*.shipwright.io.yaml"))
                for arg in ("-f", str(p))]  # fmt: skip
        for command in (["apply", "--server-side", *crds],
                        ["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"],
                        ["apply", "--server-side", "-k", str(REPO / "strategies")]):  # fmt: skip
            subprocess.run([*kubectl, *command], check=True, capture_output=True, timeout=120)
        port = int(cp.server_url.rsplit(":", 1)[1])
        proxy = CuttableProxy(("127.0.0.1", port))
        proxied = yaml.safe_load(cp.kubeconfig_path.read_text())
        proxied["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
        log_dir = tmp_path_factory.mktemp("chaos")
        (log_dir / "proxied.kubeconfig").write_text(yaml.safe_dump(proxied))
        operator = OperatorProcess(log_dir / "proxied.kubeconfig", log_dir)
        api = config.new_client_from_config(config_file=str(cp.kubeconfig_path))
        with KubeletStandIn(cp.kubeconfig_path) as kubelet:
            operator.start()
            try:
                yield Chaos(cp, proxy, operator, kubelet, api)
            finally:
                operator.stop()
                proxy.cut()
                api.close()
    finally:
        cp.stop()


@pytest.fixture
def chaos_cluster(chaos: Chaos) -> Iterator[Cluster]:
    core = client.CoreV1Api(chaos.api)
    name = f"c-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_until(lambda: core.read_namespaced_service_account("default", name), timeout=30,
               description="ServiceAccount default")  # fmt: skip
    if chaos.operator.process is None:
        chaos.operator.start()
    yield Cluster(name, client.CustomObjectsApi(chaos.api), core, chaos.kubelet, chaos.operator)
    chaos.kubelet.reset(name)


def start_runs(cluster: Cluster, count: int) -> list[str]:
    return [cluster.create("buildruns", buildrun())["metadata"]["name"] for _ in range(count)]


def check_everything(cluster: Cluster, recorder: Recorder, names: list[str], began: float,
                     disrupted: float, what: str) -> dict[str, Any]:  # fmt: skip
    """Wait for every run to end; then exactly one Pod and one end Event each, nothing went
    backwards. Returns the figures."""
    def final() -> bool:
        runs = cluster.custom.list_namespaced_custom_object(
            "shipwright.io", "v1beta1", cluster.namespace, "buildruns")["items"]  # fmt: skip
        done = [r for r in runs if any(c["type"] == "Succeeded" and c["status"] in FINAL
                                       for c in (r.get("status") or {}).get("conditions") or [])]
        return len(done) >= len(names)

    wait_until(final, timeout=300, interval=0.5, description=f"{len(names)} BuildRuns final")
    drained = time.monotonic()
    runs = {r["metadata"]["name"]: r for r in cluster.custom.list_namespaced_custom_object(
        "shipwright.io", "v1beta1", cluster.namespace, "buildruns")["items"]}  # fmt: skip

    def end_events() -> dict[str, int]:
        """BuildRun → how many end-of-run Events it has."""
        counts: dict[str, int] = defaultdict(int)
        for event in cluster.core.list_namespaced_event(cluster.namespace).items:
            involved = event.involved_object
            if involved.kind == "BuildRun" and event.reason in ("Succeeded", "Failed"):
                counts[involved.name] += 1
        return counts

    def missing_events() -> list[str]:
        counts = end_events()
        return [n for n in names if not counts.get(n)]

    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not missing_events(), timeout=60, description="every end Event")
    missing = missing_events()
    counts = end_events()
    recorder.stop()
    pods_final = {p["metadata"]["labels"]["buildrun.shipwright.io/name"]: p for p in cluster.pods()}
    pods_per_run = [len(recorder.record.pods.get(n, set()) | {pods_final[n]["metadata"]["uid"]})
                    if n in pods_final else 0 for n in names]  # fmt: skip
    figures = {
        "scenario": what, "buildruns": len(names),
        "seconds_to_drain_after_last_disruption": round(drained - disrupted, 1),
        "seconds_total": round(drained - began, 1),
        "pods_per_buildrun_max": max(pods_per_run), "pods_per_buildrun_min": min(pods_per_run),
        "lost_events": len(missing), "max_end_events_per_run": max(counts.values() or [0]),
        "went_backwards": len(recorder.record.backwards),
    }  # fmt: skip
    print(f"\nchaos figures: {json.dumps(figures)}")
    assert pods_per_run == [1] * len(names), figures
    assert all(pods_final[n]["metadata"]["name"] == f"{n}-pod" for n in names)
    assert recorder.record.backwards == [], recorder.record.backwards[:5]
    assert missing == [], figures
    assert max(counts.values()) == 1, figures
    for name in names:
        condition = next(c for c in runs[name]["status"]["conditions"] if c["type"] == "Succeeded")
        assert (condition["status"], condition["reason"]) == ("True", "Succeeded"), name
    return figures


def test_operator_killed_at_random_moments(chaos: Chaos, chaos_cluster: Cluster) -> None:
    cluster = chaos_cluster
    cluster.kubelet.script(cluster.namespace, {
        "step-build-and-push": Outcome(duration=1.0),
        "step-results": Outcome(message=SUCCESSFUL_RESULTS),
    })  # fmt: skip
    cluster.push_secret()
    cluster.create("builds", book_build())
    cluster.wait_build("kaniko-nodejs-build", "True", timeout=60)
    recorder = Recorder(chaos.api, cluster.namespace)
    began = time.monotonic()
    randomness = random.Random(15)
    kill_at = sorted(randomness.sample(range(KILL_RUNS), KILLS))
    names: list[str] = []
    for index in range(KILL_RUNS):
        names.extend(start_runs(cluster, 1))
        if kill_at and index == kill_at[0]:
            kill_at.pop(0)
            chaos.operator.kill()  # SIGKILL: no cleanup
            chaos.operator.start()
    disrupted = time.monotonic()
    check_everything(cluster, recorder, names, began, disrupted, f"{KILLS} SIGKILLs")


def _all_final(cluster: Cluster) -> bool:
    runs = cluster.custom.list_namespaced_custom_object(
        "shipwright.io", "v1beta1", cluster.namespace, "buildruns")["items"]  # fmt: skip
    return all(any(c["type"] == "Succeeded" and c["status"] in FINAL
                   for c in (r.get("status") or {}).get("conditions") or []) for r in runs)


def _running_in_long_step(cluster: Cluster, count: int) -> bool:
    """Every container of a build Pod runs from the start; a build is in its long step once
    the source step before it has ended (the entrypoint then lets the build step run)."""
    running = 0
    for pod in cluster.pods():
        states = {
            status["name"]: status.get("state") or {}
            for status in pod.get("status", {}).get("containerStatuses") or []
        }
        source_done = (states.get("step-source-default", {}).get("terminated") or {}).get(
            "exitCode"
        ) == 0
        if source_done and "running" in states.get("step-build-and-push", {}):
            running += 1
    return running >= count


def test_apiserver_and_etcd_restart_under_running_builds(
    chaos: Chaos, chaos_cluster: Cluster
) -> None:
    cluster = chaos_cluster
    cluster.kubelet.script(cluster.namespace, {
        "step-build-and-push": Outcome(duration=45.0),
        "step-results": Outcome(message=SUCCESSFUL_RESULTS),
    })  # fmt: skip
    cluster.push_secret()
    cluster.create("builds", book_build())
    cluster.wait_build("kaniko-nodejs-build", "True", timeout=60)
    recorder = Recorder(chaos.api, cluster.namespace)
    began = time.monotonic()
    names = start_runs(cluster, RESTART_RUNS)
    wait_until(lambda: _running_in_long_step(cluster, RESTART_RUNS), timeout=120, interval=0.5,
               description="every build in its long step")  # fmt: skip
    outage = time.monotonic()
    chaos.control_plane.restart("etcd")
    chaos.control_plane.restart("kube-apiserver")
    disrupted = time.monotonic()
    assert not _all_final(cluster), "the builds ended before the restarts: nothing was tested"
    what = f"etcd + apiserver restart ({disrupted - outage:.1f} s)"
    figures = check_everything(cluster, recorder, names, began, disrupted, what)
    assert figures["seconds_to_drain_after_last_disruption"] > 0


def _etcd_revision(etcd: str) -> int:
    body = json.dumps({"key": base64.b64encode(b"/").decode()}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{etcd}/v3/kv/range", data=body),
                                timeout=10) as answer:  # fmt: skip
        return int(json.loads(answer.read())["header"]["revision"])


def _compact(etcd: str, revision: int) -> None:
    body = json.dumps({"revision": str(revision), "physical": True}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{etcd}/v3/kv/compaction", data=body),
                                timeout=30) as answer:  # fmt: skip
        answer.read()


def test_watches_expire_while_the_operator_is_cut_off(
    chaos: Chaos, chaos_cluster: Cluster
) -> None:
    cluster = chaos_cluster
    cluster.kubelet.script(cluster.namespace, {
        # Long enough for every build to be in this step at once, before the cut-off.
        "step-build-and-push": Outcome(duration=30.0 if FULL else 8.0),
        "step-results": Outcome(message=SUCCESSFUL_RESULTS),
    })  # fmt: skip
    cluster.push_secret()
    cluster.create("builds", book_build())
    cluster.wait_build("kaniko-nodejs-build", "True", timeout=60)
    recorder = Recorder(chaos.api, cluster.namespace)
    began = time.monotonic()
    names = start_runs(cluster, EXPIRE_RUNS)
    wait_until(lambda: _running_in_long_step(cluster, EXPIRE_RUNS), timeout=120, interval=0.5,
               description="every build in its long step")  # fmt: skip
    log = Path(chaos.operator.log_path)
    expired_before = log.read_text(errors="replace").count("watch expired")
    chaos.proxy.cut()
    try:
        # While it is cut off, every build ends; then history before now is compacted away.
        wait_until(lambda: all(p.get("status", {}).get("phase") == "Succeeded"
                               for p in cluster.pods()), timeout=120, interval=0.5,
                   description="every Pod Succeeded")  # fmt: skip
        _compact(chaos.control_plane.etcd_url, _etcd_revision(chaos.control_plane.etcd_url))
    finally:
        chaos.proxy.restore()
    disrupted = time.monotonic()
    check_everything(cluster, recorder, names, began, disrupted, "410 after a cut-off")
    assert log.read_text(errors="replace").count("watch expired") > expired_before, (
        "the operator's watches did not expire: the scenario did not force a 410"
    )

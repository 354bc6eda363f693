"""How fast BuildRuns become Pods and statuses, and what the operator costs (issue 9).

Starts a private control plane (with an audit log), installs crds/ and strategies/, runs
`buildwright run` as a subprocess and the kubelet stand-in in another, registers one Build
per scenario namespace, then creates BuildRuns at steady rates or in bursts. Everything is
observed from outside through watches: a timestamp is when this process *received* the
event (API timestamps have one-second resolution).

Figures per scenario (medians over repeats): BuildRun created → Pod seen, Pod Succeeded
seen → BuildRun Succeeded seen, achieved rates, duplicates, regressions, operator CPU and
peak RSS, and the operator's API requests per BuildRun from the audit log (user agents
`buildwright` and `kopf/*`). Writes bench/results.md and compares with the previous one.

Run: make bench, or .venv/bin/python bench/run.py [--scenario steady-100 ...] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shlex
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GROUP_VERSION = "shipwright.io/v1beta1"
BUILD_NAME = "bench-build"
PUSH_SECRET = "push-secret"
OPERATOR_AGENTS = ("buildwright", "kopf/")
SYSTEMS = ("buildwright", "shipwright")
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
READ_VERBS = {"get", "list"}

AUDIT_POLICY_HEADER = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
"""
AUDIT_POLICY = AUDIT_POLICY_HEADER + "  - level: Metadata\n"
# With --system shipwright|both: the bodies of writes too (except Secrets'), so that bytes
# written can be counted per client. It costs the apiserver some CPU on both sides alike.
AUDIT_BODIES_RULES = """\
  - level: Metadata
    resources: [{group: "", resources: ["secrets"]}]
  - level: Request
    verbs: ["create", "update", "patch"]
  - level: Metadata
"""
AUDIT_POLICY_WITH_BODIES = AUDIT_POLICY_HEADER + AUDIT_BODIES_RULES


# --------------------------------------------------------------------------- API client


class Api:
    """A small asyncio client for the apiserver, authenticated from a kubeconfig."""

    def __init__(self, kubeconfig: Path, *, connections: int = 64) -> None:
        doc = yaml.safe_load(kubeconfig.read_text())
        cluster = doc["clusters"][0]["cluster"]
        user = doc["users"][0]["user"]
        self.server = cluster["server"].rstrip("/")
        context = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
        # ssl loads client keys only from files.
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp) / "c.crt", Path(tmp) / "c.key"
            cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            context.load_cert_chain(str(cert), str(key))
        self._ssl = context
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=self._connections),
                headers={"User-Agent": "bench-client", "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method,
            self.server + path,
            json=body,
            timeout=aiohttp.ClientTimeout(total=120),
        ) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.call(method, path, body)
        if status >= 400:
            raise RuntimeError(f"{method} {path}: {status} {data}")
        return data


def buildruns_path(namespace: str) -> str:
    return f"/apis/{GROUP_VERSION}/namespaces/{namespace}/buildruns"


def pods_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods"


# --------------------------------------------------------------------------- observation


# Order of a BuildRun's states as the operator moves it forward; a later event with a lower
# rank, or with an older resourceVersion, is a regression.
RANK_NEW, RANK_POD, RANK_PENDING, RANK_RUNNING, RANK_DONE = range(5)


def buildrun_rank(body: dict[str, Any]) -> tuple[int, str | None]:
    status = body.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Succeeded":
            if condition.get("status") in ("True", "False"):
                return RANK_DONE, str(condition.get("reason"))
            if condition.get("reason") == "Running":
                return RANK_RUNNING, None
            return RANK_PENDING, None
    return (RANK_POD if status.get("executor") else RANK_NEW), None


@dataclass
class Track:
    """What was seen of one BuildRun, as local monotonic receipt times."""

    sent: float | None = None
    created: float | None = None
    pod_seen: float | None = None
    pod_done: float | None = None
    done: float | None = None
    reason: str | None = None
    rank: int = RANK_NEW
    digest: str | None = None
    resource_version: int = 0
    pod_uids: set[str] = field(default_factory=set)


@dataclass
class Observation:
    """Everything one scenario run saw; `summary()` turns it into figures."""

    count: int
    tracks: dict[str, Track]
    regressions: int = 0
    create_errors: int = 0
    timed_out: bool = False
    buildrun_events: int = 0
    pod_events: int = 0

    def summary(self) -> dict[str, float]:
        tracks = list(self.tracks.values())
        created = [t.created for t in tracks if t.created is not None]
        sent = [t.sent for t in tracks if t.sent is not None]
        to_pod = [t.pod_seen - t.created for t in tracks if t.pod_seen and t.created]
        to_status = [t.done - t.pod_done for t in tracks if t.done and t.pod_done]
        end_to_end = [t.done - t.created for t in tracks if t.done and t.created]
        pods_seen = [t.pod_seen for t in tracks if t.pod_seen is not None]
        done = [t.done for t in tracks if t.done is not None]
        out: dict[str, float] = {"buildruns": float(self.count)}
        if sent and created:
            span = max(created) - min(sent)
            out["create_rate"] = len(created) / span if span > 0 else float("inf")
            out["create_seconds"] = span
        for label, values in (("to_pod", to_pod), ("to_succeeded", to_status),
                              ("end_to_end", end_to_end)):  # fmt: skip
            for q, value in percentiles(values).items():
                out[f"{label}_{q}_ms"] = value * 1000
        if created and pods_seen:
            out["last_pod_after_last_create_s"] = max(pods_seen) - max(created)
            span = max(pods_seen) - min(created)
            out["pod_throughput"] = len(pods_seen) / span if span > 0 else float("inf")
        if created and done:
            span = max(done) - min(created)
            out["completion_throughput"] = len(done) / span if span > 0 else float("inf")
        out["duplicate_pods"] = float(sum(max(len(t.pod_uids) - 1, 0) for t in tracks))
        out["without_pod"] = float(sum(1 for t in tracks if not t.pod_uids))
        out["not_succeeded"] = float(sum(1 for t in tracks if t.reason != "Succeeded"))
        out["finished"] = float(sum(1 for t in tracks if t.done is not None))
        out["without_digest"] = float(sum(1 for t in tracks if not t.digest))
        out["regressions"] = float(self.regressions)
        out["create_errors"] = float(self.create_errors)
        out["buildrun_events_per_buildrun"] = self.buildrun_events / self.count
        out["pod_events_per_buildrun"] = self.pod_events / self.count
        out["timed_out"] = float(self.timed_out)
        return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]

    return {"p50": rank(0.5), "p95": rank(0.95), "p99": rank(0.99), "max": ordered[-1]}


async def watch(
    api: Api, path: str, resource_version: str, on_event: Any, stop: asyncio.Event
) -> None:
    """Feed every event of a watch to `on_event(type, object, receipt_time)` until `stop`."""
    while not stop.is_set():
        url = (
            f"{api.server}{path}?watch=1&allowWatchBookmarks=true&timeoutSeconds=600"
            f"&resourceVersion={resource_version}"
        )
        async with api.session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
            buffer = b""
            async for chunk in resp.content.iter_any():
                received = time.monotonic()
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        raise RuntimeError(f"watch {path}: {obj}")
                    resource_version = obj.get("metadata", {}).get(
                        "resourceVersion", resource_version
                    )
                    if event.get("type") != "BOOKMARK":
                        on_event(event["type"], obj, received)
                if stop.is_set():
                    return


async def drive(
    api: Api,
    namespace: str,
    *,
    count: int,
    rate: float | None,
    timeout: float,
    build: str = BUILD_NAME,
    prefix: str = "br",
) -> Observation:
    """Create `count` BuildRuns for `build` (at `rate` per second, or all at once when None),
    watch them and their Pods until every BuildRun is finished or `timeout` passes."""
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    tracks = {name: Track() for name in names}
    obs = Observation(count, tracks)

    def on_buildrun(kind: str, body: dict[str, Any], received: float) -> None:
        track = tracks.get(body["metadata"]["name"])
        if track is None or kind == "DELETED":
            return
        obs.buildrun_events += 1
        if track.created is None:
            track.created = received
        version = int(body["metadata"]["resourceVersion"])
        rank, reason = buildrun_rank(body)
        if version < track.resource_version or rank < track.rank:
            obs.regressions += 1
        track.resource_version = max(track.resource_version, version)
        track.rank = max(track.rank, rank)
        if rank == RANK_DONE and track.done is None:
            track.done, track.reason = received, reason
        digest = ((body.get("status") or {}).get("output") or {}).get("digest")
        if digest:
            track.digest = str(digest)

    def on_pod(kind: str, body: dict[str, Any], received: float) -> None:
        meta = body["metadata"]
        owner = (meta.get("labels") or {}).get("buildrun.shipwright.io/name", "")
        track = tracks.get(owner)
        if track is None or kind == "DELETED":
            return
        obs.pod_events += 1
        track.pod_uids.add(meta["uid"])
        if track.pod_seen is None:
            track.pod_seen = received
        phase = (body.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") and track.pod_done is None:
            track.pod_done = received

    stop = asyncio.Event()
    watches = []
    for path, handler in ((buildruns_path(namespace), on_buildrun), (pods_path(namespace), on_pod)):
        listing = await api.ok("GET", path)
        version = listing["metadata"]["resourceVersion"]
        watches.append(asyncio.create_task(watch(api, path, version, handler, stop)))

    async def create(name: str) -> None:
        body = {
            "apiVersion": GROUP_VERSION,
            "kind": "BuildRun",
            "metadata": {"name": name},
            "spec": {"build": {"name": build}},
        }
        track = tracks[name]
        track.sent = time.monotonic()
        status, _ = await api.call("POST", buildruns_path(namespace), body)
        answered = time.monotonic()
        if status >= 400:
            obs.create_errors += 1
            return
        # The POST's answer is the earliest moment the object is known to exist; the watch
        # may deliver ADDED a little before it.
        track.created = min(answered, track.created or answered)

    creators: list[asyncio.Task[None]] = []
    began = time.monotonic()
    for i, name in enumerate(names):
        if rate is not None:
            delay = began + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        creators.append(asyncio.create_task(create(name)))
    await asyncio.gather(*creators)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(t.done is not None for t in tracks.values()):
            break
        if any(w.done() and w.exception() for w in watches):
            break
        await asyncio.sleep(0.05)
    else:
        obs.timed_out = True
    # Late events (a regression after Succeeded) get a moment to arrive.
    await asyncio.sleep(1.0)
    stop.set()
    for task in watches:
        task.cancel()
    for result in await asyncio.gather(*watches, return_exceptions=True):
        if isinstance(result, Exception):
            raise result
    # Pods the watch may have missed (none should be): the listing is the truth.
    listing = await api.ok("GET", pods_path(namespace))
    for pod in listing.get("items") or []:
        owner = (pod["metadata"].get("labels") or {}).get("buildrun.shipwright.io/name", "")
        if owner in tracks:
            tracks[owner].pod_uids.add(pod["metadata"]["uid"])
    return obs


# --------------------------------------------------------------------------- the environment


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_memory_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def pids_cpu_seconds(pids: dict[str, int]) -> float:
    return sum(proc_cpu_seconds(pid) for pid in pids.values())


def pids_memory_mb(pids: dict[str, int]) -> dict[str, float]:
    """Summed over the processes (the peer runs two); a sum of peaks bounds the joint peak."""
    out = {"VmRSS": 0.0, "VmHWM": 0.0}
    for pid in pids.values():
        for key, value in proc_memory_mb(pid).items():
            out[key] += value
    return out


@dataclass
class AuditCount:
    reads: int = 0
    writes: int = 0
    watches: int = 0
    bytes_written: int = 0
    """Request bodies of the writes, when the audit level records them (else 0)."""
    by_call: Counter[str] = field(default_factory=Counter)
    # Everyone else's requests in the namespace (the benchmark, the stand-in, controllers):
    # on two cores their cost is the apiserver's load too.
    others: Counter[str] = field(default_factory=Counter)


def count_audit(
    path: Path, offset: int, namespace: str, agents: tuple[str, ...] = OPERATOR_AGENTS
) -> AuditCount:
    """The requests in `namespace` logged after byte `offset` of the clients whose user agent
    starts with one of `agents` (the system under test: its operator or controllers)."""
    result = AuditCount()
    seen: set[str] = set()
    with path.open("rb") as log:
        log.seek(offset)
        for line in log:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written right now
            agent = entry.get("userAgent", "")
            ref = entry.get("objectRef") or {}
            if ref.get("namespace") != namespace or entry["auditID"] in seen:
                continue
            seen.add(entry["auditID"])
            verb = entry.get("verb", "")
            resource = ref.get("resource", "") + (
                "/" + ref["subresource"] if ref.get("subresource") else ""
            )
            if not agent.startswith(agents):
                result.others[f"{agent.split('/')[0]} {verb} {resource}"] += 1
                continue
            if verb == "watch":
                result.watches += 1
            elif verb in READ_VERBS:
                result.reads += 1
            elif verb in WRITE_VERBS:
                result.writes += 1
                if "requestObject" in entry:
                    body = json.dumps(entry["requestObject"], separators=(",", ":"))
                    result.bytes_written += len(body.encode())
            code = (entry.get("responseStatus") or {}).get("code", "")
            result.by_call[f"{verb} {resource} {code}"] += 1
    return result


class BuildwrightSystem:
    """The operator under test: `buildwright run`, as the integration tests run it."""

    name = "buildwright"
    agents = OPERATOR_AGENTS

    def __init__(self, kubeconfig: Path, workdir: Path, env: dict[str, str]) -> None:
        from tests.integration.operator_process import OperatorProcess

        self.kubeconfig = kubeconfig
        self.operator = OperatorProcess(kubeconfig, workdir, env)

    def install(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        apply = ["kubectl", "apply", "--server-side", "--force-conflicts", "-k"]
        subprocess.run([*apply, str(REPO / "crds")], check=True, capture_output=True, env=env,
                       timeout=120)  # fmt: skip
        # Strategies can only be created once their CRD is served.
        subprocess.run(
            ["kubectl", "wait", "--for=condition=Established", "--timeout=60s",
             "crd", "-l", "app.kubernetes.io/part-of=buildwright"],
            check=True, capture_output=True, env=env, timeout=90,
        )  # fmt: skip
        subprocess.run([*apply, str(REPO / "strategies")], check=True, capture_output=True,
                       env=env, timeout=120)  # fmt: skip

    def start(self) -> None:
        self.operator.start()

    def restart(self) -> None:
        self.operator.stop()
        self.operator.start()

    def stop(self) -> None:
        self.operator.stop()

    def pids(self) -> dict[str, int]:
        assert self.operator.process is not None
        return {"operator": self.operator.process.pid}


class Bench:
    """The control plane and the kubelet stand-in for a whole benchmark run, and the system
    under test on it (buildwright's operator, or the peer: bench/peer.py)."""

    def __init__(
        self,
        workdir: Path,
        operator_env: dict[str, str] | None = None,
        profile_dir: Path | None = None,
        *,
        audit_bodies: bool = False,
    ) -> None:
        from buildwright_localcluster.controlplane import ControlPlane

        self.workdir = workdir
        policy = workdir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY_WITH_BODIES if audit_bodies else AUDIT_POLICY)
        self.audit_log = workdir / "audit.log"
        self.control_plane = ControlPlane(
            extra_apiserver_args=(
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                # The log would otherwise be rotated at 100 MB, losing the counted window.
                "--audit-log-maxsize=100000",
                # Later flags win: the pprof endpoint only when profiles are asked for.
                *(("--profiling=true",) if profile_dir else ()),
            )
        )
        self.profile_dir = profile_dir
        self.kubelet: subprocess.Popen[str] | None = None
        self.system: Any = None
        self.peer_qps: float | None = None
        self.bound_rate = 10.0  # BuildRuns per second the wait for a run's end allows for
        # As the image runs it (Dockerfile); --operator-env PYTHONMALLOC=pymalloc to compare.
        self.operator_env = {"PYTHONMALLOC": "malloc", **(operator_env or {})}

    def start(self) -> None:
        self.control_plane.start()
        kubeconfig = self.control_plane.kubeconfig_path
        self.kubelet = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "kubelet_proc.py"), str(kubeconfig)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        assert self.kubelet.stdout is not None
        if self.kubelet.stdout.readline().strip() != "ready":
            raise RuntimeError("the kubelet stand-in did not start")

    def use(self, name: str) -> None:
        """Stop the system running now, install `name`'s and start it."""
        if self.system is not None:
            self.system.stop()
            self.system = None
        kubeconfig = self.control_plane.kubeconfig_path
        if name == "buildwright":
            system: Any = BuildwrightSystem(kubeconfig, self.workdir, self.operator_env)
        else:
            from bench import peer

            system = peer.Peer(peer.build(), kubeconfig, self.workdir, qps=self.peer_qps)
        system.install()
        system.start()
        self.system = system

    def restart_operator(self) -> None:
        self.system.restart()

    def other_pids(self) -> dict[str, int]:
        """The processes competing with the system under test for the machine's cores."""
        names = ("etcd", "apiserver", "controller_manager")
        pids = dict(zip(names, self.control_plane.pids, strict=True))
        assert self.kubelet is not None
        return {**pids, "kubelet_standin": self.kubelet.pid, "bench_client": os.getpid()}

    @property
    def operator_pids(self) -> dict[str, int]:
        """The system's own processes: the operator, or the peer's two controllers."""
        pids: dict[str, int] = self.system.pids()
        return pids

    def stop(self) -> None:
        if self.system is not None:
            self.system.stop()
        if self.kubelet is not None:
            assert self.kubelet.stdin is not None
            self.kubelet.stdin.close()
            try:
                self.kubelet.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kubelet.kill()
        self.control_plane.stop()


async def prepare_namespace(api: Api, namespace: str) -> None:
    """A new namespace with a push Secret and a registered Build."""
    await api.ok("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    await poll(lambda: api.call("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default"),
               lambda r: r[0] == 200, 60, "default ServiceAccount")  # fmt: skip
    await register_build(api, namespace)


async def register_build(api: Api, namespace: str) -> None:
    """The push Secret and the benchmark's Build in `namespace`, registered."""
    config = {"auths": {"registry.example": {"auth": base64.b64encode(b"u:p").decode()}}}
    await api.ok("POST", f"/api/v1/namespaces/{namespace}/secrets", {
        "metadata": {"name": PUSH_SECRET},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": json.dumps(config)},
    })  # fmt: skip
    await api.ok("POST", f"/apis/{GROUP_VERSION}/namespaces/{namespace}/builds", {
        "apiVersion": GROUP_VERSION,
        "kind": "Build",
        "metadata": {"name": BUILD_NAME},
        "spec": {
            "source": {"type": "Git", "git": {"url": "https://github.com/shipwright-io/sample-nodejs"},
                       "contextDir": "docker-build"},
            "strategy": {"name": "kaniko", "kind": "ClusterBuildStrategy"},
            "output": {"image": "registry.example/bench/app:latest", "pushSecret": PUSH_SECRET},
        },
    })  # fmt: skip
    build = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/builds/{BUILD_NAME}"
    await poll(lambda: api.call("GET", build),
               lambda r: ((r[1] or {}).get("status") or {}).get("registered") == "True",
               60, "the Build registered")  # fmt: skip


async def poll(fetch: Any, done: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await fetch()
        if done(result):
            return result
        await asyncio.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")


async def delete_namespace(api: Api, namespace: str, timeout: float = 300) -> None:
    await api.call("DELETE", f"/api/v1/namespaces/{namespace}")
    with contextlib.suppress(TimeoutError):
        await poll(lambda: api.call("GET", f"/api/v1/namespaces/{namespace}"),
                   lambda r: r[0] == 404, timeout, f"namespace {namespace} gone")  # fmt: skip


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    count: int
    rate: float | None  # None: a burst, all created at once
    repeats: int
    memory: bool = False

    @property
    def description(self) -> str:
        if self.rate is not None:
            return f"{self.rate:g}/s for {self.count / self.rate:g} s ({self.count} BuildRuns)"
        return f"{self.count} at once" + (" (then idle with all present)" if self.memory else "")


def scenarios(quick: bool) -> dict[str, Scenario]:
    seconds = 5 if quick else 20
    repeats = 1 if quick else 3
    items = [
        # Below the 50/s of issue 9: where this machine's control plane still keeps up.
        Scenario("steady-10", 10 * seconds, 10, repeats),
        Scenario("steady-20", 20 * seconds, 20, repeats),
        Scenario("steady-50", 50 * seconds, 50, repeats),
        # Beyond what this machine's control plane sustains: minutes of backlog each, so
        # one run by default.
        Scenario("steady-100", 100 * seconds, 100, 1),
        Scenario("steady-200", 200 * seconds, 200, 1),
        Scenario("burst-500", 100 if quick else 500, None, repeats),
        Scenario("burst-2000", 400 if quick else 2000, None, 1),
        Scenario("memory-5000", 1000 if quick else 5000, None, 1, memory=True),
    ]
    return {s.name: s for s in items}


async def run_once(bench: Bench, api: Api, scenario: Scenario, index: int) -> dict[str, float]:
    # A fresh operator per run: its CPU and peak RSS then belong to this run alone.
    await asyncio.to_thread(bench.restart_operator)
    namespace = f"bench-{scenario.name}-{index}-{uuid.uuid4().hex[:6]}"
    await prepare_namespace(api, namespace)
    pids = bench.operator_pids
    await asyncio.sleep(2.0)  # let start-up work settle before the idle reading
    load_at_start = os.getloadavg()[0]
    idle_cpu = pids_cpu_seconds(pids)
    idle_each = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
    idle_memory = pids_memory_mb(pids)
    offset = bench.audit_log.stat().st_size
    others = bench.other_pids()
    others_before = {name: proc_cpu_seconds(p) for name, p in others.items()}
    timeout = 60 + scenario.count / bench.bound_rate
    profiles = start_profiles(bench, api, f"{scenario.name}-{index}", scenario)
    obs = await drive(api, namespace, count=scenario.count, rate=scenario.rate, timeout=timeout)
    await profiles
    figures = obs.summary()
    busy_cpu = pids_cpu_seconds(pids) - idle_cpu
    memory = pids_memory_mb(pids)
    figures["operator_cpu_s"] = busy_cpu
    figures["load_1m_at_start"] = load_at_start
    figures["load_1m_at_end"] = os.getloadavg()[0]
    if len(pids) > 1:
        for name, pid in pids.items():
            figures[f"{name.replace('-', '_')}_cpu_s"] = proc_cpu_seconds(pid) - idle_each[name]
    for name, other in others.items():
        figures[f"{name}_cpu_s"] = proc_cpu_seconds(other) - others_before[name]
    figures["operator_cpu_ms_per_buildrun"] = busy_cpu * 1000 / scenario.count
    figures["operator_ceiling_per_core"] = scenario.count / busy_cpu if busy_cpu else 0.0
    figures["apiserver_cpu_ms_per_buildrun"] = figures["apiserver_cpu_s"] * 1000 / scenario.count
    figures["etcd_cpu_ms_per_buildrun"] = figures["etcd_cpu_s"] * 1000 / scenario.count
    figures["operator_rss_idle_mb"] = idle_memory["VmRSS"]
    figures["operator_rss_mb"] = memory["VmRSS"]
    figures["operator_peak_rss_mb"] = memory["VmHWM"]
    if scenario.memory:
        # Present, finished, idle: what keeping thousands of BuildRuns costs (after the
        # operator's periodic return of freed memory, every 10 s).
        await asyncio.sleep(25.0)
        figures["operator_rss_with_all_present_mb"] = pids_memory_mb(pids)["VmRSS"]
        figures.update(await restarted_with_all_present(bench))
    await asyncio.sleep(1.0)  # the audit log's last lines
    audit = count_audit(bench.audit_log, offset, namespace, bench.system.agents)
    if audit.reads + audit.writes == 0:
        raise RuntimeError("no operator requests in the audit log (rotated?)")
    figures["requests_per_buildrun"] = (audit.reads + audit.writes) / scenario.count
    figures["reads_per_buildrun"] = audit.reads / scenario.count
    figures["writes_per_buildrun"] = audit.writes / scenario.count
    figures["watches_per_buildrun"] = audit.watches / scenario.count
    if audit.bytes_written:
        figures["bytes_written_per_buildrun"] = audit.bytes_written / scenario.count
    figures["pod_create_conflicts"] = float(audit.by_call.get("create pods 409", 0))
    breakdown = ", ".join(f"{k}: {v / scenario.count:.2f}" for k, v in audit.by_call.most_common())
    print(f"  requests per BuildRun: {breakdown}", flush=True)
    breakdown = ", ".join(f"{k}: {v / scenario.count:.2f}" for k, v in audit.others.most_common())
    print(f"  others' requests per BuildRun: {breakdown}", flush=True)
    await delete_namespace(api, namespace)
    return figures


# --------------------------------------------------------------------------- the report

ROWS: list[tuple[str, str, str]] = [
    # key, label, format
    ("buildruns", "BuildRuns", "{:.0f}"),
    ("load_1m_at_start", "machine load (1-min average) at the start", "{:.2f}"),
    ("load_1m_at_end", "machine load (1-min average) at the end", "{:.2f}"),
    ("create_rate", "achieved create rate (/s)", "{:.1f}"),
    ("to_pod_p50_ms", "created → Pod p50 (ms)", "{:.1f}"),
    ("to_pod_p95_ms", "created → Pod p95 (ms)", "{:.1f}"),
    ("to_pod_p99_ms", "created → Pod p99 (ms)", "{:.1f}"),
    ("to_pod_max_ms", "created → Pod max (ms)", "{:.1f}"),
    ("to_succeeded_p50_ms", "Pod done → Succeeded p50 (ms)", "{:.1f}"),
    ("to_succeeded_p95_ms", "Pod done → Succeeded p95 (ms)", "{:.1f}"),
    ("to_succeeded_p99_ms", "Pod done → Succeeded p99 (ms)", "{:.1f}"),
    ("to_succeeded_max_ms", "Pod done → Succeeded max (ms)", "{:.1f}"),
    ("end_to_end_p50_ms", "created → Succeeded p50 (ms)", "{:.1f}"),
    ("end_to_end_p99_ms", "created → Succeeded p99 (ms)", "{:.1f}"),
    ("last_pod_after_last_create_s", "last Pod after last create (s)", "{:.2f}"),
    ("pod_throughput", "Pods created per s", "{:.1f}"),
    ("completion_throughput", "BuildRuns Succeeded per s", "{:.1f}"),
    ("buildrun_events_per_buildrun", "BuildRun watch events / BuildRun", "{:.2f}"),
    ("pod_events_per_buildrun", "Pod watch events / BuildRun", "{:.2f}"),
    ("duplicate_pods", "duplicate Pods", "{:.0f}"),
    ("without_pod", "BuildRuns without Pod", "{:.0f}"),
    ("finished", "BuildRuns finished within the bound", "{:.0f}"),
    ("not_succeeded", "BuildRuns not Succeeded", "{:.0f}"),
    ("without_digest", "BuildRuns without status.output.digest", "{:.0f}"),
    ("regressions", "status regressions", "{:.0f}"),
    ("pod_create_conflicts", "Pod creates answered 409", "{:.0f}"),
    ("requests_per_buildrun", "API requests / BuildRun", "{:.2f}"),
    ("reads_per_buildrun", "… reads", "{:.2f}"),
    ("writes_per_buildrun", "… writes", "{:.2f}"),
    ("watches_per_buildrun", "… watches", "{:.3f}"),
    ("bytes_written_per_buildrun", "bytes written / BuildRun (request bodies)", "{:.0f}"),
    ("operator_cpu_s", "operator CPU (s)", "{:.1f}"),
    ("shipwright_build_controller_cpu_s", "… Shipwright's build controller (s)", "{:.1f}"),
    ("tekton_controller_cpu_s", "… Tekton's controller (s)", "{:.1f}"),
    ("operator_cpu_ms_per_buildrun", "operator CPU / BuildRun (ms)", "{:.2f}"),
    ("operator_ceiling_per_core", "operator-bound ceiling: 1 core ÷ CPU per BuildRun (/s)",
     "{:.0f}"),
    ("apiserver_cpu_s", "kube-apiserver CPU (s)", "{:.1f}"),
    ("apiserver_cpu_ms_per_buildrun", "kube-apiserver CPU / BuildRun (ms)", "{:.1f}"),
    ("etcd_cpu_s", "etcd CPU (s)", "{:.1f}"),
    ("etcd_cpu_ms_per_buildrun", "etcd CPU / BuildRun (ms)", "{:.1f}"),
    ("kubelet_standin_cpu_s", "kubelet stand-in CPU (s)", "{:.1f}"),
    ("bench_client_cpu_s", "benchmark client CPU (s)", "{:.1f}"),
    ("operator_rss_idle_mb", "operator RSS idle (MB)", "{:.1f}"),
    ("operator_peak_rss_mb", "operator peak RSS (MB)", "{:.1f}"),
    ("operator_rss_with_all_present_mb", "operator RSS, all present, idle (MB)", "{:.1f}"),
    ("restart_peak_rss_mb", "restarted with all present: peak RSS (MB)", "{:.1f}"),
    ("restart_settled_rss_mb", "restarted with all present: settled RSS (MB)", "{:.1f}"),
    ("restart_cpu_s", "restarted with all present: CPU to catch up (s)", "{:.1f}"),
]
DATA_MARK = "<!-- bench-data: "


def machine() -> dict[str, str]:
    from importlib.metadata import version

    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor() or "unknown",
    )  # fmt: skip
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )  # fmt: skip
    return {
        "CPUs (nproc)": str(os.cpu_count()),
        "CPU model": model,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "kopf": version("kopf"),
        "aiohttp": version("aiohttp"),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def load_previous(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith(DATA_MARK):
            data: dict[str, Any] = json.loads(line[len(DATA_MARK) :].removesuffix(" -->"))
            return data
    return None


def render(data: dict[str, Any], previous: dict[str, Any] | None) -> str:
    out = ["# Benchmark results", ""]
    out.append(f"Run at {data['when']} with:")
    out += ["", "```", data["command"], "```", "", "| machine | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in data["machine"].items()]
    if previous:
        out += ["", f"Compared with the previous run of {previous['when']} "
                "(ratio = new / previous)."]  # fmt: skip
    out += ["", "Each figure is the median over the repeats of a scenario; latencies are "
            "local receipt times of watch events.", ""]  # fmt: skip
    for name, entry in data["scenarios"].items():
        old = (previous or {}).get("scenarios", {}).get(name)
        out.append(f"## {name}: {entry['description']}, {entry['repeats']} run(s)")
        out.append("")
        if old:
            out += ["| figure | new | previous | ratio |", "|---|---:|---:|---:|"]
        else:
            out += ["| figure | value |", "|---|---:|"]
        for key, label, fmt in ROWS:
            value = entry["median"].get(key)
            if value is None:
                continue
            if old:
                before = old["median"].get(key)
                prev = fmt.format(before) if before is not None else "–"
                ratio = f"{value / before:.2f}" if before else "–"
                out.append(f"| {label} | {fmt.format(value)} | {prev} | {ratio} |")
            else:
                out.append(f"| {label} | {fmt.format(value)} |")
        out.append("")
    out.append(DATA_MARK + json.dumps(data) + " -->")
    return "\n".join(out) + "\n"


COMPARED = (
    "Each figure is the median over the repeats of a scenario; latencies are local receipt "
    "times of watch events. 'operator' is buildwright's operator on the buildwright side "
    "and the sum of Shipwright's build controller and Tekton's controller on the peer's (RSS: "
    "the sum of both processes; peak: the sum of their peaks). API requests and bytes are "
    "those of the system's own clients (audit log, by user agent) in the scenario's "
    "namespace; bytes are the JSON request bodies of their writes as the audit log records "
    "them. Ratio = shipwright ÷ buildwright."
)


def render_comparison(data: dict[str, Any]) -> str:
    """The two systems side by side, scenario by scenario."""
    systems = data["systems"]
    out = ["# Buildwright and Shipwright with Tekton, side by side", ""]
    if data.get("from_logs"):
        out.append(f"Rendered at {data['when']} from the console output of the runs of:")
    else:
        out.append(f"Run at {data['when']} with:")
    out += ["", "```", data["command"], "```", "", "| machine | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in data["machine"].items()]
    for name, entry in systems.items():
        if "seconds" in entry:
            out.append(f"| {name}: wall time of its runs | {entry['seconds']:.0f} s |")
    out += ["", COMPARED, ""]
    for name, entry in systems.items():
        if "error" in entry:
            out += [f"**{name} did not finish:** `{entry['error']}`", ""]
    names = list(systems)
    order = [s for entry in systems.values() for s in entry.get("scenarios", {})]
    for scenario in dict.fromkeys(order):
        found = {n: systems[n].get("scenarios", {}).get(scenario) for n in names}
        first = next(e for e in found.values() if e)
        runs = ", ".join(f"{n} {e['repeats'] if e else 0}" for n, e in found.items())
        out += [f"## {scenario}: {first['description']}; runs: {runs}", ""]
        out += ["| figure | " + " | ".join(names) + " | ratio |",
                "|---|" + "---:|" * (len(names) + 1)]  # fmt: skip
        for key, label, fmt in ROWS:
            values = [(found[n] or {}).get("median", {}).get(key) for n in names]
            if all(v is None for v in values):
                continue
            cells = [fmt.format(v) if v is not None else "–" for v in values]
            base, other = values[0], values[-1]
            ratio = f"{other / base:.2f}" if base and other is not None else "–"
            out.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
        out.append("")
    out.append(DATA_MARK + json.dumps(data) + " -->")
    return "\n".join(out) + "\n"


def median_figures(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for run in runs for k in run}
    return {k: statistics.median(r[k] for r in runs if k in r) for k in sorted(keys)}


async def restarted_with_all_present(bench: Bench) -> dict[str, float]:
    """A fresh operator in a cluster holding every BuildRun and Pod of the scenario: its peak
    while it lists and catches up with them all, and its size once settled (CPU quiet)."""
    await asyncio.to_thread(bench.restart_operator)
    pids = bench.operator_pids
    began = time.monotonic()
    previous = pids_cpu_seconds(pids)
    while time.monotonic() - began < 300:
        await asyncio.sleep(2.0)
        current = pids_cpu_seconds(pids)
        if current - previous < 0.05:
            break
        previous = current
    peak = pids_memory_mb(pids)["VmHWM"]
    cpu = pids_cpu_seconds(pids)
    # Quiet for a while: the operator returns freed memory every 10 s (buildwright.memory).
    await asyncio.sleep(25.0)
    memory = pids_memory_mb(pids)
    return {
        "restart_cpu_s": cpu,
        "restart_peak_rss_mb": peak,
        "restart_settled_rss_mb": memory["VmRSS"],
    }


# --------------------------------------------------------------------------- profiles


def start_profiles(bench: Bench, api: Api, label: str, scenario: Scenario) -> asyncio.Future[Any]:
    """With --profile: the apiserver's CPU profile (pprof) and the operator's sampled stacks
    (py-spy, collapsed) over the scenario's busy window, written to the profile directory."""
    if bench.profile_dir is None:
        return asyncio.gather()
    bench.profile_dir.mkdir(parents=True, exist_ok=True)
    busy = scenario.count / scenario.rate if scenario.rate else scenario.count / 40
    seconds = int(min(busy + 5, 120))

    async def apiserver() -> None:
        path = f"/debug/pprof/profile?seconds={seconds}"
        async with api.session.get(
            api.server + path, timeout=aiohttp.ClientTimeout(total=seconds + 60)
        ) as resp:
            data = await resp.read()
        (bench.profile_dir / f"{label}.apiserver.pprof").write_bytes(data)

    async def operator() -> None:
        if "operator" not in bench.operator_pids:
            return  # the peer's controllers are Go: no py-spy
        out = bench.profile_dir / f"{label}.operator.txt"
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
            "--rate", "200", "-d", str(seconds), "-p", str(bench.operator_pids["operator"]),
            "-o", str(out),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await proc.wait()

    print(f"  profiling {seconds} s into {bench.profile_dir}/{label}.*", flush=True)
    return asyncio.gather(apiserver(), operator())


# --------------------------------------------------------------------------- main


async def run_system(
    args: argparse.Namespace, bench: Bench, api: Api, chosen: list[Scenario]
) -> dict[str, Any]:
    """Every chosen scenario against the system running on `bench` now."""
    results: dict[str, Any] = {}
    for scenario in chosen:
        repeats = args.repeats or scenario.repeats
        runs = []
        for index in range(repeats):
            print(f"[{bench.system.name}] {scenario.name} run {index + 1}/{repeats}: "
                  f"{scenario.description}", flush=True)  # fmt: skip
            figures = await run_once(bench, api, scenario, index)
            print("  " + json.dumps({k: round(v, 2) for k, v in figures.items()}),
                  flush=True)  # fmt: skip
            runs.append(figures)
        results[scenario.name] = {
            "description": scenario.description,
            "repeats": repeats,
            "median": median_figures(runs),
            "runs": runs,
        }
    return results


async def run(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    table = scenarios(args.quick)
    chosen = [table[name] for name in (args.scenario or list(table))]
    data: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/run.py",
                                                      *sys.argv[1:]]),
        "machine": machine(),
    }  # fmt: skip
    api = Api(bench.control_plane.kubeconfig_path)
    try:
        if args.system != "both":
            await asyncio.to_thread(bench.use, args.system)
            data["system"] = args.system
            data["scenarios"] = await run_system(args, bench, api, chosen)
            return data
        # Scenario by scenario, one system after the other on the same control plane and
        # stand-in: on a shared machine, the two runs of a scenario then see the closest load.
        data["systems"] = {name: {"scenarios": {}, "seconds": 0.0} for name in SYSTEMS}
        for scenario in chosen:
            for name in SYSTEMS:
                entry = data["systems"][name]
                if "error" in entry:
                    continue
                began = time.monotonic()
                try:
                    await asyncio.to_thread(bench.use, name)
                    entry["scenarios"].update(await run_system(args, bench, api, [scenario]))
                except Exception as error:  # the other system's figures still count
                    entry["error"] = f"{scenario.name}: {type(error).__name__}: {error}"
                    print(f"[{name}] stopped: {entry['error']}", flush=True)
                entry["seconds"] += time.monotonic() - began
    finally:
        await api.close()
    return data


RUN_HEADER = re.compile(r"\[(\w+)\] (\S+) run \d+/\d+: (.*)$")


def comparison_from_logs(paths: list[Path], command: str) -> dict[str, Any]:
    """The data of a comparison rebuilt from console logs of `--compare` runs (the figures
    line each run prints), for runs stopped before they wrote their results. A later log's
    run of a scenario replaces an earlier one's."""
    systems: dict[str, Any] = {name: {"scenarios": {}} for name in SYSTEMS}
    for path in paths:
        header = None
        for line in path.read_text().splitlines():
            if match := RUN_HEADER.match(line):
                header = match.groups()
            elif line.startswith("  {") and header:
                system, scenario, description = header
                figures = json.loads(line)
                systems[system]["scenarios"][scenario] = {
                    "description": description, "repeats": 1,
                    "median": median_figures([figures]), "runs": [figures],
                }  # fmt: skip
                header = None
    info = machine()
    info.pop("load average at start")  # of now, not of the runs: each run has its own
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {"when": when, "command": command, "machine": info, "systems": systems,
            "from_logs": True}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=list(scenarios(False)),
                        help="run only this scenario (repeatable); default: all")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="smaller counts, one run each")
    parser.add_argument("--repeats", type=int, help="override the number of runs per scenario")
    parser.add_argument(
        "--system", choices=[*SYSTEMS, "both"], default="buildwright",
        help="what runs the BuildRuns: buildwright's operator, Shipwright's build controller "
        "with Tekton (bench/peer.py; built by hack/build-peer.sh when missing), or both, one "
        "after the other, side by side in the results",
    )  # fmt: skip
    parser.add_argument("--compare", action="store_true", help="the same as --system both")
    parser.add_argument(
        "--from-logs", type=Path, nargs="+", metavar="LOG",
        help="run nothing: render the comparison from the console output of --compare runs",
    )  # fmt: skip
    parser.add_argument(
        "--bound-rate", type=float, default=10.0, metavar="PER_SECOND",
        help="a run waits at most 60 s + BuildRuns / PER_SECOND for every BuildRun to finish "
        "(default 10); the peer needs a lower one on two cores",
    )  # fmt: skip
    parser.add_argument(
        "--peer-qps", type=float, metavar="QPS",
        help="client-side rate limit of both peer controllers (KUBE_API_QPS, burst twice as "
        "much; Tekton doubles both); default: as their releases ship (Tekton 20/s, Shipwright "
        "unlimited)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path,
        help="default: bench/results.md for buildwright alone, else bench/results-peer.md",
    )  # fmt: skip
    parser.add_argument(
        "--previous", type=Path, help="results file to compare with (default: --out as it was)"
    )
    parser.add_argument(
        "--operator-env", action="append", metavar="KEY=VALUE",
        help="extra environment of the operator process (e.g. to profile it)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", type=Path, metavar="DIR",
        help="write the apiserver's pprof CPU profile and the operator's py-spy stacks here",
    )  # fmt: skip
    args = parser.parse_args()
    if args.compare or args.from_logs:
        args.system = "both"
    if args.out is None:
        name = "results.md" if args.system == "buildwright" else "results-peer.md"
        args.out = REPO / "bench" / name
    if args.from_logs:
        command = "\n".join(
            line for log in args.from_logs for line in log.read_text().splitlines()
            if line.startswith("$ ")
        ) or "\n".join(f"# {log}" for log in args.from_logs)  # fmt: skip
        args.out.write_text(render_comparison(comparison_from_logs(args.from_logs, command)))
        print(f"wrote {args.out}")
        return
    previous = load_previous(args.previous or args.out)
    env = dict(item.split("=", 1) for item in args.operator_env or [])
    with tempfile.TemporaryDirectory(prefix="buildwright-bench-") as tmp:
        bench = Bench(Path(tmp), env, args.profile, audit_bodies=args.system != "buildwright")
        bench.peer_qps = args.peer_qps
        bench.bound_rate = args.bound_rate
        # Outside the event loop, so that SIGTERM (turned into SystemExit by the control
        # plane) or Ctrl-C still stops the operator and the stand-in, not only the cluster.
        try:
            bench.start()
            data = asyncio.run(run(args, bench))
        finally:
            bench.stop()
    if "systems" in data:
        args.out.write_text(render_comparison(data))
    else:
        comparable = previous if previous and "scenarios" in previous else None
        args.out.write_text(render(data, comparable))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

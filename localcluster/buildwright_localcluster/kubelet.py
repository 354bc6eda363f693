"""A kubelet stand-in for integration tests: one Node, Pods bound to it and driven to completion.

There is no scheduler and no container runtime in the local control plane. This module plays
both parts for the tests: it binds schedulable Pods to its Node through `pods/binding` and
reports, through `pods/status`, what a kubelet would report while the Pod's init containers
and then its containers run — waiting / running / terminated states, exit codes, reasons,
termination messages, conditions and phase — plus evictions, `activeDeadlineSeconds` and
graceful deletion.

What a container *does* is decided by an `Executor`. `ScriptedExecutor` answers from a
per-namespace script (each test owns a namespace); `ProcessExecutor` runs real processes.
The driving and status-writing logic here does not care which one it talks to. Pods are
treated as `restartPolicy: Never`. Like a kubelet, the stand-in starts all of a Pod's
containers at once once its init containers are done; in a build Pod the entrypoint in front
of each step decides which one runs. `ScriptedExecutor` plays that entrypoint for the steps it
scripts: a step's outcome starts when the step before it posted success, a step after a
failure is skipped as the entrypoint skips it, and the termination message is the one the
entrypoint would write. It reads the entrypoint's flags as buildwright writes them and as
Tekton's own controller does (the benchmark's peer), and a step that waits for a Downward
API file starts once the annotation shown in it is set.

One module, over 500 lines: test tooling whose parts (the Pod driver, the scripted
executor that plays Tekton's entrypoint, the REST helper) share the Pod's state machine and
are changed together.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import itertools
import json
import logging
import platform
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from buildwright.core.pod import SequencedStep, sequenced_step
from buildwright_localcluster.kubeletapi import KubeletServer, KubeletTLS

log = logging.getLogger(__name__)

Pod = Mapping[str, Any]
Container = Mapping[str, Any]

# The kubelet's own limits for termination messages (see the Pod API documentation).
MAX_MESSAGE_PER_CONTAINER = 4096
MAX_MESSAGE_PER_POD = 12 * 1024
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
KILLED_EXIT_CODE = 137
DEFAULT_EVICTION_MESSAGE = (
    "The node was low on resource: ephemeral-storage. Threshold quantity: 1Gi, available: 512Mi."
)
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


# --------------------------------------------------------------------------- executor API


@dataclass(frozen=True)
class Outcome:
    """How one container ends.

    `reason` defaults to Completed (exit 0) or Error; use reason="OOMKilled" with exit 137 for
    an out-of-memory kill. `message` is what the container wrote to its termination-message
    path; `logs` feed `terminationMessagePolicy: FallbackToLogsOnError`. `hang=True` runs
    until the container is killed (deadline, eviction, deletion). `results` are the result
    files the step leaves in /tekton/results: for a step behind the entrypoint, those the
    entrypoint is told to report (`-results`) join its termination message.
    """

    exit_code: int = 0
    reason: str | None = None
    message: str = ""
    logs: str = ""
    duration: float = 0.02
    hang: bool = False
    results: Mapping[str, str] = field(default_factory=dict)

    @property
    def terminated_reason(self) -> str:
        if self.reason:
            return self.reason
        return "Completed" if self.exit_code == 0 else "Error"


OOM_KILLED = Outcome(exit_code=KILLED_EXIT_CODE, reason="OOMKilled")
HANG = Outcome(hang=True)
KILLED = Outcome(exit_code=KILLED_EXIT_CODE, reason="Error", duration=0)


class ContainerRun(Protocol):
    """A started container."""

    def result(self) -> Outcome | None:
        """The outcome once the container has exited, else None. Must not block."""
        ...

    def kill(self) -> None:
        """Stop the container; `result()` reports the outcome once it has exited."""
        ...


class Executor(Protocol):
    """Runs containers for the stand-in. `notify` must be called (from any thread) when the
    container exits, so the driver wakes up without polling."""

    def start(self, pod: Pod, container: Container, notify: Callable[[], None]) -> ContainerRun: ...


class _Timers:
    """One thread firing callbacks at due times, shared by all scripted containers."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="kubelet-timers", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._heap, (when, next(self._seq), callback))
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:
                log.exception("timer callback failed")


class _ScriptedRun:
    def __init__(self, outcome: Outcome, notify: Callable[[], None], timers: _Timers) -> None:
        self._outcome = outcome
        self._notify = notify
        self._lock = threading.Lock()
        self._done: Outcome | None = None
        if not outcome.hang:
            timers.call_at(time.monotonic() + max(outcome.duration, 0.0), self._finish)

    def _finish(self, outcome: Outcome | None = None) -> None:
        with self._lock:
            if self._done is not None:
                return
            self._done = outcome or self._outcome
        self._notify()

    def result(self) -> Outcome | None:
        with self._lock:
            return self._done

    def kill(self) -> None:
        self._finish(KILLED)


ENTRYPOINT_MESSAGE_LIMIT = 4096
"""The entrypoint refuses (exit 1, no message) to write a termination message longer than this."""
_ENTRYPOINT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


def _entrypoint_time() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.strftime(_ENTRYPOINT_TIME_FORMAT)[:-3] + "Z"


def entrypoint_message(written: str, results: Mapping[str, str], skipped: bool) -> str:
    """The termination message Tekton's entrypoint leaves: the JSON list the step wrote
    itself (anything else is overwritten), then `StartedAt` and, for a skipped step,
    `Reason: Skipped` (type 3, not results), then the reported result files (type 1)."""
    entries: list[Any] = []
    with contextlib.suppress(ValueError):
        decoded = json.loads(written) if written else []
        if isinstance(decoded, list):
            entries = decoded
    entries.append({"key": "StartedAt", "value": _entrypoint_time(), "type": 3})
    if skipped:
        entries.append({"key": "Reason", "value": "Skipped", "type": 3})
    entries += [{"key": key, "value": value, "type": 1} for key, value in results.items()]
    return json.dumps(entries, separators=(",", ":"))


# Flags of Tekton's entrypoint that take no value (its cmd/entrypoint/main.go).
_ENTRYPOINT_BOOLEAN_FLAGS = frozenset(
    {"wait_file_content", "breakpoint_on_failure", "debug_before_step", "enable_spire"}
)


def paired_entrypoint_flags(container: Container) -> Container:
    """`container` with its entrypoint flags as `-name value` pairs, the form buildwright's
    Pods use: Tekton's own Pods also pass `-name=value` and value-less boolean flags, which
    are dropped (none of them changes what a scripted step does)."""
    args = [str(arg) for arg in container.get("args") or []]
    if "--" not in args:
        return container
    split = args.index("--")
    paired: list[str] = []
    for arg in args[:split]:
        name, equals, value = arg.lstrip("-").partition("=")
        if name in _ENTRYPOINT_BOOLEAN_FLAGS:
            continue
        paired += [f"-{name}", value] if equals else [arg]
    return {**container, "args": [*paired, *args[split:]]}


def downward_annotation(pod: Pod, container: Container, path: str | None) -> str | None:
    """The annotation whose value the Downward API file `path` of `container` holds, if it is
    one: Tekton's first step waits until its `tekton.dev/ready` file has content, which its
    controller sets once the Pod runs (and at creation where no sidecar can be injected)."""
    if not path:
        return None
    volumes = {v.get("name"): v for v in pod.get("spec", {}).get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        items = (volumes.get(mount.get("name")) or {}).get("downwardAPI", {}).get("items") or []
        for item in items:
            if f"{mount.get('mountPath', '').rstrip('/')}/{item.get('path')}" != path:
                continue
            field_path = str(item.get("fieldRef", {}).get("fieldPath", ""))
            key = field_path.removeprefix("metadata.annotations['").removesuffix("']")
            return key if key != field_path else None
    return None


class _PostBoard:
    """The post files of one Pod's steps, as the entrypoint leaves them in /tekton/run:
    each path is posted once, as success or as failure (`<path>.err`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posted: dict[str, bool] = {}
        self._waiting: dict[str, list[Callable[[bool], None]]] = {}

    def post(self, path: str | None, ok: bool) -> None:
        if not path:
            return
        with self._lock:
            if path in self._posted:
                return
            self._posted[path] = ok
            callbacks = self._waiting.pop(path, [])
        for callback in callbacks:
            callback(ok)

    def when_posted(self, path: str, callback: Callable[[bool], None]) -> None:
        with self._lock:
            ok = self._posted.get(path)
            if ok is None:
                self._waiting.setdefault(path, []).append(callback)
                return
        callback(ok)


class _SequencedRun:
    """A scripted step behind the entrypoint: waits for its predecessor's post file, then
    plays its scripted outcome, or is skipped when the predecessor failed."""

    def __init__(
        self,
        outcome: Outcome,
        step: SequencedStep,
        board: _PostBoard,
        notify: Callable[[], None],
        timers: _Timers,
    ) -> None:
        self._scripted = outcome
        self._step = step
        self._board = board
        self._notify = notify
        self._timers = timers
        self._outcome: Outcome | None = None
        self._lock = threading.Lock()
        if step.wait_file:
            board.when_posted(step.wait_file, self._predecessor_done)
        else:
            self._begin()

    def _predecessor_done(self, ok: bool) -> None:
        if ok:
            self._begin()
        else:
            message = entrypoint_message("", {}, skipped=True)
            self._finish(Outcome(exit_code=1, message=message, duration=0))

    def _begin(self) -> None:
        if self._scripted.hang:
            return
        self._timers.call_at(time.monotonic() + self._scripted.duration, self._play)

    def _play(self) -> None:
        scripted = self._scripted
        reported = {
            key: value for key, value in scripted.results.items() if key in self._step.results
        }
        message = entrypoint_message(scripted.message, reported, skipped=False)
        exit_code = scripted.exit_code
        if len(message.encode()) > ENTRYPOINT_MESSAGE_LIMIT:
            message, exit_code = "", exit_code or 1
        self._finish(
            Outcome(
                exit_code=exit_code,
                reason=scripted.reason,
                message=message,
                logs=scripted.logs,
                duration=scripted.duration,
            )
        )

    def _finish(self, outcome: Outcome) -> None:
        with self._lock:
            if self._outcome is not None:
                return
            self._outcome = outcome
        self._board.post(self._step.post_file, outcome.exit_code == 0)
        self._notify()

    def result(self) -> Outcome | None:
        with self._lock:
            return self._outcome

    def kill(self) -> None:
        self._finish(KILLED)


class ScriptedExecutor:
    """Containers end as a per-namespace script says; unscripted ones exit 0 after
    `default_duration` seconds. Steps behind the entrypoint run in its order (module
    docstring).

    Script keys are container names, or "pod-name/container-name" to single out one Pod, or
    "*" for every other container in the namespace.
    """

    def __init__(self, default_duration: float = 0.02) -> None:
        self.default = Outcome(duration=default_duration)
        self._scripts: dict[str, dict[str, Outcome]] = {}
        self._lock = threading.Lock()
        self._timers = _Timers()
        self._boards: dict[str, _PostBoard] = {}
        self._downward: dict[str, dict[str, str]] = {}  # uid -> waited file -> annotation

    def script(self, namespace: str, outcomes: Mapping[str, Outcome]) -> None:
        with self._lock:
            self._scripts[namespace] = dict(outcomes)

    def reset(self, namespace: str) -> None:
        with self._lock:
            self._scripts.pop(namespace, None)

    def outcome_for(self, pod: Pod, container: Container) -> Outcome:
        meta = pod.get("metadata", {})
        name = str(container.get("name", ""))
        with self._lock:
            script = self._scripts.get(str(meta.get("namespace", "")), {})
        for key in (f"{meta.get('name', '')}/{name}", name, "*"):
            if key in script:
                return script[key]
        return self.default

    def start(self, pod: Pod, container: Container, notify: Callable[[], None]) -> ContainerRun:
        outcome = self.outcome_for(pod, container)
        step = sequenced_step(paired_entrypoint_flags(container))
        if step is None:
            return _ScriptedRun(outcome, notify, self._timers)
        uid = str(pod.get("metadata", {}).get("uid", ""))
        annotation = downward_annotation(pod, container, step.wait_file)
        with self._lock:
            board = self._boards.setdefault(uid, _PostBoard())
            if annotation and step.wait_file:
                self._downward.setdefault(uid, {})[step.wait_file] = annotation
        run = _SequencedRun(outcome, step, board, notify, self._timers)
        self.observe(pod)
        return run

    def observe(self, pod: Pod) -> None:
        """A newer version of a running Pod: Downward API files waited for get their content
        when the annotation they show is set."""
        meta = pod.get("metadata", {})
        annotations = meta.get("annotations") or {}
        with self._lock:
            board = self._boards.get(str(meta.get("uid", "")))
            waits = self._downward.get(str(meta.get("uid", ""))) or {}
            ready = [path for path, key in waits.items() if annotations.get(key)]
            for path in ready:
                del waits[path]
        for path in ready:
            if board is not None:
                board.post(path, True)

    def release(self, pod: Pod) -> None:
        """Forget a Pod whose driver is done."""
        with self._lock:
            self._boards.pop(str(pod.get("metadata", {}).get("uid", "")), None)
            self._downward.pop(str(pod.get("metadata", {}).get("uid", "")), None)

    def close(self) -> None:
        self._timers.close()


@dataclass(frozen=True)
class PodScript:
    """Pod-level behaviour, independent of the executor.

    `pod_pending`: the Pod is bound but its containers never start (they wait with
    `pending_reason`). `evict_after`: seconds after the Pod started, the node evicts it.
    """

    pod_pending: bool = False
    pending_reason: str = "ContainerCreating"
    evict_after: float | None = None
    evict_message: str = DEFAULT_EVICTION_MESSAGE


# --------------------------------------------------------------------------- REST helper


class ApiError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body.decode(errors="replace")
        super().__init__(f"HTTP {status}: {self.body[:500]}")


class _Rest:
    """Raw JSON requests through the kubernetes client's connection pool and credentials.

    Working with plain dicts keeps the stand-in close to the wire format the kubelet writes
    and avoids the typed models' validation of partial objects.
    """

    def __init__(self, api_client: k8s_client.ApiClient) -> None:
        self.api_client = api_client

    def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Sequence[tuple[str, Any]] = (),
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = 30,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        req = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        return self.api_client.call_api(*req, _request_timeout=timeout)

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        resp = self._send(method, path, body, **kwargs)
        data = resp.read()
        if not 200 <= resp.status < 300:
            raise ApiError(resp.status, data or b"")
        return json.loads(data) if data else None

    def stream(self, path: str, query: Sequence[tuple[str, Any]], timeout: float) -> Any:
        """Open a watch; returns the raw urllib3 response (caller iterates and closes)."""
        resp = self._send("GET", path, query=query, timeout=(10, timeout))
        if resp.status != 200:
            raise ApiError(resp.status, resp.read() or b"")
        return resp.response


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


# --------------------------------------------------------------------------- scheduling


def _selector_matches(pod: Pod, labels: Mapping[str, str]) -> bool:
    spec = pod.get("spec", {})
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    # Terms are ORed, expressions within a term ANDed.
    return not terms or any(_term_matches(t, labels) for t in terms)


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for expr in term.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op in ("Gt", "Lt"):
            try:
                have, want = int(labels[key]), int(values[0])
            except (KeyError, ValueError, IndexError):
                return False
            if (op == "Gt" and not have > want) or (op == "Lt" and not have < want):
                return False
    # matchFields can only name metadata.name, which is the hostname label on this node.
    for f in term.get("matchFields") or []:
        named = labels.get("kubernetes.io/hostname") in (f.get("values") or [])
        if f.get("key") == "metadata.name" and named != (f.get("operator") == "In"):
            return False
    return True


# --------------------------------------------------------------------------- pod driver


class _PodGone(Exception):
    """The Pod was deleted (or replaced by one with the same name)."""


class _Stopped(Exception):
    """The stand-in is shutting down."""


@dataclass
class _ContainerState:
    spec: Container
    init: bool
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "PodInitializing"}}
    )
    container_id: str | None = None
    outcome: Outcome | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def succeeded(self) -> bool:
        return self.outcome is not None and self.outcome.exit_code == 0

    def as_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.running and not self.init,
            "restartCount": 0,
            "started": self.running,
            "state": self.state,
            "lastState": {},
        }
        if self.container_id:
            status["containerID"] = self.container_id
            status["imageID"] = f"standin-image://{self.spec.get('image', '')}"
        return status


class _PodDriver:
    """Takes one Pod from binding to a terminal phase, in its own thread."""

    def __init__(self, kubelet: KubeletStandIn, pod: Pod, script: PodScript) -> None:
        self.kubelet = kubelet
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.pod: Pod = pod
        self.script = script
        self.wake = threading.Event()
        self.gone = False
        self._lock = threading.Lock()
        spec = pod.get("spec", {})
        inits = spec.get("initContainers") or []
        self.inits = [_ContainerState(c, True) for c in inits]
        self.mains = [
            _ContainerState(
                c,
                False,
                {"waiting": {"reason": "PodInitializing" if inits else "ContainerCreating"}},
            )
            for c in spec.get("containers") or []
        ]
        self.phase = "Pending"
        self.reason: str | None = None
        self.message: str | None = None
        self.start_time: str | None = None
        self.started_mono = 0.0
        self.disruption: dict[str, Any] | None = None
        self.transitions: dict[str, tuple[str, str]] = {}
        self.pod_ip = kubelet.allocate_ip()
        self.thread = threading.Thread(
            target=self.run, name=f"kubelet-pod-{self.namespace}/{self.name}", daemon=True
        )

    # ------------------------------------------------------------- events from the watch

    def observe(self, pod: Pod) -> None:
        with self._lock:
            self.pod = pod
        observe = getattr(self.kubelet.executor, "observe", None)
        if observe is not None:
            observe(pod)  # an annotation shown through the Downward API may have changed
        if pod.get("metadata", {}).get("deletionTimestamp"):
            self.wake.set()

    def mark_gone(self) -> None:
        self.gone = True
        self.wake.set()

    # ------------------------------------------------------------- main flow

    def run(self) -> None:
        try:
            self._run()
        except (_PodGone, _Stopped):
            pass
        except Exception:
            log.exception("kubelet stand-in failed driving %s/%s", self.namespace, self.name)
        finally:
            self.kubelet.driver_finished(self)

    def _run(self) -> None:
        if not self.pod.get("spec", {}).get("nodeName"):
            self._bind()
        self.start_time = _now()
        self.started_mono = time.monotonic()
        if self.script.pod_pending:
            for c in self.inits[:1] + ([] if self.inits else self.mains):
                c.state = {"waiting": {"reason": self.script.pending_reason}}
            self._write()
            self._interrupted(self._wait_for_interruption(lambda: False))
            return
        self._write()
        for c in self.inits:
            interruption = self._run_containers([c])
            if interruption:
                self._interrupted(interruption)
                return
            if not c.succeeded:
                # restartPolicy Never: a failed init container fails the Pod.
                self.phase = "Failed"
                self._write()
                return
        interruption = self._run_containers(self.mains)
        if interruption:
            self._interrupted(interruption)
            return
        self.phase = "Succeeded" if all(c.succeeded for c in self.mains) else "Failed"
        self._write()

    def _bind(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.kubelet.node_name},
        }
        try:
            self.kubelet.rest.call(
                "POST", f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/binding", body
            )
        except ApiError as exc:
            if exc.status in (404, 409, 422):
                raise _PodGone from exc
            raise
        self.event(
            "Scheduled",
            f"Successfully assigned {self.namespace}/{self.name} to {self.kubelet.node_name}",
            component="default-scheduler",
        )

    def event(
        self, reason: str, message: str, *, warning: bool = False,
        container: str | None = None, component: str = "kubelet",
    ) -> None:  # fmt: skip
        """Post a Pod Event as a kubelet (or, for Scheduled, the scheduler) posts it."""
        if not self.kubelet.events:
            return
        involved: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Pod", "namespace": self.namespace,
            "name": self.name, "uid": self.uid,
        }  # fmt: skip
        if container is not None:
            kind = (
                "initContainers" if any(c.name == container for c in self.inits) else "containers"
            )
            involved["fieldPath"] = f"spec.{kind}{{{container}}}"
        now = _now()
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{self.name}.", "namespace": self.namespace},
            "involvedObject": involved, "reason": reason, "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": component,
                       **({"host": self.kubelet.node_name} if component == "kubelet" else {})},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": component,
            "reportingInstance": self.kubelet.node_name if component == "kubelet" else "",
        }  # fmt: skip
        try:
            self.kubelet.rest.call("POST", f"/api/v1/namespaces/{self.namespace}/events", body)
        except Exception as exc:  # an Event is best effort, as a kubelet's are
            log.debug("kubelet stand-in: event %s for %s/%s: %s", reason, self.namespace,
                      self.name, exc)  # fmt: skip

    def _interruption(self) -> str | None:
        if self.kubelet.stopping:
            return "stopped"
        if self.gone:
            return "gone"
        with self._lock:
            pod = self.pod
        if pod.get("metadata", {}).get("deletionTimestamp"):
            return "deleted"
        now = time.monotonic()
        deadline = pod.get("spec", {}).get("activeDeadlineSeconds")
        if deadline is not None and now >= self.started_mono + float(deadline):
            return "deadline"
        if (
            self.script.evict_after is not None
            and now >= self.started_mono + self.script.evict_after
        ):
            return "evicted"
        return None

    def _next_timer(self) -> float | None:
        with self._lock:
            deadline = self.pod.get("spec", {}).get("activeDeadlineSeconds")
        candidates = []
        if deadline is not None:
            candidates.append(self.started_mono + float(deadline))
        if self.script.evict_after is not None:
            candidates.append(self.started_mono + self.script.evict_after)
        if not candidates:
            return None
        return max(0.0, min(candidates) - time.monotonic())

    def _wait_for_interruption(self, done: Callable[[], bool]) -> str | None:
        """Sleep until `done()` or an interruption; return the interruption, if any."""
        while True:
            self.wake.clear()
            interruption = self._interruption()
            if interruption or done():
                return interruption
            timeout = self._next_timer()
            # The watch may miss a change of activeDeadlineSeconds' effect only by the time
            # it takes to notice; cap the sleep so a lowered deadline is honoured promptly.
            self.wake.wait(timeout=1.0 if timeout is None else min(timeout, 1.0))

    def _run_containers(self, containers: Sequence[_ContainerState]) -> str | None:
        interruption = self._interruption()
        if interruption:
            return interruption
        with self._lock:
            pod = self.pod
        runs: dict[str, ContainerRun] = {}
        for c in containers:
            runs[c.name] = self.kubelet.executor.start(pod, c.spec, self.wake.set)
            c.container_id = f"standin://{self.uid[:8]}-{c.name}"
            c.state = {"running": {"startedAt": _now()}}
            early = runs[c.name].result()
            if early is not None and early.reason == "CreateContainerConfigError":
                self.event("Failed", f"Error: {early.message}", warning=True, container=c.name)
            else:
                self.event("Created", f"Created container: {c.name}", container=c.name)
                self.event("Started", f"Started container {c.name}", container=c.name)
        if containers and not containers[0].init:
            self.phase = "Running"
        self._write()
        pending = list(containers)

        def collect() -> bool:
            finished = [c for c in pending if runs[c.name].result() is not None]
            for c in finished:
                self._terminate(c, runs[c.name].result() or KILLED)
                pending.remove(c)
            if finished and pending:
                self._write()
            return not pending

        interruption = self._wait_for_interruption(collect)
        if interruption:
            if interruption == "deadline":
                self.event("DeadlineExceeded", DEADLINE_MESSAGE, warning=True)
            elif interruption == "evicted":
                self.event("Evicted", self.script.evict_message, warning=True)
            for c in pending:
                if interruption != "stopped":
                    self.event("Killing", f"Stopping container {c.name}", container=c.name)
                runs[c.name].kill()
            # Killing is asynchronous for real processes; give them a bounded moment.
            end = time.monotonic() + 10
            while pending and time.monotonic() < end:
                self.wake.clear()
                collect()
                if pending:
                    self.wake.wait(0.5)
            for c in pending:
                self._terminate(c, KILLED)
            pending.clear()
        return interruption

    def _terminate(self, c: _ContainerState, outcome: Outcome) -> None:
        c.outcome = outcome
        started = c.state.get("running", {}).get("startedAt") or _now()
        terminated: dict[str, Any] = {
            "exitCode": outcome.exit_code,
            "reason": outcome.terminated_reason,
            "startedAt": started,
            "finishedAt": _now(),
        }
        if c.container_id:
            terminated["containerID"] = c.container_id
        message = self._termination_message(c.spec, outcome)
        if message:
            terminated["message"] = message
        c.state = {"terminated": terminated}

    def _termination_message(self, spec: Container, outcome: Outcome) -> str:
        message = outcome.message
        if (
            not message
            and outcome.exit_code != 0
            and spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            tail = "\n".join(outcome.logs.splitlines()[-FALLBACK_LOG_LINES:])
            message = tail.encode()[-FALLBACK_LOG_BYTES:].decode(errors="ignore")
        count = max(1, len(self.inits) + len(self.mains))
        limit = min(MAX_MESSAGE_PER_CONTAINER, MAX_MESSAGE_PER_POD // count)
        return message.encode()[:limit].decode(errors="ignore")

    def _interrupted(self, interruption: str | None) -> None:
        if interruption in (None, "stopped", "gone"):
            return
        if interruption == "deadline":
            self.phase, self.reason, self.message = "Failed", "DeadlineExceeded", DEADLINE_MESSAGE
        elif interruption == "evicted":
            self.phase, self.reason = "Failed", "Evicted"
            self.message = self.script.evict_message
            self.disruption = {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "TerminationByKubelet",
                "message": self.script.evict_message,
            }
        elif interruption == "deleted":
            self.phase = "Failed"
        with contextlib.suppress(_PodGone):
            self._write()
        if interruption == "deleted":
            self._finish_deletion()

    def _finish_deletion(self) -> None:
        """Graceful deletion ends with the kubelet deleting the Pod for good."""
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        try:
            self.kubelet.rest.call(
                "DELETE", f"/api/v1/namespaces/{self.namespace}/pods/{self.name}", body
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    # ------------------------------------------------------------- status

    def _condition(
        self, ctype: str, ok: bool, reason: str | None, message: str | None
    ) -> dict[str, Any]:
        status = "True" if ok else "False"
        previous = self.transitions.get(ctype)
        if previous is None or previous[0] != status:
            self.transitions[ctype] = (status, _now())
        cond: dict[str, Any] = {
            "type": ctype,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": self.transitions[ctype][1],
        }
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        return cond

    def _conditions(self) -> list[dict[str, Any]]:
        terminal = self.phase in ("Succeeded", "Failed")
        incomplete = [c.name for c in self.inits if not c.succeeded]
        unready = [c.name for c in self.mains if not c.running]
        conditions = [
            self._condition(
                "PodReadyToStartContainers",
                not self.script.pod_pending and not terminal,
                None,
                None,
            ),
            self._condition(
                "Initialized",
                not incomplete,
                None if not incomplete else "ContainersNotInitialized",
                None
                if not incomplete
                else f"containers with incomplete status: [{' '.join(incomplete)}]",
            ),
        ]
        for ctype in ("Ready", "ContainersReady"):
            if terminal:
                conditions.append(self._condition(ctype, False, "PodCompleted", None))
            elif unready:
                conditions.append(
                    self._condition(
                        ctype,
                        False,
                        "ContainersNotReady",
                        f"containers with unready status: [{' '.join(unready)}]",
                    )
                )
            else:
                conditions.append(self._condition(ctype, True, None, None))
        conditions.append(self._condition("PodScheduled", True, None, None))
        if self.disruption:
            conditions.append(
                self._condition("DisruptionTarget", True, None, None) | self.disruption
            )
        return conditions

    def _write(self) -> None:
        if self.kubelet.stopping:
            raise _Stopped
        status: dict[str, Any] = {
            "phase": self.phase,
            "conditions": self._conditions(),
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.start_time,
            "containerStatuses": [c.as_status() for c in self.mains],
        }
        if self.inits:
            status["initContainerStatuses"] = [c.as_status() for c in self.inits]
        if self.reason:
            status["reason"] = self.reason
        if self.message:
            status["message"] = self.message
        # The uid turns the patch into a precondition: a new Pod with the same name is
        # rejected instead of receiving this Pod's status.
        body = {"metadata": {"uid": self.uid}, "status": status}
        try:
            self.kubelet.rest.call(
                "PATCH",
                f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status",
                body,
                content_type="application/merge-patch+json",
            )
        except ApiError as exc:
            if exc.status in (404, 409) or (exc.status == 422 and "uid" in exc.body.lower()):
                raise _PodGone from exc
            raise


# --------------------------------------------------------------------------- the stand-in


class KubeletStandIn:
    """Registers a Node and runs every Pod that lands on it (see the module docstring)."""

    def __init__(
        self,
        kubeconfig: str | Path,
        *,
        node_name: str = "buildwright-node",
        executor: Executor | None = None,
        labels: Mapping[str, str] | None = None,
        capacity: Mapping[str, str] | None = None,
        tls: KubeletTLS | None = None,
        events: bool = False,
    ) -> None:
        configuration = k8s_client.Configuration()
        k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
        # One connection per concurrently driven Pod, or urllib3 discards and reconnects.
        configuration.connection_pool_maxsize = 128
        self._api_client = k8s_client.ApiClient(configuration)
        self.rest = _Rest(self._api_client)
        self.node_name = node_name
        self.executor: Executor = executor if executor is not None else ScriptedExecutor()
        self.labels = {
            "kubernetes.io/arch": _arch(),
            "kubernetes.io/os": "linux",
            "kubernetes.io/hostname": node_name,
            **(labels or {}),
        }
        self.capacity = dict(
            capacity or {"cpu": "16", "memory": "64Gi", "pods": "500", "ephemeral-storage": "200Gi"}
        )
        self.stopping = False
        # Pod Events (Scheduled, Created, Started, Killing, Failed) as `kubectl describe pod`
        # shows them; off for the scripted integration tests, which run thousands of Pods.
        self.events = events
        self._lock = threading.Lock()
        self._drivers: dict[str, _PodDriver] = {}
        self._finished: set[str] = set()
        self._unschedulable: set[str] = set()
        self._pod_scripts: dict[str, PodScript] = {}
        self._watch_thread: threading.Thread | None = None
        self._watch_resp: Any = None
        self._ip_counter = itertools.count(2)
        self._synced = threading.Event()
        self._failure: BaseException | None = None
        # With TLS material and an executor that keeps logs, the kubelet API is served too.
        self.server: KubeletServer | None = None
        if tls is not None:
            if not hasattr(self.executor, "container_log"):
                raise TypeError("the kubelet API needs an executor that keeps container logs")
            self.server = KubeletServer(tls, self.executor)  # type: ignore[arg-type]

    # ------------------------------------------------------------- public API

    def __enter__(self) -> KubeletStandIn:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        """Serve the kubelet API (if any), register the Node, then watch Pods in a thread."""
        if self.server is not None:
            self.server.start()
        self._register_node()
        self._watch_thread = threading.Thread(
            target=self._watch_loop, name="kubelet-watch", daemon=True
        )
        self._watch_thread.start()
        if not self._synced.wait(timeout):
            raise TimeoutError(
                f"kubelet stand-in did not list Pods within {timeout:g}s: {self._failure}"
            )

    def stop(self) -> None:
        """Stop watching and driving; Pods keep whatever status they last had."""
        self.stopping = True
        resp = self._watch_resp
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()
        if self._watch_thread is not None:
            self._watch_thread.join(timeout=10)
        with self._lock:
            drivers = list(self._drivers.values())
        for d in drivers:
            d.wake.set()
        for d in drivers:
            d.thread.join(timeout=15)
        if self.server is not None:
            self.server.stop()
        close = getattr(self.executor, "close", None)
        if callable(close):
            close()
        self._api_client.close()  # type: ignore[no-untyped-call]

    def script(
        self,
        namespace: str,
        outcomes: Mapping[str, Outcome] | None = None,
        *,
        pod_pending: bool = False,
        pending_reason: str = "ContainerCreating",
        evict_after: float | None = None,
        evict_message: str = DEFAULT_EVICTION_MESSAGE,
    ) -> None:
        """Script what happens to Pods created in `namespace` from now on.

        `outcomes` go to the executor (which must then be a ScriptedExecutor); the rest is
        Pod-level behaviour applied by the driver regardless of executor.
        """
        if outcomes is not None:
            if not isinstance(self.executor, ScriptedExecutor):
                raise TypeError("container outcomes can only be scripted with a ScriptedExecutor")
            self.executor.script(namespace, outcomes)
        with self._lock:
            self._pod_scripts[namespace] = PodScript(
                pod_pending=pod_pending,
                pending_reason=pending_reason,
                evict_after=evict_after,
                evict_message=evict_message,
            )

    def reset(self, namespace: str) -> None:
        """Forget the script of `namespace`."""
        if isinstance(self.executor, ScriptedExecutor):
            self.executor.reset(namespace)
        with self._lock:
            self._pod_scripts.pop(namespace, None)

    @property
    def active_pods(self) -> int:
        with self._lock:
            return len(self._drivers)

    # ------------------------------------------------------------- internals used by drivers

    def allocate_ip(self) -> str:
        n = next(self._ip_counter)
        return f"10.244.{(n // 250) % 250}.{n % 250 + 2}"

    def driver_finished(self, driver: _PodDriver) -> None:
        release = getattr(self.executor, "release", None)
        if release is not None:
            release(driver.pod)
        with self._lock:
            self._drivers.pop(driver.uid, None)
            self._finished.add(driver.uid)

    # ------------------------------------------------------------- node

    def _register_node(self) -> None:
        now = _now()
        conditions = [
            {
                "type": ctype,
                "status": "False",
                "reason": f"KubeletHas{reason}",
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
            for ctype, reason, message in (
                ("MemoryPressure", "SufficientMemory", "kubelet has sufficient memory available"),
                ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"),
            )
        ]
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        )
        status: dict[str, Any] = {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.node_name},
            ],
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": "buildwright kubelet stand-in",
                "containerRuntimeVersion": "standin://0",
                "kubeletVersion": "v0.0.0-standin",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
        }
        if self.server is not None:
            status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": self.server.port}}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node_name, "labels": self.labels},
            "spec": {},
        }
        try:
            self.rest.call("POST", "/api/v1/nodes", node)
        except ApiError as exc:
            if exc.status != 409:
                raise
            self.rest.call(
                "PATCH",
                f"/api/v1/nodes/{self.node_name}",
                {"metadata": {"labels": self.labels}},
                content_type="application/merge-patch+json",
            )
        self.rest.call(
            "PATCH",
            f"/api/v1/nodes/{self.node_name}/status",
            {"status": status},
            content_type="application/merge-patch+json",
        )

    # ------------------------------------------------------------- pods

    def _watch_loop(self) -> None:
        resource_version: str | None = None
        while not self.stopping:
            try:
                if resource_version is None:
                    listing = self.rest.call("GET", "/api/v1/pods")
                    resource_version = listing["metadata"]["resourceVersion"]
                    for pod in listing.get("items") or []:
                        self._observe("ADDED", pod)
                    self._synced.set()
                resource_version = self._watch_once(resource_version)
            except ApiError as exc:
                if exc.status == 410:
                    resource_version = None
                    continue
                self._failure = exc
                log.warning("kubelet stand-in watch failed: %s", exc)
                time.sleep(0.5)
            except Exception as exc:
                if self.stopping:
                    return
                self._failure = exc
                log.warning("kubelet stand-in watch interrupted: %s", exc)
                time.sleep(0.5)

    def _watch_once(self, resource_version: str) -> str | None:
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", "300"),
        ]
        resp = self.rest.stream("/api/v1/pods", query, timeout=330)
        self._watch_resp = resp
        buffer = b""
        try:
            for chunk in resp.stream(None, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            return None
                        raise ApiError(int(obj.get("code") or 500), json.dumps(obj).encode())
                    resource_version = obj.get("metadata", {}).get(
                        "resourceVersion", resource_version
                    )
                    if event.get("type") != "BOOKMARK":
                        self._observe(str(event.get("type")), obj)
        finally:
            self._watch_resp = None
            resp.release_conn()
        return resource_version

    def _observe(self, event_type: str, pod: Pod) -> None:
        meta = pod.get("metadata", {})
        uid = str(meta.get("uid", ""))
        spec = pod.get("spec", {})
        with self._lock:
            driver = self._drivers.get(uid)
            if event_type == "DELETED":
                self._finished.discard(uid)
                self._unschedulable.discard(uid)
                if driver is not None:
                    driver.mark_gone()
                return
            if driver is not None:
                driver.observe(pod)
                return
            if uid in self._finished or self.stopping:
                return
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return
            node = spec.get("nodeName")
            if node and node != self.node_name:
                return
            if not node and not self._schedulable(pod):
                return
            script = self._pod_scripts.get(str(meta.get("namespace")), PodScript())
            driver = _PodDriver(self, pod, script)
            self._drivers[uid] = driver
        driver.thread.start()

    def _schedulable(self, pod: Pod) -> bool:
        """Whether the missing scheduler would place `pod` on this node now.

        Caller holds self._lock.
        """
        spec = pod.get("spec", {})
        if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
            return False  # some other scheduler's Pod: leave it alone entirely
        if spec.get("schedulingGates") or pod.get("metadata", {}).get("deletionTimestamp"):
            return False
        if _selector_matches(pod, self.labels):
            return True
        uid = str(pod["metadata"]["uid"])
        if uid not in self._unschedulable:
            self._unschedulable.add(uid)
            threading.Thread(target=self._report_unschedulable, args=(pod,), daemon=True).start()
        return False

    def _report_unschedulable(self, pod: Pod) -> None:
        meta = pod["metadata"]
        body = {
            "metadata": {"uid": meta["uid"]},
            "status": {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes are available: 1 node(s) didn't match Pod's "
                        "node affinity/selector.",
                        "lastProbeTime": None,
                        "lastTransitionTime": _now(),
                    }
                ]
            },
        }
        with contextlib.suppress(ApiError):
            self.rest.call(
                "PATCH",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                body,
                content_type="application/merge-patch+json",
            )


__all__ = [
    "HANG",
    "KILLED",
    "OOM_KILLED",
    "ContainerRun",
    "Executor",
    "KubeletStandIn",
    "Outcome",
    "PodScript",
    "ScriptedExecutor",
]

"""An executor for the kubelet stand-in that really runs a Pod's containers as host processes.

Each container runs as a process on this machine, as root, with the container's command and
args (after Kubernetes' `$(VAR)` expansion), its env (values and `valueFrom` secret, configMap
and field references, `envFrom`) and `workingDir`, inside a private mount namespace in which
the Pod's volumes are bind-mounted at their `mountPath`s. Volumes live in a per-Pod directory
(`<state_dir>/pods/<uid>/`), so concurrent Pods never see each other's `/workspace/source`,
`/tekton/home` or `/tekton/results`; the directory goes away once the Pod is deleted.

What this is not: a container runtime. The `image` is never pulled — the host must have the
tools the steps call (git, buildah, the virtualenv's `buildwright-step`, and Tekton's
entrypoint, which the `prepare` init container copies into the Pod as on a cluster: the
binary built by hack/build-entrypoint.sh stands in for the one in the step image). `securityContext`
is ignored (everything runs as root; `readOnlyRootFilesystem` is not emulated), resources are
not limited, and mount points missing on the host (`/workspace`, `/tekton`, `/shp-tmp`,
`/dev/termination-log`, …) are created there as empty directories or files, as a runtime
creates them in an image's root file system.

A small launcher (this module run as a program, stdlib only so it starts fast) enters the
mount namespace, mounts, changes directory and execs the command; it reads its instructions
from a root-only file so env values (which may come from Secrets) never appear on a command
line.

One module, over 500 lines: test tooling; env expansion, volume mounts, the namespace
setup and the process lifecycle of a container are one sequence and change together.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes import client as k8s_client

    from buildwright_localcluster.kubelet import Container, ContainerRun, Outcome, Pod

from buildwright.core.contract import ENTRYPOINT_IN_STEP_IMAGE

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("/var/lib/buildwright-agent")
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
# What a runtime reports when it cannot create the container (missing Secret, bad volume).
CONFIG_ERROR_EXIT = 128
STEP_PROGRAM = "buildwright-step"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_UID = re.compile(r"^[0-9a-f-]{36}$")
_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class ContainerConfigError(Exception):
    """The container cannot be created as specified (the kubelet's CreateContainerConfigError)."""


# --------------------------------------------------------------------------- pure helpers


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: `$$` becomes `$`, `$(NAME)` becomes the value of NAME
    when NAME is defined, and everything else (including undefined references) stays as
    written."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "(":
            close = text.find(")", i + 2)
            if close != -1:
                name = text[i + 2 : close]
                if name in env:
                    out.append(env[name])
                else:
                    out.append(text[i : close + 1])
                i = close + 1
                continue
        out.append("$")
        i += 1
    return "".join(out)


def _safe_relative(path: str) -> str:
    """A volume item path must stay inside its volume."""
    parts = Path(path).parts
    if not path or Path(path).is_absolute() or ".." in parts:
        raise ContainerConfigError(f"invalid volume item path {path!r}")
    return path


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _log_tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return ""
    tail = b"\n".join(data.splitlines()[-FALLBACK_LOG_LINES:])
    return tail[-FALLBACK_LOG_BYTES:].decode(errors="replace")


def _descendants(root: int) -> list[int]:
    """Every process below `root`, found through /proc (processes may leave the group)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    queue = [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


# --------------------------------------------------------------------------- logs

TIME_RECORD = 21  # "%020d\n": the unix nanoseconds at which one log line started


class _LogWriter:
    """Copies a container's stdout and stderr (one pipe) into its log file, and the time at
    which each line started into a side file of fixed-width records, line i at record i.

    The times are written before the bytes, so a reader never sees a line without its time.
    Readers wait on `changed` for more output.
    """

    def __init__(self, fd: int, log_path: Path, times_path: Path) -> None:
        self._fd = fd
        self.log_path = log_path
        self.times_path = times_path
        self.changed = threading.Condition()
        self.size = log_path.stat().st_size if log_path.exists() else 0
        self.done = False
        self._thread = threading.Thread(target=self._copy, name="log-writer", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        at_line_start = self.size == 0 or self._ends_with_newline()
        try:
            with self.log_path.open("ab") as out, self.times_path.open("ab") as times:
                while True:
                    try:
                        chunk = os.read(self._fd, 65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    now = time.time_ns()
                    starts = chunk.count(b"\n", 0, len(chunk) - 1) + (1 if at_line_start else 0)
                    at_line_start = chunk.endswith(b"\n")
                    if starts:
                        times.write(b"%020d\n" % now * starts)
                        times.flush()
                    out.write(chunk)
                    out.flush()
                    with self.changed:
                        self.size += len(chunk)
                        self.changed.notify_all()
        finally:
            os.close(self._fd)
            with self.changed:
                self.done = True
                self.changed.notify_all()

    def _ends_with_newline(self) -> bool:
        with self.log_path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class ContainerLogFile:
    """One container's log as the kubelet API reads it (see kubeletapi.ContainerLog)."""

    def __init__(self, log_path: Path, times_path: Path, writer: _LogWriter | None) -> None:
        self.log_path = log_path
        self.times_path = times_path
        self._writer = writer

    def read(self, offset: int, index: int) -> tuple[bytes, list[int]]:
        # Times first: every line in the bytes read after them has its record.
        try:
            with self.times_path.open("rb") as fh:
                fh.seek(index * TIME_RECORD)
                records = fh.read()
        except OSError:
            records = b""
        times = [int(records[i : i + 20]) for i in range(0, len(records) - 20, TIME_RECORD)]
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except OSError:
            data = b""
        return data, times

    def finished(self) -> bool:
        return self._writer is None or self._writer.done

    def wait(self, offset: int, timeout: float) -> None:
        writer = self._writer
        if writer is None:
            return
        with writer.changed:
            writer.changed.wait_for(lambda: writer.done or writer.size > offset, timeout)


EXEC_READY_TIMEOUT = 30.0


def _wait_for_exec(pid: int, timeout: float) -> bool:
    """Until process `pid` no longer runs this module's launcher (it has set up the mounts and
    exec'd the container's command); False if it ended or the timeout passed first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        if stat[stat.rfind(")") + 2 :].startswith("Z"):
            return False  # it ended
        # The command line reads empty for a moment while execve replaces it.
        if argv[0] and __name__.encode() not in argv[1:3]:
            return True
        time.sleep(0.01)
    return False


# --------------------------------------------------------------------------- running containers


class ProcessRun:
    """One container's process; implements the stand-in's ContainerRun protocol."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        log_path: Path,
        termination_path: Path,
        notify: Callable[[], None],
        on_exit: Callable[[], None],
        writer: _LogWriter | None = None,
    ) -> None:
        self._process = process
        self._writer = writer
        self._log_path = log_path
        self._termination_path = termination_path
        self._notify = notify
        self._on_exit = on_exit
        self._outcome: Outcome | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._wait, name=f"proc-{process.pid}", daemon=True).start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _wait(self) -> None:
        from buildwright_localcluster.kubelet import Outcome

        returncode = self._process.wait()
        # Like a runtime when a container's main process ends: what it left behind goes too,
        # and with it the last holder of the log pipe.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        if self._writer is not None:
            self._writer.join(timeout=10)
        try:
            with self._termination_path.open("rb") as fh:
                message = fh.read(MAX_TERMINATION_MESSAGE).decode(errors="replace")
        except OSError:
            message = ""
        code = _exit_code(returncode)
        outcome = Outcome(
            exit_code=code,
            message=message,
            logs=_log_tail(self._log_path) if code != 0 else "",
        )
        with self._lock:
            self._outcome = outcome
        self._on_exit()
        self._notify()

    def result(self) -> Outcome | None:
        with self._lock:
            return self._outcome

    def kill(self) -> None:
        if self.result() is not None:
            return
        pids = [self._process.pid, *_descendants(self._process.pid)]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


class _FailedRun:
    """A container that could not be created; ends at once with a config error."""

    def __init__(self, message: str, notify: Callable[[], None]) -> None:
        from buildwright_localcluster.kubelet import Outcome

        self._outcome = Outcome(
            exit_code=CONFIG_ERROR_EXIT, reason="CreateContainerConfigError", message=message
        )
        threading.Thread(target=notify, daemon=True).start()

    def result(self) -> Outcome | None:
        return self._outcome

    def kill(self) -> None:
        pass


class ProcessExecutor:
    """Runs the containers of Pods as host processes (see the module docstring).

    `api_client` reads the Secrets and ConfigMaps that volumes and env refer to. Pod
    directories of deleted Pods are removed by `sweep()`, which a background thread calls
    every `sweep_interval` seconds once `start_sweeper()` was called.
    """

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        *,
        state_dir: str | Path = DEFAULT_STATE_DIR,
        venv_bin: str | Path | None = None,
        entrypoint_binary: str | Path | None = None,
        sweep_interval: float = 5.0,
    ) -> None:
        from kubernetes import client as k8s_client

        self.core = k8s_client.CoreV1Api(api_client)
        # Absolute: each container launches in its own workingDir.
        self.state_dir = Path(state_dir).resolve()
        self.pods_dir = self.state_dir / "pods"
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.pods_dir.chmod(0o700)  # secret material and env files live below
        self.venv_bin = Path(venv_bin) if venv_bin is not None else Path(sys.executable).parent
        self.entrypoint_binary = (
            Path(entrypoint_binary).resolve() if entrypoint_binary is not None else None
        )
        self.sweep_interval = sweep_interval
        # The step image's command shims (its /usr/local/bin/waiter): `shp build upload` runs a
        # bare `waiter done` in step-source-local.
        self.shim_bin = self.state_dir / "bin"
        self.shim_bin.mkdir(exist_ok=True)
        waiter = self.shim_bin / "waiter"
        waiter.write_text(f'#!/bin/sh\nexec "{self.venv_bin / STEP_PROGRAM}" waiter "$@"\n')
        waiter.chmod(0o755)
        self._lock = threading.Lock()
        self._prepared: dict[str, threading.Lock] = {}
        self._active: dict[str, int] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._containers: dict[str, set[str]] = {}
        self._writers: dict[tuple[str, str], _LogWriter] = {}
        # What `kubectl exec` needs of a running container: its process, env and workingDir.
        self._running: dict[tuple[str, str], tuple[ProcessRun, dict[str, str], str]] = {}
        self._execs: dict[tuple[str, str], list[subprocess.Popen[bytes]]] = {}
        self._closed = threading.Event()
        self._sweeper: threading.Thread | None = None

    # ------------------------------------------------------------- public helpers

    def pod_dir(self, uid: str) -> Path:
        if not _UID.match(uid):
            raise ValueError(f"not a Pod uid: {uid!r}")
        return self.pods_dir / uid

    def log_path(self, namespace: str, pod_name: str, container: str) -> Path:
        """The log file of a container of a Pod this executor ran (KeyError if none)."""
        with self._lock:
            uid = self._names[(namespace, pod_name)]
        return self.pod_dir(uid) / "logs" / f"{container}.log"

    def logs(self, namespace: str, pod_name: str, container: str) -> str:
        """What `kubectl logs -c container` would show: stdout and stderr interleaved."""
        return self.log_path(namespace, pod_name, container).read_text(errors="replace")

    def container_log(self, namespace: str, pod_name: str, container: str) -> ContainerLogFile:
        """The kubelet API's view of a container's log (kubeletapi.LogBackend)."""
        from buildwright_localcluster.kubeletapi import BadRequest, NotFound

        with self._lock:
            uid = self._names.get((namespace, pod_name))
            names = self._containers.get(uid or "", set())
            writer = self._writers.get((uid or "", container))
        if uid is None:
            raise NotFound(f'pod "{pod_name}" does not exist')
        if container not in names:
            raise NotFound(f"container {container} not found in pod {pod_name}")
        logs = self.pod_dir(uid) / "logs"
        log_path, times_path = logs / f"{container}.log", logs / f"{container}.times"
        if writer is None and not log_path.exists():
            raise BadRequest(
                f'container "{container}" in pod "{pod_name}" is waiting to start: '
                "ContainerCreating"
            )
        return ContainerLogFile(log_path, times_path, writer)

    def exec_in(
        self, namespace: str, pod_name: str, container: str, command: list[str], stdin: bool
    ) -> subprocess.Popen[bytes]:
        """Start `command` inside a running container: in its mount namespace, with its env
        and workingDir (kubeletapi.ExecBackend). Only containers this agent runs qualify."""
        from buildwright_localcluster.kubeletapi import BadRequest, NotFound

        with self._lock:
            uid = self._names.get((namespace, pod_name))
            names = self._containers.get(uid or "", set())
            running = self._running.get((uid or "", container))
        if uid is None:
            raise NotFound(f'pod "{pod_name}" does not exist')
        if container not in names:
            raise NotFound(f"container {container} not found in pod {pod_name}")
        if running is None or running[0].result() is not None:
            raise BadRequest(f"container {container} is not running")
        run, env, cwd = running
        # The container counts as running from its launch, but its mount namespace is ready
        # only once the launcher has exec'd the container's command.
        if not _wait_for_exec(run.pid, EXEC_READY_TIMEOUT):
            raise BadRequest(f"container {container} is not running")
        spec_path = self.pod_dir(uid) / "run" / f".exec-{os.urandom(6).hex()}.json"
        fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"pid": run.pid, "argv": command, "env": env, "cwd": cwd}, fh)
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, "--exec", str(spec_path)],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,
            env={"PATH": BASE_PATH},
        )
        with self._lock:
            self._execs.setdefault((uid, container), []).append(process)
        return process

    def start_sweeper(self) -> None:
        self._sweeper = threading.Thread(target=self._sweep_loop, name="agent-sweep", daemon=True)
        self._sweeper.start()

    def close(self) -> None:
        self._closed.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=10)

    def sweep(self) -> list[str]:
        """Remove the directories of Pods that no longer exist; returns their uids."""
        pods = self.core.list_pod_for_all_namespaces().items
        existing = {p.metadata.uid for p in pods if p.metadata is not None}
        removed = []
        for entry in self.pods_dir.iterdir():
            uid = entry.name
            if not _UID.match(uid) or uid in existing:
                continue
            with self._lock:
                if self._active.get(uid):
                    continue
                self._prepared.pop(uid, None)
                for key in [k for k, v in self._names.items() if v == uid]:
                    del self._names[key]
                self._containers.pop(uid, None)
                for wkey in [k for k in self._writers if k[0] == uid]:
                    del self._writers[wkey]
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(uid)
        return removed

    def _sweep_loop(self) -> None:
        while not self._closed.wait(self.sweep_interval):
            try:
                self.sweep()
            except Exception as exc:  # the API may be briefly away; try again next round
                log.warning("node agent: sweeping Pod directories failed: %s", exc)

    # ------------------------------------------------------------- the Executor protocol

    def start(self, pod: Pod, container: Container, notify: Callable[[], None]) -> ContainerRun:
        meta = pod["metadata"]
        uid = str(meta["uid"])
        with self._lock:
            self._names[(str(meta["namespace"]), str(meta["name"]))] = uid
            spec = pod.get("spec", {})
            self._containers[uid] = {
                str(c["name"])
                for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
            }
            prepared = self._prepared.setdefault(uid, threading.Lock())
            self._active[uid] = self._active.get(uid, 0) + 1
        try:
            with prepared:
                pod_dir = self.pod_dir(uid)
                if not (pod_dir / ".volumes-ready").exists():
                    self._prepare_pod(pod, pod_dir)
            spec = self._container_spec(pod, container, pod_dir)
            return self._launch(uid, pod_dir, str(container["name"]), spec, notify)
        except ContainerConfigError as exc:
            self._release(uid)
            return _FailedRun(str(exc), notify)
        except Exception as exc:
            log.exception("node agent: cannot start %s/%s", meta.get("name"), container["name"])
            self._release(uid)
            return _FailedRun(f"node agent: {type(exc).__name__}: {exc}", notify)

    def _release(self, uid: str) -> None:
        with self._lock:
            self._active[uid] = max(0, self._active.get(uid, 1) - 1)

    # ------------------------------------------------------------- volumes

    def _prepare_pod(self, pod: Pod, pod_dir: Path) -> None:
        for sub in ("volumes", "termination", "logs", "run"):
            (pod_dir / sub).mkdir(parents=True, exist_ok=True)
        meta = pod["metadata"]
        (pod_dir / "pod.json").write_text(
            json.dumps({"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]})
        )
        for volume in pod.get("spec", {}).get("volumes") or []:
            target = pod_dir / "volumes" / str(volume["name"])
            if target.exists():
                continue
            self._materialise(pod, volume, target)
        (pod_dir / ".volumes-ready").touch()

    def _materialise(self, pod: Pod, volume: Mapping[str, Any], target: Path) -> None:
        namespace = str(pod["metadata"]["namespace"])
        if "emptyDir" in volume:
            target.mkdir(mode=0o777)
            target.chmod(0o777)  # like the kubelet, so steps running as any user can write
        elif "hostPath" in volume:
            target.symlink_to(volume["hostPath"]["path"])
        elif "secret" in volume:
            source = volume["secret"]
            data = self._secret_data(namespace, source.get("secretName", ""), source)
            self._write_files(target, data, source)
        elif "configMap" in volume:
            source = volume["configMap"]
            data = self._config_map_data(namespace, source.get("name", ""), source)
            self._write_files(target, data, source)
        elif "downwardAPI" in volume:
            source = volume["downwardAPI"]
            data = {
                item["path"]: self._field(pod, item["fieldRef"]["fieldPath"]).encode()
                for item in source.get("items") or []
                if "fieldRef" in item
            }
            self._write_files(target, data, {**source, "items": None})
        else:
            raise ContainerConfigError(
                f"volume {volume.get('name')!r}: only emptyDir, hostPath, secret, configMap "
                "and downwardAPI volumes are supported by the node agent"
            )

    def _secret_data(
        self, namespace: str, name: str, source: Mapping[str, Any]
    ) -> dict[str, bytes] | None:
        import base64

        from kubernetes.client.exceptions import ApiException

        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404 and source.get("optional"):
                return None
            if exc.status == 404:
                raise ContainerConfigError(f'secret "{name}" not found') from exc
            raise
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def _config_map_data(
        self, namespace: str, name: str, source: Mapping[str, Any]
    ) -> dict[str, bytes] | None:
        import base64

        from kubernetes.client.exceptions import ApiException

        try:
            cm = self.core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404 and source.get("optional"):
                return None
            if exc.status == 404:
                raise ContainerConfigError(f'configmap "{name}" not found') from exc
            raise
        data = {k: v.encode() for k, v in (cm.data or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.binary_data or {}).items()})
        return data

    @staticmethod
    def _write_files(
        target: Path, data: Mapping[str, bytes] | None, source: Mapping[str, Any]
    ) -> None:
        target.mkdir(mode=0o755)
        if data is None:
            return  # an optional object that does not exist: an empty volume
        default_mode = int(source.get("defaultMode", 0o644))
        items = source.get("items")
        files: list[tuple[str, bytes, int]]
        if items:
            files = []
            for item in items:
                if item["key"] not in data:
                    if source.get("optional"):
                        continue
                    raise ContainerConfigError(f"couldn't find key {item['key']} in the object")
                files.append((item["path"], data[item["key"]], int(item.get("mode", default_mode))))
        else:
            files = [(key, value, default_mode) for key, value in data.items()]
        for path, content, mode in files:
            dest = target / _safe_relative(path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(content)
            dest.chmod(mode & 0o777)

    # ------------------------------------------------------------- env and command

    @staticmethod
    def _field(pod: Pod, path: str) -> str:
        meta = pod.get("metadata", {})
        spec = pod.get("spec", {})
        simple = {
            "metadata.name": meta.get("name"),
            "metadata.namespace": meta.get("namespace"),
            "metadata.uid": meta.get("uid"),
            "spec.nodeName": spec.get("nodeName"),
            "spec.serviceAccountName": spec.get("serviceAccountName"),
            "status.hostIP": "127.0.0.1",
        }
        if path in simple:
            return str(simple[path] or "")
        if path in ("metadata.labels", "metadata.annotations"):
            values = meta.get(path.split(".")[1]) or {}
            return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))
        match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
        if match:
            return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
        raise ContainerConfigError(f"unsupported fieldRef {path!r}")

    def _env(self, pod: Pod, container: Container) -> dict[str, str]:
        namespace = str(pod["metadata"]["namespace"])
        env: dict[str, str] = {
            "PATH": f"{self.venv_bin}:{self.shim_bin}:{BASE_PATH}",
            "HOSTNAME": str(pod["metadata"]["name"]),
        }
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "secretRef" in source:
                ref = source["secretRef"]
                data = self._secret_data(namespace, ref["name"], ref) or {}
            else:
                ref = source["configMapRef"]
                data = self._config_map_data(namespace, ref["name"], ref) or {}
            env.update({prefix + k: v.decode(errors="replace") for k, v in data.items()})
        for var in container.get("env") or []:
            name = str(var["name"])
            if "valueFrom" not in var:
                # Values may refer to variables defined before them.
                env[name] = expand(str(var.get("value", "")), env)
                continue
            value_from = var["valueFrom"]
            value: str | None
            if "fieldRef" in value_from:
                value = self._field(pod, value_from["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in value_from or "configMapKeyRef" in value_from:
                is_secret = "secretKeyRef" in value_from
                ref = value_from["secretKeyRef" if is_secret else "configMapKeyRef"]
                read = self._secret_data if is_secret else self._config_map_data
                found = read(namespace, ref["name"], ref)
                raw = None if found is None else found.get(ref["key"])
                if raw is None and not ref.get("optional"):
                    kind = "secret" if is_secret else "configmap"
                    raise ContainerConfigError(
                        f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}"
                    )
                value = None if raw is None else raw.decode(errors="replace")
            else:
                raise ContainerConfigError(f"env {name}: unsupported valueFrom")
            if value is not None:
                env[name] = value
        return env

    def _argv(self, container: Container, env: Mapping[str, str]) -> list[str]:
        command = [expand(str(a), env) for a in container.get("command") or []]
        args = [expand(str(a), env) for a in container.get("args") or []]
        if not command:
            raise ContainerConfigError(
                f"container {container['name']} has no command: the node agent does not pull "
                "images, so it cannot run an image's entrypoint"
            )
        if command[0] == STEP_PROGRAM:
            command[0] = str(self.venv_bin / STEP_PROGRAM)
        elif command[0] == ENTRYPOINT_IN_STEP_IMAGE:
            if self.entrypoint_binary is None:
                raise ContainerConfigError(
                    f"container {container['name']} runs Tekton's entrypoint, and this node "
                    "agent was started without one (build it with hack/build-entrypoint.sh)"
                )
            command[0] = str(self.entrypoint_binary)
        return command + args

    def _container_spec(self, pod: Pod, container: Container, pod_dir: Path) -> dict[str, Any]:
        volumes = {str(v["name"]): v for v in pod.get("spec", {}).get("volumes") or []}
        env = self._env(pod, container)
        argv = self._argv(container, env)
        mounts: list[tuple[str, str, bool]] = []
        for vm in container.get("volumeMounts") or []:
            name = str(vm["name"])
            if name not in volumes:
                raise ContainerConfigError(f"volume {name!r} is not declared by the Pod")
            source = pod_dir / "volumes" / name
            if vm.get("subPath"):
                source = source / _safe_relative(str(vm["subPath"]))
                if not source.exists():
                    source.mkdir(parents=True, mode=0o777)
            # Like the kubelet: Secret, ConfigMap and downward API volumes are always read-only.
            volume = volumes[name]
            read_only = bool(vm.get("readOnly")) or any(
                k in volume for k in ("secret", "configMap", "downwardAPI")
            )
            mounts.append((str(source), str(vm["mountPath"]), read_only))
        termination = pod_dir / "termination" / str(container["name"])
        termination.write_bytes(b"")
        termination.chmod(0o666)
        path = str(container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)
        mounts.append((str(termination), path, False))
        return {
            "argv": argv,
            "env": env,
            "cwd": container.get("workingDir") or "/",
            "mounts": mounts,
        }

    def _launch(
        self,
        uid: str,
        pod_dir: Path,
        name: str,
        spec: Mapping[str, Any],
        notify: Callable[[], None],
    ) -> ProcessRun:
        spec_path = pod_dir / "run" / f"{name}.json"
        fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(spec, fh)
        log_path = pod_dir / "logs" / f"{name}.log"
        read_end, write_end = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(spec_path)],
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=write_end,
                start_new_session=True,
                close_fds=True,
                cwd=pod_dir,
                env={"PATH": BASE_PATH},
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        writer = _LogWriter(read_end, log_path, pod_dir / "logs" / f"{name}.times")

        def exited() -> None:
            with self._lock:
                self._running.pop((uid, name), None)
                execs = self._execs.pop((uid, name), [])
            # A runtime ends the processes exec'd into a container with the container.
            for exec_process in execs:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(exec_process.pid, signal.SIGKILL)
            self._release(uid)

        run = ProcessRun(process, log_path, pod_dir / "termination" / name, notify, exited, writer)
        with self._lock:
            self._writers[(uid, name)] = writer
            if run.result() is None:
                self._running[(uid, name)] = (run, dict(spec["env"]), str(spec["cwd"]))
        return run


# --------------------------------------------------------------------------- the launcher

_CLONE_NEWNS = 0x00020000
_MS_RDONLY = 1
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18


def _mount(libc: Any, source: str | None, target: str, flags: int) -> None:
    src = source.encode() if source is not None else None
    if libc.mount(src, target.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _make_mount_point(source: str, target: str) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            with open(target, "a"):
                pass


def launch(spec_path: str) -> None:
    """Enter a private mount namespace, mount the volumes, then exec the container's command.

    Runs in its own short-lived process, never in the agent (unshare needs a single thread).
    """
    with open(spec_path) as fh:
        spec = json.load(fh)
    os.unlink(spec_path)  # env values may come from Secrets
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)} (the agent must be root)")
    _mount(libc, None, "/", _MS_REC | _MS_PRIVATE)
    mounts: Sequence[tuple[str, str, bool]] = sorted(
        (tuple(m) for m in spec["mounts"]), key=lambda m: len(Path(m[1]).parts)
    )
    for source, target, _ in mounts:
        _make_mount_point(source, target)
        _mount(libc, source, target, _MS_BIND | _MS_REC)
    # Read-only last: a read-only parent would stop mount points being created inside it.
    for _, target, read_only in mounts:
        if read_only:
            _mount(libc, None, target, _MS_BIND | _MS_REMOUNT | _MS_RDONLY)
    os.makedirs(spec["cwd"], exist_ok=True)
    os.chdir(spec["cwd"])
    argv: list[str] = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as exc:
        print(f"exec {argv[0]}: {exc.strerror}", file=sys.stderr)
        sys.exit(127 if isinstance(exc, FileNotFoundError) else 126)


def enter(spec_path: str) -> None:
    """`kubectl exec`: join a running container's mount namespace, then exec the command with
    the container's env in its workingDir."""
    with open(spec_path) as fh:
        spec = json.load(fh)
    os.unlink(spec_path)
    libc = ctypes.CDLL(None, use_errno=True)
    ns = os.open(f"/proc/{int(spec['pid'])}/ns/mnt", os.O_RDONLY)
    if libc.setns(ns, _CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        print(f"setns: {os.strerror(err)}", file=sys.stderr)
        sys.exit(126)
    os.close(ns)
    with contextlib.suppress(OSError):
        os.chdir(spec["cwd"])
    argv: list[str] = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as exc:
        # What a runtime reports for a command it cannot start in the container.
        print(f'exec: "{argv[0]}": {exc.strerror}', file=sys.stderr)
        sys.exit(127 if isinstance(exc, FileNotFoundError) else 126)


if __name__ == "__main__":
    if sys.argv[1] == "--exec":
        enter(sys.argv[2])
    else:
        launch(sys.argv[1])

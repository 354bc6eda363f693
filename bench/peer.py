"""The peer of the comparison: Shipwright's own build controller driving Tekton Pipelines.

`hack/build-peer.sh` builds both Go controllers from their published modules and keeps each
module's source next to the binaries; everything installed here is read from that source at
run time: Tekton's CRDs and the ConfigMaps its controller reads (`config/`), Shipwright's CRDs
(`deploy/crds/`). Neither project's admission or conversion webhook runs, so the CRDs are
installed with `conversion: None` (every client here speaks Tekton v1 and Shipwright
v1beta1, the storage versions). The kaniko ClusterBuildStrategy is the repository's own
(`strategies/kaniko.yaml`, Shipwright-API YAML), as on the buildwright side.

Both controllers run as local processes against the benchmark's kubeconfig, with the
settings their release manifests give them (flags, environment, leader election, client
rate limits); only ports are moved to free ones. Image references are placeholders: the
kubelet stand-in pulls nothing.

Shipwright's CRDs have the same names as buildwright's (the same API), so the two systems
share a control plane only one after the other: installing the peer replaces buildwright's
CRD definitions (objects of the earlier runs are gone with their namespaces by then).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SHIPWRIGHT_VERSION = "v0.20.13"
TEKTON_VERSION = "v1.6.0"
TEKTON_NAMESPACE = "tekton-pipelines"
SHIPWRIGHT_NAMESPACE = "shipwright-build"
SHIPWRIGHT_LEASE = "shipwright-build-controller-lock"
SHIPWRIGHT_METRICS_PORT = 8383  # fixed in Shipwright's main.go
# User agents of the two controllers in the audit log: client-go's default agent begins with
# the binary's file name.
SHIPWRIGHT_BINARY = "shipwright-build-controller"
TEKTON_BINARY = "tekton-controller"
AGENTS = (f"{SHIPWRIGHT_BINARY}/", f"{TEKTON_BINARY}/")
IMAGE = "registry.invalid/peer/{}:bench"  # never pulled


def build(env: dict[str, str] | None = None) -> Path:
    """The directory holding both binaries and their module sources (built when missing:
    several minutes on two cores the first time, immediate once cached)."""
    done = subprocess.run(
        [str(REPO / "hack" / "build-peer.sh")],
        check=True, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "SHIPWRIGHT_VERSION": SHIPWRIGHT_VERSION,
             "TEKTON_VERSION": TEKTON_VERSION, **(env or {})},
    )  # fmt: skip
    return Path(done.stdout.strip().splitlines()[-1])


def cached() -> Path | None:
    """The peer's directory if it is already built, else None (never builds)."""
    root = Path(os.environ.get("BUILDWRIGHT_CACHE", Path.home() / ".cache" / "buildwright"))
    path = root / "peer" / f"{SHIPWRIGHT_VERSION}-{TEKTON_VERSION}"
    binaries = (path / SHIPWRIGHT_BINARY, path / TEKTON_BINARY)
    return path if all(b.is_file() for b in binaries) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def without_conversion_webhook(doc: dict[str, Any]) -> dict[str, Any]:
    """A CRD as installed here: no conversion webhook (none runs), every version kept."""
    if doc.get("kind") == "CustomResourceDefinition":
        doc = {**doc, "spec": {**doc["spec"], "conversion": {"strategy": "None"}}}
    return doc


def documents(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        out += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


class Peer:
    """Installs and runs the peer on a control plane; `restart()` as often as needed."""

    name = "shipwright"
    agents = AGENTS

    def __init__(
        self, directory: Path, kubeconfig: Path, workdir: Path, *, qps: float | None = None
    ) -> None:
        self.directory = directory
        # Both controllers read these (knative's client config and Shipwright's config).
        self.client_env = {} if qps is None else {
            "KUBE_API_QPS": str(int(qps)), "KUBE_API_BURST": str(int(qps * 2)),
        }  # fmt: skip
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.tekton_source = directory / "src-pipeline"
        self.shipwright_source = directory / "src-build"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.starts = 0

    # ------------------------------------------------------------------ installation

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 180) -> str:
        done = subprocess.run(
            ["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def apply(self, docs: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                     stdin=yaml.safe_dump_all(docs))  # fmt: skip

    def install(self) -> None:
        config = self.tekton_source / "config"
        crds = documents(sorted((config / "300-crds").glob("*.yaml")))
        crds += documents(sorted((self.shipwright_source / "deploy" / "crds").glob("*.yaml")))
        self.apply([without_conversion_webhook(doc) for doc in crds])
        names = [doc["metadata"]["name"] for doc in crds]
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     *(f"crd/{name}" for name in names))  # fmt: skip
        namespaces = documents([config / "100-namespace" / "100-namespace.yaml"])
        namespaces.append({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": SHIPWRIGHT_NAMESPACE}})  # fmt: skip
        self.apply(namespaces)
        # Every ConfigMap Tekton's release ships with its controller (feature flags, defaults,
        # logging, observability, leader election, ...), unchanged.
        self.apply(
            [d for d in documents(sorted(config.glob("config-*.yaml"))) if d["kind"] == "ConfigMap"]
        )
        self.apply(documents([REPO / "strategies" / "kaniko.yaml"]))

    # ------------------------------------------------------------------ processes

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (self.workdir / f"{name}-{self.starts}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir),
                 "KUBECONFIG": str(self.kubeconfig), **self.client_env, **env},
        )  # fmt: skip
        log.close()

    def start(self) -> None:
        self.starts += 1
        if port_in_use(SHIPWRIGHT_METRICS_PORT):
            raise RuntimeError(
                f"port {SHIPWRIGHT_METRICS_PORT} is taken: Shipwright's controller serves its "
                "metrics there (not configurable)"
            )
        # Leases of an earlier process would hold a fresh one back until they expire.
        for namespace in (TEKTON_NAMESPACE, SHIPWRIGHT_NAMESPACE):
            self.kubectl("delete", "leases", "--all", "-n", namespace, "--wait=false")
        # As Tekton's config/controller.yaml runs it.
        self._spawn(TEKTON_BINARY, [
            str(self.directory / TEKTON_BINARY),
            "-entrypoint-image", IMAGE.format("entrypoint"),
            "-nop-image", IMAGE.format("nop"),
            "-sidecarlogresults-image", IMAGE.format("sidecarlogresults"),
            "-workingdirinit-image", IMAGE.format("workingdirinit"),
            "-shell-image", IMAGE.format("busybox"),
            "-shell-image-win", IMAGE.format("powershell"),
        ], {
            "SYSTEM_NAMESPACE": TEKTON_NAMESPACE,
            "KUBERNETES_MIN_VERSION": "v1.28.0",
            "CONFIG_DEFAULTS_NAME": "config-defaults",
            "CONFIG_LOGGING_NAME": "config-logging",
            "CONFIG_OBSERVABILITY_NAME": "config-observability",
            "CONFIG_FEATURE_FLAGS_NAME": "feature-flags",
            "CONFIG_LEADERELECTION_NAME": "config-leader-election-controller",
            "CONFIG_SPIRE": "config-spire",
            "METRICS_DOMAIN": "tekton.dev/pipeline",
            "PROBES_PORT": str(free_port()),
            "PROFILING_PORT": str(free_port()),
            "METRICS_PROMETHEUS_PORT": str(free_port()),
        })  # fmt: skip
        # As Shipwright's deploy/500-controller.yaml runs it.
        self._spawn(SHIPWRIGHT_BINARY, [str(self.directory / SHIPWRIGHT_BINARY)], {
            "WATCH_NAMESPACE": "",
            "BUILD_CONTROLLER_LEADER_ELECTION_NAMESPACE": SHIPWRIGHT_NAMESPACE,
            "POD_NAME": "shipwright-build-controller-bench",
            "CONTROLLER_NAME": "shipwright-build",
            "GIT_CONTAINER_IMAGE": IMAGE.format("git"),
            "GIT_ENABLE_REWRITE_RULE": "false",
            "IMAGE_PROCESSING_CONTAINER_IMAGE": IMAGE.format("image-processing"),
            "BUNDLE_CONTAINER_IMAGE": IMAGE.format("bundle"),
            "WAITER_CONTAINER_IMAGE": IMAGE.format("waiter"),
            "TERMINATION_LOG_PATH": str(self.workdir / "shipwright-termination-log"),
        })  # fmt: skip
        self._await_leaders(timeout=90)

    def _await_leaders(self, timeout: float) -> None:
        """Both controllers lead (each holds its Lease) and are still running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{self.log_tail(name)}")
            held = set()
            for namespace in (TEKTON_NAMESPACE, SHIPWRIGHT_NAMESPACE):
                out = self.kubectl("get", "leases", "-n", namespace, "-o",
                                   "jsonpath={range .items[*]}{.metadata.name} "
                                   "{.spec.holderIdentity}{'\\n'}{end}")  # fmt: skip
                for line in out.splitlines():
                    lease, _, holder = line.partition(" ")
                    if holder:
                        held.add(lease)
            tekton = any(".taskrun." in lease for lease in held)
            if tekton and SHIPWRIGHT_LEASE in held:
                return
            time.sleep(0.5)
        raise TimeoutError(
            f"the peer's controllers did not take their leases in {timeout:g}s:\n"
            + "\n".join(self.log_tail(name) for name in self.processes)
        )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.processes = {}

    def restart(self) -> None:
        self.stop()
        self.start()

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes.items()}

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.workdir / f"{name}-{self.starts}.log"
        try:
            return f"--- {name}\n" + "\n".join(
                path.read_text(errors="replace").splitlines()[-lines:]
            )
        except OSError:
            return f"--- {name}: (no log)"

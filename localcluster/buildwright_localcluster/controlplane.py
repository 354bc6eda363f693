"""etcd + kube-apiserver + kube-controller-manager on loopback, for tests and local runs.

Everything a run needs (certificates, keys, kubeconfigs, etcd data) lives in one temporary
directory that `stop()` removes. Children get PR_SET_PDEATHSIG so they die with the Python
process even when it is killed outright; directories left behind that way are swept by the
next `start()`. The kernel ties that signal to the *thread* that forked the children, so call
`start()` from a thread that outlives the control plane (normally the main thread).

One module, over 500 lines: test tooling; the three processes, their certificates and
kubeconfigs are started, checked and stopped as one.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization

from buildwright.webhook import certificates as pki

from .binaries import ensure_binaries
from .kubeletapi import KUBELET_CLIENT_USER, KubeletTLS
from .wait import wait_until

SERVICE_CIDR = "10.0.0.0/24"
# The first address of the service range belongs to the `kubernetes` Service, so the serving
# certificate must name it for in-cluster style clients.
KUBERNETES_SERVICE_IP = "10.0.0.1"
APISERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
CERT_DAYS = 30
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    # Publishes kube-root-ca.crt, which every projected service-account volume refers to.
    "root-ca-certificate-publisher-controller",
)
RUNS_ROOT = Path(tempfile.gettempdir()) / "buildwright-controlplane"

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: ask the kernel to SIGKILL this child when its parent thread dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is as good as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def sweep_stale_runs(root: Path = RUNS_ROOT) -> None:
    """Remove run directories whose owning process no longer exists."""
    if not root.is_dir():
        return
    for entry in root.iterdir():
        owner = entry / "owner.pid"
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            # A directory without a readable owner may be one being created right now;
            # leave it unless it is clearly old.
            with contextlib.suppress(OSError):
                if time.time() - entry.stat().st_mtime > 3600:
                    shutil.rmtree(entry, ignore_errors=True)
            continue
        if not process_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


# --------------------------------------------------------------------------- certificates


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def kubeconfig_document(
    server: str, ca_pem: bytes, client: pki.KeyPair, user: str
) -> dict[str, Any]:
    """A self-contained kubeconfig (certificates embedded) for `user` at `server`."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "buildwright-local",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert_pem),
                    "client-key-data": _b64(client.key_pem),
                },
            }
        ],
        "contexts": [
            {
                "name": "buildwright-local",
                "context": {"cluster": "buildwright-local", "user": user, "namespace": "default"},
            }
        ],
        "current-context": "buildwright-local",
    }


# --------------------------------------------------------------------------- processes


class ControlPlaneError(RuntimeError):
    """A component failed to start; the message includes the tail of its log."""


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str]
    ready: Callable[[], bool] | None = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class ControlPlane:
    """A private etcd, kube-apiserver and kube-controller-manager bound to 127.0.0.1.

    Use as a context manager, or call start() and stop(). start() returns once /readyz of the
    apiserver answers ok and the controller manager is healthy.
    """

    def __init__(
        self,
        binaries_dir: Path | None = None,
        *,
        startup_timeout: float = 90.0,
        extra_apiserver_args: Sequence[str] = (),
        audit_policy: str | None = None,
    ) -> None:
        self._binaries_dir = binaries_dir
        # An audit policy (YAML) makes the apiserver log the requests it selects as JSON lines
        # at `audit_log_path`: tests read there which paths a client really asked for.
        self._audit_policy = audit_policy
        self._startup_timeout = startup_timeout
        self._extra_apiserver_args = tuple(extra_apiserver_args)
        self._children: list[_Child] = []
        self._start_order = ["etcd", "kube-apiserver", "kube-controller-manager"]
        self._workdir: Path | None = None
        self._server_url: str | None = None
        self._lock = threading.Lock()
        self._previous_sigterm: Callable[[int, FrameType | None], Any] | int | None = None
        self._installed_sigterm = False
        self.ready_seconds: float | None = None

    # ----------------------------------------------------------------- public properties

    def _dir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("control plane is not running")
        return self._workdir

    @property
    def workdir(self) -> Path:
        return self._dir()

    @property
    def kubeconfig_path(self) -> Path:
        """Admin kubeconfig (client certificate in group system:masters)."""
        return self._dir() / "admin.kubeconfig"

    @property
    def server_url(self) -> str:
        if self._server_url is None:
            raise RuntimeError("control plane is not running")
        return self._server_url

    @property
    def ca_cert_path(self) -> Path:
        return self._dir() / "pki" / "ca.crt"

    @property
    def kubelet_tls(self) -> KubeletTLS:
        """What a node agent needs to serve the kubelet API to this apiserver."""
        pki_dir = self._dir() / "pki"
        return KubeletTLS(
            cert_file=pki_dir / "kubelet.crt",
            key_file=pki_dir / "kubelet.key",
            client_ca_file=pki_dir / "ca.crt",
        )

    @property
    def service_account_key_path(self) -> Path:
        """The private key that signs service-account tokens."""
        return self._dir() / "pki" / "sa.key"

    @property
    def audit_log_path(self) -> Path:
        """The apiserver's audit log (only written when started with an `audit_policy`)."""
        return self._dir() / "audit.log"

    @property
    def pids(self) -> list[int]:
        return [c.proc.pid for c in self._children]

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start all components and wait until they are ready; stops everything on failure."""
        with self._lock:
            if self._workdir is not None:
                raise RuntimeError("control plane already started")
            binaries = self._binaries_dir or ensure_binaries()
            sweep_stale_runs()
            RUNS_ROOT.mkdir(parents=True, exist_ok=True)
            self._workdir = Path(tempfile.mkdtemp(prefix="run-", dir=RUNS_ROOT))
            (self._workdir / "owner.pid").write_text(str(os.getpid()))
            self._install_signal_handling()
            began = time.monotonic()
            try:
                self._write_pki()
                self._start_etcd(binaries)
                self._start_apiserver(binaries)
                self._start_controller_manager(binaries)
            except BaseException:
                self._stop_locked()
                raise
            self.ready_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Terminate every component, wait for it, and delete the run directory."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        # Stop in reverse start order so the apiserver never runs without etcd.
        for child in reversed(self._children):
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.terminate()
                try:
                    child.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()
        self._children.clear()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._server_url = None
        self._restore_signal_handling()

    # ----------------------------------------------------------------- signals

    def _install_signal_handling(self) -> None:
        atexit.register(self.stop)
        # Python's default SIGTERM action exits without running finally blocks; turning it
        # into SystemExit lets context managers and pytest fixtures stop the children.
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._previous_sigterm = signal.SIG_DFL
            signal.signal(signal.SIGTERM, _raise_system_exit)
            self._installed_sigterm = True

    def _restore_signal_handling(self) -> None:
        atexit.unregister(self.stop)
        if self._installed_sigterm and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self._installed_sigterm = False

    # ----------------------------------------------------------------- components

    def _spawn(self, name: str, argv: Sequence[str]) -> _Child:
        log_path = self._dir() / "logs" / f"{name}.log"
        log_path.parent.mkdir(exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                # Own session: a terminal's Ctrl-C reaches only Python, which then stops the
                # children in order instead of having them die mid-teardown.
                start_new_session=True,
                cwd=self._dir(),
            )
        child = _Child(name, proc, log_path, list(argv))
        self._children.append(child)
        return child

    def restart(self, name: str) -> None:
        """Stop one component ("etcd", "kube-apiserver") and start it again on the same ports
        and data, returning once it is ready: what chaos tests do to their clients."""
        with self._lock:
            [child] = [c for c in self._children if c.name == name]
            if child.proc.poll() is None:
                child.proc.terminate()
                try:
                    child.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()
            self._children.remove(child)
            again = self._spawn(name, child.argv)
            again.ready = child.ready
            # stop() goes through the list in reverse start order: put it back in its place.
            self._children.insert(self._start_order.index(name), self._children.pop())
            if again.ready is not None:
                self._await_ready(again, again.ready, f"{name} after a restart",
                                  self._startup_timeout)  # fmt: skip

    @property
    def etcd_url(self) -> str:
        """etcd's client URL (plain HTTP on loopback)."""
        return self._etcd_url

    def _await_ready(
        self, child: _Child, probe: Callable[[], bool], what: str, timeout: float
    ) -> None:
        def check() -> bool:
            if child.proc.poll() is not None:
                raise ControlPlaneError(
                    f"{child.name} exited with status {child.proc.returncode}:\n{child.log_tail()}"
                )
            try:
                return probe()
            except (OSError, urllib.error.URLError, ssl.SSLError):
                return False

        deadline = time.monotonic() + timeout
        while True:
            if check():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"timed out after {timeout:g}s waiting for {what}:\n{child.log_tail()}"
                )
            time.sleep(0.1)

    def _write_pki(self) -> None:
        pki_dir = self._dir() / "pki"
        pki_dir.mkdir(mode=0o700)
        ca = pki.new_ca("buildwright-local-ca", days=CERT_DAYS)
        serving = ca.issue(
            "kube-apiserver",
            days=CERT_DAYS,
            server=True,
            dns_names=APISERVER_NAMES,
            ip_addresses=("127.0.0.1", KUBERNETES_SERVICE_IP),
        )
        admin = ca.issue("buildwright-admin", days=CERT_DAYS, organizations=["system:masters"])
        # The controller manager runs every controller under its own identity
        # (--use-service-account-credentials=false), so it needs cluster-wide rights.
        kcm = ca.issue(
            "system:kube-controller-manager", days=CERT_DAYS, organizations=["system:masters"]
        )
        # The node agent's kubelet API: its serving certificate (for the InternalIP the
        # apiserver dials) and the one client it accepts, the apiserver.
        kubelet_serving = ca.issue(
            "buildwright-node-kubelet",
            days=CERT_DAYS,
            server=True,
            dns_names=("localhost",),
            ip_addresses=("127.0.0.1",),
        )
        kubelet_client = ca.issue(
            KUBELET_CLIENT_USER, days=CERT_DAYS, organizations=["kubelet-api-clients"]
        )
        sa_key = pki.new_key()
        files = {
            "ca.crt": ca.cert_pem,
            "ca.key": pki.key_pem(ca.key),
            "apiserver.crt": serving.cert_pem,
            "apiserver.key": serving.key_pem,
            "kubelet.crt": kubelet_serving.cert_pem,
            "kubelet.key": kubelet_serving.key_pem,
            "apiserver-kubelet-client.crt": kubelet_client.cert_pem,
            "apiserver-kubelet-client.key": kubelet_client.key_pem,
            "sa.key": pki.key_pem(sa_key),
            "sa.pub": sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        }
        for name, data in files.items():
            path = pki_dir / name
            path.write_bytes(data)
            path.chmod(0o600)
        self._ca_pem = ca.cert_pem
        self._admin_pair = admin
        self._kcm_pair = kcm

    def _start_etcd(self, binaries: Path) -> None:
        client_port, peer_port = free_port(), free_port()
        client_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        data = self._dir() / "etcd-data"
        child = self._spawn(
            "etcd",
            [
                str(binaries / "etcd"),
                "--name=buildwright",
                f"--data-dir={data}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=buildwright={peer_url}",
                "--listen-metrics-urls=",
                # Tests churn many small objects; keep etcd lean and quick to start.
                "--quota-backend-bytes=2147483648",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._etcd_url = client_url

        def healthy() -> bool:
            with urllib.request.urlopen(f"{client_url}/health", timeout=2) as resp:
                body = json.loads(resp.read())
            return str(body.get("health")) == "true"

        child.ready = healthy
        self._await_ready(child, healthy, "etcd /health", self._startup_timeout)

    def _start_apiserver(self, binaries: Path) -> None:
        port = free_port()
        pki = self._dir() / "pki"
        self._server_url = f"https://127.0.0.1:{port}"
        audit: list[str] = []
        if self._audit_policy is not None:
            policy = self._dir() / "audit-policy.yaml"
            policy.write_text(self._audit_policy)
            audit = [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log_path}",
                     "--audit-log-format=json", "--audit-log-mode=blocking"]  # fmt: skip
        child = self._spawn(
            "kube-apiserver",
            [
                str(binaries / "kube-apiserver"),
                f"--etcd-servers={self._etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self._dir() / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                # Nodes of the local cluster live on loopback: reach them by their InternalIP,
                # never by looking their host name up in DNS.
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
                *audit,
                *self._extra_apiserver_args,
            ],
        )
        self._write_kubeconfigs()
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(self._dir() / "admin.crt"), str(self._dir() / "admin.key"))

        def ready() -> bool:
            with urllib.request.urlopen(
                f"{self._server_url}/readyz", timeout=5, context=ctx
            ) as resp:
                return bool(resp.status == 200 and resp.read().strip() == b"ok")

        child.ready = ready
        self._await_ready(child, ready, "kube-apiserver /readyz", self._startup_timeout)

    def _write_kubeconfigs(self) -> None:
        workdir = self._dir()
        (workdir / "admin.crt").write_bytes(self._admin_pair.cert_pem)
        (workdir / "admin.key").write_bytes(self._admin_pair.key_pem)
        (workdir / "admin.key").chmod(0o600)
        for filename, pair, user in (
            ("admin.kubeconfig", self._admin_pair, "buildwright-admin"),
            ("controller-manager.kubeconfig", self._kcm_pair, "system:kube-controller-manager"),
        ):
            path = workdir / filename
            doc = kubeconfig_document(self.server_url, self._ca_pem, pair, user)
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            path.chmod(0o600)

    def _start_controller_manager(self, binaries: Path) -> None:
        port = free_port()
        pki = self._dir() / "pki"
        child = self._spawn(
            "kube-controller-manager",
            [
                str(binaries / "kube-controller-manager"),
                f"--kubeconfig={self._dir() / 'controller-manager.kubeconfig'}",
                f"--controllers={','.join(CONTROLLERS)}",
                "--use-service-account-credentials=false",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self._dir() / 'controller-manager-certs'}",
                "--profiling=false",
                "--v=1",
            ],
        )
        # Its serving certificate is self-signed and /healthz is open to anonymous requests.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        def healthy() -> bool:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{port}/healthz", timeout=5, context=ctx
            ) as resp:
                return bool(resp.status == 200)

        self._await_ready(child, healthy, "kube-controller-manager /healthz", self._startup_timeout)


def _raise_system_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


__all__ = ["ControlPlane", "ControlPlaneError", "free_port", "sweep_stale_runs", "wait_until"]

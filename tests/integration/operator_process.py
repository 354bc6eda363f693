"""Run the real operator (`buildwright run`) as a subprocess against the test control plane.

A subprocess, not an in-process kopf task: the tests then exercise the same entry point users
run, and can kill it (SIGKILL, no cleanup) and start it again to test restarts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from buildwright_localcluster.wait import wait_until

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    """One `buildwright run` process; `start()`/`kill()`/`stop()` as often as needed."""

    def __init__(self, kubeconfig: Path, log_dir: Path, extra_env: dict[str, str] | None = None,
                 extra_args: list[str] | None = None):  # fmt: skip
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.extra_env = extra_env or {}
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        # Kept across restarts, as a Pod name is: a restarted operator takes its own lease
        # back at once instead of waiting for it to expire.
        self.identity = f"test-operator-{uuid.uuid4().hex[:8]}"
        self.metrics_port = 0

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def scrape(self, path: str = "/metrics") -> tuple[int, str]:
        """GET one of the operator's HTTP endpoints: (status, body)."""
        try:
            with urllib.request.urlopen(self.metrics_url + path, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self, *, wait_ready: bool = True) -> None:
        """Start the process; return once it is alive and (unless `wait_ready` is False, for
        an operator expected not to be ready) ready."""
        self.starts += 1
        port = _free_port()
        self.metrics_port = _free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "BUILDWRIGHT_WEBHOOK": "off",
            "BUILDWRIGHT_STEP_IMAGE": "ghcr.io/buildwright/buildwright:test",
            "BUILDWRIGHT_LEADER_IDENTITY": self.identity,
            "BUILDWRIGHT_METRICS_PORT": str(self.metrics_port),
            **self.extra_env,
        }
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "buildwright", "run", "--liveness",
             f"http://127.0.0.1:{port}/healthz", *self.extra_args],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

        def healthy() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"operator exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    pass
                if not wait_ready:
                    return True
                with urllib.request.urlopen(self.metrics_url + "/readyz", timeout=1):
                    return True
            except OSError:
                return False

        wait_until(healthy, timeout=60, interval=0.1, description="the operator's probes")

    def kill(self) -> None:
        """SIGKILL: no cleanup, as if the node died."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if hasattr(self, "_log"):
            self._log.close()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextmanager
def in_place_of(session: OperatorProcess, log_dir: Path,
                extra_env: dict[str, str]) -> Iterator[OperatorProcess]:  # fmt: skip
    """An operator with its own settings instead of the session's, which is stopped meanwhile
    (two would compete for one Lease) and started again after."""
    session.stop()
    process = OperatorProcess(session.kubeconfig, log_dir, extra_env)
    try:
        process.start()
        yield process
    finally:
        process.stop()
        session.start()

"""`python -m buildwright_localcluster up|down|status` — a background control plane for local runs.

`up` starts a detached process (`serve`) that holds a ControlPlane and records itself in
`<state-dir>/state.json`; a second `up` while it is healthy does nothing. `down` sends it
SIGTERM and waits until it and its children are gone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from .binaries import ensure_binaries
from .controlplane import ControlPlane, process_alive, sweep_stale_runs

DEFAULT_KUBECONFIG = Path(".local/kubeconfig")


def _state_dir(kubeconfig: Path) -> Path:
    return kubeconfig.resolve().parent / "cluster"


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _healthy(state: dict[str, Any]) -> bool:
    if not process_alive(int(state.get("pid", 0))):
        return False
    try:
        ctx = ssl.create_default_context(cafile=state["ca"])
        ctx.load_cert_chain(state["client_cert"], state["client_key"])
        with urllib.request.urlopen(f"{state['server']}/readyz", timeout=3, context=ctx) as r:
            return bool(r.status == 200)
    except (OSError, KeyError, ssl.SSLError):
        return False


def _serve(kubeconfig: Path, state_dir: Path) -> int:
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with ControlPlane() as cp:
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cp.kubeconfig_path, kubeconfig)
        kubeconfig.chmod(0o600)
        state = {
            "pid": os.getpid(),
            "server": cp.server_url,
            "kubeconfig": str(kubeconfig.resolve()),
            "workdir": str(cp.workdir),
            "ca": str(cp.ca_cert_path),
            "client_cert": str(cp.workdir / "admin.crt"),
            "client_key": str(cp.workdir / "admin.key"),
            # For the node agent's kubelet API (see buildwright_localcluster.nodeagent).
            "kubelet_cert": str(cp.kubelet_tls.cert_file),
            "kubelet_key": str(cp.kubelet_tls.key_file),
            "kubelet_client_ca": str(cp.kubelet_tls.client_ca_file),
            "component_pids": cp.pids,
            "ready_seconds": cp.ready_seconds,
        }
        tmp = state_dir / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.rename(state_dir / "state.json")
        print(f"control plane ready at {cp.server_url}", flush=True)
        # Blocking then sigwait-ing avoids the race of a signal landing between a flag check
        # and pause().
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        if not stopping:
            signal.sigwait({signal.SIGTERM, signal.SIGINT})
        print("stopping control plane", flush=True)
    with contextlib.suppress(FileNotFoundError):
        (state_dir / "state.json").unlink()
    return 0


def _up(kubeconfig: Path, state_dir: Path, timeout: float) -> int:
    state = _read_state(state_dir)
    if state and _healthy(state):
        print(f"control plane already running at {state['server']} (kubeconfig {kubeconfig})")
        return 0
    if state and process_alive(int(state.get("pid", 0))):
        # Running but unhealthy: replace it rather than leave two clusters around.
        _down(state_dir, timeout)
    # Build (or find) binaries here, in the foreground, so the user sees the progress.
    ensure_binaries()
    state_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (state_dir / "state.json").unlink()
    log = open(state_dir / "serve.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "buildwright_localcluster",
            "serve",
            "--kubeconfig",
            str(kubeconfig),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
    )
    log.close()
    (state_dir / "serve.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (state_dir / "serve.log").read_text(errors="replace").splitlines()[-30:]
            print("control plane failed to start:\n" + "\n".join(tail), file=sys.stderr)
            return 1
        state = _read_state(state_dir)
        if state and state.get("pid") == proc.pid and _healthy(state):
            print(
                f"control plane ready at {state['server']} after "
                f"{state['ready_seconds']:.1f}s; kubeconfig {kubeconfig}"
            )
            return 0
        time.sleep(0.1)
    print(
        f"control plane not ready after {timeout:g}s; see {state_dir / 'serve.log'}",
        file=sys.stderr,
    )
    os.kill(proc.pid, signal.SIGTERM)
    return 1


def _down(state_dir: Path, timeout: float) -> int:
    pid: int | None = None
    state = _read_state(state_dir)
    if state:
        pid = int(state["pid"])
    else:
        with contextlib.suppress(OSError, ValueError):
            pid = int((state_dir / "serve.pid").read_text())
    if pid is None or not process_alive(pid):
        print("control plane not running")
    else:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_alive(pid):
            # Its children carry PR_SET_PDEATHSIG, so killing the holder takes them along.
            os.kill(pid, signal.SIGKILL)
        print("control plane stopped")
    for name in ("state.json", "serve.pid"):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()
    # A holder killed outright leaves its run directory behind; its children died with it.
    sweep_stale_runs()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m buildwright_localcluster")
    parser.add_argument("command", choices=["up", "down", "status", "serve"])
    parser.add_argument("--kubeconfig", type=Path, default=DEFAULT_KUBECONFIG)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    kubeconfig: Path = args.kubeconfig
    state_dir = _state_dir(kubeconfig)
    if args.command == "serve":
        return _serve(kubeconfig, state_dir)
    if args.command == "up":
        return _up(kubeconfig, state_dir, args.timeout)
    if args.command == "down":
        return _down(state_dir, args.timeout)
    state = _read_state(state_dir)
    if state and _healthy(state):
        print(f"running at {state['server']}")
        return 0
    print("not running")
    return 1


if __name__ == "__main__":
    sys.exit(main())

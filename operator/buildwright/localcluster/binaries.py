"""Locating (and if needed building) the control-plane binaries via hack/build-control-plane.sh."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")


def _script_path() -> Path:
    # operator/buildwright/localcluster/binaries.py -> repository root
    return Path(__file__).resolve().parents[3] / "hack" / "build-control-plane.sh"


def ensure_binaries() -> Path:
    """Return the directory holding etcd, kube-apiserver and kube-controller-manager.

    Builds them on the first call on a machine (minutes); later calls hit the cache at once.
    `BUILDWRIGHT_CONTROL_PLANE_DIR` points at a ready directory instead. The build's progress
    goes to stderr; failure raises RuntimeError with the script's exit status.
    """
    override = os.environ.get("BUILDWRIGHT_CONTROL_PLANE_DIR")
    if override:
        directory = Path(override)
    else:
        script = _script_path()
        if not script.is_file():
            raise RuntimeError(f"control-plane build script not found at {script}")
        proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{script} failed with exit status {proc.returncode}")
        lines = proc.stdout.strip().splitlines()
        if not lines:
            raise RuntimeError(f"{script} printed no output directory")
        directory = Path(lines[-1])
    missing = [b for b in BINARIES if not os.access(directory / b, os.X_OK)]
    if missing:
        raise RuntimeError(f"{directory} lacks executable {', '.join(missing)}")
    return directory


def _entrypoint_script() -> Path:
    return Path(__file__).resolve().parents[3] / "hack" / "build-entrypoint.sh"


def ensure_entrypoint() -> Path:
    """Return the path of Tekton's step entrypoint built for this machine.

    The node agent runs it in front of each step as a build Pod on a cluster does. Built by
    hack/build-entrypoint.sh on a machine's first call (minutes), cached after that;
    `BUILDWRIGHT_ENTRYPOINT_BINARY` names a ready binary instead.
    """
    override = os.environ.get("BUILDWRIGHT_ENTRYPOINT_BINARY")
    if override:
        binary = Path(override)
    else:
        script = _entrypoint_script()
        proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{script} failed with exit status {proc.returncode}")
        lines = proc.stdout.strip().splitlines()
        if not lines:
            raise RuntimeError(f"{script} printed no binary path")
        binary = Path(lines[-1])
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"{binary} is not an executable entrypoint")
    return binary

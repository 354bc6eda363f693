"""Locating (and if needed building) the binaries the local cluster runs: the control plane
(hack/build-control-plane.sh) and Tekton's step entrypoint (hack/build-entrypoint.sh), and the
upstream `shp` CLI the end-to-end tests drive (hack/build-shp.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")

# localcluster/buildwright_localcluster/binaries.py -> repository root
_HACK = Path(__file__).resolve().parents[2] / "hack"


def _built_by(script_name: str) -> Path:
    """Run a build script of hack/ (it reuses its cache, builds on a machine's first call)
    and return the path it prints last. Its progress goes to stderr."""
    script = _HACK / script_name
    if not script.is_file():
        raise RuntimeError(f"build script not found at {script}")
    proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} failed with exit status {proc.returncode}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{script} printed no path")
    return Path(lines[-1])


def ensure_binaries() -> Path:
    """Return the directory holding etcd, kube-apiserver and kube-controller-manager.

    Builds them on the first call on a machine (minutes); later calls hit the cache at once.
    `BUILDWRIGHT_CONTROL_PLANE_DIR` points at a ready directory instead. Failure raises
    RuntimeError with the script's exit status.
    """
    override = os.environ.get("BUILDWRIGHT_CONTROL_PLANE_DIR")
    directory = Path(override) if override else _built_by("build-control-plane.sh")
    missing = [b for b in BINARIES if not os.access(directory / b, os.X_OK)]
    if missing:
        raise RuntimeError(f"{directory} lacks executable {', '.join(missing)}")
    return directory


def ensure_entrypoint() -> Path:
    """Return the path of Tekton's step entrypoint built for this machine.

    The node agent runs it in front of each step as a build Pod on a cluster does. Built on a
    machine's first call (minutes), cached after that; `BUILDWRIGHT_ENTRYPOINT_BINARY` names
    a ready binary instead.
    """
    override = os.environ.get("BUILDWRIGHT_ENTRYPOINT_BINARY")
    binary = Path(override) if override else _built_by("build-entrypoint.sh")
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"{binary} is not an executable entrypoint")
    return binary


def ensure_shp() -> Path:
    """Return the path of the upstream `shp` CLI (hack/build-shp.sh's version), building it on
    a machine's first call (about 9 minutes on 2 cores). `BUILDWRIGHT_SHP_BINARY` names a ready
    binary instead. RuntimeError when it cannot be built (no Go toolchain, no module proxy)."""
    override = os.environ.get("BUILDWRIGHT_SHP_BINARY")
    binary = Path(override) if override else _built_by("build-shp.sh")
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"{binary} is not an executable shp")
    return binary

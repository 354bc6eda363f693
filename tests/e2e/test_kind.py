"""Cluster end-to-end: e2e/kind.sh on a real kind cluster (Docker and internet needed).

Run with `pytest -m e2e tests/e2e/test_kind.py`. Skipped, with the reason, where kind or a
working Docker engine is missing; otherwise the script's own assertions (BuildRuns
Succeeded, images in the registry with the reported digests) decide the outcome.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "e2e" / "kind.sh"

pytestmark = pytest.mark.e2e


def _missing_prerequisite() -> str | None:
    for tool in ("kind", "docker", "kubectl", "curl"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (e2e/kind.sh needs docker, kind, kubectl and curl)"
    try:
        engine = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer (`docker info` timed out)"
    if engine.returncode != 0:
        return "the Docker engine is not reachable (`docker info` failed)"
    return None


def _run_kind_script(scenarios: str) -> None:
    reason = _missing_prerequisite()
    if reason is not None:
        pytest.skip(reason)
    env = {**os.environ, "SCENARIOS": scenarios}
    proc = subprocess.run(
        ["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600
    )
    assert proc.returncode == 0, (
        f"e2e/kind.sh failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-20000:]}"
    )
    for scenario in scenarios.split():
        assert f"scenario {scenario} passed" in proc.stderr


@pytest.mark.timeout(3600)
def test_book_scenarios_on_kind() -> None:
    """kaniko and buildah from the book build sample-nodejs and push to the local registry."""
    _run_kind_script("kaniko buildah")

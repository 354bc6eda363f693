"""Run the buildah and BuildKit step scripts against recording stand-ins of the tools.

Hostile parameter values must reach the tool as exactly one literal argument each, and a
missing Dockerfile must be reported through the error results.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

STRATEGIES = Path(__file__).resolve().parents[2] / "strategies"
HOSTILE = ["; rm -rf /", "$(id)", "`id`", 'it\'s "quoted"', "two\nlines", "--help"]

# Records its argv (one JSON list per call) and succeeds, standing in for buildah/buildctl.
RECORDER = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["RECORD"], "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def _render(
    step: dict[str, Any], params: dict[str, Any], results: Path
) -> tuple[list[str], dict[str, str]]:
    """Substitute the way Tekton does: whole-element array expansion, plain string replacement."""

    def sub(text: str) -> str:
        text = re.sub(r"\$\(results\.([a-z-]+)\.path\)", lambda m: str(results / m.group(1)), text)
        return re.sub(r"\$\(params\.([a-z-]+)\)", lambda m: str(params[m.group(1)]), text)

    argv: list[str] = []
    for element in [*step.get("command", []), *step.get("args", [])]:
        array = re.fullmatch(r"\$\(params\.([a-z-]+)\[\*\]\)", element)
        argv.extend(params[array.group(1)] if array else [sub(element)])
    env = {e["name"]: sub(e["value"]) for e in step.get("env", [])}
    return argv, env


def _run(
    tmp_path: Path,
    strategy: str,
    tool: str,
    shell: str,
    overrides: dict[str, Any],
    dockerfile: str = "Dockerfile",
) -> tuple[int, list[list[str]], Path]:
    spec = yaml.safe_load((STRATEGIES / f"{strategy}.yaml").read_text())["spec"]
    params: dict[str, Any] = {
        p["name"]: p.get("defaults", p.get("default")) for p in spec.get("parameters", [])
    }
    context = tmp_path / "src" / "ctx"
    context.mkdir(parents=True)
    (context / dockerfile).write_text("FROM scratch\n")
    results = tmp_path / "results"
    results.mkdir()
    params.update(
        {
            "shp-source-root": str(tmp_path / "src"),
            "shp-source-context": str(context),
            "shp-output-image": "127.0.0.1:5000/team/app:v1",
            "shp-output-insecure": "false",
            "shp-output-directory": str(tmp_path / "out"),
        }
    )
    params.update(overrides)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / tool).write_text(RECORDER)
    (bin_dir / tool).chmod(0o755)
    record = tmp_path / "record"
    argv, env = _render(spec["steps"][0], params, results)
    argv[0] = shell
    env.update(PATH=f"{bin_dir}:{os.environ['PATH']}", RECORD=str(record), TMPDIR=str(tmp_path))
    # The scripts write fixed paths of their image (/tmp secrets in BuildKit): point at tmp_path.
    argv = [a.replace("/tmp/secret_", f"{tmp_path}/secret_") for a in argv]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True)
    calls = (
        [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    )
    return done.returncode, calls, results


def test_buildah_passes_hostile_values_as_single_arguments(tmp_path: Path) -> None:
    code, calls, _ = _run(
        tmp_path,
        "buildah",
        "buildah",
        "bash",
        {"build-args": [f"X={v}" for v in HOSTILE], "target": HOSTILE[0]},
    )
    assert code == 0
    bud, push = calls
    assert [a for a in bud if a.startswith("--build-arg=")] == [
        f"--build-arg=X={v}" for v in HOSTILE
    ]
    assert f"--target={HOSTILE[0]}" in bud
    assert push[-2:] == ["127.0.0.1:5000/team/app:v1", "docker://127.0.0.1:5000/team/app:v1"]
    assert "--tls-verify=true" in push


def test_buildah_dockerfile_named_like_a_flag(tmp_path: Path) -> None:
    code, calls, _ = _run(
        tmp_path, "buildah", "buildah", "bash", {"dockerfile": "--help"}, dockerfile="--help"
    )
    assert code == 0
    assert f"--file={tmp_path}/src/ctx/--help" in calls[0]


def test_buildah_reports_a_missing_dockerfile(tmp_path: Path) -> None:
    code, calls, results = _run(tmp_path, "buildah", "buildah", "bash", {"dockerfile": "nope"})
    assert code == 1
    assert calls == []
    assert (results / "shp-error-reason").read_text() == "DockerfileNotFound"
    assert (results / "shp-error-message").read_text()


def test_buildah_rejects_registry_names_that_break_the_config(tmp_path: Path) -> None:
    code, calls, results = _run(
        tmp_path, "buildah", "buildah", "bash", {"registries-insecure": ['evil"\n[x]']}
    )
    assert code == 1
    assert calls == []
    assert (results / "shp-error-reason").read_text() == "InvalidParameterValue"


def test_buildah_insecure_output_registry(tmp_path: Path) -> None:
    code, calls, _ = _run(tmp_path, "buildah", "buildah", "bash", {"shp-output-insecure": "true"})
    assert code == 0
    assert "--tls-verify=false" in calls[1]
    conf = (tmp_path / "registries.conf").read_text()
    assert 'location = "127.0.0.1:5000"\ninsecure = true' in conf


@pytest.mark.skipif(shutil.which("dash") is None and shutil.which("ash") is None, reason="no ash")
def test_buildkit_passes_hostile_values_as_single_arguments(tmp_path: Path) -> None:
    shell = shutil.which("ash") or "dash"
    code, calls, _ = _run(
        tmp_path,
        "buildkit",
        "buildctl-daemonless.sh",
        shell,
        {
            "build-args": [f"X={v}" for v in HOSTILE],
            "secrets": ["token=s3cr3t; $(id)"],
            "platforms": ["linux/amd64", "linux/arm64"],
            "target": HOSTILE[1],
        },
    )
    assert code == 0
    (build,) = calls
    assert [a for a in build if a.startswith("--opt=build-arg:")] == [
        f"--opt=build-arg:X={v}" for v in HOSTILE
    ]
    assert f"--opt=target={HOSTILE[1]}" in build
    assert "--opt=platform=linux/amd64,linux/arm64" in build
    assert f"--secret=id=token,src={tmp_path}/secret_token" in build
    assert (tmp_path / "secret_token").read_text() == "s3cr3t; $(id)"


def test_buildkit_rejects_unknown_cache_mode(tmp_path: Path) -> None:
    shell = shutil.which("ash") or shutil.which("dash") or "sh"
    code, calls, results = _run(
        tmp_path, "buildkit", "buildctl-daemonless.sh", shell, {"cache": "; rm -rf /"}
    )
    assert code == 1
    assert calls == []
    assert (results / "shp-error-reason").read_text() == "InvalidParameterValue"

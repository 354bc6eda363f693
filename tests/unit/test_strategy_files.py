"""Static checks of the shipped build strategies and samples.

These hold the YAML to the rules the operator enforces on strategies (allowed step fields,
declared volumes and parameters, known results) and to the project's own rule that parameter
values never become shell code: no `$(params.…)` may appear inside a `-c` script.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ROOT / "strategies"
SAMPLES = ROOT / "samples"

ALLOWED_STEP_FIELDS = {
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "env",
    "resources",
    "volumeMounts",
    "imagePullPolicy",
    "securityContext",
}
SYSTEM_PARAMS = {
    "shp-source-root",
    "shp-source-context",
    "shp-output-image",
    "shp-output-insecure",
    "shp-output-directory",
}
KNOWN_RESULTS = {
    "shp-image-digest",
    "shp-image-size",
    "shp-error-reason",
    "shp-error-message",
}
# All three spellings Tekton accepts, with an optional [*] array expansion.
PARAM_REF = re.compile(
    r"""\$\(params(?:\.([A-Za-z0-9_-]+)|\['([^']+)'\]|\["([^"]+)"\])(\[\*\])?\)"""
)
RESULT_REF = re.compile(r"\$\(results\.([A-Za-z0-9_-]+)\.path\)")
# Legacy v1alpha1 placeholders that the conversion webhook rewrites.
LEGACY_REF = re.compile(r"\$\(build\.(dockerfile|builder\.image)\)|\$\(params\.DOCKERFILE\)")

CLUSTER_NAMES = {
    "buildah",
    "buildah-shipwright-managed-push",
    "buildah-strategy-managed-push",
    "buildkit",
    "buildpacks-v3",
    "buildpacks-v3-heroku",
    "jib",
    "kaniko",
    "kaniko-trivy",
    "ko",
    "source-to-image",
    "source-to-image-redhat",
}


def _load_all(path: Path) -> list[dict[str, Any]]:
    with path.open() as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def _strategy_files() -> list[Path]:
    files = sorted(STRATEGIES.glob("*.yaml")) + sorted(STRATEGIES.glob("namespaced/*.yaml"))
    return [f for f in files if f.name != "kustomization.yaml"]


def _strategy(path: Path) -> dict[str, Any]:
    docs = _load_all(path)
    assert len(docs) == 1, f"{path}: exactly one strategy per file"
    return docs[0]


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a step (command, args, env values, image, workingDir, ...)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _scripts(step: dict[str, Any]) -> list[str]:
    """The script strings: the element right after `-c` in command + args."""
    argv = [*step.get("command", []), *step.get("args", [])]
    return [argv[i + 1] for i, el in enumerate(argv[:-1]) if el == "-c"]


def _param_names(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in spec.get("parameters", [])}


STRATEGY_FILES = _strategy_files()
IDS = [str(p.relative_to(STRATEGIES)) for p in STRATEGY_FILES]


def test_every_expected_cluster_strategy_exists_once() -> None:
    names = [
        _strategy(p)["metadata"]["name"]
        for p in STRATEGY_FILES
        if _strategy(p)["kind"] == "ClusterBuildStrategy"
    ]
    assert len(names) == len(set(names)), "strategy names must be unique"
    assert set(names) == CLUSTER_NAMES


def test_kustomization_lists_exactly_the_cluster_strategies() -> None:
    kustomization = _load_all(STRATEGIES / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    cluster_files = {
        p.name for p in STRATEGY_FILES if _strategy(p)["kind"] == "ClusterBuildStrategy"
    }
    assert listed == cluster_files


def test_namespaced_copies_match_their_cluster_strategies() -> None:
    copies = sorted(STRATEGIES.glob("namespaced/*.yaml"))
    assert {p.name for p in copies} == {"buildpacks-v3.yaml", "buildpacks-v3-heroku.yaml"}
    for copy in copies:
        namespaced = _strategy(copy)
        cluster = _strategy(STRATEGIES / copy.name)
        assert namespaced["kind"] == "BuildStrategy"
        assert namespaced["metadata"] == cluster["metadata"]
        assert namespaced["spec"] == cluster["spec"]


def test_buildah_is_the_strategy_managed_push_variant() -> None:
    buildah = _strategy(STRATEGIES / "buildah.yaml")
    twin = _strategy(STRATEGIES / "buildah-strategy-managed-push.yaml")
    assert buildah["spec"] == twin["spec"]
    text = yaml.safe_dump(buildah["spec"])
    assert "shp-output-directory" not in text
    assert (
        "--digestfile='$(results.shp-image-digest.path)'"
        in _scripts(buildah["spec"]["steps"][0])[0]
    )


@pytest.mark.parametrize("path", STRATEGY_FILES, ids=IDS)
def test_strategy_shape(path: Path) -> None:
    doc = _strategy(path)
    assert doc["apiVersion"] == "shipwright.io/v1beta1"
    assert doc["kind"] in {"ClusterBuildStrategy", "BuildStrategy"}
    assert path.stem == doc["metadata"]["name"]
    spec = doc["spec"]
    assert set(spec) <= {"parameters", "securityContext", "volumes", "steps"}
    if "securityContext" in spec:
        assert set(spec["securityContext"]) == {"runAsUser", "runAsGroup"}

    params = spec.get("parameters", [])
    names = [p["name"] for p in params]
    assert len(names) == len(set(names))
    for param in params:
        assert param.get("description"), f"parameter {param['name']} needs a description"
        assert not param["name"].startswith("shp-"), "shp- parameters are reserved"
        kind = param.get("type", "string")
        assert kind in {"string", "array"}
        if kind == "array":
            assert "default" not in param
            assert isinstance(param.get("defaults", []), list)
        else:
            assert "defaults" not in param
            assert param.get("default") is None or isinstance(param["default"], str)

    steps = spec["steps"]
    step_names = [s["name"] for s in steps]
    assert len(step_names) == len(set(step_names))
    volumes = {v["name"] for v in spec.get("volumes", [])}
    for step in steps:
        extra = set(step) - ALLOWED_STEP_FIELDS
        assert not extra, f"{step['name']}: fields not allowed in a strategy step: {extra}"
        for mount in step.get("volumeMounts", []):
            assert mount["name"] in volumes, f"{step['name']}: undeclared volume {mount['name']}"
        for env in step.get("env", []):
            assert set(env) == {"name", "value"}
            assert isinstance(env["value"], str)


@pytest.mark.parametrize("path", STRATEGY_FILES, ids=IDS)
def test_references_resolve(path: Path) -> None:
    spec = _strategy(path)["spec"]
    declared = _param_names(spec)
    for step in spec["steps"]:
        for text in _strings(step):
            for match in PARAM_REF.finditer(text):
                name = next(g for g in match.groups()[:3] if g)
                assert name in declared or name in SYSTEM_PARAMS, f"unknown parameter {name}"
                if match.group(4):
                    assert declared[name].get("type") == "array"
                    # Tekton only expands [*] when it is a whole args/command element.
                    assert text == match.group(0)
                elif name in declared:
                    assert declared[name].get("type", "string") == "string"
            for match in RESULT_REF.finditer(text):
                assert match.group(1) in KNOWN_RESULTS, f"unknown result {match.group(1)}"
            assert not LEGACY_REF.search(text), "v1beta1 strategies use no legacy placeholders"


@pytest.mark.parametrize("path", STRATEGY_FILES, ids=IDS)
def test_parameters_never_reach_script_text(path: Path) -> None:
    spec = _strategy(path)["spec"]
    for step in spec["steps"]:
        for script in _scripts(step):
            assert "$(params" not in script, f"{step['name']}: parameter inside a -c script"
            # Kubernetes rewrites `$$` to `$` in args, which would corrupt the script.
            assert "$$" not in script
        argv = [*step.get("command", []), *step.get("args", [])]
        if _scripts(step):
            # Everything after the script is data: it starts with the `--` $0 placeholder.
            script_at = argv.index("-c") + 1
            rest = argv[script_at + 1 :]
            assert not rest or rest[0] == "--"
        else:
            # Tools called directly get each parameter as a whole `--flag=value` element or as
            # a positional after `--`, so a value starting with `-` is never read as a flag.
            for i, element in enumerate(argv):
                if PARAM_REF.search(element) and not element.startswith("--"):
                    assert "--" in argv[:i], f"{step['name']}: {element} is not protected"


@pytest.mark.parametrize("path", STRATEGY_FILES, ids=IDS)
def test_images_are_tagged(path: Path) -> None:
    spec = _strategy(path)["spec"]
    declared = _param_names(spec)
    for step in spec["steps"]:
        image = step["image"]
        ref = PARAM_REF.fullmatch(image)
        if ref:
            # A parameter naming the whole image: its default must be a tagged image.
            image = declared[next(g for g in ref.groups()[:3] if g)]["default"]
        last = image.rsplit("/", 1)[-1]
        assert ":" in last or "@sha256:" in image, f"{step['name']}: untagged image {image}"


@pytest.mark.parametrize("path", STRATEGY_FILES, ids=IDS)
def test_error_reasons_for_dockerfile_strategies(path: Path) -> None:
    name = _strategy(path)["metadata"]["name"]
    if not (name.startswith("buildah") or name == "buildkit"):
        pytest.skip("only the Dockerfile strategies with a validation step")
    script = _scripts(_strategy(path)["spec"]["steps"][0])[0]
    for needle in (
        "ContextDirNotFound",
        "DockerfileNotFound",
        "$(results.shp-error-reason.path)",
        "$(results.shp-error-message.path)",
    ):
        assert needle in script


def _sample_files() -> list[Path]:
    return sorted(SAMPLES.rglob("*.yaml"))


@pytest.mark.parametrize(
    "path", _sample_files(), ids=[str(p.relative_to(SAMPLES)) for p in _sample_files()]
)
def test_samples_parse(path: Path) -> None:
    docs = _load_all(path)
    assert docs
    version = path.relative_to(SAMPLES).parts[0]
    for doc in docs:
        assert doc["apiVersion"] == f"shipwright.io/{version}"
        assert doc["kind"] in {"Build", "BuildRun", "ClusterBuildStrategy", "BuildStrategy"}
        meta = doc["metadata"]
        assert meta.get("name") or (doc["kind"] == "BuildRun" and meta.get("generateName"))


def test_v1beta1_samples_reference_shipped_strategies() -> None:
    builds = [
        doc
        for path in sorted((SAMPLES / "v1beta1").rglob("*.yaml"))
        for doc in _load_all(path)
        if doc["kind"] == "Build"
    ]
    used = {b["spec"]["strategy"]["name"] for b in builds}
    assert used == CLUSTER_NAMES
    for build in builds:
        strategy = _strategy(STRATEGIES / f"{build['spec']['strategy']['name']}.yaml")
        declared = _param_names(strategy["spec"])
        for value in build["spec"].get("paramValues", []):
            assert value["name"] in declared
        required = {n for n, p in declared.items() if "default" not in p and "defaults" not in p}
        given = {v["name"] for v in build["spec"].get("paramValues", [])}
        assert required <= given, f"{build['metadata']['name']} misses {required - given}"


def test_v1beta1_buildruns_reference_sample_builds() -> None:
    docs = [d for p in sorted((SAMPLES / "v1beta1").rglob("*.yaml")) for d in _load_all(p)]
    builds = {d["metadata"]["name"] for d in docs if d["kind"] == "Build"}
    runs = [d for d in docs if d["kind"] == "BuildRun"]
    assert runs
    for run in runs:
        assert run["spec"]["build"]["name"] in builds


def test_v1alpha1_sample_strategies_use_legacy_syntax() -> None:
    docs = [d for p in sorted((SAMPLES / "v1alpha1").rglob("*.yaml")) for d in _load_all(p)]
    strategies = {d["metadata"]["name"]: d for d in docs if d["kind"].endswith("BuildStrategy")}
    assert {"buildah", "buildkit", "source-to-image"} <= set(strategies)
    legacy = {
        "buildah": "$(build.dockerfile)",
        "buildkit": "$(params.DOCKERFILE)",
        "source-to-image": "$(build.builder.image)",
    }
    for name, placeholder in legacy.items():
        spec = strategies[name]["spec"]
        assert "steps" not in spec and "buildSteps" in spec
        assert any(placeholder in s for step in spec["buildSteps"] for s in _strings(step))
    for strategy in strategies.values():
        spec = strategy["spec"]
        declared = _param_names(spec)
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for step in spec["buildSteps"]:
            for mount in step.get("volumeMounts", []):
                assert mount["name"] in volumes
            for text in _strings(step):
                for match in PARAM_REF.finditer(text):
                    name = next(g for g in match.groups()[:3] if g)
                    assert name in declared or name in SYSTEM_PARAMS or name == "DOCKERFILE"
            for script in _scripts(step):
                assert "$(params" not in script
                assert not LEGACY_REF.search(script)

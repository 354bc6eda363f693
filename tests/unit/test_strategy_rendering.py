"""Every shipped strategy rendered into its build Pod through the operator's core.

For each strategy file a representative Build (Git source with a contextDir, an output image
with a push secret, a value for every parameter, arrays with several items) is rendered with
`render_pod`, and the Pod is held to what the strategy says: container names and order,
security context, volumes and mounts, no unresolved references, a valid Pod schema.

The steps' command, args, env and image are also compared with an independent reference
substitution of the strategy YAML (Tekton's rules: whole-element `[*]` array expansion, one
plain replacement pass) after applying Kubernetes' own `$(VAR)`/`$$` expansion to the core's
output. That comparison, run with hostile parameter values, shows each value reaching the
tool as one literal argv element or env value, never as part of a `-c` script. The jib, ko
and source-to-image-redhat scripts are then run from the rendered Pod with recording
stand-ins of their tools (buildah and BuildKit are run in test_strategy_scripts.py).

Helpers here (`strategy_files`, `representative_pod`) are reused by the integration tests,
which send the same Pods to a real apiserver.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from buildwright.api.v1beta1 import BuildRun, BuildSpec, BuildStrategy, ClusterBuildStrategy
from buildwright.core import reasons
from buildwright.core.pod import PodInputs, render_pod, sequenced_step

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ROOT / "strategies"
STEP_IMAGE = "ghcr.io/example/buildwright:test"
NAMESPACE = "team-a"
CONTEXT_DIR = "apps/web"
OUTPUT_IMAGE = "registry.example.com/team-a/web:1.0"
PUSH_SECRET = "registry-push"

SYSTEM_VALUES: dict[str, str] = {
    "shp-source-root": "/workspace/source",
    "shp-source-context": f"/workspace/source/{CONTEXT_DIR}",
    "shp-output-image": OUTPUT_IMAGE,
    "shp-output-insecure": "false",
    "shp-output-directory": "/workspace/output-image",
}

# A realistic, non-default value for every parameter any shipped strategy declares, so that
# each substitution is visible (a default would hide a parameter that is never substituted).
REPRESENTATIVE: dict[str, str | list[str]] = {
    "build-args": ["NODE_ENV=production", "VERSION=1.2.3"],
    "registries-block": ["blocked.example.com", "evil.example.org"],
    "registries-insecure": ["registry.local:5000", "mirror.local"],
    "registries-search": ["quay.io", "docker.io"],
    "dockerfile": "docker/Dockerfile.prod",
    "storage-driver": "overlay",
    "target": "runtime",
    "cache": "disabled",
    "platforms": ["linux/amd64", "linux/arm64"],
    "secrets": ["npmrc=token-value", "pip=other"],
    "operating-system": "linux",
    "system-architecture": "arm64",
    "platform-api-version": "0.12",
    "insecure-registries": ["registry.local:5000", "mirror.local"],
    "build-tool": "gradle",
    "jib-version": "3.4.3",
    "maven-image": "docker.io/library/maven:3.9.8-eclipse-temurin-17",
    "gradle-image": "docker.io/library/gradle:8.9-jdk17",
    "goals-args": ["-DskipTests", "-Djib.from.image=eclipse-temurin:21-jre"],
    "kaniko-image": "cgr.dev/chainguard/kaniko:1.25.0",
    "go-flags": "-mod=vendor",
    "go-version": "1.24",
    "ko-version": "0.17.1",
    "package-directory": "./cmd/web",
    "target-platform": "linux/arm64",
    "builder-image": "docker.io/centos/nodejs-10-centos7",
}

HOSTILE: dict[str, str] = {
    "semicolon": "; rm -rf /",
    "command-substitution": "$(id)",
    "backticks": "`id`",
    "quotes": "\"quote'",
    "newlines": "first\nsecond\n",
    "leading-dashes": "--leading-dashes",
    "param-reference": "$(params.shp-output-image)",
    "result-reference": "$(results.shp-error-reason.path)",
    "env-reference": "$(HOME)",
    "double-dollar": "$$",
}

PARAM_REF = re.compile(
    r"""\$\(params(?:\.([A-Za-z0-9_-]+)|\['([^']+)'\]|\["([^"]+)"\])(\[\*\])?\)"""
)
RESULT_REF = re.compile(
    r"""\$\(results(?:\.([A-Za-z0-9_-]+)|\['([^']+)'\]|\["([^"]+)"\])\.path\)"""
)
# Parameter references are groups 1-4, result references groups 5-7.
ANY_REF = re.compile(f"{PARAM_REF.pattern}|{RESULT_REF.pattern}")
# A user parameter may appear in argv only as a whole element or as the value of one flag.
FLAG_PREFIX = re.compile(r"-{1,2}[A-Za-z0-9][A-Za-z0-9._-]*=")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# --- loading ----------------------------------------------------------------------------------


def strategy_files() -> list[Path]:
    """Every strategy file: the cluster-wide ones, then the namespaced copies."""
    files = sorted(STRATEGIES.glob("*.yaml")) + sorted(STRATEGIES.glob("namespaced/*.yaml"))
    return [path for path in files if path.name != "kustomization.yaml"]


def file_id(path: Path) -> str:
    return str(path.relative_to(STRATEGIES).with_suffix(""))


@functools.cache
def _read(path: Path) -> str:
    return path.read_text()


def load_document(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.load(_read(path), Loader=_LOADER)
    return document


def load_strategy(path: Path) -> BuildStrategy | ClusterBuildStrategy:
    document = load_document(path)
    document["metadata"]["generation"] = 1
    if document["kind"] == "BuildStrategy":
        document["metadata"]["namespace"] = NAMESPACE
        return BuildStrategy.model_validate(document)
    return ClusterBuildStrategy.model_validate(document)


def parameters(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = document["spec"].get("parameters") or []
    return found


def is_array(parameter: Mapping[str, Any]) -> bool:
    return parameter.get("type") == "array"


# --- the Build, the BuildRun and the Pod ------------------------------------------------------


def param_values(values: Mapping[str, str | list[str]]) -> list[dict[str, Any]]:
    wire: list[dict[str, Any]] = []
    for name, value in values.items():
        if isinstance(value, list):
            wire.append({"name": name, "values": [{"value": item} for item in value]})
        else:
            wire.append({"name": name, "value": value})
    return wire


def representative_values(document: Mapping[str, Any]) -> dict[str, str | list[str]]:
    return {p["name"]: REPRESENTATIVE[p["name"]] for p in parameters(document)}


def build_spec(
    document: Mapping[str, Any],
    values: Mapping[str, str | list[str]],
    *,
    mutations: bool = False,
) -> dict[str, Any]:
    output: dict[str, Any] = {"image": OUTPUT_IMAGE, "pushSecret": PUSH_SECRET}
    if mutations:
        output["labels"] = {"team": "a"}
        output["annotations"] = {"org.opencontainers.image.source": "https://example.com/web"}
    return {
        "source": {
            "type": "Git",
            "git": {"url": "https://github.com/example/web", "revision": "main"},
            "contextDir": CONTEXT_DIR,
        },
        "strategy": {"name": document["metadata"]["name"], "kind": document["kind"]},
        "paramValues": param_values(values),
        "output": output,
    }


def pod_inputs(
    path: Path,
    values: Mapping[str, str | list[str]] | None = None,
    *,
    mutations: bool = False,
    namespace: str = NAMESPACE,
    service_account: str = "pipeline",
) -> PodInputs:
    document = load_document(path)
    spec = build_spec(
        document, representative_values(document) if values is None else values, mutations=mutations
    )
    run = BuildRun.model_validate(
        {
            "metadata": {
                "name": "web-run-1",
                "namespace": namespace,
                "uid": "7a0e2c1d-0000-4000-8000-00000000000a",
                "generation": 1,
                "creationTimestamp": "2025-01-02T03:04:05Z",
            },
            "spec": {"build": {"name": "web"}},
        }
    )
    return PodInputs(
        buildrun=run,
        build_name="web",
        build_generation=1,
        build_spec=BuildSpec.model_validate(spec),
        strategy=load_strategy(path),
        service_account_name=service_account,
        docker_config_secret=None,
        step_image=STEP_IMAGE,
    )


def render(inputs: PodInputs) -> dict[str, Any]:
    pod = render_pod(inputs)
    assert not isinstance(pod, reasons.Failure), pod
    return pod


def representative_pod(
    path: Path,
    *,
    mutations: bool = False,
    namespace: str = NAMESPACE,
    service_account: str = "pipeline",
) -> dict[str, Any]:
    """The build Pod of the representative Build for the strategy in `path`."""
    return render(
        pod_inputs(path, mutations=mutations, namespace=namespace, service_account=service_account)
    )


def all_containers(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = pod["spec"]["initContainers"] + pod["spec"]["containers"]
    return found


def container(pod: Mapping[str, Any], name: str) -> dict[str, Any]:
    for item in all_containers(pod):
        if item["name"] == name:
            return item
    raise KeyError(name)


# --- Kubernetes' expansion and the reference substitution -------------------------------------


def kubelet_expand(text: str, variables: Mapping[str, str]) -> str:
    """What the kubelet makes of a command/args/env string: `$$` becomes `$`, `$(NAME)` of a
    variable in `variables` becomes its value, anything else stays as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("$(", i):
            end = text.find(")", i + 2)
            if end != -1 and text[i + 2 : end] in variables:
                out.append(variables[text[i + 2 : end]])
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def plain_env(item: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in item.get("env") or [] if "value" in e}


def expanded_env(item: Mapping[str, Any]) -> dict[str, str]:
    """Env values as the process sees them: each may refer only to variables defined above."""
    seen: dict[str, str] = {}
    for var in item.get("env") or []:
        if "value" in var:
            seen[var["name"]] = kubelet_expand(var["value"], seen)
    return seen


def step_argv(item: Mapping[str, Any]) -> list[str]:
    """The step's own command line: what follows the entrypoint's `--` (module pod)."""
    step = sequenced_step(item)
    assert step is not None, f"{item['name']} is not run through the entrypoint"
    return list(step.argv)


def expanded_argv(item: Mapping[str, Any]) -> list[str]:
    variables = expanded_env(item)
    return [kubelet_expand(arg, variables) for arg in step_argv(item)]


def _ref_name(match: re.Match[str]) -> str:
    return match.group(1) or match.group(2) or match.group(3)


def reference_string(text: str, values: Mapping[str, str | list[str]]) -> str:
    """One pass of plain replacement, as Tekton substitutes strings."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0).startswith("$(results"):
            return f"/tekton/results/{match.group(5) or match.group(6) or match.group(7)}"
        value = values[_ref_name(match)]
        assert isinstance(value, str), f"array parameter inside a string: {match.group(0)}"
        return value

    return ANY_REF.sub(replace, text)


def reference_list(items: Sequence[str], values: Mapping[str, str | list[str]]) -> list[str]:
    out: list[str] = []
    for item in items:
        whole = PARAM_REF.fullmatch(item)
        if whole is not None and whole.group(4):
            value = values[_ref_name(whole)]
            assert isinstance(value, list)
            out.extend(value)
        else:
            out.append(reference_string(item, values))
    return out


def reference_step(
    step: Mapping[str, Any], values: Mapping[str, str | list[str]]
) -> dict[str, Any]:
    """The step as the tool must see it: image, argv and env after substitution."""
    return {
        "image": reference_string(step["image"], values),
        "argv": reference_list([*step.get("command", []), *step.get("args", [])], values),
        "env": {e["name"]: reference_string(e["value"], values) for e in step.get("env") or []},
    }


def uses_output_directory(document: Mapping[str, Any]) -> bool:
    for step in document["spec"]["steps"]:
        texts = [*step.get("command", []), *step.get("args", [])]
        texts += [e.get("value", "") for e in step.get("env") or []]
        if any(
            _ref_name(m) == "shp-output-directory"
            for text in texts
            for m in PARAM_REF.finditer(text)
        ):
            return True
    return False


def script_indices(argv: Sequence[str]) -> set[int]:
    """Positions of shell script texts: the element after a `-c`."""
    return {i + 1 for i, arg in enumerate(argv[:-1]) if arg == "-c"}


# --- the representative Build -----------------------------------------------------------------

FILES = strategy_files()
FILE_IDS = [file_id(path) for path in FILES]


def test_every_shipped_strategy_is_covered() -> None:
    names = {load_document(path)["metadata"]["name"] for path in FILES}
    assert {
        "buildah",
        "buildkit",
        "buildpacks-v3",
        "buildpacks-v3-heroku",
        "kaniko",
        "kaniko-trivy",
        "ko",
        "source-to-image",
        "source-to-image-redhat",
        "jib",
    } <= names
    assert any(load_document(path)["kind"] == "BuildStrategy" for path in FILES)


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_every_parameter_has_a_representative_value(path: Path) -> None:
    for parameter in parameters(load_document(path)):
        value = REPRESENTATIVE.get(parameter["name"])
        assert value is not None, f"add a representative value for {parameter['name']}"
        assert isinstance(value, list) == is_array(parameter), parameter["name"]
        if is_array(parameter):
            assert len(value) >= 2, "arrays need several items to show their expansion"


@pytest.mark.parametrize("mutations", [False, True], ids=["plain-output", "labels-annotations"])
@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_representative_build_renders_as_the_strategy_says(path: Path, mutations: bool) -> None:
    document = load_document(path)
    spec = document["spec"]
    pod = representative_pod(path, mutations=mutations)

    text = json.dumps(pod)
    assert "$(params." not in text
    assert "$(results." not in text

    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["prepare"]
    expected = ["step-source-default", *(f"step-{step['name']}" for step in spec["steps"])]
    if uses_output_directory(document) or mutations:
        expected.append("step-image-processing")
    expected.append("step-results")
    assert [c["name"] for c in pod["spec"]["containers"]] == expected

    strategy_security = spec.get("securityContext") or {}
    for item in all_containers(pod):
        own = next(
            (
                s.get("securityContext") or {}
                for s in spec["steps"]
                if f"step-{s['name']}" == item["name"]
            ),
            {},
        )
        security = item.get("securityContext") or {}
        for field in ("runAsUser", "runAsGroup"):
            wanted = own.get(field, strategy_security.get(field))
            assert security.get(field) == wanted, (item["name"], field)
        for field, value in own.items():
            assert security[field] == value, (item["name"], field)

    volume_names = [v["name"] for v in pod["spec"]["volumes"]]
    assert len(volume_names) == len(set(volume_names)), f"duplicate volumes: {volume_names}"
    pod_volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    for volume in spec.get("volumes") or []:
        wire = {k: v for k, v in volume.items() if k not in ("description", "overridable")}
        assert pod_volumes[volume["name"]] == wire
    assert ("shp-output-directory" in pod_volumes) == uses_output_directory(document)
    mounted = {
        name for item in all_containers(pod) for name in (m["name"] for m in item["volumeMounts"])
    }
    assert set(pod_volumes) <= mounted, "a volume no container mounts"
    for step in spec["steps"]:
        rendered = container(pod, f"step-{step['name']}")
        mounts = {m["mountPath"]: m for m in rendered["volumeMounts"]}
        for mount in step.get("volumeMounts") or []:
            assert mounts[mount["mountPath"]]["name"] == mount["name"]
            assert mounts[mount["mountPath"]].get("readOnly", False) == mount.get("readOnly", False)
        if uses_output_directory(document) and any(
            "shp-output-directory" in json.dumps(step.get(k)) for k in ("command", "args", "env")
        ):
            assert mounts["/workspace/output-image"]["name"] == "shp-output-directory"

    kubernetes_validate.validate(pod, "1.34", strict=True)


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_steps_receive_exactly_the_substituted_values(path: Path) -> None:
    document = load_document(path)
    values = {**SYSTEM_VALUES, **representative_values(document)}
    pod = representative_pod(path)
    for step in document["spec"]["steps"]:
        rendered = container(pod, f"step-{step['name']}")
        wanted = reference_step(step, values)
        assert rendered["image"] == wanted["image"]
        assert expanded_argv(rendered) == wanted["argv"]
        env = expanded_env(rendered)
        assert {name: env[name] for name in wanted["env"]} == wanted["env"]
        if "workingDir" in step:
            assert rendered["workingDir"] == reference_string(step["workingDir"], values)


# --- hostile values ---------------------------------------------------------------------------


def _injection_cases() -> list[Any]:
    cases = []
    for path in FILES:
        for parameter in parameters(load_document(path)):
            for label, value in HOSTILE.items():
                cases.append(
                    pytest.param(
                        path,
                        parameter["name"],
                        value,
                        id=f"{file_id(path)}-{parameter['name']}-{label}",
                    )
                )
    return cases


@pytest.mark.parametrize(("path", "name", "hostile"), _injection_cases())
def test_hostile_value_reaches_the_tool_as_one_literal_element(
    path: Path, name: str, hostile: str
) -> None:
    document = load_document(path)
    parameter = next(p for p in parameters(document) if p["name"] == name)
    benign = representative_values(document)
    values = dict(benign)
    values[name] = [hostile, "after-the-hostile-item"] if is_array(parameter) else hostile
    benign_pod = representative_pod(path)
    pod = render(pod_inputs(path, values))
    everything = {**SYSTEM_VALUES, **values}

    reached = False
    for step in document["spec"]["steps"]:
        rendered = container(pod, f"step-{step['name']}")
        wanted = reference_step(step, everything)
        argv = expanded_argv(rendered)
        env = expanded_env(rendered)
        assert argv == wanted["argv"]
        assert {k: env[k] for k in wanted["env"]} == wanted["env"]
        assert rendered["image"] == wanted["image"]

        # Scripts are the same text whatever the value: it is never part of shell code.
        benign_argv = expanded_argv(container(benign_pod, f"step-{step['name']}"))
        for index in script_indices(argv):
            assert argv[index] == benign_argv[index]

        template = [*step.get("command", []), *step.get("args", [])]
        offset = 0
        for element in template:
            whole = PARAM_REF.fullmatch(element)
            if whole is not None and whole.group(4):
                items = everything[_ref_name(whole)]
                if _ref_name(whole) == name:
                    assert argv[offset : offset + len(items)] == [hostile, "after-the-hostile-item"]
                    reached = True
                offset += len(items)
                continue
            if any(_ref_name(m) == name for m in PARAM_REF.finditer(element)):
                assert offset not in script_indices(argv)
                assert argv[offset] == hostile or (
                    argv[offset].endswith(hostile)
                    and FLAG_PREFIX.fullmatch(argv[offset][: -len(hostile)]) is not None
                ), argv[offset]
                reached = True
            offset += 1
        for var in step.get("env") or []:
            if any(_ref_name(m) == name for m in PARAM_REF.finditer(var.get("value", ""))):
                assert env[var["name"]] == hostile
                reached = True
        if any(_ref_name(m) == name for m in PARAM_REF.finditer(step["image"])):
            # An image reference is never executed; the kubelet only pulls it.
            assert hostile in rendered["image"]
            reached = True
    assert reached, f"parameter {name} is not used by any step"


# --- running the rendered scripts with stand-in tools -----------------------------------------
# test_strategy_scripts.py runs the buildah and BuildKit scripts; these run the others whose
# values travel through env and "$@" into a shell script, straight from the rendered Pod.

# Records its argv (one JSON list per call) and succeeds.
RECORDER = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["RECORD"], "a") as fh:
    fh.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
"""
# Stands in for `tar -xzf - -C DIR ko`: "extracts" a recording ko into DIR.
FAKE_TAR = """#!/usr/bin/env python3
import os, sys
sys.stdin.read()
target = os.path.join(sys.argv[sys.argv.index("-C") + 1], "ko")
with open(target, "w") as fh:
    fh.write(open(os.environ["RECORDER"]).read())
os.chmod(target, 0o755)
"""
SCRIPT_HOSTILE = list(HOSTILE.values())
KO_ARCH = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def run_rendered_step(
    pod: Mapping[str, Any],
    step: str,
    tmp_path: Path,
    tools: Sequence[str],
    paths: Mapping[str, str],
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Run one strategy step of `pod` as the kubelet would start it, with the fixed paths of
    its image moved under tmp_path and every tool in `tools` replaced by a recorder."""
    rendered = container(pod, f"step-{step}")
    moves = {
        "/tekton/results": str(tmp_path / "results"),
        "/tekton/home": str(tmp_path / "home"),
        "/workspace/source": str(tmp_path / "source"),
        **paths,
    }

    def moved(text: str) -> str:
        for old, new in moves.items():
            text = text.replace(old, new)
        return text

    for directory in ("results", "home", f"source/{CONTEXT_DIR}", "bin"):
        (tmp_path / directory).mkdir(parents=True, exist_ok=True)
    bin_dir = tmp_path / "bin"
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    for tool in tools:
        (bin_dir / tool).write_text(FAKE_TAR if tool == "tar" else RECORDER)
        (bin_dir / tool).chmod(0o755)
    record = tmp_path / "record"
    env = {name: moved(value) for name, value in expanded_env(rendered).items()}
    env.update(PATH=f"{bin_dir}:{os.environ['PATH']}", RECORD=str(record), RECORDER=str(recorder))
    argv = [moved(arg) for arg in expanded_argv(rendered)]
    done = subprocess.run(
        argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    calls = (
        [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    )
    return done, calls


def result(tmp_path: Path, name: str) -> str:
    return (tmp_path / "results" / name).read_text()


def jib_pod(values: Mapping[str, str | list[str]]) -> dict[str, Any]:
    path = STRATEGIES / "jib.yaml"
    return render(pod_inputs(path, {**representative_values(load_document(path)), **values}))


def test_jib_maven_passes_hostile_goals_args_as_single_arguments(tmp_path: Path) -> None:
    pod = jib_pod({"build-tool": "maven", "goals-args": SCRIPT_HOSTILE})
    (tmp_path / "source" / CONTEXT_DIR).mkdir(parents=True)
    (tmp_path / "source" / CONTEXT_DIR / "pom.xml").write_text("<project/>\n")
    done, calls = run_rendered_step(
        pod, "build-maven", tmp_path, ["mvn"], {"/jib-tmp": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr
    assert calls == [
        [
            "mvn",
            "-B",
            "compile",
            "com.google.cloud.tools:jib-maven-plugin:3.4.3:build",
            f"-Dimage={OUTPUT_IMAGE}",
            f"-Djib.outputPaths.digest={tmp_path}/results/shp-image-digest",
            f"-Dmaven.repo.local={tmp_path}/home/.m2/repository",
            *SCRIPT_HOSTILE,
        ]
    ]
    gradle, gradle_calls = run_rendered_step(pod, "build-gradle", tmp_path, ["gradle"], {})
    assert gradle.returncode == 0 and gradle_calls == calls, "the Gradle step must do nothing"


def test_jib_gradle_applies_the_plugin_and_passes_hostile_goals_args(tmp_path: Path) -> None:
    pod = jib_pod({"build-tool": "gradle", "goals-args": SCRIPT_HOSTILE})
    (tmp_path / "source" / CONTEXT_DIR).mkdir(parents=True)
    (tmp_path / "source" / CONTEXT_DIR / "build.gradle").write_text("plugins { id 'java' }\n")
    done, calls = run_rendered_step(
        pod, "build-gradle", tmp_path, ["gradle"], {"/jib-tmp": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr
    assert calls == [
        [
            "gradle",
            "--no-daemon",
            "--console=plain",
            f"--init-script={tmp_path}/jib-init.gradle",
            "jib",
            f"--image={OUTPUT_IMAGE}",
            f"-Djib.outputPaths.digest={tmp_path}/results/shp-image-digest",
            *SCRIPT_HOSTILE,
        ]
    ]
    # The version is read from the environment by Gradle, never written into the script.
    assert "3.4.3" not in (tmp_path / "jib-init.gradle").read_text()


@pytest.mark.parametrize("step", ["build-maven", "build-gradle"])
@pytest.mark.parametrize("hostile", SCRIPT_HOSTILE)
def test_jib_rejects_a_hostile_plugin_version(tmp_path: Path, step: str, hostile: str) -> None:
    tool = "maven" if step == "build-maven" else "gradle"
    pod = jib_pod({"build-tool": tool, "jib-version": hostile})
    (tmp_path / "source" / CONTEXT_DIR).mkdir(parents=True)
    (tmp_path / "source" / CONTEXT_DIR / "pom.xml").write_text("<project/>\n")
    (tmp_path / "source" / CONTEXT_DIR / "build.gradle").write_text("plugins { id 'java' }\n")
    done, calls = run_rendered_step(
        pod, step, tmp_path, ["mvn", "gradle"], {"/jib-tmp": str(tmp_path)}
    )
    assert done.returncode == 1
    assert calls == []
    assert result(tmp_path, "shp-error-reason") == "InvalidParameterValue"


def ko_pod(values: Mapping[str, str | list[str]]) -> dict[str, Any]:
    path = STRATEGIES / "ko.yaml"
    return render(pod_inputs(path, {**representative_values(load_document(path)), **values}))


@pytest.mark.parametrize("hostile", SCRIPT_HOSTILE)
def test_ko_passes_hostile_values_as_single_arguments(tmp_path: Path, hostile: str) -> None:
    pod = ko_pod({"package-directory": hostile, "target-platform": hostile, "go-flags": hostile})
    done, calls = run_rendered_step(
        pod, "build", tmp_path, ["curl", "tar", "git", "go"], {"/ko-tmp": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr
    ko = [call for call in calls if call[0] == "ko"]
    assert ko == [
        [
            "ko",
            "build",
            "--bare",
            "--push=false",
            "--oci-layout-path=/workspace/output-image",
            f"--platform={hostile}",
            "--",
            hostile,
        ]
    ]
    release = "https://github.com/ko-build/ko/releases/download/v0.17.1"
    arch = KO_ARCH[os.uname().machine]
    assert ["curl", "-fsSL", f"{release}/ko_0.17.1_Linux_{arch}.tar.gz"] in calls
    assert expanded_env(container(pod, "step-build"))["GOFLAGS"] == hostile


@pytest.mark.parametrize("hostile", SCRIPT_HOSTILE)
def test_ko_rejects_a_hostile_version(tmp_path: Path, hostile: str) -> None:
    pod = ko_pod({"ko-version": hostile})
    done, calls = run_rendered_step(
        pod, "build", tmp_path, ["curl", "tar", "git", "go"], {"/ko-tmp": str(tmp_path)}
    )
    assert done.returncode == 1
    assert calls == []
    assert result(tmp_path, "shp-error-reason") == "InvalidParameterValue"


@pytest.mark.parametrize("hostile", SCRIPT_HOSTILE)
def test_source_to_image_redhat_passes_the_storage_driver_as_one_argument(
    tmp_path: Path, hostile: str
) -> None:
    path = STRATEGIES / "source-to-image-redhat.yaml"
    values = {**representative_values(load_document(path)), "storage-driver": hostile}
    pod = render(pod_inputs(path, values))
    done, calls = run_rendered_step(
        pod, "buildah", tmp_path, ["buildah"], {"/shp-tmp": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr
    assert [call[:2] for call in calls] == [
        ["buildah", f"--storage-driver={hostile}"],
        ["buildah", f"--storage-driver={hostile}"],
    ]
    assert calls[1][-2:] == [OUTPUT_IMAGE, "oci:/workspace/output-image"]
    conf = (tmp_path / "registries.conf").read_text()
    assert 'unqualified-search-registries = ["quay.io", "docker.io"]' in conf
    assert 'location = "blocked.example.com"\ninsecure = false\nblocked = true' in conf


def test_source_to_image_redhat_rejects_registry_names_that_break_the_config(
    tmp_path: Path,
) -> None:
    path = STRATEGIES / "source-to-image-redhat.yaml"
    values = {**representative_values(load_document(path)), "registries-search": ['x"]\n[evil']}
    pod = render(pod_inputs(path, values))
    done, calls = run_rendered_step(
        pod, "buildah", tmp_path, ["buildah"], {"/shp-tmp": str(tmp_path)}
    )
    assert done.returncode == 1
    assert calls == []

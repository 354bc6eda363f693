"""The build Pod rendered for a BuildRun: shape, parameters, volumes, failures."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from buildwright.api.v1beta1 import BuildRun, BuildSpec, BuildStrategy, ClusterBuildStrategy
from buildwright.core import reasons
from buildwright.core.pod import PodInputs, pod_name, render_pod, secret_volume_name, sequenced_step

ROOT = Path(__file__).resolve().parents[2]
STEP_IMAGE = "ghcr.io/example/buildwright:test"

BOOK_BUILD: dict[str, Any] = {
    "source": {
        "type": "Git",
        "git": {"url": "https://github.com/shipwright-io/sample-nodejs"},
        "contextDir": "docker-build",
    },
    "strategy": {"name": "kaniko", "kind": "ClusterBuildStrategy"},
    "output": {
        "image": "quay.io/gitops-cookbook/sample-nodejs:latest",
        "pushSecret": "push-secret",
    },
}


def strategy_file(name: str) -> ClusterBuildStrategy:
    document = yaml.safe_load((ROOT / "strategies" / f"{name}.yaml").read_text())
    document["metadata"]["generation"] = 3
    return ClusterBuildStrategy.model_validate(document)


def buildrun(spec: dict[str, Any] | None = None, name: str = "sample-nodejs-run") -> BuildRun:
    return BuildRun.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": "book",
                "uid": "3f6c1c8e-0000-4000-8000-000000000001",
                "generation": 1,
                "creationTimestamp": "2024-05-06T07:08:09Z",
            },
            "spec": spec or {"build": {"name": "sample-nodejs"}},
        }
    )


def inputs(
    build: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
    strategy: BuildStrategy | ClusterBuildStrategy | None = None,
    **extra: Any,
) -> PodInputs:
    run_object = buildrun(run)
    embedded = run_object.spec.build.spec
    build_spec = embedded if embedded is not None else BuildSpec.model_validate(build or BOOK_BUILD)
    values: dict[str, Any] = {
        "buildrun": run_object,
        "build_name": None if embedded is not None else "sample-nodejs",
        "build_generation": None if embedded is not None else 2,
        "build_spec": build_spec,
        "strategy": strategy or strategy_file("kaniko"),
        "service_account_name": "pipeline",
        "docker_config_secret": None,
        "step_image": STEP_IMAGE,
    }
    values.update(extra)
    return PodInputs(**values)


def render(*args: Any, **kwargs: Any) -> dict[str, Any]:
    pod = render_pod(inputs(*args, **kwargs))
    assert not isinstance(pod, reasons.Failure), pod
    return pod


def fail(*args: Any, **kwargs: Any) -> reasons.Failure:
    failure = render_pod(inputs(*args, **kwargs))
    assert isinstance(failure, reasons.Failure), "expected a failure"
    assert failure.reason == "TaskRunGenerationFailed"
    return failure


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    for item in pod["spec"]["initContainers"] + pod["spec"]["containers"]:
        if item["name"] == name:
            found: dict[str, Any] = item
            return found
    raise KeyError(name)


def argv(item: dict[str, Any]) -> list[str]:
    """A step's own command line, as the entrypoint in front of it passes it on."""
    step = sequenced_step(item)
    assert step is not None, f"{item['name']} is not run through the entrypoint"
    return list(step.argv)


def own_args(item: dict[str, Any]) -> list[str]:
    """A step's arguments after its program (and, for buildwright's own steps, the
    subcommand)."""
    line = argv(item)
    return line[2:] if line[0] == "buildwright-step" else line[1:]


def names(pod: dict[str, Any]) -> tuple[list[str], list[str]]:
    return (
        [c["name"] for c in pod["spec"]["initContainers"]],
        [c["name"] for c in pod["spec"]["containers"]],
    )


def mounts(item: dict[str, Any]) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in item["volumeMounts"]}


def volumes(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod["spec"]["volumes"]}


def env(item: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in item.get("env", [])}


def kubelet_expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes' expansion of command/args/env values: `$$` is a literal `$`, `$(NAME)` of
    a defined variable is its value, anything else stays as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            following = text[i + 1]
            if following == "$":
                out.append("$")
                i += 2
                continue
            if following == "(":
                end = text.find(")", i + 2)
                if end != -1 and text[i + 2 : end] in variables:
                    out.append(variables[text[i + 2 : end]])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def test_book_scenario_kaniko_with_shipwright_managed_push() -> None:
    pod = render()
    assert names(pod) == (
        ["prepare"],
        ["step-source-default", "step-build-and-push", "step-image-processing", "step-results"],
    )
    text = json.dumps(pod)
    assert "$(params." not in text
    assert "$(results." not in text

    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert pod["metadata"]["name"] == "sample-nodejs-run-pod"
    assert pod["metadata"]["namespace"] == "book"
    assert pod["metadata"]["labels"] == {
        "buildrun.shipwright.io/name": "sample-nodejs-run",
        "buildrun.shipwright.io/generation": "1",
        "build.shipwright.io/name": "sample-nodejs",
        "build.shipwright.io/generation": "2",
        "clusterbuildstrategy.shipwright.io/name": "kaniko",
        "clusterbuildstrategy.shipwright.io/generation": "3",
        "app.kubernetes.io/managed-by": "buildwright",
    }
    assert pod["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "shipwright.io/v1beta1",
            "kind": "BuildRun",
            "name": "sample-nodejs-run",
            "uid": "3f6c1c8e-0000-4000-8000-000000000001",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["serviceAccountName"] == "pipeline"
    assert spec["automountServiceAccountToken"] is False
    assert "activeDeadlineSeconds" not in spec

    source = container(pod, "step-source-default")
    assert source["image"] == STEP_IMAGE
    assert argv(source) == [
        "buildwright-step",
        "git-source",
        "--url",
        "https://github.com/shipwright-io/sample-nodejs",
        "--target",
        "/workspace/source",
        "--result-file-commit-sha",
        "/tekton/results/shp-source-default-commit-sha",
        "--result-file-commit-author",
        "/tekton/results/shp-source-default-commit-author",
        "--result-file-branch-name",
        "/tekton/results/shp-source-default-branch-name",
        "--result-file-source-timestamp",
        "/tekton/results/shp-source-default-source-timestamp",
        "--result-file-error-reason",
        "/tekton/results/shp-error-reason",
        "--result-file-error-message",
        "/tekton/results/shp-error-message",
        "--termination-log",
        "/tekton/termination",
    ]
    # Forced to the strategy's user (kaniko runs as root), otherwise least privilege.
    assert source["securityContext"] == {
        "runAsUser": 0,
        "runAsGroup": 0,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }

    build = container(pod, "step-build-and-push")
    assert build["image"] == "gcr.io/kaniko-project/executor:v1.24.0"
    assert build["workingDir"] == "/workspace/source"
    assert argv(build) == [
        "/kaniko/executor",
        "--dockerfile=Dockerfile",
        "--context=/workspace/source/docker-build",
        "--destination=quay.io/gitops-cookbook/sample-nodejs:latest",
        "--snapshot-mode=redo",
        "--no-push",
        "--tar-path=/workspace/output-image/image.tar",
        "--target=",
        "--ignore-path=/product_uuid",
    ]
    assert build["securityContext"]["runAsUser"] == 0
    assert build["securityContext"]["capabilities"]["add"][0] == "CHOWN"
    assert build["resources"] == {
        "limits": {"cpu": "500m", "memory": "1Gi"},
        "requests": {"cpu": "250m", "memory": "65Mi"},
    }
    assert env(build)["HOME"] == "/tekton/home"
    assert build["terminationMessagePath"] == "/tekton/termination"
    assert build["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert mounts(build) == {
        "/tekton/bin": "tekton-internal-bin",
        "/tekton/run": "tekton-internal-run",
        "/workspace/source": "shp-source",
        "/tekton/home": "shp-home",
        "/tekton/home/.docker": "shp-docker-config",
        "/tekton/results": "shp-results",
        "/workspace/output-image": "shp-output-directory",
    }

    processing = container(pod, "step-image-processing")
    assert argv(processing) == [
        "buildwright-step",
        "image-processing",
        "--push",
        "/workspace/output-image",
        "--image",
        "quay.io/gitops-cookbook/sample-nodejs:latest",
        "--insecure=false",
        "--result-file-image-digest",
        "/tekton/results/shp-image-digest",
        "--result-file-image-size",
        "/tekton/results/shp-image-size",
        "--result-file-image-vulnerabilities",
        "/tekton/results/shp-image-vulnerabilities",
        "--secret-path",
        "/workspace/shp-push-secret",
    ]
    assert mounts(processing)["/workspace/output-image"] == "shp-output-directory"
    assert mounts(processing)["/workspace/shp-push-secret"] == "shp-push-secret"
    assert mounts(processing)["/tekton/home/.docker"] == "shp-docker-config"

    results = container(pod, "step-results")
    assert argv(results) == [
        "buildwright-step",
        "results",
        "--results-dir",
        "/tekton/results",
        "--termination-log",
        "/tekton/termination",
    ]
    for item in spec["containers"]:
        assert mounts(item)["/tekton/results"] == "shp-results"
        assert mounts(item)["/workspace/source"] == "shp-source"
        assert mounts(item)["/tekton/home"] == "shp-home"

    vols = volumes(pod)
    assert vols["shp-output-directory"] == {"name": "shp-output-directory", "emptyDir": {}}
    assert vols["shp-push-secret"]["secret"] == {"secretName": "push-secret", "defaultMode": 0o444}
    assert vols["shp-docker-config"]["secret"]["secretName"] == "push-secret"
    assert vols["shp-docker-config"]["secret"]["items"] == [
        {"key": ".dockerconfigjson", "path": "config.json"}
    ]


def test_rendered_pod_is_a_valid_kubernetes_pod() -> None:
    pod = render(
        run={
            "build": {"name": "sample-nodejs"},
            "timeout": "15m",
            "output": {
                "image": "registry.local/x:1",
                "labels": {"a": "b"},
                "timestamp": "BuildTimestamp",
            },
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "builds", "operator": "Exists"}],
        }
    )
    kubernetes_validate.validate(pod, "1.34", strict=True)
    # The validator does reject a broken Pod, so the call above is a real check.
    broken = json.loads(json.dumps(pod))
    broken["spec"]["initContainers"][0]["volumeMountz"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.34", strict=True)


def test_buildah_shipwright_managed_push_is_valid_and_mounts_strategy_volumes() -> None:
    pod = render(strategy=strategy_file("buildah-shipwright-managed-push"))
    kubernetes_validate.validate(pod, "1.34", strict=True)
    build = container(pod, "step-build")
    assert mounts(build)["/var/lib/containers"] == "shp-buildah-container-storage"
    assert mounts(build)["/workspace/output-image"] == "shp-output-directory"
    assert volumes(pod)["shp-tmp"] == {"name": "shp-tmp", "emptyDir": {}}
    # Arrays: empty defaults vanish, the search list expands one item per element.
    args = own_args(build)
    start = args.index("--build-args")
    assert args[start : start + 4] == [
        "--build-args",
        "--registries-block",
        "--registries-insecure",
        "--registries-search",
    ]
    assert args[start + 4 : start + 6] == ["docker.io", "quay.io"]
    assert "'/tekton/results/shp-error-reason'" in args[1]


def test_strategy_managed_push_has_no_image_processing_step() -> None:
    strategy = strategy_file("buildah-strategy-managed-push")
    pod = render(strategy=strategy)
    assert names(pod) == (
        ["prepare"], ["step-source-default", "step-build-and-push", "step-results"]
    )
    assert "shp-output-directory" not in volumes(pod)
    assert "shp-trivy-cache-data" not in volumes(pod)
    assert "shp-push-secret" not in volumes(pod)  # only image-processing would mount it
    assert "$(params." not in json.dumps(pod)


def test_strategy_managed_push_with_annotations_gets_image_processing_without_push() -> None:
    run = {
        "build": {"name": "sample-nodejs"},
        "output": {"image": "quay.io/x/y:run", "annotations": {"org.opencontainers.image.x": "1"}},
    }
    pod = render(run=run, strategy=strategy_file("buildah-strategy-managed-push"))
    processing = container(pod, "step-image-processing")
    assert "--push" not in own_args(processing)
    assert own_args(processing)[:4] == [
        "--annotation",
        "org.opencontainers.image.x=1",
        "--image",
        "quay.io/x/y:run",
    ]
    # BuildRun has no pushSecret: the Build's push secret is still the one image-processing
    # gets, and the docker config of the steps too.
    assert own_args(processing)[-2:] == ["--secret-path", "/workspace/shp-push-secret"]


def test_image_processing_arguments_in_order() -> None:
    build = {
        **BOOK_BUILD,
        "output": {
            "image": "registry.local/app:1",
            "insecure": True,
            "pushSecret": "build push",
            "annotations": {"b": "2", "a": "1"},
            "labels": {"maintainer": "team"},
            "vulnerabilityScan": {
                "enabled": True,
                "ignore": {"id": ["CVE-1"], "severity": "low", "unfixed": True},
            },
            "timestamp": "SourceTimestamp",
        },
    }
    run = {
        "build": {"name": "sample-nodejs"},
        "output": {"image": "registry.local/app:2", "pushSecret": "run-secret"},
    }
    pod = render(build=build, run=run)
    processing = container(pod, "step-image-processing")
    assert own_args(processing) == [
        "--push",
        "/workspace/output-image",
        "--annotation",
        "a=1",
        "--annotation",
        "b=2",
        "--label",
        "maintainer=team",
        "--vuln-settings",
        '{"enabled":true,"ignore":{"id":["CVE-1"],"severity":"low","unfixed":true}}',
        "--vuln-count-limit",
        "50",
        "--image-timestamp-file",
        "/tekton/results/shp-source-default-source-timestamp",
        "--image",
        "registry.local/app:2",
        "--insecure=true",
        "--result-file-image-digest",
        "/tekton/results/shp-image-digest",
        "--result-file-image-size",
        "/tekton/results/shp-image-size",
        "--result-file-image-vulnerabilities",
        "/tekton/results/shp-image-vulnerabilities",
        "--secret-path",
        "/workspace/shp-push-secret",
    ]
    vols = volumes(pod)
    # The Build's secret for --secret-path; the BuildRun's for the registry credentials.
    assert mounts(processing)["/workspace/shp-push-secret"] == secret_volume_name("build push")
    assert vols["shp-build-push"]["secret"]["secretName"] == "build push"
    assert vols["shp-docker-config"]["secret"]["secretName"] == "run-secret"
    assert env(processing)["TRIVY_CACHE_DIR"] == "/trivy-cache-data"
    assert mounts(processing)["/trivy-cache-data"] == "shp-trivy-cache-data"
    assert processing["securityContext"]["capabilities"] == {
        "add": ["DAC_OVERRIDE"],
        "drop": ["ALL"],
    }


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("Zero", ["--image-timestamp", "0"]),
        ("BuildTimestamp", ["--image-timestamp", "1714979289"]),
        ("1691650396", ["--image-timestamp", "1691650396"]),
    ],
)
def test_timestamps(timestamp: str, expected: list[str]) -> None:
    run = {
        "build": {"name": "sample-nodejs"},
        "output": {"image": "quay.io/x/y:1", "timestamp": timestamp},
    }
    pod = render(run=run, strategy=strategy_file("buildah-strategy-managed-push"))
    args = own_args(container(pod, "step-image-processing"))
    index = args.index(expected[0])
    assert args[index : index + 2] == expected


def test_build_timestamp_prefers_the_given_epoch() -> None:
    run = {
        "build": {"name": "sample-nodejs"},
        "output": {"image": "x", "timestamp": "BuildTimestamp"},
    }
    pod = render(run=run, buildrun_creation_epoch=42)
    args = own_args(container(pod, "step-image-processing"))
    assert args[args.index("--image-timestamp") + 1] == "42"


def test_docker_config_from_the_service_account_when_no_push_secret() -> None:
    build = {**BOOK_BUILD, "output": {"image": "quay.io/x/y:1"}}
    pod = render(build=build, docker_config_secret="sa-docker")
    assert volumes(pod)["shp-docker-config"]["secret"]["secretName"] == "sa-docker"
    assert "--secret-path" not in own_args(container(pod, "step-image-processing"))
    no_credentials = render(build=build)
    assert "shp-docker-config" not in volumes(no_credentials)
    assert "/tekton/home/.docker" not in mounts(container(no_credentials, "step-build-and-push"))


def test_git_options_and_clone_secret() -> None:
    build = {
        **BOOK_BUILD,
        "source": {
            "type": "Git",
            "git": {
                "url": "git@github.com:org/repo.git",
                "revision": "v1.2",
                "depth": 0,
                "cloneSecret": "git.ssh",
            },
        },
    }
    pod = render(build=build)
    source = container(pod, "step-source-default")
    assert own_args(source)[-6:] == [
        "--revision",
        "v1.2",
        "--depth",
        "0",
        "--secret-path",
        "/workspace/shp-source-secret",
    ]
    assert mounts(source)["/workspace/shp-source-secret"] == "shp-git-ssh"
    mount = next(m for m in source["volumeMounts"] if m["name"] == "shp-git-ssh")
    assert mount["readOnly"] is True
    assert volumes(pod)["shp-git-ssh"]["secret"] == {"secretName": "git.ssh", "defaultMode": 0o444}
    assert "/workspace/shp-source-secret" not in mounts(container(pod, "step-build-and-push"))


def test_secret_volume_names() -> None:
    assert secret_volume_name("push-secret") == "shp-push-secret"
    assert secret_volume_name("my.secret..x") == "shp-my-secret-x"
    assert secret_volume_name("a" * 70) == "shp-" + "a" * 59
    assert secret_volume_name("a" * 58 + ".b") == "shp-" + "a" * 58


def test_secret_volume_name_clash_with_our_own_volumes() -> None:
    build = {**BOOK_BUILD, "output": {**BOOK_BUILD["output"], "pushSecret": "docker-config"}}
    pod = render(build=build)
    processing = container(pod, "step-image-processing")
    name = mounts(processing)["/workspace/shp-push-secret"]
    assert name != "shp-docker-config"
    assert volumes(pod)[name]["secret"]["secretName"] == "docker-config"
    assert "items" in volumes(pod)["shp-docker-config"]["secret"]


def test_embedded_build_spec_has_no_build_labels() -> None:
    pod = render(run={"build": {"spec": BOOK_BUILD}})
    labels = pod["metadata"]["labels"]
    assert "build.shipwright.io/name" not in labels
    assert "build.shipwright.io/generation" not in labels
    assert labels["buildrun.shipwright.io/name"] == "sample-nodejs-run"
    assert labels["clusterbuildstrategy.shipwright.io/name"] == "kaniko"


def test_namespaced_strategy_labels_and_annotations() -> None:
    document = yaml.safe_load((ROOT / "strategies" / "buildkit.yaml").read_text())
    document["kind"] = "BuildStrategy"
    document["metadata"]["generation"] = 7
    document["metadata"].setdefault("annotations", {}).update(
        {
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            "buildstrategy.shipwright.io/x": "1",
            "build.shipwright.io/y": "1",
            "kubernetes.io/egress-bandwidth": "10M",
        }
    )
    strategy = BuildStrategy.model_validate(document)
    pod = render(strategy=strategy)
    labels = pod["metadata"]["labels"]
    assert labels["buildstrategy.shipwright.io/name"] == "buildkit"
    assert labels["buildstrategy.shipwright.io/generation"] == "7"
    assert not any(key.startswith("clusterbuildstrategy") for key in labels)
    assert pod["metadata"]["annotations"] == {
        "container.apparmor.security.beta.kubernetes.io/step-build-and-push": "unconfined",
        "kubernetes.io/egress-bandwidth": "10M",
    }
    kubernetes_validate.validate(pod, "1.34", strict=True)


def custom_strategy(
    steps: list[dict[str, Any]],
    parameters: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    security_context: dict[str, int] | None = None,
) -> ClusterBuildStrategy:
    # Every step names its program: the entrypoint in front of it needs one (a step without a
    # command is refused, see test_step_without_a_command_is_refused).
    steps = [{"command": ["tool"], **step} for step in steps]
    spec: dict[str, Any] = {"steps": steps, "parameters": parameters or []}
    if volumes is not None:
        spec["volumes"] = volumes
    if security_context is not None:
        spec["securityContext"] = security_context
    return ClusterBuildStrategy.model_validate({"metadata": {"name": "custom"}, "spec": spec})


def test_step_without_a_command_is_refused() -> None:
    strategy = ClusterBuildStrategy.model_validate(
        {
            "metadata": {"name": "custom"},
            "spec": {"steps": [{"name": "bare", "image": "busybox", "args": ["x"]}]},
        }
    )
    failure = fail(strategy=strategy)
    assert failure.message.startswith('build strategy: step "bare" has no command')


def test_steps_run_in_order_through_the_entrypoint() -> None:
    pod = render()
    prepare = pod["spec"]["initContainers"][0]
    assert prepare["name"] == "prepare"
    assert prepare["image"] == STEP_IMAGE
    assert prepare["command"] == [
        "/usr/local/bin/tekton-entrypoint", "cp", "/proc/self/exe", "/tekton/bin/entrypoint"
    ]
    assert mounts(prepare) == {"/tekton/bin": "tekton-internal-bin"}
    steps = pod["spec"]["containers"]
    sequenced = [sequenced_step(item) for item in steps]
    assert all(step is not None for step in sequenced)
    waits = [step.wait_file for step in sequenced if step is not None]
    posts = [step.post_file for step in sequenced if step is not None]
    assert waits == [None, *posts[:-1]], "each step waits for the one before it"
    assert len(set(posts)) == len(posts)
    for item in steps:
        assert item["command"] == ["/tekton/bin/entrypoint"]
        assert item["terminationMessagePath"] == "/tekton/termination"
        entrypoint_mount = next(m for m in item["volumeMounts"] if m["mountPath"] == "/tekton/bin")
        assert entrypoint_mount == {
            "name": "tekton-internal-bin", "mountPath": "/tekton/bin", "readOnly": True
        }
    reported = {
        item["name"]: step.results for item, step in zip(steps, sequenced, strict=True) if step
    }
    # Steps that do not write their own termination message report their failure's cause
    # through the entrypoint.
    assert reported == {
        "step-source-default": (),
        "step-build-and-push": ("shp-error-reason", "shp-error-message"),
        "step-image-processing": ("shp-error-reason", "shp-error-message"),
        "step-results": (),
    }
    assert volumes(pod)["tekton-internal-bin"] == {"name": "tekton-internal-bin", "emptyDir": {}}
    assert volumes(pod)["tekton-internal-run"] == {"name": "tekton-internal-run", "emptyDir": {}}


def test_configmap_and_secret_values_are_env_vars_of_the_steps_that_use_them() -> None:
    strategy = custom_strategy(
        steps=[
            {
                "name": "uses",
                "image": "busybox",
                "args": ["--token", "$(params.token)"],
                "env": [{"name": "REGION", "value": "$(params.region)"}],
            },
            {"name": "prefix", "image": "busybox", "args": ["$(params.token-extra)"]},
            {"name": "other", "image": "busybox", "args": ["$(params.plain)"]},
        ],
        parameters=[
            {"name": "token", "description": "d"},
            {"name": "token-extra", "description": "d", "default": "x"},
            {"name": "region", "description": "d"},
            {"name": "plain", "description": "d", "default": "p"},
        ],
    )
    build = {
        **BOOK_BUILD,
        "paramValues": [
            {
                "name": "token",
                "secretValue": {"name": "creds", "key": "t", "format": "t=${SECRET_VALUE}"},
            },
            {"name": "region", "configMapValue": {"name": "settings", "key": "region"}},
        ],
    }
    pod = render(build=build, strategy=strategy)
    uses = container(pod, "step-uses")
    first, second = uses["env"][0], uses["env"][1]
    assert re.fullmatch(r"SHP_SECRET_PARAM_[A-Z0-9]{5}", first["name"])
    assert first["valueFrom"] == {"secretKeyRef": {"name": "creds", "key": "t"}}
    assert re.fullmatch(r"SHP_CONFIGMAP_PARAM_[A-Z0-9]{5}", second["name"])
    assert second["valueFrom"] == {"configMapKeyRef": {"name": "settings", "key": "region"}}
    assert own_args(uses) == ["--token", f"t=$({first['name']})"]
    assert env(uses)["REGION"] == f"$({second['name']})"
    # Prefix match: "$(params.token-extra" also counts as a reference to "token".
    assert env(container(pod, "step-prefix"))[first["name"]] == first["valueFrom"]
    assert not any(e["name"].startswith("SHP_") for e in container(pod, "step-other")["env"])
    # What the kubelet would do with the secret's value.
    assert [kubelet_expand(a, {first["name"]: "s3cr3t"}) for a in own_args(uses)] == [
        "--token",
        "t=s3cr3t",
    ]
    again = render(build=build, strategy=strategy)
    assert again == pod  # deterministic env var names


HOSTILE = [
    "; rm -rf /",
    "$(id)",
    "`id`",
    "\"quoted\" 'single'",
    "line1\nline2",
    "--privileged",
    "$(params.other)",
    "$(HOME)",
    "$$ and $",
    "$(results.shp-image-digest.path)",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_parameter_values_stay_one_literal_argument(value: str) -> None:
    strategy = custom_strategy(
        steps=[
            {
                "name": "echo",
                "image": "busybox",
                "command": ["/bin/sh", "-c", 'printf "%s\\n" "$@"', "--"],
                "args": ["--value", "$(params.value)", "--list", "$(params.list[*])", "--end"],
                "env": [{"name": "PARAM_VALUE", "value": "$(params.value)"}],
            }
        ],
        parameters=[
            {"name": "value", "description": "d"},
            {"name": "list", "description": "d", "type": "array"},
            {"name": "other", "description": "d", "default": "SUBSTITUTED"},
        ],
    )
    build = {
        **BOOK_BUILD,
        "paramValues": [
            {"name": "value", "value": value},
            {"name": "list", "values": [{"value": value}, {"value": "x y"}]},
        ],
    }
    pod = render(build=build, strategy=strategy)
    step = container(pod, "step-echo")
    variables = {e["name"]: e["value"] for e in step["env"] if "value" in e}
    line = [kubelet_expand(a, variables) for a in argv(step)]
    assert line == [
        "/bin/sh",
        "-c",
        'printf "%s\\n" "$@"',
        "--",
        "--value",
        value,
        "--list",
        value,
        "x y",
        "--end",
    ]
    assert kubelet_expand(env(step)["PARAM_VALUE"], variables) == value
    # The script itself is not touched by any value.
    assert argv(step)[2] == 'printf "%s\\n" "$@"'


def test_array_parameter_with_zero_items() -> None:
    strategy = custom_strategy(
        steps=[
            {
                "name": "s",
                "image": "busybox",
                "command": ["echo"],
                "args": ["a", "$(params.list[*])", "b"],
            }
        ],
        parameters=[{"name": "list", "description": "d", "type": "array", "defaults": ["d"]}],
    )
    build = {**BOOK_BUILD, "paramValues": [{"name": "list", "values": []}]}
    assert own_args(container(render(build=build, strategy=strategy), "step-s")) == ["a", "b"]
    assert own_args(container(render(strategy=strategy), "step-s")) == ["a", "d", "b"]


def test_timeout_becomes_active_deadline_seconds() -> None:
    build = {**BOOK_BUILD, "timeout": "10m"}
    assert render(build=build)["spec"]["activeDeadlineSeconds"] == 600
    run = {"build": {"name": "sample-nodejs"}, "timeout": "1h30m"}
    assert render(build=build, run=run)["spec"]["activeDeadlineSeconds"] == 5400
    assert (
        render(run={"build": {"name": "x"}, "timeout": "1500ms"})["spec"]["activeDeadlineSeconds"]
        == 2
    )


def test_scheduling_is_merged() -> None:
    build = {
        **BOOK_BUILD,
        "nodeSelector": {"disk": "ssd", "zone": "a"},
        "tolerations": [
            {"key": "shared", "operator": "Equal", "value": "build"},
            {"key": "build-only", "operator": "Exists"},
        ],
        "schedulerName": "build-scheduler",
        "runtimeClassName": "kata",
    }
    run = {
        "build": {"name": "sample-nodejs"},
        "nodeSelector": {"zone": "b"},
        "tolerations": [{"key": "shared", "operator": "Equal", "value": "run", "effect": ""}],
        "schedulerName": "run-scheduler",
    }
    spec = render(build=build, run=run)["spec"]
    assert spec["nodeSelector"] == {"disk": "ssd", "zone": "b"}
    assert spec["tolerations"] == [
        {"key": "shared", "operator": "Equal", "value": "run", "effect": "NoSchedule"},
        {"key": "build-only", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert spec["schedulerName"] == "run-scheduler"
    assert spec["runtimeClassName"] == "kata"


def test_step_resources_override_buildrun_over_build_over_strategy() -> None:
    strategy = strategy_file("kaniko")
    build = {
        **BOOK_BUILD,
        "strategy": {
            **BOOK_BUILD["strategy"],
            "stepResources": [
                {"name": "build-and-push", "resources": {"limits": {"memory": "2Gi"}}}
            ],
        },
    }
    assert container(render(build=build), "step-build-and-push")["resources"] == {
        "limits": {"memory": "2Gi"}
    }
    run = {
        "build": {"name": "sample-nodejs"},
        "stepResources": [{"name": "build-and-push", "resources": {"requests": {"cpu": "1"}}}],
    }
    assert container(render(build=build, run=run, strategy=strategy), "step-build-and-push")[
        "resources"
    ] == {"requests": {"cpu": "1"}}


def test_security_context_of_strategy_applies_where_steps_set_none() -> None:
    strategy = custom_strategy(
        steps=[
            {"name": "plain", "image": "busybox"},
            {"name": "own", "image": "busybox", "securityContext": {"runAsUser": 5}},
        ],
        security_context={"runAsUser": 1001, "runAsGroup": 1002},
    )
    pod = render(strategy=strategy)
    assert container(pod, "step-plain")["securityContext"] == {
        "runAsUser": 1001,
        "runAsGroup": 1002,
    }
    assert container(pod, "step-own")["securityContext"] == {"runAsUser": 5, "runAsGroup": 1002}
    for name in ("step-source-default", "step-results"):
        context = container(pod, name)["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (1001, 1002)
        assert context["runAsNonRoot"] is True
    without = render(strategy=custom_strategy(steps=[{"name": "plain", "image": "busybox"}]))
    assert "securityContext" not in container(without, "step-plain")
    assert container(without, "step-results")["securityContext"]["runAsUser"] == 1000


def test_env_merging_and_home() -> None:
    strategy = custom_strategy(
        steps=[
            {"name": "a", "image": "busybox", "env": [{"name": "S", "value": "strategy"}]},
            {"name": "b", "image": "busybox", "env": [{"name": "HOME", "value": "/root"}]},
        ]
    )
    build = {**BOOK_BUILD, "env": [{"name": "X", "value": "build"}, {"name": "Y", "value": "b"}]}
    run = {"build": {"name": "sample-nodejs"}, "env": [{"name": "Y", "value": "run"}]}
    pod = render(build=build, run=run, strategy=strategy)
    assert [(e["name"], e["value"]) for e in container(pod, "step-a")["env"]] == [
        ("S", "strategy"),
        ("X", "build"),
        ("Y", "run"),
        ("HOME", "/tekton/home"),
    ]
    assert env(container(pod, "step-b"))["HOME"] == "/root"
    assert env(container(pod, "step-source-default")) == {"HOME": "/tekton/home"}


def test_pod_name() -> None:
    assert pod_name("sample-nodejs-run") == "sample-nodejs-run-pod"
    exact = "a" * 59
    assert pod_name(exact) == exact + "-pod"
    long_name = "b" * 63
    name = pod_name(long_name)
    assert len(name) == 63
    assert re.fullmatch(r"b{50}-[0-9a-f]{8}-pod", name)
    assert pod_name("b" * 62 + "c") != name
    assert pod_name(long_name) == name


def test_local_source_override_uses_the_local_source_step() -> None:
    run = {
        "build": {"name": "sample-nodejs"},
        "source": {"type": "Local", "local": {"name": "upload", "timeout": "2m"}},
    }
    pod = render(run=run)
    step = container(pod, "step-source-local")
    assert argv(step) == [
        "buildwright-step",
        "waiter",
        "start",
        "--lock-file=/shp-tmp/waiter.lock",
        "--timeout=2m",
        "--result-file-error-reason",
        "/tekton/results/shp-error-reason",
        "--result-file-error-message",
        "/tekton/results/shp-error-message",
        "--termination-log",
        "/tekton/termination",
    ]
    kubernetes_validate.validate(pod, "1.34", strict=True)


def test_oci_source_uses_the_bundle_step() -> None:
    source = {
        "type": "OCI",
        "ociArtifact": {"image": "registry.example/src/app:v1", "prune": "AfterPull",
                        "pullSecret": "pull-secret"},
    }
    pod = render(build={**BOOK_BUILD, "source": source})
    step = container(pod, "step-source-default")
    assert argv(step) == [
        "buildwright-step",
        "bundle",
        "--image",
        "registry.example/src/app:v1",
        "--target",
        "/workspace/source",
        "--result-file-image-digest",
        "/tekton/results/shp-source-default-image-digest",
        "--result-file-source-timestamp",
        "/tekton/results/shp-source-default-source-timestamp",
        "--result-file-error-reason",
        "/tekton/results/shp-error-reason",
        "--result-file-error-message",
        "/tekton/results/shp-error-message",
        "--termination-log",
        "/tekton/termination",
        "--secret-path",
        "/workspace/shp-pull-secret",
        "--prune",
    ]
    assert mounts(step)["/workspace/shp-pull-secret"] == "shp-pull-secret"
    kubernetes_validate.validate(pod, "1.34", strict=True)


def test_no_source_means_no_source_step() -> None:
    build = {key: value for key, value in BOOK_BUILD.items() if key != "source"}
    pod = render(build=build)
    assert names(pod)[1] == ["step-build-and-push", "step-image-processing", "step-results"]
    args = own_args(container(pod, "step-build-and-push"))
    assert "--context=/workspace/source" in args


# --- TaskRunGenerationFailed ------------------------------------------------------------------


def test_env_conflict_with_strategy_step() -> None:
    build = {**BOOK_BUILD, "env": [{"name": "DOCKER_CONFIG", "value": "/x"}]}
    assert fail(build=build).message == (
        "build strategy: error(s) occurred merging environment variables into BuildStrategy "
        '"kaniko" steps: environment variable "DOCKER_CONFIG" already exists'
    )
    build = {
        **BOOK_BUILD,
        "env": [{"name": "HOME", "value": "/x"}, {"name": "DOCKER_CONFIG", "value": "/x"}],
    }
    assert fail(build=build).message.endswith(
        'steps: [environment variable "HOME" already exists, '
        'environment variable "DOCKER_CONFIG" already exists]'
    )


def test_forbidden_env_in_strategy_step() -> None:
    strategy = custom_strategy(
        steps=[{"name": "evil", "image": "busybox", "env": [{"name": "LD_PRELOAD", "value": "x"}]}]
    )
    assert fail(strategy=strategy).message == (
        'build strategy: BuildStrategy step "evil" defines forbidden environment variable '
        '"LD_PRELOAD"'
    )


def test_forbidden_env_from_build_or_buildrun() -> None:
    build = {**BOOK_BUILD, "env": [{"name": "BASH_FUNC_x%%", "value": "() { id; }"}]}
    assert fail(build=build).message.endswith(
        'steps: environment variable "BASH_FUNC_x%%" is forbidden for security reasons'
    )
    run = {"build": {"name": "sample-nodejs"}, "env": [{"name": "NODE_OPTIONS", "value": "x"}]}
    assert fail(run=run).message == (
        "preparing execution context: failed to merge environment variables: environment "
        'variable "NODE_OPTIONS" is forbidden for security reasons'
    )


def test_volume_mount_without_volume() -> None:
    strategy = custom_strategy(
        steps=[
            {
                "name": "s",
                "image": "busybox",
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
            }
        ]
    )
    assert fail(strategy=strategy).message == (
        'build strategy: volume for the Volume Mount "cache" is not found'
    )


def test_writable_mount_of_a_read_only_volume_type() -> None:
    def strategy(volume: dict[str, Any], read_only: bool | None) -> ClusterBuildStrategy:
        mount: dict[str, Any] = {"name": "conf", "mountPath": "/conf"}
        if read_only is not None:
            mount["readOnly"] = read_only
        return custom_strategy(
            steps=[{"name": "s", "image": "busybox", "volumeMounts": [mount]}],
            volumes=[{"name": "conf", "overridable": True, **volume}],
        )

    read_only_types: list[dict[str, Any]] = [
        {"configMap": {"name": "c"}},
        {"secret": {"secretName": "s"}},
        {"downwardAPI": {"items": []}},
        {"projected": {"sources": []}},
    ]
    for volume in read_only_types:
        assert fail(strategy=strategy(volume, None)).message == (
            'build strategy: volume mount "conf" must be read only'
        )
        assert not isinstance(render_pod(inputs(strategy=strategy(volume, True))), reasons.Failure)
    # The check uses the volume type after Build overrides.
    assert not isinstance(
        render_pod(inputs(strategy=strategy({"emptyDir": {}}, False))), reasons.Failure
    )
    build = {**BOOK_BUILD, "volumes": [{"name": "conf", "configMap": {"name": "mine"}}]}
    assert fail(build=build, strategy=strategy({"emptyDir": {}}, False)).message == (
        'build strategy: volume mount "conf" must be read only'
    )
    pod = render(build=build, strategy=strategy({"emptyDir": {}}, True))
    assert volumes(pod)["conf"] == {"name": "conf", "configMap": {"name": "mine"}}


def test_non_overridable_volume_keeps_the_strategy_source() -> None:
    strategy = custom_strategy(
        steps=[{"name": "s", "image": "busybox"}],
        volumes=[{"name": "cache", "emptyDir": {}, "description": "d"}],
    )
    build = {**BOOK_BUILD, "volumes": [{"name": "cache", "configMap": {"name": "x"}}]}
    assert volumes(render(build=build, strategy=strategy))["cache"] == {
        "name": "cache",
        "emptyDir": {},
    }


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        (
            "",
            "output image: cannot parse output timestamp  as a number, must be Zero, "
            "SourceTimestamp, BuildTimestamp, or a an integer",
        ),
        (
            "yesterday",
            "output image: cannot parse output timestamp yesterday as a number, "
            "must be Zero, SourceTimestamp, BuildTimestamp, or a an integer",
        ),
        (
            "1.5",
            "output image: cannot parse output timestamp 1.5 as a number, must be Zero, "
            "SourceTimestamp, BuildTimestamp, or a an integer",
        ),
    ],
)
def test_bad_output_timestamp(timestamp: str, message: str) -> None:
    run = {
        "build": {"name": "sample-nodejs"},
        "output": {"image": "quay.io/x/y:1", "timestamp": timestamp},
    }
    assert fail(run=run).message == message


def test_source_timestamp_without_a_source() -> None:
    build = {key: value for key, value in BOOK_BUILD.items() if key != "source"}
    build["output"] = {"image": "x", "timestamp": "SourceTimestamp"}
    assert fail(build=build).message == (
        "output image: cannot use SourceTimestamp setting, because there is no source "
        "timestamp available for this source"
    )


def test_undefined_parameter_reference_fails() -> None:
    strategy = custom_strategy(
        steps=[{"name": "s", "image": "busybox", "args": ["$(params.nowhere)"]}]
    )
    message = fail(strategy=strategy).message
    assert message.startswith('build strategy: step "s": ')
    assert '"nowhere"' in message


def test_missing_parameter_value_fails() -> None:
    strategy = custom_strategy(
        steps=[{"name": "s", "image": "busybox"}],
        parameters=[{"name": "needed", "description": "d"}],
    )
    assert fail(strategy=strategy).message == (
        "metadata configuration: unexpected parameter without any value: needed"
    )


def test_generated_service_account_is_owned_by_its_buildrun() -> None:
    from buildwright.api.v1beta1 import BuildRun
    from buildwright.core.pod import generated_service_account

    run = BuildRun.model_validate({
        "metadata": {"name": "r", "namespace": "ns", "uid": "u-r"},
        "spec": {"build": {"name": "b"}, "serviceAccount": ".generate"},
    })  # fmt: skip
    account = generated_service_account(run, "push")
    assert account["metadata"]["name"] == "r"
    assert account["metadata"]["ownerReferences"] == [{
        "apiVersion": "shipwright.io/v1beta1", "kind": "BuildRun", "name": "r", "uid": "u-r",
        "controller": True, "blockOwnerDeletion": True,
    }]  # fmt: skip
    assert account["automountServiceAccountToken"] is False
    assert account["secrets"] == [{"name": "push"}]
    assert generated_service_account(run, None)["secrets"] == []

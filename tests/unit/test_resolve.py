"""Effective Build spec (BuildRun overrides) and parameter resolution."""

from __future__ import annotations

import re
from typing import Any

import pytest

from buildwright.api.v1beta1 import BuildRunSpec, BuildSpec, Parameter, ParamValue
from buildwright.core import reasons
from buildwright.core.resolve import (
    active_deadline_seconds,
    effective_build_spec,
    effective_timeout,
    effective_timeout_seconds,
    env_var_name,
    kube_escape,
    resolve_parameters,
    source_context,
    system_parameters,
)


def build_spec(**extra: Any) -> BuildSpec:
    wire: dict[str, Any] = {
        "source": {
            "type": "Git",
            "git": {"url": "https://github.com/shipwright-io/sample-nodejs"},
            "contextDir": "docker-build",
        },
        "strategy": {"name": "kaniko", "kind": "ClusterBuildStrategy"},
        "output": {"image": "quay.io/gitops-cookbook/sample-nodejs:latest"},
    }
    wire.update(extra)
    return BuildSpec.model_validate(wire)


def run_spec(**extra: Any) -> BuildRunSpec:
    return BuildRunSpec.model_validate({"build": {"name": "b"}, **extra})


def test_without_overrides_the_build_spec_is_unchanged() -> None:
    spec = build_spec(timeout="10m", env=[{"name": "A", "value": "1"}])
    assert effective_build_spec(spec, run_spec()).to_wire() == spec.to_wire()


def test_effective_spec_does_not_mutate_its_inputs() -> None:
    spec = build_spec(output={"image": "a", "labels": {"x": "1"}})
    run = run_spec(output={"image": "b", "labels": {"y": "2"}})
    before = (spec.to_wire(), run.to_wire())
    effective_build_spec(spec, run)
    assert (spec.to_wire(), run.to_wire()) == before


def test_output_is_overridden_field_by_field() -> None:
    spec = build_spec(
        output={
            "image": "registry/build:1",
            "insecure": True,
            "pushSecret": "build-secret",
            "annotations": {"a": "build", "keep": "yes"},
            "labels": {"l": "build"},
            "timestamp": "Zero",
            "vulnerabilityScan": {"enabled": True, "failOnFinding": True},
        }
    )
    run = run_spec(
        output={
            "image": "registry/run:2",
            "annotations": {"a": "run"},
            "labels": {"new": "run"},
            "vulnerabilityScan": {"enabled": False},
        }
    )
    output = effective_build_spec(spec, run).output
    assert output.image == "registry/run:2"
    assert output.insecure is True  # not set on the BuildRun: the Build's
    assert output.push_secret == "build-secret"
    assert output.annotations == {"a": "run", "keep": "yes"}
    assert output.labels == {"l": "build", "new": "run"}
    assert output.timestamp == "Zero"
    assert output.vulnerability_scan is not None
    assert output.vulnerability_scan.enabled is False  # BuildRun's object wins wholesale
    assert output.vulnerability_scan.fail_on_finding is False


def test_buildrun_insecure_false_and_push_secret_win() -> None:
    spec = build_spec(output={"image": "a", "insecure": True, "pushSecret": "s1"})
    run = run_spec(output={"image": "b", "insecure": False, "pushSecret": "s2", "timestamp": "1"})
    output = effective_build_spec(spec, run).output
    assert (output.insecure, output.push_secret, output.timestamp) == (False, "s2", "1")


def test_param_values_env_volumes_and_step_resources_merge_by_name() -> None:
    spec = build_spec(
        paramValues=[{"name": "dockerfile", "value": "A"}, {"name": "target", "value": "t"}],
        env=[{"name": "X", "value": "build"}, {"name": "Y", "value": "build"}],
        volumes=[{"name": "cache", "emptyDir": {}}],
        strategy={
            "name": "kaniko",
            "stepResources": [{"name": "build", "resources": {"limits": {"cpu": "1"}}}],
        },
    )
    run = run_spec(
        paramValues=[{"name": "dockerfile", "value": "B"}, {"name": "extra", "value": "e"}],
        env=[{"name": "Y", "value": "run"}, {"name": "Z", "value": "run"}],
        volumes=[{"name": "cache", "configMap": {"name": "cm"}}],
        stepResources=[{"name": "build", "resources": {"limits": {"cpu": "2"}}}],
    )
    effective = effective_build_spec(spec, run)
    assert [(p.name, p.value) for p in effective.param_values or []] == [
        ("dockerfile", "B"),
        ("target", "t"),
        ("extra", "e"),
    ]
    assert [(e.name, e.value) for e in effective.env or []] == [
        ("X", "build"),
        ("Y", "run"),
        ("Z", "run"),
    ]
    assert [v.to_wire() for v in effective.volumes or []] == [
        {"name": "cache", "configMap": {"name": "cm"}}
    ]
    resources = effective.strategy.step_resources or []
    assert [(r.name, r.resources.limits) for r in resources] == [("build", {"cpu": "2"})]


def test_timeout_scheduling_and_local_source() -> None:
    spec = build_spec(
        timeout="10m",
        nodeSelector={"disk": "ssd", "zone": "a"},
        tolerations=[
            {"key": "k1", "operator": "Exists"},
            {"key": "k2", "operator": "Equal", "value": "build"},
        ],
        schedulerName="build-scheduler",
        runtimeClassName="gvisor",
    )
    run = run_spec(
        timeout="1h",
        nodeSelector={"zone": "b"},
        tolerations=[{"key": "k2", "operator": "Equal", "value": "run"}],
        schedulerName="run-scheduler",
        source={"type": "Local", "local": {"name": "upload", "timeout": "2m"}},
    )
    effective = effective_build_spec(spec, run)
    assert effective.timeout == "1h"
    assert effective.node_selector == {"disk": "ssd", "zone": "b"}
    assert [(t.key, t.value) for t in effective.tolerations or []] == [
        ("k2", "run"),
        ("k1", None),
    ]
    assert effective.scheduler_name == "run-scheduler"
    assert effective.runtime_class_name == "gvisor"
    assert effective.source is not None
    assert effective.source.type == "Local"
    assert effective.source.local is not None and effective.source.local.timeout == "2m"
    assert effective.source.context_dir == "docker-build"
    assert effective.source.git is None


def test_non_local_source_override_is_ignored() -> None:
    spec = build_spec()
    effective = effective_build_spec(spec, run_spec(source={"type": "Git"}))
    assert effective.source == spec.source


def test_effective_timeout() -> None:
    assert effective_timeout(build_spec(timeout="5m"), run_spec()) == "5m"
    assert effective_timeout(build_spec(timeout="5m"), run_spec(timeout="1h30m")) == "1h30m"
    assert effective_timeout_seconds(build_spec(timeout="5m"), run_spec(timeout="1.5h")) == 5400
    assert effective_timeout_seconds(build_spec(), run_spec()) is None
    assert effective_timeout_seconds(build_spec(timeout="0s"), run_spec()) is None
    with pytest.raises(ValueError):
        effective_timeout_seconds(build_spec(timeout="ten minutes"), run_spec())
    assert active_deadline_seconds(None) is None
    assert active_deadline_seconds(0.5) == 1
    assert active_deadline_seconds(90.2) == 91


def test_system_parameters() -> None:
    spec = build_spec()
    assert system_parameters(spec) == {
        "shp-source-root": "/workspace/source",
        "shp-source-context": "/workspace/source/docker-build",
        "shp-output-image": "quay.io/gitops-cookbook/sample-nodejs:latest",
        "shp-output-insecure": "false",
        "shp-output-directory": "/workspace/output-image",
    }
    no_context = build_spec(source={"type": "Git", "git": {"url": "u"}})
    assert source_context(no_context) == "/workspace/source"
    assert source_context(build_spec(source={"type": "Git", "contextDir": "a/./b/"})) == (
        "/workspace/source/a/b"
    )
    insecure = build_spec(output={"image": "x", "insecure": True})
    assert system_parameters(insecure)["shp-output-insecure"] == "true"


def params(*wire: dict[str, Any]) -> list[Parameter]:
    return [Parameter.model_validate({"description": "d", **w}) for w in wire]


def values(*wire: dict[str, Any]) -> list[ParamValue]:
    return [ParamValue.model_validate(w) for w in wire]


def test_values_defaults_and_system_parameters() -> None:
    resolved = resolve_parameters(
        params(
            {"name": "dockerfile", "default": "Dockerfile"},
            {"name": "target", "default": ""},
            {"name": "args", "type": "array", "defaults": ["a", "b"]},
            {"name": "list", "type": "array"},
        ),
        values(
            {"name": "target", "value": "prod"},
            {"name": "list", "values": []},
            {"name": "dockerfile"},  # no value at all: the default applies
        ),
        {"shp-output-image": "img"},
    )
    assert not isinstance(resolved, reasons.Failure)
    assert resolved["dockerfile"].plain() == "Dockerfile"
    assert resolved["target"].plain() == "prod"
    assert resolved["args"].plain() == ["a", "b"]
    assert resolved["list"].plain() == []
    assert resolved["shp-output-image"].plain() == "img"


def test_literal_dollars_are_escaped_for_kubernetes_expansion_only() -> None:
    resolved = resolve_parameters(
        params({"name": "p"}, {"name": "a", "type": "array"}),
        values({"name": "p", "value": "$(HOME) $$x"}, {"name": "a", "values": [{"value": "$y"}]}),
        {},
    )
    assert not isinstance(resolved, reasons.Failure)
    assert resolved["p"].plain() == "$(HOME) $$x"
    assert resolved["p"].expanded() == "$$(HOME) $$$$x"
    assert resolved["a"].expanded() == ["$$y"]
    assert kube_escape("a$b") == "a$$b"


def test_configmap_and_secret_values_become_env_references() -> None:
    resolved = resolve_parameters(
        params(
            {"name": "plain-cm"},
            {"name": "formatted-secret"},
            {"name": "again"},
            {"name": "items", "type": "array"},
        ),
        values(
            {"name": "plain-cm", "configMapValue": {"name": "cm", "key": "k"}},
            {
                "name": "formatted-secret",
                "secretValue": {"name": "sec", "key": "token", "format": "--t=${SECRET_VALUE}$"},
            },
            {"name": "again", "configMapValue": {"name": "cm", "key": "k", "format": "x"}},
            {
                "name": "items",
                "values": [
                    {"value": "lit"},
                    {"secretValue": {"name": "sec", "key": "token"}},
                    {"configMapValue": {"name": "cm", "key": "other"}},
                ],
            },
        ),
        {},
    )
    assert not isinstance(resolved, reasons.Failure)
    cm = resolved["plain-cm"]
    (source,) = cm.env_sources
    assert re.fullmatch(r"SHP_CONFIGMAP_PARAM_[A-Z0-9]{5}", source.env_name)
    assert cm.expanded() == f"$({source.env_name})"
    assert source.to_env_var() == {
        "name": source.env_name,
        "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}},
    }
    (secret,) = resolved["formatted-secret"].env_sources
    assert re.fullmatch(r"SHP_SECRET_PARAM_[A-Z0-9]{5}", secret.env_name)
    # The template's own `$` stays literal after Kubernetes' expansion; the reference is live.
    assert resolved["formatted-secret"].expanded() == f"--t=$({secret.env_name})$$"
    assert resolved["formatted-secret"].plain() == f"--t=$({secret.env_name})$"
    # The same ConfigMap key reuses the same env var.
    assert resolved["again"].env_sources == (source,)
    assert resolved["again"].expanded() == "x"
    items = resolved["items"]
    assert items.expanded()[0] == "lit"
    assert items.expanded()[1] == f"$({secret.env_name})"
    assert items.env_sources[0].env_name == secret.env_name
    assert len(items.env_sources) == 2


def test_env_var_names_are_deterministic_and_distinct() -> None:
    name = env_var_name("configMap", "cm", "k")
    assert name == env_var_name("configMap", "cm", "k")
    assert name != env_var_name("configMap", "cm", "k2")
    assert env_var_name("secret", "cm", "k").startswith("SHP_SECRET_PARAM_")


def test_missing_values_fail_cleanly() -> None:
    failure = resolve_parameters(params({"name": "required"}), None, {})
    assert failure == reasons.Failure(
        "TaskRunGenerationFailed",
        "metadata configuration: unexpected parameter without any value: required",
    )
    failure = resolve_parameters(
        params({"name": "arr", "type": "array"}), values({"name": "arr", "values": [{}]}), {}
    )
    assert isinstance(failure, reasons.Failure)
    assert failure.message.endswith("without any value: arr[0]")

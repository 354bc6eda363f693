"""v1alpha1 ⇄ v1beta1 conversion: one table test per field mapping, plus round-trip properties.

Round trips are exact in both directions: whatever the target version cannot express travels
in the `conversion.buildwright.io/*-fields` annotation. The only normalisation of the
round trip itself: an empty `metadata.annotations: {}` is not kept (the apiserver never stores
one either). Everything else the target cannot show is visible only on the
*intermediate* object (e.g. the v1beta1 view of a Build with HTTP sources does not show them);
they are asserted in the table tests below.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buildwright.api.conversion import (
    ALPHA_FIELDS_ANNOTATION,
    BETA_FIELDS_ANNOTATION,
    V1ALPHA1,
    V1BETA1,
    ConversionError,
    build_to_v1alpha1,
    build_to_v1beta1,
    buildrun_to_v1alpha1,
    buildrun_to_v1beta1,
    convert,
    strategy_to_v1alpha1,
    strategy_to_v1beta1,
)

JSON = dict[str, Any]


def alpha_build(spec: JSON, **metadata: Any) -> JSON:
    return {
        "apiVersion": V1ALPHA1,
        "kind": "Build",
        "metadata": {"name": "b", **metadata},
        "spec": spec,
    }


def beta_build(spec: JSON, **metadata: Any) -> JSON:
    return {**alpha_build(spec, **metadata), "apiVersion": V1BETA1}


BASE_ALPHA = {
    "source": {"url": "https://git.example/repo"},
    "strategy": {"name": "kaniko"},
    "output": {"image": "registry.example/app"},
}
BASE_BETA = {
    "source": {"type": "Git", "git": {"url": "https://git.example/repo"}},
    "strategy": {"name": "kaniko"},
    "output": {"image": "registry.example/app"},
}


def stash(obj: JSON, annotation: str) -> JSON:
    loaded: JSON = json.loads(obj["metadata"]["annotations"][annotation])
    return loaded


def annotations_of(obj: JSON) -> JSON:
    value: JSON = obj["metadata"].get("annotations", {})
    return value


def both_ways(alpha: JSON, beta: JSON) -> None:
    """alpha converts to beta and beta to alpha, both without any stash annotation."""
    assert convert(alpha, V1BETA1) == beta
    assert convert(beta, V1ALPHA1) == alpha


# --------------------------------------------------------------------------- the book's Build

BOOK_BUILD: JSON = {
    "apiVersion": "shipwright.io/v1alpha1",
    "kind": "Build",
    "metadata": {"name": "kaniko-nodejs-build"},
    "spec": {
        "source": {
            "url": "https://github.com/shipwright-io/sample-nodejs",
            "contextDir": "docker-build",
        },
        "strategy": {"name": "kaniko", "kind": "ClusterBuildStrategy"},
        "output": {
            "image": "quay.io/gitops-cookbook/sample-nodejs:latest",
            "credentials": {"name": "push-secret"},
        },
    },
}


def test_book_build_converts_to_v1beta1_and_back_exactly() -> None:
    beta = build_to_v1beta1(BOOK_BUILD)
    assert beta == {
        "apiVersion": "shipwright.io/v1beta1",
        "kind": "Build",
        "metadata": {"name": "kaniko-nodejs-build"},
        "spec": {
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
        },
    }
    assert build_to_v1alpha1(beta) == BOOK_BUILD


# --------------------------------------------------------------------------- Build rows


@pytest.mark.parametrize(
    ("alpha_source", "beta_source"),
    [
        pytest.param(
            {"url": "https://g/r", "revision": "main", "credentials": {"name": "git-creds"}},
            {
                "type": "Git",
                "git": {"url": "https://g/r", "revision": "main", "cloneSecret": "git-creds"},
            },
            id="url-revision-credentials",
        ),
        pytest.param(
            {
                "bundleContainer": {"image": "ghcr.io/x/src", "prune": "AfterPull"},
                "credentials": {"name": "pull"},
                "contextDir": "app",
            },
            {
                "type": "OCI",
                "ociArtifact": {
                    "image": "ghcr.io/x/src",
                    "prune": "AfterPull",
                    "pullSecret": "pull",
                },
                "contextDir": "app",
            },
            id="bundle-credentials-contextDir",
        ),
        pytest.param(
            {"url": "https://g/r", "contextDir": "docker-build"},
            {"type": "Git", "git": {"url": "https://g/r"}, "contextDir": "docker-build"},
            id="contextDir",
        ),
    ],
)
def test_build_source_rows(alpha_source: JSON, beta_source: JSON) -> None:
    alpha = alpha_build({**BASE_ALPHA, "source": alpha_source})
    beta = beta_build({**BASE_BETA, "source": beta_source})
    both_ways(alpha, beta)


def test_bundle_wins_over_url_and_url_is_kept_for_the_way_back() -> None:
    alpha = alpha_build(
        {**BASE_ALPHA, "source": {"url": "https://g/r", "bundleContainer": {"image": "i"}}}
    )
    beta = convert(alpha, V1BETA1)
    assert beta["spec"]["source"] == {"type": "OCI", "ociArtifact": {"image": "i"}}
    assert ALPHA_FIELDS_ANNOTATION in annotations_of(beta)
    assert convert(beta, V1ALPHA1) == alpha


def test_local_copy_wins_and_http_sources_are_dropped_from_v1beta1() -> None:
    alpha = alpha_build(
        {
            **BASE_ALPHA,
            "source": {"url": "https://g/r", "contextDir": "sub"},
            "sources": [
                {"name": "asset", "type": "HTTP", "url": "https://x/a.tgz"},
                {"name": "upload", "type": "LocalCopy", "timeout": "2m"},
            ],
        }
    )
    beta = convert(alpha, V1BETA1)
    assert beta["spec"]["source"] == {
        "type": "Local",
        "local": {"name": "upload", "timeout": "2m"},
        "contextDir": "sub",
    }
    assert "sources" not in beta["spec"]
    assert convert(beta, V1ALPHA1) == alpha


def test_single_local_copy_needs_no_annotation() -> None:
    alpha = alpha_build(
        {**BASE_ALPHA, "source": {}, "sources": [{"name": "upload", "type": "LocalCopy"}]}
    )
    beta = beta_build({**BASE_BETA, "source": {"type": "Local", "local": {"name": "upload"}}})
    both_ways(alpha, beta)


def test_no_url_no_bundle_no_local_copy_means_no_v1beta1_source() -> None:
    alpha = alpha_build({**BASE_ALPHA, "source": {}})
    beta = beta_build(
        {k: v for k, v in BASE_BETA.items() if k != "source"},
    )
    both_ways(alpha, beta)


def test_source_fields_without_a_source_type_are_kept_in_the_annotation() -> None:
    alpha = alpha_build({**BASE_ALPHA, "source": {"contextDir": "x", "revision": "v1"}})
    beta = convert(alpha, V1BETA1)
    assert "source" not in beta["spec"]
    assert stash(beta, ALPHA_FIELDS_ANNOTATION)["spec"]["source"] == {
        "source": {"contextDir": "x", "revision": "v1"}
    }
    assert convert(beta, V1ALPHA1) == alpha


def test_strategy_api_version_is_dropped() -> None:
    alpha = alpha_build(
        {**BASE_ALPHA, "strategy": {"name": "s", "kind": "BuildStrategy", "apiVersion": "v1"}}
    )
    beta = convert(alpha, V1BETA1)
    assert beta["spec"]["strategy"] == {"name": "s", "kind": "BuildStrategy"}
    assert convert(beta, V1ALPHA1) == alpha


def test_dockerfile_and_builder_image_become_param_values_and_back() -> None:
    alpha = alpha_build(
        {
            **BASE_ALPHA,
            "paramValues": [{"name": "x", "value": "1"}],
            "dockerfile": "build/Dockerfile",
            "builder": {"image": "heroku/builder:22"},
        }
    )
    beta = beta_build(
        {
            **BASE_BETA,
            "paramValues": [
                {"name": "x", "value": "1"},
                {"name": "dockerfile", "value": "build/Dockerfile"},
                {"name": "builder-image", "value": "heroku/builder:22"},
            ],
        }
    )
    both_ways(alpha, beta)


def test_dockerfile_param_value_with_a_config_map_stays_a_param_value() -> None:
    value = {"name": "dockerfile", "configMapValue": {"name": "cm", "key": "k"}}
    beta = beta_build({**BASE_BETA, "paramValues": [value]})
    alpha = alpha_build({**BASE_ALPHA, "paramValues": [value]})
    both_ways(alpha, beta)


def test_output_credentials_become_push_secret_other_fields_keep_their_names() -> None:
    common = {
        "image": "r/app",
        "insecure": True,
        "annotations": {"a": "1"},
        "labels": {"l": "2"},
        "timestamp": "SourceTimestamp",
    }
    alpha = alpha_build({**BASE_ALPHA, "output": {**common, "credentials": {"name": "push"}}})
    beta = beta_build({**BASE_BETA, "output": {**common, "pushSecret": "push"}})
    both_ways(alpha, beta)


def test_trigger_secret_ref_becomes_trigger_secret() -> None:
    when = [{"name": "push", "type": "GitHub", "github": {"events": ["Push"]}}]
    alpha = alpha_build({**BASE_ALPHA, "trigger": {"when": when, "secretRef": {"name": "hook"}}})
    beta = beta_build({**BASE_BETA, "trigger": {"when": when, "triggerSecret": "hook"}})
    both_ways(alpha, beta)


def test_volume_description_is_dropped_from_v1beta1_and_restored() -> None:
    alpha = alpha_build(
        {**BASE_ALPHA, "volumes": [{"name": "cache", "description": "d", "emptyDir": {}}]}
    )
    beta = convert(alpha, V1BETA1)
    assert beta["spec"]["volumes"] == [{"name": "cache", "emptyDir": {}}]
    assert convert(beta, V1ALPHA1) == alpha


@pytest.mark.parametrize(("value", "flag"), [("true", True), ("false", False), ("yes", False)])
def test_build_run_deletion_annotation_becomes_retention(value: str, flag: bool) -> None:
    alpha = alpha_build(
        {**BASE_ALPHA, "retention": {"failedLimit": 3}},
        annotations={"build.shipwright.io/build-run-deletion": value, "team": "a"},
    )
    beta = convert(alpha, V1BETA1)
    assert beta["spec"]["retention"] == {"failedLimit": 3, "atBuildDeletion": flag}
    assert "build.shipwright.io/build-run-deletion" not in annotations_of(beta)
    assert annotations_of(beta).get("team") == "a"
    assert convert(beta, V1ALPHA1) == alpha


@pytest.mark.parametrize("flag", [True, False])
def test_at_build_deletion_becomes_the_annotation(flag: bool) -> None:
    beta = beta_build({**BASE_BETA, "retention": {"atBuildDeletion": flag}})
    alpha = alpha_build(
        BASE_ALPHA,
        annotations={"build.shipwright.io/build-run-deletion": "true" if flag else "false"},
    )
    both_ways(alpha, beta)


def test_v1beta1_only_fields_are_kept_on_the_v1alpha1_view() -> None:
    extras = {
        "nodeSelector": {"kubernetes.io/arch": "amd64"},
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        "schedulerName": "custom",
        "runtimeClassName": "gvisor",
    }
    beta = beta_build(
        {
            **BASE_BETA,
            **extras,
            "strategy": {"name": "kaniko", "stepResources": [{"name": "s", "resources": {}}]},
            "source": {"type": "Git", "git": {"url": "https://git.example/repo", "depth": 0}},
            "output": {
                "image": "r/app",
                "vulnerabilityScan": {"enabled": True, "failOnFinding": True},
                "platforms": [{"os": "linux", "arch": "arm64"}],
            },
        }
    )
    alpha = convert(beta, V1ALPHA1)
    for key in extras:
        assert key not in alpha["spec"]
    assert alpha["spec"]["strategy"] == {"name": "kaniko"}
    assert alpha["spec"]["output"] == {"image": "r/app"}
    assert set(stash(alpha, BETA_FIELDS_ANNOTATION)["spec"]) == {
        "scheduling",
        "strategy",
        "source",
        "output",
    }
    assert convert(alpha, V1BETA1) == beta


def test_stale_stash_never_undoes_an_edit_made_in_the_other_version() -> None:
    beta = beta_build(
        {
            **BASE_BETA,
            "nodeSelector": {"a": "b"},
            "strategy": {"name": "s", "stepResources": [{"name": "build", "resources": {}}]},
        }
    )
    alpha = convert(beta, V1ALPHA1)
    alpha["spec"]["strategy"]["name"] = "other"
    back = convert(alpha, V1BETA1)
    assert back["spec"]["strategy"] == {"name": "other"}
    assert back["spec"]["nodeSelector"] == {"a": "b"}
    assert ALPHA_FIELDS_ANNOTATION not in annotations_of(back)


# --------------------------------------------------------------------------- BuildRun rows


def alpha_run(spec: JSON, status: JSON | None = None) -> JSON:
    obj: JSON = {
        "apiVersion": V1ALPHA1,
        "kind": "BuildRun",
        "metadata": {"name": "run-1"},
        "spec": spec,
    }
    if status is not None:
        obj["status"] = status
    return obj


def beta_run(spec: JSON, status: JSON | None = None) -> JSON:
    return {**alpha_run(spec, status), "apiVersion": V1BETA1}


def test_build_ref_becomes_build_name() -> None:
    both_ways(alpha_run({"buildRef": {"name": "b"}}), beta_run({"build": {"name": "b"}}))


def test_build_spec_becomes_build_spec_and_is_converted() -> None:
    alpha = alpha_run({"buildSpec": BOOK_BUILD["spec"]})
    beta = convert(alpha, V1BETA1)
    assert beta["spec"] == {"build": {"spec": build_to_v1beta1(BOOK_BUILD)["spec"]}}
    assert convert(beta, V1ALPHA1) == alpha


def test_service_account_name_and_generate() -> None:
    both_ways(
        alpha_run({"buildRef": {"name": "b"}, "serviceAccount": {"name": "builder"}}),
        beta_run({"build": {"name": "b"}, "serviceAccount": "builder"}),
    )
    both_ways(
        alpha_run(
            {"buildRef": {"name": "b"}, "serviceAccount": {"name": "run-1", "generate": True}}
        ),
        beta_run({"build": {"name": "b"}, "serviceAccount": ".generate"}),
    )


def test_buildrun_output_insecure_and_timestamp_are_not_carried_to_v1alpha1() -> None:
    beta = beta_run(
        {
            "build": {"name": "b"},
            "output": {
                "image": "r/x",
                "pushSecret": "p",
                "insecure": True,
                "timestamp": "Zero",
                "labels": {"a": "b"},
            },
        }
    )
    alpha = convert(beta, V1ALPHA1)
    assert alpha["spec"]["output"] == {
        "image": "r/x",
        "credentials": {"name": "p"},
        "labels": {"a": "b"},
    }
    assert "output" in stash(alpha, BETA_FIELDS_ANNOTATION)["spec"]
    assert convert(alpha, V1BETA1) == beta


def test_buildrun_local_copy_becomes_local_source() -> None:
    both_ways(
        alpha_run(
            {
                "buildRef": {"name": "b"},
                "sources": [{"name": "l", "type": "LocalCopy", "timeout": "1m"}],
            }
        ),
        beta_run(
            {
                "build": {"name": "b"},
                "source": {"type": "Local", "local": {"name": "l", "timeout": "1m"}},
            }
        ),
    )


def test_buildrun_status_shapes() -> None:
    location = {"pod": "run-1-pod", "container": "step-build"}
    alpha = alpha_run(
        {"buildRef": {"name": "b"}},
        {
            "conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed"}],
            "latestTaskRunRef": "run-1-pod",
            "sources": [
                {
                    "name": "default",
                    "git": {"commitSha": "abc", "branchName": "main"},
                    "timestamp": "2024-01-01T00:00:00Z",
                }
            ],
            "output": {"digest": "sha256:1", "size": 10},
            "failureDetails": {"reason": "R", "message": "M", "location": location},
            "failedAt": location,
            "buildSpec": BOOK_BUILD["spec"],
        },
    )
    beta = beta_run(
        {"build": {"name": "b"}},
        {
            "conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed"}],
            "taskRunName": "run-1-pod",
            "executor": {"name": "run-1-pod", "kind": "TaskRun"},
            "source": {
                "git": {"commitSha": "abc", "branchName": "main"},
                "timestamp": "2024-01-01T00:00:00Z",
            },
            "output": {"digest": "sha256:1", "size": 10},
            "failureDetails": {"reason": "R", "message": "M", "location": location},
            "buildSpec": build_to_v1beta1(BOOK_BUILD)["spec"],
        },
    )
    both_ways(alpha, beta)


def test_bundle_status_and_pod_executor() -> None:
    beta = beta_run(
        {"build": {"name": "b"}},
        {
            "executor": {"name": "run-1-pod", "kind": "Pod"},
            "source": {"ociArtifact": {"digest": "sha256:2"}},
            "output": {"digest": "d", "vulnerabilities": [{"id": "CVE-1", "severity": "high"}]},
        },
    )
    alpha = convert(beta, V1ALPHA1)
    assert alpha["status"]["latestTaskRunRef"] == "run-1-pod"
    assert alpha["status"]["sources"] == [{"name": "default", "bundle": {"digest": "sha256:2"}}]
    assert alpha["status"]["output"] == {"digest": "d"}
    assert convert(alpha, V1BETA1) == beta


def test_failed_at_is_ignored_on_the_way_to_v1beta1() -> None:
    alpha = alpha_run(
        {"buildRef": {"name": "b"}},
        {
            "failureDetails": {"location": {"pod": "p", "container": "c"}},
            "failedAt": {"pod": "other", "container": "x"},
        },
    )
    beta = convert(alpha, V1BETA1)
    assert beta["status"] == {"failureDetails": {"location": {"pod": "p", "container": "c"}}}
    assert convert(beta, V1ALPHA1) == alpha


def test_status_build_spec_snapshot_changes_shape() -> None:
    beta = beta_run({"build": {"name": "b"}}, {"buildSpec": BASE_BETA})
    alpha = convert(beta, V1ALPHA1)
    assert alpha["status"]["buildSpec"] == BASE_ALPHA
    assert convert(alpha, V1BETA1) == beta


# --------------------------------------------------------------------------- strategies


def alpha_strategy(spec: JSON, kind: str = "ClusterBuildStrategy") -> JSON:
    return {"apiVersion": V1ALPHA1, "kind": kind, "metadata": {"name": "kaniko"}, "spec": spec}


def beta_strategy(spec: JSON, kind: str = "ClusterBuildStrategy") -> JSON:
    return {**alpha_strategy(spec, kind), "apiVersion": V1BETA1}


DOCKERFILE_PARAM = {
    "name": "dockerfile",
    "description": "The Dockerfile to be built.",
    "type": "string",
    "default": "Dockerfile",
}
BUILDER_PARAM = {"name": "builder-image", "description": "The builder image.", "type": "string"}


@pytest.mark.parametrize("kind", ["BuildStrategy", "ClusterBuildStrategy"])
def test_legacy_placeholders_become_parameters(kind: str) -> None:
    alpha = alpha_strategy(
        {
            "buildSteps": [
                {
                    "name": "build",
                    "image": "$(build.builder.image)",
                    "command": ["/kaniko/executor"],
                    "args": ["--dockerfile=$(build.dockerfile)", "--ctx=$(params.DOCKERFILE)"],
                    "env": [{"name": "B", "value": "$(build.builder.image)"}],
                }
            ],
            "parameters": [{"name": "p", "description": "d"}],
        },
        kind,
    )
    beta = convert(alpha, V1BETA1)
    assert beta["kind"] == kind
    assert beta["spec"]["steps"] == [
        {
            "name": "build",
            "image": "$(build.builder.image)",
            "command": ["/kaniko/executor"],
            "args": ["--dockerfile=$(params.dockerfile)", "--ctx=$(params.dockerfile)"],
            "env": [{"name": "B", "value": "$(params.builder-image)"}],
        }
    ]
    assert beta["spec"]["parameters"] == [
        {"name": "p", "description": "d"},
        DOCKERFILE_PARAM,
        BUILDER_PARAM,
    ]
    # $(build.dockerfile) has no reverse form of its own, so the alpha form is kept.
    assert ALPHA_FIELDS_ANNOTATION in annotations_of(beta)
    assert convert(beta, V1ALPHA1) == alpha


def test_reverse_rule_for_migrated_parameters_without_annotation() -> None:
    beta = beta_strategy(
        {
            "steps": [
                {
                    "name": "b",
                    "image": "i",
                    "args": ["$(params.dockerfile)"],
                    "env": [{"name": "X", "value": "$(params.builder-image)"}],
                }
            ],
            "parameters": [DOCKERFILE_PARAM, BUILDER_PARAM],
        }
    )
    alpha = alpha_strategy(
        {
            "buildSteps": [
                {
                    "name": "b",
                    "image": "i",
                    "args": ["$(params.DOCKERFILE)"],
                    "env": [{"name": "X", "value": "$(build.builder.image)"}],
                }
            ],
        }
    )
    both_ways(alpha, beta)


def test_dockerfile_parameter_with_another_default_is_an_ordinary_parameter() -> None:
    param = {**DOCKERFILE_PARAM, "default": "Containerfile"}
    spec_beta = {"steps": [{"name": "b", "args": ["$(params.dockerfile)"]}], "parameters": [param]}
    spec_alpha = {"buildSteps": spec_beta["steps"], "parameters": [param]}
    both_ways(alpha_strategy(spec_alpha), beta_strategy(spec_beta))


def test_extra_container_fields_of_build_steps_are_kept_in_the_annotation() -> None:
    alpha = alpha_strategy(
        {
            "buildSteps": [
                {
                    "name": "b",
                    "image": "i",
                    "ports": [{"containerPort": 80}],
                    "livenessProbe": {"exec": {"command": ["true"]}},
                }
            ],
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
            "volumes": [{"name": "v", "overridable": True, "description": "d", "emptyDir": {}}],
        }
    )
    beta = convert(alpha, V1BETA1)
    assert beta["spec"]["steps"] == [{"name": "b", "image": "i"}]
    assert beta["spec"]["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000}
    assert beta["spec"]["volumes"] == alpha["spec"]["volumes"]
    assert convert(beta, V1ALPHA1) == alpha


# --------------------------------------------------------------------------- contract


def test_same_version_is_an_unchanged_copy() -> None:
    copy_ = convert(BOOK_BUILD, V1ALPHA1)
    assert copy_ == BOOK_BUILD
    assert copy_ is not BOOK_BUILD
    copy_["spec"]["source"]["url"] = "changed"
    assert BOOK_BUILD["spec"]["source"]["url"] != "changed"


def test_input_is_never_mutated() -> None:
    alpha = alpha_build(
        {**BASE_ALPHA, "dockerfile": "D", "volumes": [{"name": "v", "description": "d"}]},
        annotations={"build.shipwright.io/build-run-deletion": "true"},
    )
    before = copy.deepcopy(alpha)
    beta = convert(alpha, V1BETA1)
    assert alpha == before
    before_beta = copy.deepcopy(beta)
    convert(beta, V1ALPHA1)
    assert beta == before_beta


def test_unknown_kind_fails() -> None:
    with pytest.raises(ConversionError, match="unsupported Kind"):
        convert({"apiVersion": V1ALPHA1, "kind": "Pipeline", "spec": {}}, V1BETA1)


@pytest.mark.parametrize(
    ("obj_version", "desired", "message"),
    [
        (V1ALPHA1, "shipwright.io/v2", "unsupported desiredAPIVersion 'shipwright.io/v2'"),
        ("tekton.dev/v1", V1BETA1, "unsupported apiVersion 'tekton.dev/v1' of Build"),
    ],
)
def test_unknown_versions_fail(obj_version: str, desired: str, message: str) -> None:
    with pytest.raises(ConversionError, match=message):
        convert({**BOOK_BUILD, "apiVersion": obj_version}, desired)


def test_per_kind_functions_check_kind_and_version() -> None:
    with pytest.raises(ConversionError, match="expected kind Build"):
        build_to_v1beta1(alpha_run({}))
    with pytest.raises(ConversionError, match=r"expected 'shipwright\.io/v1alpha1'"):
        buildrun_to_v1beta1(beta_run({}))
    assert buildrun_to_v1alpha1(beta_run({"build": {"name": "x"}}))["spec"] == {
        "buildRef": {"name": "x"}
    }
    assert strategy_to_v1beta1(alpha_strategy({}, "BuildStrategy"))["apiVersion"] == V1BETA1
    assert strategy_to_v1alpha1(beta_strategy({}))["apiVersion"] == V1ALPHA1


def test_malformed_sections_fail_cleanly() -> None:
    with pytest.raises(ConversionError, match="spec must be an object"):
        convert({**BOOK_BUILD, "spec": "nope"}, V1BETA1)
    with pytest.raises(ConversionError, match="metadata must be an object"):
        convert({**BOOK_BUILD, "metadata": []}, V1BETA1)


def test_no_empty_annotations_are_left_behind() -> None:
    alpha = alpha_build(BASE_ALPHA, annotations={"build.shipwright.io/build-run-deletion": "true"})
    beta = convert(alpha, V1BETA1)
    assert "annotations" not in beta["metadata"]


# --------------------------------------------------------------------------- properties

names = st.text("abcdefghij-", min_size=1, max_size=6)
text = st.text("abcXYZ/:.$()-_ 01", max_size=12)
string_map = st.dictionaries(names, text, max_size=2)
secret_ref = st.fixed_dictionaries({"name": names})
env = st.lists(st.fixed_dictionaries({"name": names}, optional={"value": text}), max_size=2)
single_value = st.one_of(
    st.fixed_dictionaries({"value": text}),
    st.fixed_dictionaries({"configMapValue": st.fixed_dictionaries({"name": names, "key": names})}),
    st.fixed_dictionaries({"secretValue": st.fixed_dictionaries({"name": names, "key": names})}),
)
param_value = st.builds(
    lambda name, v: {"name": name, **v},
    st.one_of(names, st.sampled_from(["dockerfile", "builder-image"])),
    st.one_of(single_value, st.fixed_dictionaries({"values": st.lists(single_value, max_size=2)})),
)
when = st.fixed_dictionaries(
    {"name": names, "type": st.sampled_from(["GitHub", "Image", "Pipeline"])},
    optional={"github": st.fixed_dictionaries({"events": st.lists(st.just("Push"), max_size=1)})},
)
volume = st.fixed_dictionaries({"name": names, "emptyDir": st.just({})})
deletion = st.sampled_from(["true", "false", "maybe"])

alpha_source = st.fixed_dictionaries(
    {},
    optional={
        "url": text,
        "revision": text,
        "contextDir": text,
        "credentials": secret_ref,
        "bundleContainer": st.fixed_dictionaries(
            {"image": text}, optional={"prune": st.sampled_from(["Never", "AfterPull"])}
        ),
    },
)
alpha_sources = st.lists(
    st.fixed_dictionaries(
        {"name": names, "type": st.sampled_from(["LocalCopy", "HTTP"])},
        optional={"url": text, "timeout": st.sampled_from(["1m", "90s"])},
    ),
    max_size=3,
)
alpha_output = st.fixed_dictionaries(
    {"image": text},
    optional={
        "insecure": st.booleans(),
        "credentials": secret_ref,
        "annotations": string_map,
        "labels": string_map,
        "timestamp": st.sampled_from(["Zero", "SourceTimestamp", "1700000000"]),
    },
)


def alpha_build_spec() -> st.SearchStrategy[JSON]:
    return st.fixed_dictionaries(
        {
            "source": alpha_source,
            "strategy": st.fixed_dictionaries(
                {"name": names},
                optional={
                    "kind": st.sampled_from(["BuildStrategy", "ClusterBuildStrategy"]),
                    "apiVersion": st.just("shipwright.io/v1alpha1"),
                },
            ),
            "output": alpha_output,
        },
        optional={
            "sources": alpha_sources,
            "trigger": st.fixed_dictionaries(
                {}, optional={"when": st.lists(when, max_size=2), "secretRef": secret_ref}
            ),
            "builder": st.fixed_dictionaries({"image": text}, optional={"credentials": secret_ref}),
            "dockerfile": text,
            "paramValues": st.lists(param_value, max_size=3),
            "timeout": st.sampled_from(["5m", "1h"]),
            "env": env,
            "retention": st.fixed_dictionaries(
                {},
                optional={
                    "failedLimit": st.integers(1, 20000),
                    "succeededLimit": st.integers(1, 5),
                    "ttlAfterFailed": st.just("1h"),
                },
            ),
            "volumes": st.lists(
                st.fixed_dictionaries(
                    {"name": names, "emptyDir": st.just({})}, optional={"description": text}
                ),
                max_size=2,
            ),
        },
    )


beta_git = st.fixed_dictionaries(
    {"url": text}, optional={"revision": text, "cloneSecret": names, "depth": st.integers(0, 5)}
)
beta_source = st.one_of(
    st.fixed_dictionaries({"type": st.just("Git"), "git": beta_git}, optional={"contextDir": text}),
    st.fixed_dictionaries(
        {
            "type": st.just("OCI"),
            "ociArtifact": st.fixed_dictionaries(
                {"image": text},
                optional={"prune": st.sampled_from(["Never", "AfterPull"]), "pullSecret": names},
            ),
        },
        optional={"contextDir": text},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("Local"),
            "local": st.fixed_dictionaries({}, optional={"name": names, "timeout": st.just("1m")}),
        },
        optional={"contextDir": text},
    ),
)
beta_output = st.fixed_dictionaries(
    {"image": text},
    optional={
        "insecure": st.booleans(),
        "pushSecret": names,
        "annotations": string_map,
        "labels": string_map,
        "timestamp": st.sampled_from(["Zero", "BuildTimestamp"]),
        "vulnerabilityScan": st.fixed_dictionaries(
            {"enabled": st.booleans()}, optional={"failOnFinding": st.booleans()}
        ),
        "platforms": st.lists(
            st.fixed_dictionaries({"os": st.just("linux"), "arch": names}), max_size=2
        ),
    },
)
step_resources = st.lists(
    st.fixed_dictionaries({"name": names, "resources": st.just({"limits": {"cpu": "1"}})}),
    max_size=2,
)
scheduling = {
    "nodeSelector": string_map,
    "tolerations": st.lists(
        st.fixed_dictionaries({"key": names, "operator": st.just("Exists")}), max_size=2
    ),
    "schedulerName": names,
    "runtimeClassName": names,
}


def beta_build_spec() -> st.SearchStrategy[JSON]:
    return st.fixed_dictionaries(
        {
            "strategy": st.fixed_dictionaries(
                {"name": names},
                optional={
                    "kind": st.sampled_from(["BuildStrategy", "ClusterBuildStrategy"]),
                    "stepResources": step_resources,
                },
            ),
            "output": beta_output,
        },
        optional={
            "source": beta_source,
            "trigger": st.fixed_dictionaries(
                {}, optional={"when": st.lists(when, max_size=2), "triggerSecret": names}
            ),
            "paramValues": st.lists(param_value, max_size=3),
            "timeout": st.just("10m"),
            "env": env,
            "retention": st.fixed_dictionaries(
                {},
                optional={
                    "succeededLimit": st.integers(1, 10000),
                    "ttlAfterSucceeded": st.just("1h"),
                    "atBuildDeletion": st.booleans(),
                },
            ),
            "volumes": st.lists(volume, max_size=2),
            **scheduling,
        },
    )


def with_annotations() -> st.SearchStrategy[JSON]:
    return st.fixed_dictionaries(
        {"name": names},
        optional={
            "annotations": st.fixed_dictionaries(
                {}, optional={"build.shipwright.io/build-run-deletion": deletion, "x": text}
            ).filter(bool)  # an empty map is never stored: the apiserver omits it
        },
    )


def obj(version: str, kind: str, spec: st.SearchStrategy[JSON], **optional: Any) -> Any:
    return st.fixed_dictionaries(
        {
            "apiVersion": st.just(version),
            "kind": st.just(kind),
            "metadata": with_annotations(),
            "spec": spec,
        },
        optional=optional,
    )


location = st.fixed_dictionaries({}, optional={"pod": names, "container": names})
conditions = st.lists(
    st.fixed_dictionaries(
        {"type": st.just("Succeeded"), "status": st.sampled_from(["True", "False", "Unknown"])}
    ),
    max_size=1,
)
git_result = st.fixed_dictionaries({}, optional={"commitSha": names, "branchName": names})

alpha_buildrun_status = st.fixed_dictionaries(
    {},
    optional={
        "conditions": conditions,
        "startTime": st.just("2024-01-01T00:00:00Z"),
        "latestTaskRunRef": names,
        "sources": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["default", "other"])},
                optional={
                    "git": git_result,
                    "bundle": st.fixed_dictionaries({"digest": names}),
                    "timestamp": text,
                },
            ),
            max_size=2,
        ),
        "output": st.fixed_dictionaries({}, optional={"digest": names, "size": st.integers(0)}),
        "failureDetails": st.fixed_dictionaries(
            {}, optional={"reason": names, "message": text, "location": location}
        ),
        "failedAt": location,
        "buildSpec": alpha_build_spec(),
    },
)
beta_buildrun_status = st.fixed_dictionaries(
    {},
    optional={
        "conditions": conditions,
        "completionTime": st.just("2024-01-01T00:00:00Z"),
        "taskRunName": names,
        "executor": st.fixed_dictionaries(
            {"name": names, "kind": st.sampled_from(["TaskRun", "Pod"])}
        ),
        "source": st.fixed_dictionaries(
            {},
            optional={
                "git": git_result,
                "ociArtifact": st.fixed_dictionaries({"digest": names}),
                "timestamp": text,
            },
        ),
        "output": st.fixed_dictionaries(
            {},
            optional={
                "digest": names,
                "size": st.integers(0),
                "vulnerabilities": st.lists(
                    st.fixed_dictionaries({"id": names, "severity": st.just("low")}), max_size=2
                ),
            },
        ),
        "failureDetails": st.fixed_dictionaries(
            {}, optional={"reason": names, "location": location}
        ),
        "buildSpec": beta_build_spec(),
    },
)

alpha_buildrun_spec = st.fixed_dictionaries(
    {},
    optional={
        "buildRef": st.fixed_dictionaries({"name": names}, optional={"apiVersion": names}),
        "buildSpec": alpha_build_spec(),
        "sources": alpha_sources,
        "serviceAccount": st.fixed_dictionaries(
            {}, optional={"name": names, "generate": st.booleans()}
        ),
        "timeout": st.just("5m"),
        "paramValues": st.lists(param_value, max_size=2),
        "output": st.fixed_dictionaries(
            {"image": text},
            optional={"credentials": secret_ref, "annotations": string_map, "labels": string_map},
        ),
        "state": st.just("BuildRunCanceled"),
        "env": env,
        "retention": st.fixed_dictionaries({}, optional={"ttlAfterFailed": st.just("1h")}),
        "volumes": st.lists(
            st.fixed_dictionaries(
                {"name": names, "emptyDir": st.just({})}, optional={"description": text}
            ),
            max_size=2,
        ),
    },
)
beta_buildrun_spec = st.fixed_dictionaries(
    {
        "build": st.one_of(
            st.fixed_dictionaries({"name": names}),
            st.fixed_dictionaries({"spec": beta_build_spec()}),
        )
    },
    optional={
        "source": st.fixed_dictionaries(
            {"type": st.sampled_from(["Local", "Git"])},
            optional={
                "local": st.fixed_dictionaries(
                    {}, optional={"name": names, "timeout": st.just("1m")}
                )
            },
        ),
        "serviceAccount": st.one_of(names, st.just(".generate")),
        "paramValues": st.lists(param_value, max_size=2),
        "output": beta_output,
        "state": st.just("BuildRunCanceled"),
        "retention": st.fixed_dictionaries({}, optional={"ttlAfterSucceeded": st.just("1h")}),
        "volumes": st.lists(volume, max_size=2),
        "stepResources": step_resources,
        **scheduling,
    },
)

placeholder_text = st.lists(
    st.sampled_from(
        [
            "x",
            "$(params.DOCKERFILE)",
            "$(build.dockerfile)",
            "$(build.builder.image)",
            "$(params.dockerfile)",
            "$(params.builder-image)",
            "$(params.shp-source-context)",
        ]
    ),
    max_size=3,
).map("-".join)
step_core = {
    "image": placeholder_text,
    "command": st.lists(placeholder_text, max_size=2),
    "args": st.lists(placeholder_text, max_size=3),
    "workingDir": st.just("/workspace/source"),
    "env": st.lists(
        st.fixed_dictionaries({"name": names}, optional={"value": placeholder_text}), max_size=2
    ),
    "resources": st.just({"limits": {"memory": "1Gi"}}),
    "volumeMounts": st.lists(
        st.fixed_dictionaries({"name": names, "mountPath": st.just("/v")}), max_size=1
    ),
    "securityContext": st.just({"privileged": True}),
}
strategy_param = st.one_of(
    st.fixed_dictionaries(
        {"name": names, "description": text},
        optional={"type": st.sampled_from(["string", "array"]), "default": text},
    ),
    st.just(DOCKERFILE_PARAM),
    st.just(BUILDER_PARAM),
)
strategy_common = {
    "parameters": st.lists(strategy_param, max_size=3),
    "securityContext": st.just({"runAsUser": 1000, "runAsGroup": 1000}),
    "volumes": st.lists(
        st.fixed_dictionaries(
            {"name": names, "emptyDir": st.just({})},
            optional={"overridable": st.booleans(), "description": text},
        ),
        max_size=2,
    ),
}
alpha_strategy_spec = st.fixed_dictionaries(
    {},
    optional={
        "buildSteps": st.lists(
            st.fixed_dictionaries(
                {"name": names},
                optional={
                    **step_core,
                    "ports": st.just([{"containerPort": 8080}]),
                    "tty": st.booleans(),
                },
            ),
            max_size=3,
        ),
        **strategy_common,
    },
)
beta_strategy_spec = st.fixed_dictionaries(
    {},
    optional={
        "steps": st.lists(st.fixed_dictionaries({"name": names}, optional=step_core), max_size=3),
        **strategy_common,
    },
)
strategy_kinds = st.sampled_from(["BuildStrategy", "ClusterBuildStrategy"])

alpha_objects = st.one_of(
    obj(V1ALPHA1, "Build", alpha_build_spec()),
    obj(V1ALPHA1, "BuildRun", alpha_buildrun_spec, status=alpha_buildrun_status),
    strategy_kinds.flatmap(lambda k: obj(V1ALPHA1, k, alpha_strategy_spec)),
)
beta_objects = st.one_of(
    obj(V1BETA1, "Build", beta_build_spec()),
    obj(V1BETA1, "BuildRun", beta_buildrun_spec, status=beta_buildrun_status),
    strategy_kinds.flatmap(lambda k: obj(V1BETA1, k, beta_strategy_spec)),
)

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def assert_no_empty_annotations(converted: JSON) -> None:
    assert converted["metadata"].get("annotations", None) != {}


@PROPERTY_SETTINGS
@given(alpha_objects)
def test_alpha_to_beta_to_alpha_is_identity(original: JSON) -> None:
    before = copy.deepcopy(original)
    beta = convert(original, V1BETA1)
    assert original == before
    assert beta["apiVersion"] == V1BETA1
    assert BETA_FIELDS_ANNOTATION not in annotations_of(beta)
    assert_no_empty_annotations(beta)
    assert convert(beta, V1ALPHA1) == original


@PROPERTY_SETTINGS
@given(beta_objects)
def test_beta_to_alpha_to_beta_is_identity(original: JSON) -> None:
    before = copy.deepcopy(original)
    alpha = convert(original, V1ALPHA1)
    assert original == before
    assert alpha["apiVersion"] == V1ALPHA1
    assert ALPHA_FIELDS_ANNOTATION not in annotations_of(alpha)
    assert_no_empty_annotations(alpha)
    assert convert(alpha, V1BETA1) == original


@PROPERTY_SETTINGS
@given(beta_objects)
def test_v1alpha1_view_has_no_v1beta1_only_fields(original: JSON) -> None:
    alpha = convert(original, V1ALPHA1)
    spec = alpha["spec"]
    for key in (
        "nodeSelector",
        "tolerations",
        "schedulerName",
        "runtimeClassName",
        "steps",
        "stepResources",
        "build",
        "source",
    ):
        if key == "source" and original["kind"] == "Build":
            continue
        assert key not in spec
    if original["kind"] == "Build":
        assert "stepResources" not in spec["strategy"]
        assert "pushSecret" not in spec["output"]
        assert "type" not in spec["source"]

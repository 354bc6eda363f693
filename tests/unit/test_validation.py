"""Build registration and BuildRun preflight (docs/buildrun-lifecycle.md, docs/reasons.md)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from buildwright.api.v1beta1 import Build, BuildRun, BuildRunSpec, BuildSpec, ClusterBuildStrategy
from buildwright.api.v1beta1 import BuildStrategy as NamespacedStrategy
from buildwright.core import labels
from buildwright.core.formats import go_quote
from buildwright.core.reasons import Failure, Reason
from buildwright.core.validation import (
    PROBE_AUTH_REQUIRED,
    REGISTERED,
    BuildFacts,
    BuildRegistration,
    ForbiddenEnvNames,
    merged_parameter_failure,
    parse_strategy,
    referenced_secrets,
    repository_to_probe,
    source_mismatch,
    validate_build,
    validate_buildrun_overrides,
    validate_buildrun_platforms,
    validate_buildrun_request,
    validate_embedded_build,
)

# --- fixtures --------------------------------------------------------------------------------

STRATEGY_BODY: dict[str, Any] = {
    "apiVersion": "shipwright.io/v1beta1",
    "kind": "BuildStrategy",
    "metadata": {"name": "kaniko", "namespace": "ns"},
    "spec": {
        "steps": [{"name": "build-and-push", "image": "kaniko"}],
        "parameters": [{"name": "dockerfile", "description": "d", "default": "Dockerfile"}],
        "volumes": [
            {"name": "cache", "overridable": True, "emptyDir": {}},
            {"name": "fixed", "emptyDir": {}},
        ],
    },
}
STRATEGY = parse_strategy(STRATEGY_BODY)

BUILD_BODY: dict[str, Any] = {
    "apiVersion": "shipwright.io/v1beta1",
    "kind": "Build",
    "metadata": {"name": "my-build", "namespace": "ns"},
    "spec": {
        "source": {"type": "Git", "git": {"url": "https://example.com/org/repo"}},
        "strategy": {"name": "kaniko", "kind": "BuildStrategy"},
        "output": {"image": "registry.example.com/org/image"},
    },
}

GOOD_FACTS = BuildFacts(strategy=STRATEGY)


def build(spec: dict[str, Any] | None = None, **metadata: Any) -> Build:
    body = copy.deepcopy(BUILD_BODY)
    body["spec"].update(spec or {})
    body["metadata"].update(metadata)
    return Build.model_validate(body)


def spec(**fields: Any) -> BuildSpec:
    return build(fields).spec


def register(b: Build, facts: BuildFacts = GOOD_FACTS) -> tuple[str, str]:
    outcome = validate_build(b, facts)
    assert outcome.registered == (outcome.reason == Reason.SUCCEEDED)
    return outcome.reason, outcome.message


def buildrun(spec_fields: dict[str, Any], name: str = "my-build-run") -> BuildRun:
    return BuildRun.model_validate(
        {"metadata": {"name": name, "namespace": "ns"}, "spec": spec_fields}
    )


EMBEDDED: dict[str, Any] = copy.deepcopy(BUILD_BODY["spec"])

# --- labels.py: Kubernetes' texts ------------------------------------------------------------

LABEL_VALUE_REGEX_ERROR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
NAME_PART_REGEX_ERROR = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
    "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
SUBDOMAIN_REGEX_ERROR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def test_label_value_texts() -> None:
    assert labels.label_value_errors("") == []
    assert labels.label_value_errors("a.b_c-D9") == []
    assert labels.label_value_errors("-bad") == [LABEL_VALUE_REGEX_ERROR]
    assert labels.label_value_errors("a" * 64) == ["must be no more than 63 bytes"]
    assert labels.label_value_errors("a\n") == [LABEL_VALUE_REGEX_ERROR]
    # Go measures bytes: 32 two-byte characters are 64 bytes.
    assert labels.label_value_errors("é" * 32)[0] == "must be no more than 63 bytes"
    assert labels.is_valid_label_value("x") and not labels.is_valid_label_value("x y")


def test_qualified_name_texts() -> None:
    assert labels.qualified_name_errors("example.com/MyName") == []
    assert labels.qualified_name_errors("") == [
        "name part must be non-empty",
        NAME_PART_REGEX_ERROR,
    ]
    assert labels.qualified_name_errors("/x") == ["prefix part must be non-empty"]
    assert labels.qualified_name_errors("Example.com/x") == ["prefix part " + SUBDOMAIN_REGEX_ERROR]
    assert labels.qualified_name_errors("x" * 64) == ["name part must be no more than 63 bytes"]
    assert labels.qualified_name_errors("a/b/c") == [
        "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
        "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    ]
    assert labels.is_qualified_name("a") and not labels.is_qualified_name("a b")


def test_dns1123_subdomain_texts() -> None:
    assert labels.dns1123_subdomain_errors("gvisor.example") == []
    assert labels.dns1123_subdomain_errors("Gvisor") == [SUBDOMAIN_REGEX_ERROR]
    assert labels.dns1123_subdomain_errors("a" * 254) == ["must be no more than 253 characters"]
    assert labels.is_dns1123_subdomain("a.b") and not labels.is_dns1123_subdomain("a_b")


def test_go_quote() -> None:
    assert go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert go_quote("") == '""'


# --- Build registration: success --------------------------------------------------------------


def test_valid_build_registers() -> None:
    outcome = validate_build(build(), GOOD_FACTS)
    assert outcome == REGISTERED
    assert outcome.to_status() == {
        "registered": "True",
        "reason": "Succeeded",
        "message": "all validations succeeded",
    }
    failed = BuildRegistration(False, "X", "y").to_status()
    assert failed["registered"] == "False"


# --- #2 sourceurl -----------------------------------------------------------------------------

VERIFY = {"build.shipwright.io/verify.repository": "true"}


def test_repository_probe_only_requested_when_verifying_http_without_secret() -> None:
    assert repository_to_probe(build()) is None
    assert repository_to_probe(build(annotations=VERIFY)) == "https://example.com/org/repo"
    with_secret = build(
        {"source": {"type": "Git", "git": {"url": "https://x/y", "cloneSecret": "s"}}},
        annotations=VERIFY,
    )
    assert repository_to_probe(with_secret) is None
    ssh = build({"source": {"type": "Git", "git": {"url": "git@x:o/r"}}}, annotations=VERIFY)
    assert repository_to_probe(ssh) is None


@pytest.mark.parametrize(
    ("url", "probe", "message"),
    [
        ("https://example.com/o/r", PROBE_AUTH_REQUIRED, "remote repository unreachable"),
        (
            "https://nowhere.invalid/o/r",
            "dial tcp: lookup nowhere.invalid: no such host",
            "dial tcp: lookup nowhere.invalid: no such host",
        ),
        ("file:///srv/repo", None, "invalid source url"),
        ("/srv/repo", None, "invalid source url"),
        ("ssh://git@example.com/o/r", None, "the source url requires authentication"),
        ("git@github.com:org/repo.git", None, "the source url requires authentication"),
    ],
)
def test_verify_repository_failures(url: str, probe: str | None, message: str) -> None:
    b = build({"source": {"type": "Git", "git": {"url": url}}}, annotations=VERIFY)
    facts = BuildFacts(strategy=STRATEGY, repository_probe=probe)
    assert register(b, facts) == (Reason.REMOTE_REPOSITORY_UNREACHABLE, message)


def test_verify_repository_unparsable_url_reports_parse_error() -> None:
    b = build({"source": {"type": "Git", "git": {"url": "https://[::1/o"}}}, annotations=VERIFY)
    reason, message = register(b)
    assert reason == Reason.REMOTE_REPOSITORY_UNREACHABLE
    assert message.startswith('parse "https://[::1/o": ')


def test_verify_repository_probe_success_and_other_schemes_pass() -> None:
    assert register(build(annotations=VERIFY))[0] == Reason.SUCCEEDED
    git_scheme = build(
        {"source": {"type": "Git", "git": {"url": "git://x/o/r"}}}, annotations=VERIFY
    )
    assert register(git_scheme)[0] == Reason.SUCCEEDED


@pytest.mark.parametrize("value", ["", "false"])
def test_verify_repository_off(value: str) -> None:
    b = build(annotations={"build.shipwright.io/verify.repository": value})
    facts = BuildFacts(strategy=STRATEGY, repository_probe=PROBE_AUTH_REQUIRED)
    assert register(b, facts)[0] == Reason.SUCCEEDED


def test_verify_repository_bad_annotation_value() -> None:
    b = build(annotations={"build.shipwright.io/verify.repository": "yes"})
    assert register(b) == (
        Reason.REMOTE_REPOSITORY_UNREACHABLE,
        "the annotation build.shipwright.io/verify.repository was not properly defined, "
        "supported values are true or false",
    )


def test_verify_repository_skipped_with_clone_secret() -> None:
    b = build(
        {"source": {"type": "Git", "git": {"url": "file:///x", "cloneSecret": "git"}}},
        annotations={"build.shipwright.io/verify.repository": "bogus"},
    )
    facts = BuildFacts(strategy=STRATEGY, existing_secrets=frozenset({"git"}))
    assert register(b, facts)[0] == Reason.SUCCEEDED


# --- #3 secrets -------------------------------------------------------------------------------


def secret_build(push: str | None, clone: str | None) -> Build:
    git: dict[str, Any] = {"url": "https://example.com/o/r"}
    if clone is not None:
        git["cloneSecret"] = clone
    output: dict[str, Any] = {"image": "r/i"}
    if push is not None:
        output["pushSecret"] = push
    return build({"source": {"type": "Git", "git": git}, "output": output})


def test_referenced_secrets() -> None:
    assert referenced_secrets(secret_build("push", "clone").spec) == {"push", "clone"}
    assert referenced_secrets(secret_build("", None).spec) == set()
    oci = spec(source={"type": "OCI", "ociArtifact": {"image": "i", "pullSecret": "pull"}})
    assert referenced_secrets(oci) == {"pull"}
    # A Git clone secret does not count for an OCI source (and vice versa).
    mixed = spec(
        source={
            "type": "OCI",
            "ociArtifact": {"image": "i"},
            "git": {"url": "https://x/y", "cloneSecret": "clone"},
        }
    )
    assert referenced_secrets(mixed) == set()


def test_missing_push_secret() -> None:
    assert register(secret_build("push", None)) == (
        Reason.SPEC_OUTPUT_SECRET_REF_NOT_FOUND,
        "referenced secret push not found",
    )


def test_missing_source_secret() -> None:
    facts = BuildFacts(strategy=STRATEGY, existing_secrets=frozenset({"push"}))
    assert register(secret_build("push", "clone"), facts) == (
        Reason.SPEC_SOURCE_SECRET_REF_NOT_FOUND,
        "referenced secret clone not found",
    )


def test_missing_pull_secret_of_oci_source() -> None:
    b = build({"source": {"type": "OCI", "ociArtifact": {"image": "i", "pullSecret": "pull"}}})
    assert register(b) == (
        Reason.SPEC_SOURCE_SECRET_REF_NOT_FOUND,
        "referenced secret pull not found",
    )


def test_multiple_missing_secrets_sorted() -> None:
    assert register(secret_build("zz-push", "aa-clone")) == (
        Reason.MULTIPLE_SECRET_REF_NOT_FOUND,
        "missing secrets are aa-clone,zz-push",
    )


def test_same_name_secret_checked_once_as_source() -> None:
    assert register(secret_build("shared", "shared")) == (
        Reason.SPEC_SOURCE_SECRET_REF_NOT_FOUND,
        "referenced secret shared not found",
    )


def test_existing_secrets_pass() -> None:
    facts = BuildFacts(strategy=STRATEGY, existing_secrets=frozenset({"push", "clone"}))
    assert register(secret_build("push", "clone"), facts)[0] == Reason.SUCCEEDED


def test_empty_secret_name_is_missing() -> None:
    assert register(secret_build("", None)) == (
        Reason.SPEC_OUTPUT_SECRET_REF_NOT_FOUND,
        "referenced secret  not found",
    )


# --- #4 strategy ------------------------------------------------------------------------------


def test_unknown_strategy_kind() -> None:
    assert register(build({"strategy": {"name": "kaniko", "kind": "Strategy"}})) == (
        Reason.UNKNOWN_BUILD_STRATEGY_KIND,
        "unknown strategy kind Strategy used, must be one of BuildStrategy, "
        "or ClusterBuildStrategy",
    )


def test_build_strategy_not_found_defaults_to_namespaced_kind() -> None:
    b = build({"strategy": {"name": "kaniko"}})
    assert register(b, BuildFacts()) == (
        Reason.BUILD_STRATEGY_NOT_FOUND,
        "buildStrategy kaniko does not exist in namespace ns",
    )


def test_cluster_build_strategy_not_found() -> None:
    b = build({"strategy": {"name": "buildah", "kind": "ClusterBuildStrategy"}})
    assert register(b, BuildFacts()) == (
        Reason.CLUSTER_BUILD_STRATEGY_NOT_FOUND,
        "clusterBuildStrategy buildah does not exist",
    )


def test_parse_strategy_types_by_kind() -> None:
    assert type(STRATEGY) is NamespacedStrategy
    cluster = parse_strategy({**STRATEGY_BODY, "kind": "ClusterBuildStrategy"})
    assert isinstance(cluster, ClusterBuildStrategy)


def test_strategy_parameter_failure_without_missing_check() -> None:
    strategy = parse_strategy(
        {
            **STRATEGY_BODY,
            "spec": {
                **STRATEGY_BODY["spec"],
                "parameters": [{"name": "required", "description": "d"}],
            },
        }
    )
    assert register(build(), BuildFacts(strategy=strategy))[0] == Reason.SUCCEEDED
    b = build({"paramValues": [{"name": "unknown", "value": "x"}]})
    assert register(b) == (
        Reason.UNDEFINED_PARAMETER,
        "The following parameters are not defined in the build strategy: unknown",
    )


def test_undefined_and_not_overridable_volumes() -> None:
    undefined = build({"volumes": [{"name": "nope", "emptyDir": {}}]})
    assert register(undefined) == (
        Reason.UNDEFINED_VOLUME,
        'Volume "nope" is not defined in the Strategy',
    )
    fixed = build({"volumes": [{"name": "fixed", "emptyDir": {}}]})
    assert register(fixed) == (
        Reason.VOLUME_NOT_OVERRIDABLE,
        'Volume "fixed" is not overridable in the Strategy',
    )
    ok = build({"volumes": [{"name": "cache", "emptyDir": {}}]})
    assert register(ok)[0] == Reason.SUCCEEDED


def test_undefined_step_resource() -> None:
    b = build(
        {
            "strategy": {
                "name": "kaniko",
                "stepResources": [
                    {"name": "build-and-push", "resources": {}},
                    {"name": "ghost", "resources": {}},
                ],
            }
        }
    )
    assert register(b) == (
        Reason.UNDEFINED_STEP_RESOURCE,
        'stepResources references step "ghost" which does not exist in the build strategy',
    )


def test_strategy_validator_last_failure_wins() -> None:
    b = build(
        {
            "paramValues": [{"name": "unknown", "value": "x"}],
            "volumes": [{"name": "nope", "emptyDir": {}}],
            "strategy": {"name": "kaniko", "stepResources": [{"name": "ghost", "resources": {}}]},
        }
    )
    assert register(b)[0] == Reason.UNDEFINED_STEP_RESOURCE
    b = build(
        {
            "paramValues": [{"name": "unknown", "value": "x"}],
            "volumes": [{"name": "nope", "emptyDir": {}}],
        }
    )
    assert register(b)[0] == Reason.UNDEFINED_VOLUME


# --- #5 source ---------------------------------------------------------------------------------


def test_source_type_mismatch_does_not_stop_registration() -> None:
    b = build({"source": {"type": "OCI", "git": {"url": "https://x/y"}}})
    assert source_mismatch(b.spec) == "type does not match the source"
    assert register(b)[0] == Reason.SUCCEEDED
    assert source_mismatch(spec()) is None
    assert source_mismatch(spec(source=None)) is None


# --- #6 output --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp", ["", "Zero", "BuildTimestamp", "SourceTimestamp", "1700000000", "-5", "+7"]
)
def test_valid_timestamps(timestamp: str) -> None:
    b = build({"output": {"image": "r/i", "timestamp": timestamp}})
    assert register(b)[0] == Reason.SUCCEEDED


def test_empty_timestamp_passes_even_without_source() -> None:
    b = build({"source": None, "output": {"image": "r/i", "timestamp": ""}})
    assert register(b)[0] == Reason.SUCCEEDED


def test_source_timestamp_without_source() -> None:
    b = build({"source": None, "output": {"image": "r/i", "timestamp": "SourceTimestamp"}})
    assert register(b) == (
        Reason.OUTPUT_TIMESTAMP_NOT_SUPPORTED,
        "cannot use SourceTimestamp output image setting with an empty build source",
    )


@pytest.mark.parametrize("timestamp", ["zero", "1.5", "now", "9223372036854775808", " 1"])
def test_invalid_timestamps(timestamp: str) -> None:
    b = build({"output": {"image": "r/i", "timestamp": timestamp}})
    assert register(b) == (
        Reason.OUTPUT_TIMESTAMP_NOT_VALID,
        "output timestamp value is invalid, must be Zero, SourceTimestamp, BuildTimestamp, "
        "or number",
    )


def platforms_build(
    platforms: list[dict[str, str]], node_selector: dict[str, str] | None = None
) -> Build:
    fields: dict[str, Any] = {"output": {"image": "r/i", "platforms": platforms}}
    if node_selector is not None:
        fields["nodeSelector"] = node_selector
    return build(fields)


@pytest.mark.parametrize(
    ("platforms", "message"),
    [
        ([{"os": "linux", "arch": ""}], "spec.output.platforms[0] must specify both os and arch"),
        (
            [{"os": "linux", "arch": "amd64"}, {"os": "Linux", "arch": "amd64"}],
            'spec.output.platforms[1].os "Linux": invalid; use the value your Nodes have for '
            'label "kubernetes.io/os"',
        ),
        (
            [{"os": "linux", "arch": "arm/v7"}],
            'spec.output.platforms[0].arch "arm/v7": invalid; use the value your Nodes have for '
            'label "kubernetes.io/arch"',
        ),
    ],
)
def test_invalid_platform(platforms: list[dict[str, str]], message: str) -> None:
    assert register(platforms_build(platforms)) == (Reason.INVALID_PLATFORM, message)


def test_duplicate_platform() -> None:
    # The CRD's list-map normally rejects duplicates; the model does not.
    dup = [{"os": "linux", "arch": "amd64"}, {"os": "linux", "arch": "amd64"}]
    assert register(platforms_build(dup)) == (
        Reason.INVALID_PLATFORM,
        "spec.output.platforms[1] is a duplicate of linux/amd64",
    )


@pytest.mark.parametrize("label", ["kubernetes.io/os", "kubernetes.io/arch"])
def test_node_selector_platform_conflict(label: str) -> None:
    b = platforms_build([{"os": "linux", "arch": "amd64"}], {label: "x"})
    assert register(b) == (
        Reason.NODE_SELECTOR_PLATFORM_CONFLICT,
        f'nodeSelector must not contain "{label}" when spec.output.platforms is set; the build '
        "controller manages os/arch scheduling",
    )


def test_platforms_valid_and_empty_list() -> None:
    two = [{"os": "linux", "arch": "amd64"}, {"os": "linux", "arch": "arm64"}]
    assert register(platforms_build(two, {"disk": "ssd"}))[0] == Reason.SUCCEEDED
    assert register(platforms_build([], {"kubernetes.io/os": "linux"}))[0] == Reason.SUCCEEDED


def test_platform_failure_overwrites_timestamp_failure() -> None:
    b = build(
        {"output": {"image": "r/i", "timestamp": "bad", "platforms": [{"os": "", "arch": "x"}]}}
    )
    assert register(b)[0] == Reason.INVALID_PLATFORM


# --- #7 buildname ------------------------------------------------------------------------------


def test_build_name_invalid() -> None:
    assert register(build(name="b" * 64)) == (
        Reason.BUILD_NAME_INVALID,
        "must be no more than 63 bytes",
    )
    assert register(build(name="a" * 62 + "-")) == (
        Reason.BUILD_NAME_INVALID,
        LABEL_VALUE_REGEX_ERROR,
    )
    assert register(build(name="-" * 64)) == (
        Reason.BUILD_NAME_INVALID,
        "must be no more than 63 bytes, " + LABEL_VALUE_REGEX_ERROR,
    )


# --- #8 env ------------------------------------------------------------------------------------

SECRET_REF: dict[str, Any] = {"secretKeyRef": {"name": "s", "key": "k"}}


def test_env_blank_name() -> None:
    assert register(build({"env": [{"name": "", "value": "x"}]})) == (
        Reason.SPEC_ENV_NAME_CAN_NOT_BE_BLANK,
        "name for environment variable must not be blank",
    )


@pytest.mark.parametrize(
    "name", ["LD_PRELOAD", "LD_ANYTHING", "BASH_FUNC_x%%", "ENV", "NODE_OPTIONS"]
)
def test_env_forbidden_names(name: str) -> None:
    assert register(build({"env": [{"name": name, "value": "x"}]})) == (
        Reason.SPEC_ENV_NAME_FORBIDDEN,
        f"environment variable {go_quote(name)} is forbidden for security reasons",
    )


@pytest.mark.parametrize("name", ["ENVIRONMENT", "MY_LD_PRELOAD", "PATH", "LD"])
def test_env_allowed_names(name: str) -> None:
    assert register(build({"env": [{"name": name, "value": "x"}]}))[0] == Reason.SUCCEEDED


def test_env_value_and_value_from() -> None:
    assert register(build({"env": [{"name": "A", "value": "x", "valueFrom": SECRET_REF}]})) == (
        Reason.SPEC_ENV_ONLY_ONE_OF_VALUE_OR_VALUE_FROM,
        "only one of value or valueFrom must be specified",
    )
    empty_value = build({"env": [{"name": "A", "value": "", "valueFrom": SECRET_REF}]})
    assert register(empty_value)[0] == Reason.SUCCEEDED


def test_env_last_failure_wins() -> None:
    env: list[dict[str, Any]] = [
        {"name": "LD_PRELOAD", "value": "x"},
        {"name": "", "value": "x"},
    ]
    assert register(build({"env": env}))[0] == Reason.SPEC_ENV_NAME_CAN_NOT_BE_BLANK
    env = [{"name": "", "value": "x"}, {"name": "BASH_ENV", "value": "x", "valueFrom": SECRET_REF}]
    assert register(build({"env": env}))[0] == Reason.SPEC_ENV_ONLY_ONE_OF_VALUE_OR_VALUE_FROM


def test_forbidden_env_list_is_configurable() -> None:
    custom = ForbiddenEnvNames.from_setting(" SECRET_* , TOKEN ,,")
    assert "SECRET_KEY" in custom and "TOKEN" in custom and "LD_PRELOAD" not in custom
    assert 42 not in custom
    facts = BuildFacts(strategy=STRATEGY, forbidden_env=("TOKEN",))
    assert register(build({"env": [{"name": "TOKEN", "value": "x"}]}), facts)[0] == (
        Reason.SPEC_ENV_NAME_FORBIDDEN
    )
    assert register(build({"env": [{"name": "LD_PRELOAD", "value": "x"}]}), facts)[0] == (
        Reason.SUCCEEDED
    )
    facts = BuildFacts(strategy=STRATEGY, forbidden_env=custom)
    assert register(build({"env": [{"name": "SECRET_X", "value": "x"}]}), facts)[0] == (
        Reason.SPEC_ENV_NAME_FORBIDDEN
    )
    assert ForbiddenEnvNames.from_setting("") == ForbiddenEnvNames.from_setting(None)


# --- #9 triggers ------------------------------------------------------------------------------


def triggers(*when: dict[str, Any]) -> Build:
    return build({"trigger": {"when": list(when)}})


@pytest.mark.parametrize(
    ("when", "reason", "message"),
    [
        (
            {"name": "", "type": "GitHub", "github": {"events": ["Push"]}},
            Reason.TRIGGER_NAME_CAN_NOT_BE_BLANK,
            "name is not set on when trigger condition",
        ),
        (
            {"name": "t", "type": "Cron"},
            Reason.TRIGGER_INVALID_TYPE,
            '"t" contains an invalid type "Cron"',
        ),
        (
            {"name": "t", "type": "GitHub"},
            Reason.TRIGGER_INVALID_GITHUB_WEBHOOK,
            '"t" is missing required attribute `.github`',
        ),
        (
            {"name": "t", "type": "GitHub", "github": {"branches": ["main"]}},
            Reason.TRIGGER_INVALID_GITHUB_WEBHOOK,
            '"t" is missing required attribute `.github.events`',
        ),
        (
            {"name": "t", "type": "Image"},
            Reason.TRIGGER_INVALID_IMAGE,
            '"t" is missing required attribute `.image`',
        ),
        (
            {"name": "t", "type": "Image", "image": {"names": []}},
            Reason.TRIGGER_INVALID_IMAGE,
            '"t" is missing required attribute `.image.names`',
        ),
        (
            {"name": "t", "type": "Pipeline"},
            Reason.TRIGGER_INVALID_PIPELINE,
            '"t" is missing required attribute `.objectRef`',
        ),
        (
            {"name": "t", "type": "Pipeline", "objectRef": {"name": "p"}},
            Reason.TRIGGER_INVALID_PIPELINE,
            '"t" is missing required attribute `.objectRef.status`',
        ),
        (
            {"name": "t", "type": "Pipeline", "objectRef": {"status": ["Succeeded"]}},
            Reason.TRIGGER_INVALID_PIPELINE,
            '"t" is missing required attributes `.objectRef.name` or `.objectRef.selector`',
        ),
        (
            {
                "name": "t",
                "type": "Pipeline",
                "objectRef": {"name": "p", "status": ["Succeeded"], "selector": {"a": "b"}},
            },
            Reason.TRIGGER_INVALID_PIPELINE,
            '"t" contains `.objectRef.name` and `.objectRef.selector`, must be only one',
        ),
    ],
)
def test_trigger_failures(when: dict[str, Any], reason: str, message: str) -> None:
    assert register(triggers(when)) == (reason, message)


def test_valid_triggers_and_last_failure_wins() -> None:
    good = [
        {"name": "gh", "type": "GitHub", "github": {"events": ["Push"]}},
        {"name": "img", "type": "Image", "image": {"names": ["x"]}},
        {"name": "p", "type": "Pipeline", "objectRef": {"selector": {"a": "b"}, "status": ["S"]}},
    ]
    assert register(triggers(*good))[0] == Reason.SUCCEEDED
    # A blank name and a wrong type in one entry: the type check comes last.
    assert register(triggers({"name": "", "type": "X"}))[0] == Reason.TRIGGER_INVALID_TYPE
    assert register(triggers({"name": "a", "type": "X"}, {"name": "b", "type": "Image"}))[0] == (
        Reason.TRIGGER_INVALID_IMAGE
    )


# --- #10 nodeSelector --------------------------------------------------------------------------


def test_node_selector_key_and_value() -> None:
    assert register(build({"nodeSelector": {"bad key": "v"}})) == (
        Reason.NODE_SELECTOR_NOT_VALID,
        "Node selector key not valid: " + NAME_PART_REGEX_ERROR,
    )
    assert register(build({"nodeSelector": {"k": "bad value"}})) == (
        Reason.NODE_SELECTOR_NOT_VALID,
        "Node selector value not valid: " + LABEL_VALUE_REGEX_ERROR,
    )
    both = build({"nodeSelector": {"bad key": "v", "k": "bad value"}})
    assert register(both)[1].startswith("Node selector value not valid")
    assert register(build({"nodeSelector": {"example.com/disk": ""}}))[0] == Reason.SUCCEEDED


# --- #11 tolerations ---------------------------------------------------------------------------


def tolerate(**fields: Any) -> Build:
    return build({"tolerations": [{"key": "k", "operator": "Exists", **fields}]})


def test_tolerations_valid() -> None:
    assert register(tolerate())[0] == Reason.SUCCEEDED
    assert register(tolerate(operator="Equal", value="v", effect="NoSchedule"))[0] == (
        Reason.SUCCEEDED
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"key": "bad key"}, NAME_PART_REGEX_ERROR),
        ({"key": None}, "name part must be non-empty, " + NAME_PART_REGEX_ERROR),
        ({"operator": "In"}, "Toleration operator not valid. Must be one of: 'Exists', 'Equal'"),
        ({"operator": None}, "Toleration operator not valid. Must be one of: 'Exists', 'Equal'"),
        ({"value": "bad value"}, LABEL_VALUE_REGEX_ERROR),
        ({"effect": "NoExecute"}, "Only the 'NoSchedule' toleration effect is supported."),
        ({"tolerationSeconds": 30}, "Specifying TolerationSeconds is not supported."),
    ],
)
def test_toleration_messages(fields: dict[str, Any], message: str) -> None:
    assert register(tolerate(**fields)) == (Reason.TOLERATION_NOT_VALID, message)


def test_toleration_last_failure_wins() -> None:
    b = tolerate(key="bad key", effect="NoExecute", tolerationSeconds=1)
    assert register(b)[1] == "Specifying TolerationSeconds is not supported."


# --- #12, #13 scheduler and runtime class --------------------------------------------------------


def test_scheduler_name() -> None:
    assert register(build({"schedulerName": "my-scheduler"}))[0] == Reason.SUCCEEDED
    assert register(build({"schedulerName": "bad scheduler"})) == (
        Reason.SCHEDULER_NAME_NOT_VALID,
        "Scheduler name not valid: " + NAME_PART_REGEX_ERROR,
    )
    assert register(build({"schedulerName": ""}))[0] == Reason.SCHEDULER_NAME_NOT_VALID


def test_runtime_class_name() -> None:
    assert register(build({"runtimeClassName": "gvisor"}))[0] == Reason.SUCCEEDED
    assert register(build({"runtimeClassName": "GVisor"})) == (
        Reason.RUNTIME_CLASS_NAME_NOT_VALID,
        "RuntimeClassName not valid: " + SUBDOMAIN_REGEX_ERROR,
    )


# --- ordering between validators ---------------------------------------------------------------


def test_validators_run_in_order_and_stop_at_first_failure() -> None:
    everything_wrong: dict[str, Any] = {
        "output": {"image": "r/i", "pushSecret": "push", "timestamp": "bad"},
        "env": [{"name": ""}],
        "trigger": {"when": [{"name": "t", "type": "X"}]},
        "nodeSelector": {"bad key": "v"},
        "tolerations": [{"key": "k", "operator": "In"}],
        "schedulerName": "bad name",
        "runtimeClassName": "Bad",
    }
    b = build(
        everything_wrong, name="-bad-", annotations={"build.shipwright.io/verify.repository": "x"}
    )
    expected = [
        Reason.REMOTE_REPOSITORY_UNREACHABLE,
        Reason.SPEC_OUTPUT_SECRET_REF_NOT_FOUND,
        Reason.BUILD_STRATEGY_NOT_FOUND,
        Reason.OUTPUT_TIMESTAMP_NOT_VALID,
        Reason.BUILD_NAME_INVALID,
        Reason.SPEC_ENV_NAME_CAN_NOT_BE_BLANK,
        Reason.TRIGGER_INVALID_TYPE,
        Reason.NODE_SELECTOR_NOT_VALID,
        Reason.TOLERATION_NOT_VALID,
        Reason.SCHEDULER_NAME_NOT_VALID,
        Reason.RUNTIME_CLASS_NAME_NOT_VALID,
    ]
    facts = BuildFacts()
    seen: list[str] = []
    # Fix one problem at a time; each fix must reveal exactly the next validator's reason.
    fixes: list[tuple[str, Any]] = [
        ("annotations", None),
        ("secrets", None),
        ("strategy", None),
        ("timestamp", None),
        ("name", None),
        ("env", None),
        ("trigger", None),
        ("nodeSelector", None),
        ("tolerations", None),
        ("schedulerName", None),
        ("runtimeClassName", None),
    ]
    for what, _ in fixes:
        seen.append(validate_build(b, facts).reason)
        body = b.to_wire()
        if what == "annotations":
            body["metadata"].pop("annotations")
        elif what == "secrets":
            facts = BuildFacts(existing_secrets=frozenset({"push"}))
        elif what == "strategy":
            facts = BuildFacts(existing_secrets=frozenset({"push"}), strategy=STRATEGY)
        elif what == "timestamp":
            body["spec"]["output"].pop("timestamp")
        elif what == "name":
            body["metadata"]["name"] = "good"
        else:
            body["spec"].pop(what)
        b = Build.model_validate(body)
    assert seen == expected
    assert validate_build(b, facts) == REGISTERED


# --- BuildRun request: name, fields, env ---------------------------------------------------------


def test_buildrun_request_valid_reference_and_embedded() -> None:
    assert validate_buildrun_request(buildrun({"build": {"name": "b"}})) is None
    assert validate_buildrun_request(buildrun({"build": {"spec": EMBEDDED}})) is None


def test_buildrun_name_invalid() -> None:
    failure = validate_buildrun_request(buildrun({"build": {"name": "b"}}, name="x" * 64))
    assert failure == Failure(Reason.BUILDRUN_NAME_INVALID, "must be no more than 63 bytes")


def test_buildrun_name_checked_before_fields() -> None:
    failure = validate_buildrun_request(buildrun({"build": {}}, name="bad name"))
    assert failure == Failure(Reason.BUILDRUN_NAME_INVALID, LABEL_VALUE_REGEX_ERROR)


def test_buildrun_no_ref_or_spec() -> None:
    assert validate_buildrun_request(buildrun({"build": {}})) == Failure(
        Reason.BUILDRUN_NO_REF_OR_SPEC,
        "no build referenced or specified, either 'buildRef' or 'buildSpec' has to be set",
    )


def test_an_empty_build_name_references_nothing() -> None:
    # Found by the property test: the empty name passed as a reference and crashed start().
    failure = validate_buildrun_request(buildrun({"build": {"name": ""}}))
    assert failure is not None and failure.reason == Reason.BUILDRUN_NO_REF_OR_SPEC


def test_buildrun_ambiguous_build() -> None:
    assert validate_buildrun_request(
        buildrun({"build": {"name": "b", "spec": EMBEDDED}})
    ) == Failure(
        Reason.BUILDRUN_AMBIGUOUS_BUILD,
        "fields 'buildRef' and 'buildSpec' are mutually exclusive",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("output", {"image": "r/i"}),
        ("paramValues", [{"name": "p", "value": "v"}]),
        ("env", [{"name": "A", "value": "v"}]),
        ("timeout", "10m"),
        ("nodeSelector", {"a": "b"}),
        ("tolerations", [{"key": "k", "operator": "Exists"}]),
        ("schedulerName", "s"),
        ("runtimeClassName", "r"),
        ("stepResources", [{"name": "s", "resources": {}}]),
    ],
)
def test_buildrun_override_forbidden_with_embedded_spec(field: str, value: Any) -> None:
    failure = validate_buildrun_request(buildrun({"build": {"spec": EMBEDDED}, field: value}))
    assert failure == Failure(
        Reason.BUILDRUN_BUILD_FIELD_OVERRIDE_FORBIDDEN,
        f"cannot use '{field}' override and 'buildSpec' simultaneously",
    )
    # The same override on a referenced Build is fine.
    assert validate_buildrun_request(buildrun({"build": {"name": "b"}, field: value})) is None


def test_buildrun_empty_lists_are_not_overrides() -> None:
    fields = {"build": {"spec": EMBEDDED}, "env": [], "paramValues": [], "tolerations": []}
    assert validate_buildrun_request(buildrun(fields)) is None


def test_buildrun_embedded_trigger_forbidden() -> None:
    embedded = {**EMBEDDED, "trigger": {"when": []}}
    assert validate_buildrun_request(buildrun({"build": {"spec": embedded}})) == Failure(
        Reason.BUILDRUN_BUILD_FIELD_OVERRIDE_FORBIDDEN,
        "cannot use 'triggers' override in the 'BuildRun', only allowed in the 'Build'",
    )


def test_buildrun_override_order_output_first() -> None:
    fields = {"build": {"spec": EMBEDDED}, "timeout": "1m", "output": {"image": "x"}}
    failure = validate_buildrun_request(buildrun(fields))
    assert failure is not None and "'output'" in failure.message


def test_buildrun_forbidden_env() -> None:
    fields = {
        "build": {"name": "b"},
        "env": [{"name": "OK", "value": "1"}, {"name": "LD_AUDIT", "value": "x"}],
    }
    assert validate_buildrun_request(buildrun(fields)) == Failure(
        Reason.SPEC_ENV_NAME_FORBIDDEN,
        'environment variable "LD_AUDIT" is forbidden for security reasons',
    )
    assert validate_buildrun_request(buildrun(fields), forbidden_env=("OTHER",)) is None
    assert validate_buildrun_request(buildrun(fields), forbidden_env="LD_*") is not None


def test_buildrun_field_rules_before_forbidden_env() -> None:
    fields = {"build": {"spec": EMBEDDED}, "env": [{"name": "LD_AUDIT", "value": "x"}]}
    failure = validate_buildrun_request(buildrun(fields))
    assert failure is not None
    assert failure.reason == Reason.BUILDRUN_BUILD_FIELD_OVERRIDE_FORBIDDEN


# --- embedded build spec ------------------------------------------------------------


def embedded(**fields: Any) -> BuildSpec:
    return BuildSpec.model_validate({**EMBEDDED, **fields})


def test_embedded_valid() -> None:
    assert validate_embedded_build(embedded(), GOOD_FACTS, namespace="ns") is None


def test_embedded_strategy_missing() -> None:
    assert validate_embedded_build(embedded(), BuildFacts(), namespace="team") == Failure(
        Reason.BUILD_REGISTRATION_FAILED, "buildStrategy kaniko does not exist in namespace team"
    )


def test_embedded_secret_missing() -> None:
    spec_ = embedded(output={"image": "r/i", "pushSecret": "push"})
    assert validate_embedded_build(spec_, GOOD_FACTS, namespace="ns") == Failure(
        Reason.BUILD_REGISTRATION_FAILED, "referenced secret push not found"
    )


def test_embedded_later_validator_overwrites_earlier_reason() -> None:
    spec_ = embedded(output={"image": "r/i", "pushSecret": "push"}, schedulerName="bad name")
    failure = validate_embedded_build(spec_, GOOD_FACTS, namespace="ns")
    assert failure is not None
    assert failure.message.startswith("Scheduler name not valid: ")


@pytest.mark.parametrize(
    "env",
    [
        [{"name": ""}],
        [{"name": "LD_PRELOAD"}],
        [{"name": "A", "value": "x", "valueFrom": SECRET_REF}],
    ],
)
def test_embedded_env_failure_reported_not_retried(env: list[dict[str, Any]]) -> None:
    spec_ = embedded(env=env, nodeSelector={"bad key": "v"})
    failure = validate_embedded_build(spec_, GOOD_FACTS, namespace="ns")
    assert failure is not None
    assert failure.reason == Reason.BUILD_REGISTRATION_FAILED
    assert "environment variable" in failure.message or "valueFrom" in failure.message


def test_embedded_source_mismatch_reported() -> None:
    spec_ = embedded(source={"type": "Local", "git": {"url": "https://x/y"}})
    assert validate_embedded_build(spec_, GOOD_FACTS, namespace="ns") == Failure(
        Reason.BUILD_REGISTRATION_FAILED, "type does not match the source"
    )


def test_embedded_skips_output_triggers_runtime_class() -> None:
    spec_ = embedded(
        output={"image": "r/i", "timestamp": "bad"},
        runtimeClassName="Bad",
    )
    assert validate_embedded_build(spec_, GOOD_FACTS, namespace="ns") is None


@pytest.mark.parametrize(
    ("fields", "prefix"),
    [
        ({"nodeSelector": {"k": "bad value"}}, "Node selector value not valid: "),
        ({"tolerations": [{"key": "k", "operator": "In"}]}, "Toleration operator not valid"),
        ({"schedulerName": "bad name"}, "Scheduler name not valid: "),
    ],
)
def test_embedded_scheduling_checks(fields: dict[str, Any], prefix: str) -> None:
    failure = validate_embedded_build(embedded(**fields), GOOD_FACTS, namespace="ns")
    assert failure is not None
    assert failure.reason == Reason.BUILD_REGISTRATION_FAILED
    assert failure.message.startswith(prefix)


# --- BuildRun overrides and merged parameters ----------------------------------


def run_spec(**fields: Any) -> BuildRunSpec:
    return BuildRunSpec.model_validate({"build": {"name": "b"}, **fields})


def test_overrides_valid() -> None:
    fields = {
        "volumes": [{"name": "cache", "emptyDir": {}}],
        "stepResources": [{"name": "build-and-push", "resources": {"limits": {"cpu": "1"}}}],
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}],
        "schedulerName": "s",
        "runtimeClassName": "r",
    }
    assert validate_buildrun_overrides(run_spec(**fields), STRATEGY) is None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"volumes": [{"name": "x", "emptyDir": {}}]},
            Failure(Reason.UNDEFINED_VOLUME, 'Volume "x" is not defined in the Strategy'),
        ),
        (
            {"volumes": [{"name": "fixed", "emptyDir": {}}]},
            Failure(
                Reason.VOLUME_NOT_OVERRIDABLE, 'Volume "fixed" is not overridable in the Strategy'
            ),
        ),
        (
            {"stepResources": [{"name": "x", "resources": {}}]},
            Failure(
                Reason.UNDEFINED_STEP_RESOURCE,
                'stepResources references step "x" which does not exist in the build strategy',
            ),
        ),
        (
            {"nodeSelector": {"bad key": "v"}},
            Failure(
                Reason.NODE_SELECTOR_NOT_VALID,
                "Node selector key not valid: " + NAME_PART_REGEX_ERROR,
            ),
        ),
        (
            {"tolerations": [{"key": "bad key", "operator": "Exists"}]},
            Failure(
                Reason.TOLERATION_NOT_VALID, "Toleration key not valid: " + NAME_PART_REGEX_ERROR
            ),
        ),
        (
            {"tolerations": [{"key": "k", "operator": "Equal", "value": "bad value"}]},
            Failure(
                Reason.TOLERATION_NOT_VALID,
                "Toleration value not valid: " + LABEL_VALUE_REGEX_ERROR,
            ),
        ),
        (
            {"tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute"}]},
            Failure(
                Reason.TOLERATION_NOT_VALID,
                "Only the 'NoSchedule' toleration effect is supported.",
            ),
        ),
        (
            {"tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 5}]},
            Failure(Reason.TOLERATION_NOT_VALID, "Specifying TolerationSeconds is not supported."),
        ),
        (
            {"schedulerName": "bad name"},
            Failure(
                Reason.SCHEDULER_NAME_NOT_VALID,
                "Scheduler name not valid: " + NAME_PART_REGEX_ERROR,
            ),
        ),
        (
            {"runtimeClassName": "Bad"},
            Failure(
                Reason.RUNTIME_CLASS_NAME_NOT_VALID,
                "RuntimeClassName not valid: " + SUBDOMAIN_REGEX_ERROR,
            ),
        ),
    ],
)
def test_override_failures(fields: dict[str, Any], expected: Failure) -> None:
    assert validate_buildrun_overrides(run_spec(**fields), STRATEGY) == expected


def test_override_first_failure_wins() -> None:
    fields = {
        "volumes": [{"name": "x", "emptyDir": {}}],
        "runtimeClassName": "Bad",
    }
    failure = validate_buildrun_overrides(run_spec(**fields), STRATEGY)
    assert failure is not None and failure.reason == Reason.UNDEFINED_VOLUME
    # Within a toleration the key check comes first, and it is the one reported.
    tol = run_spec(tolerations=[{"key": "bad key", "operator": "In", "tolerationSeconds": 1}])
    failure = validate_buildrun_overrides(tol, STRATEGY)
    assert failure is not None and failure.message.startswith("Toleration key not valid")


def test_merged_parameters_flag_missing_values() -> None:
    strategy = parse_strategy(
        {
            **STRATEGY_BODY,
            "spec": {
                **STRATEGY_BODY["spec"],
                "parameters": [
                    {"name": "a", "description": "d"},
                    {"name": "b", "description": "d"},
                ],
            },
        }
    )
    build_spec = spec(paramValues=[{"name": "a", "value": "1"}])
    assert merged_parameter_failure(strategy, build_spec, run_spec()) == Failure(
        Reason.MISSING_PARAMETER_VALUES,
        "The following parameters are required but no value has been provided: b",
    )
    given = run_spec(paramValues=[{"name": "b", "value": "2"}])
    assert merged_parameter_failure(strategy, build_spec, given) is None


def test_merged_parameters_buildrun_value_replaces_build_value() -> None:
    build_spec = spec(paramValues=[{"name": "dockerfile", "values": [{"value": "x"}]}])
    assert merged_parameter_failure(STRATEGY, build_spec, run_spec()) is not None
    fixed = run_spec(paramValues=[{"name": "dockerfile", "value": "Containerfile"}])
    assert merged_parameter_failure(STRATEGY, build_spec, fixed) is None


def test_buildrun_platforms_merge() -> None:
    build_spec = spec(output={"image": "r/i", "platforms": [{"os": "linux", "arch": "amd64"}]})
    assert validate_buildrun_platforms(build_spec, run_spec()) is None
    conflict = run_spec(nodeSelector={"kubernetes.io/arch": "amd64"})
    failure = validate_buildrun_platforms(build_spec, conflict)
    assert failure is not None and failure.reason == Reason.NODE_SELECTOR_PLATFORM_CONFLICT
    override = run_spec(output={"image": "r/i", "platforms": [{"os": "Linux", "arch": "amd64"}]})
    failure = validate_buildrun_platforms(build_spec, override)
    assert failure is not None and failure.reason == Reason.INVALID_PLATFORM
    assert (
        validate_buildrun_platforms(spec(nodeSelector={"kubernetes.io/os": "x"}), run_spec())
        is None
    )


def test_an_unresolvable_repository_host_says_no_such_host() -> None:
    from buildwright.core.validation import probe_unreachable_message

    message = probe_unreachable_message(
        "github.invalid", 443, no_such_host=True, refused=False,
        detail="Name or service not known",
    )  # fmt: skip
    assert message.startswith("lookup github.invalid: no such host")
    assert "Name or service not known" in message
    refused = probe_unreachable_message(
        "127.0.0.1", 1, no_such_host=False, refused=True, detail="Connect call failed"
    )
    assert refused.startswith("dial tcp 127.0.0.1:1: connect: connection refused")

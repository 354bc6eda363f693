"""Names taken from users' objects: checked before they reach a path or a Pod (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest

from buildwright import kube
from buildwright.api.v1beta1 import Build, BuildRun, BuildSpec
from buildwright.core import references
from buildwright.core.reasons import Reason
from buildwright.core.validation import (
    BuildFacts,
    parse_strategy,
    validate_build,
    validate_buildrun_request,
    validate_embedded_build,
)

# The names of the issue, and others no object can have.
TRAVERSALS = [
    "../../victim/buildstrategies/vstrat",
    "../../../../api/v1/namespaces/victim/secrets/topsecret",
    "..",
    ".",
    "50%",
    "a%2Fb",
    "with space",
    "UPPER",
    "x?watch=true",
    "x#frag",
    "",
    "a" * 254,
]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_names_no_object_can_have_cannot_exist(name: str) -> None:
    assert not references.can_exist(name)
    assert references.object_name_errors(name)


@pytest.mark.parametrize("name", ["kaniko", "push-secret", "a.b-c", "0", "a" * 253])
def test_kubernetes_names_can_exist(name: str) -> None:
    assert references.can_exist(name)


@pytest.mark.parametrize("name", ["../../x", "..", ".", "50%", "a/b"])
def test_path_refuses_segments_that_would_leave_their_place(name: str) -> None:
    with pytest.raises(kube.InvalidPathSegment):
        kube.SECRETS.path("attacker", name)
    with pytest.raises(kube.InvalidPathSegment):
        kube.BUILDSTRATEGIES.path(name, "x")


def test_path_escapes_everything_else() -> None:
    assert kube.SECRETS.path("ns", "a?b#c d") == "/api/v1/namespaces/ns/secrets/a%3Fb%23c%20d"
    assert kube.BUILDRUNS.path("ns", "run", "status") == (
        "/apis/shipwright.io/v1beta1/namespaces/ns/buildruns/run/status"
    )
    assert kube.CLUSTERBUILDSTRATEGIES.path("ignored", "kaniko") == (
        "/apis/shipwright.io/v1beta1/clusterbuildstrategies/kaniko"
    )


STRATEGY = parse_strategy({
    "apiVersion": "shipwright.io/v1beta1",
    "kind": "ClusterBuildStrategy",
    "metadata": {"name": "s"},
    "spec": {
        "steps": [{"name": "build", "image": "i"}],
        "parameters": [
            {"name": "p", "description": "d", "default": "x"},
            {"name": "list", "description": "d", "type": "array", "defaults": []},
        ],
        "volumes": [{"name": "cache", "overridable": True, "emptyDir": {}}],
    },
})  # fmt: skip


def _spec(**extra: Any) -> dict[str, Any]:
    return {
        "source": {"type": "Git", "git": {"url": "https://example.com/r"}},
        "strategy": {"name": "s", "kind": "ClusterBuildStrategy"},
        "output": {"image": "registry.example.com/i"},
        **extra,
    }


BAD_REFERENCES = [
    ({"env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "../x", "key": "k"}}}]},
     'spec.env[0].valueFrom.secretKeyRef.name: invalid name "../x"'),
    ({"env": [{"name": "E", "valueFrom": {"configMapKeyRef": {"name": "50%", "key": "k"}}}]},
     'spec.env[0].valueFrom.configMapKeyRef.name: invalid name "50%"'),
    ({"paramValues": [{"name": "p", "secretValue": {"name": "a/b", "key": "k"}}]},
     'spec.paramValues[0].secretValue.name: invalid name "a/b"'),
    ({"paramValues": [{"name": "list",
                       "values": [{"configMapValue": {"name": "..", "key": "k"}}]}]},
     'spec.paramValues[0].values[0].configMapValue.name: invalid name ".."'),
    ({"volumes": [{"name": "cache", "secret": {"secretName": "../../victim"}}]},
     'spec.volumes[0].secret.secretName: invalid name "../../victim"'),
    ({"volumes": [{"name": "cache", "projected": {"sources": [{"configMap": {"name": "A"}}]}}]},
     'spec.volumes[0].projected.sources[0].configMap.name: invalid name "A"'),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "message"), BAD_REFERENCES)
def test_build_with_an_invalid_pod_reference_does_not_register(
    extra: dict[str, Any], message: str
) -> None:
    build = Build.model_validate({
        "metadata": {"name": "b", "namespace": "attacker"}, "spec": _spec(**extra)
    })  # fmt: skip
    outcome = validate_build(build, BuildFacts(strategy=STRATEGY))
    assert (outcome.registered, outcome.reason) == (False, Reason.REFERENCE_NAME_INVALID)
    assert outcome.message.startswith(message)


@pytest.mark.parametrize(("extra", "message"), BAD_REFERENCES)
def test_buildrun_with_an_invalid_pod_reference_fails_before_any_lookup(
    extra: dict[str, Any], message: str
) -> None:
    run = BuildRun.model_validate({
        "metadata": {"name": "r", "namespace": "attacker"},
        "spec": {"build": {"name": "b"}, **extra},
    })  # fmt: skip
    failure = validate_buildrun_request(run)
    assert failure is not None and failure.reason == Reason.REFERENCE_NAME_INVALID
    assert failure.message.startswith(message)


def test_embedded_build_with_an_invalid_pod_reference_fails() -> None:
    spec = BuildSpec.model_validate(_spec(**BAD_REFERENCES[0][0]))
    failure = validate_embedded_build(spec, BuildFacts(strategy=STRATEGY), namespace="attacker")
    assert failure is not None and failure.reason == Reason.BUILD_REGISTRATION_FAILED
    assert "invalid name" in failure.message


def test_valid_pod_references_pass() -> None:
    extra = {
        "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}],
        "paramValues": [{"name": "p", "configMapValue": {"name": "settings", "key": "k"}}],
        "volumes": [{"name": "cache", "configMap": {"name": "settings"}}],
    }
    meta = {"name": "b", "namespace": "n"}
    build = Build.model_validate({"metadata": meta, "spec": _spec(**extra)})
    assert validate_build(build, BuildFacts(strategy=STRATEGY)).registered


# --- volume sources of overrides -------------------------------------------------------------

NODE_SOURCES = [{"hostPath": {"path": "/"}}, {"nfs": {"server": "n", "path": "/"}},
                {"gitRepo": {"repository": "https://x"}}, {"iscsi": {}}, {"local": {}}]  # fmt: skip


@pytest.mark.parametrize("source", NODE_SOURCES)
def test_a_build_may_not_replace_a_volume_with_a_node_level_source(source: dict[str, Any]) -> None:
    build = Build.model_validate({
        "metadata": {"name": "b", "namespace": "n"},
        "spec": _spec(volumes=[{"name": "cache", **source}]),
    })  # fmt: skip
    outcome = validate_build(build, BuildFacts(strategy=STRATEGY))
    assert (outcome.registered, outcome.reason) == (False, Reason.VOLUME_SOURCE_NOT_ALLOWED)
    assert outcome.message.startswith(f'Volume "cache" uses {next(iter(source))}, which')
    allowed = BuildFacts(strategy=STRATEGY, extra_volume_sources=frozenset(source))
    assert validate_build(build, allowed).registered


@pytest.mark.parametrize("source", NODE_SOURCES)
def test_a_buildrun_may_not_either(source: dict[str, Any]) -> None:
    from buildwright.core.validation import validate_buildrun_overrides

    run = BuildRun.model_validate({
        "metadata": {"name": "r", "namespace": "n"},
        "spec": {"build": {"name": "b"}, "volumes": [{"name": "cache", **source}]},
    })  # fmt: skip
    failure = validate_buildrun_overrides(run.spec, STRATEGY)
    assert failure is not None and failure.reason == Reason.VOLUME_SOURCE_NOT_ALLOWED
    assert validate_buildrun_overrides(run.spec, STRATEGY, frozenset(source)) is None


@pytest.mark.parametrize("source", [{"emptyDir": {}}, {"persistentVolumeClaim": {"claimName": "c"}},
                                    {"configMap": {"name": "c"}}, {"csi": {"driver": "d"}}])
def test_pod_security_restricted_sources_are_allowed(source: dict[str, Any]) -> None:
    build = Build.model_validate({
        "metadata": {"name": "b", "namespace": "n"},
        "spec": _spec(volumes=[{"name": "cache", **source}]),
    })  # fmt: skip
    assert validate_build(build, BuildFacts(strategy=STRATEGY)).registered


# --- the repository probe ----------------------------------------------------------------------

INFO_REFS = "/info/refs?service=git-upload-pack"


@pytest.mark.parametrize(("url", "probe"), [
    ("https://github.com/org/repo", "https://github.com/org/repo" + INFO_REFS),
    ("https://github.com/org/repo/", "https://github.com/org/repo" + INFO_REFS),
    ("HTTP://Example.com:8080/r.git", "http://example.com:8080/r.git" + INFO_REFS),
    # A fragment no longer cuts off the path, a query is not passed on, credentials not sent.
    ("http://127.0.0.1:1/admin#", "http://127.0.0.1:1/admin" + INFO_REFS),
    ("https://h/o/r?x=1#frag", "https://h/o/r" + INFO_REFS),
    ("https://user:pw@h/o/r", "https://h/o/r" + INFO_REFS),
    ("https://evil.example@good.example/o/r", "https://good.example/o/r" + INFO_REFS),
    ("http://[::1]:9/r", "http://[::1]:9/r" + INFO_REFS),
    ("file:///etc/passwd", None),
    ("gopher://h/x", None),
    ("https:///nohost", None),
    ("https://h:notaport/r", None),
])  # fmt: skip
def test_probe_url_is_rebuilt_from_the_parsed_url(url: str, probe: str | None) -> None:
    from buildwright.core.validation import probe_url

    assert probe_url(url) == probe


def test_probe_policy_turns_the_probe_off_or_limits_hosts() -> None:
    from buildwright.core.validation import ProbePolicy, probe_url

    assert probe_url("https://github.com/o/r", ProbePolicy(enabled=False)) is None
    only = ProbePolicy(allowed_hosts=frozenset({"github.com"}))
    assert probe_url("https://GitHub.com/o/r", only) == "https://github.com/o/r" + INFO_REFS
    assert probe_url("https://169.254.169.254/latest", only) is None

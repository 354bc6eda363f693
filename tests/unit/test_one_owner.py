"""Decisions made once: the run's timeout, the source's Secret, the strategy kind, forbidden
env names. Each pair that used to disagree is checked to agree through its callers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from buildwright.api.v1beta1 import BuildRun, BuildSpec
from buildwright.core import lifecycle, pod, preflight, status, validation
from buildwright.core.reasons import Reason
from buildwright.core.resolve import buildrun_timeout_seconds

CREATED = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


def buildrun(timeout: str | None = None, snapshot_timeout: str | None = None) -> BuildRun:
    spec: dict[str, Any] = {"build": {"name": "b"}}
    if timeout is not None:
        spec["timeout"] = timeout
    body: dict[str, Any] = {
        "apiVersion": "shipwright.io/v1beta1", "kind": "BuildRun",
        "metadata": {"name": "r", "namespace": "ns", "uid": "u",
                     "creationTimestamp": CREATED.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "spec": spec, "status": {},
    }  # fmt: skip
    if snapshot_timeout is not None:
        body["status"]["buildSpec"] = {
            "strategy": {"name": "buildah"}, "output": {"image": "r/app"},
            "timeout": snapshot_timeout,
        }  # fmt: skip
    return BuildRun.model_validate(body)


def pending_pod() -> dict[str, Any]:
    return {"metadata": {"name": "r-pod", "namespace": "ns"},
            "spec": {"initContainers": [], "containers": [{"name": "step-results"}]},
            "status": {"phase": "Pending"}}  # fmt: skip


@pytest.mark.parametrize("timeout", ["0s", "0", "-5m"])
def test_a_zero_timeout_means_no_timeout_for_the_status_as_for_the_pod(timeout: str) -> None:
    for run in (buildrun(timeout=timeout), buildrun(snapshot_timeout=timeout)):
        assert buildrun_timeout_seconds(run) is None
        assert lifecycle.timeout_deadline(run) is None
        later = CREATED + timedelta(hours=5)
        update = status.status_from_pod(run, pending_pod(), later)
        assert update.condition is not None
        assert update.condition.reason != Reason.BUILDRUN_TIMEOUT


def test_the_buildruns_timeout_wins_over_the_snapshot() -> None:
    assert buildrun_timeout_seconds(buildrun(timeout="1m", snapshot_timeout="1h")) == 60
    assert buildrun_timeout_seconds(buildrun(snapshot_timeout="1h")) == 3600
    assert buildrun_timeout_seconds(buildrun(timeout="soon")) is None


def source_spec(source: dict[str, Any]) -> BuildSpec:
    return BuildSpec.model_validate(
        {"source": source, "strategy": {"name": "s"}, "output": {"image": "r/app"}}
    )


@pytest.mark.parametrize(
    ("source", "secret"),
    [
        ({"type": "Git", "git": {"url": "u", "cloneSecret": "g"}}, "g"),
        ({"type": "OCI", "ociArtifact": {"image": "i", "pullSecret": "o"}}, "o"),
        # The type decides: a Local source clones nothing, whatever else is set.
        ({"type": "Local", "local": {"name": "l"}, "git": {"url": "u", "cloneSecret": "g"}},
         None),
        ({"type": "Git", "git": {"url": "u", "cloneSecret": ""}}, ""),
    ],
)  # fmt: skip
def test_validation_checks_the_secret_the_pod_mounts(source: dict[str, Any], secret: str) -> None:
    spec = source_spec(source)
    assert validation.source_secret(spec) == secret
    assert pod.source_secret_of(spec) == (secret or None)
    assert validation.referenced_secrets(spec) == ({secret} if secret else set())


def test_one_strategy_kind_default() -> None:
    spec = source_spec({"type": "Git", "git": {"url": "u"}})
    assert validation.strategy_kind(spec) == preflight.strategy_kind(None) == "BuildStrategy"


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_ANYTHING", "BASH_FUNC_x%%", "NODE_OPTIONS"])
def test_forbidden_env_names_agree(name: str) -> None:
    assert pod.is_forbidden_env_name(name)
    assert name in validation.DEFAULT_FORBIDDEN_ENV
    custom = (" FOO ", "BAR*")
    assert pod.is_forbidden_env_name("FOO", custom) == ("FOO" in validation.forbidden_env_names(
        custom))  # fmt: skip


def test_an_empty_strategy_name_is_a_named_failure() -> None:
    spec = BuildSpec.model_validate({"strategy": {"name": ""}, "output": {"image": "r/app"}})
    failure = validation.validate_strategy(spec, "ns", None)
    assert failure is not None
    assert failure.reason == Reason.BUILD_STRATEGY_NOT_FOUND
    assert "spec.strategy.name is empty" in failure.message
    cluster = preflight.strategy_not_found("ClusterBuildStrategy", "")
    assert cluster.reason == Reason.CLUSTER_BUILD_STRATEGY_NOT_FOUND

"""What the API server would refuse in a build Pod, caught before the Pod is sent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from buildwright.core.podcheck import (
    env_name_error,
    manifest_failure,
    parse_quantity,
    strategy_steps_failure,
)
from buildwright.core.reasons import Reason
from buildwright.core.resolve import MAX_ACTIVE_DEADLINE_SECONDS, active_deadline_seconds


@pytest.mark.parametrize("name", ["source-default", "source-local", "image-processing", "results"])
def test_a_strategy_step_may_not_take_the_name_of_one_of_ours(name: str) -> None:
    failure = strategy_steps_failure(["build", name])
    assert failure is not None
    assert failure.reason == Reason.TASKRUN_GENERATION_FAILED
    assert f'"{name}"' in failure.message and "rename it" in failure.message


@pytest.mark.parametrize("name", ["Build", "build_and_push", "x.y", "x-", "", "a" * 59, "a b"])
def test_step_names_must_make_valid_container_names(name: str) -> None:
    failure = strategy_steps_failure([name])
    assert failure is not None
    assert failure.reason == Reason.TASKRUN_GENERATION_FAILED


def test_valid_and_distinct_step_names_pass() -> None:
    assert strategy_steps_failure(["build-and-push", "prepare", "a" * 58]) is None
    assert strategy_steps_failure(["x", "x"]) is not None


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", Decimal("0.5")), ("2", 2), ("1Gi", 2**30), ("1.5k", 1500), ("2e3", 2000),
     ("+1", 1), (".5", Decimal("0.5")), ("1E-3", Decimal("0.001"))],
)  # fmt: skip
def test_quantities_the_api_server_accepts(text: str, value: Decimal | int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1gb", "1 Gi", "Gi", "1.2.3", "ten", "1e", "0x10"])
def test_quantities_the_api_server_refuses(text: str) -> None:
    assert parse_quantity(text) is None


def test_env_names() -> None:
    assert env_name_error("PATH") is None
    assert env_name_error("my.var-1 x") is None  # relaxed names: printable ASCII
    assert env_name_error("") is not None
    assert env_name_error("A=B") is not None
    assert env_name_error("Ä") is not None
    assert env_name_error("A\n") is not None


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"spec": {"initContainers": list(containers[:-1]), "containers": [containers[-1]],
                     **spec}}  # fmt: skip


def container(name: str = "step-build", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "img", **fields}


def test_a_valid_pod_passes() -> None:
    assert manifest_failure(pod(
        container(env=[{"name": "HOME", "value": "/tekton/home"}],
                  resources={"limits": {"cpu": "1", "memory": "1Gi"},
                             "requests": {"cpu": "500m", "example.com/gpu": "1"}}),
        container("step-results"), activeDeadlineSeconds=600,
    )) is None  # fmt: skip


@pytest.mark.parametrize(
    ("manifest", "words"),
    [
        (pod(container(image=""), container("step-results")), "has no image"),
        (pod(container(image="  "), container("step-results")), "has no image"),
        (pod(container("step-Build"), container("step-results")), "name is not valid"),
        (pod(container("step-results"), container("step-results")), "appears twice"),
        (pod(container(env=[{"name": "A=B"}]), container("step-results")), '"A=B"'),
        (pod(container(resources={"limits": {"memory": "1gb"}}), container("step-results")),
         '"1gb" is not a quantity'),
        (pod(container(resources={"limits": {"gpu": "1"}}), container("step-results")),
         "fully qualified"),
        (pod(container(resources={"requests": {"cpu": "-1"}}), container("step-results")),
         "greater than or equal to 0"),
        (pod(container(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
             container("step-results")), "less than or equal to its limit (1)"),
        (pod(container(), container("step-results"), activeDeadlineSeconds=2**31),
         "activeDeadlineSeconds"),
    ],
)  # fmt: skip
def test_what_the_api_server_would_refuse(manifest: dict[str, Any], words: str) -> None:
    failure = manifest_failure(manifest)
    assert failure is not None
    assert failure.reason == Reason.TASKRUN_GENERATION_FAILED
    assert words in failure.message


def test_a_timeout_beyond_a_pod_deadline_keeps_the_largest_deadline() -> None:
    # The operator enforces the timeout itself; the Pod deadline is only a backstop.
    assert active_deadline_seconds(100 * 365 * 86400.0) == MAX_ACTIVE_DEADLINE_SECONDS
    assert active_deadline_seconds(0.2) == 1

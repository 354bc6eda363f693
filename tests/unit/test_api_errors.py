"""Which API answers are retried, and what a refused build Pod becomes."""

from __future__ import annotations

import aiohttp
import pytest

from buildwright import kube
from buildwright.core import lifecycle
from buildwright.core.reasons import Reason
from buildwright.handlers.common import RETRY_MAX_SECONDS, retry_delay


@pytest.mark.parametrize("status", [409, 429, 500, 502, 503, 504])
def test_conflicts_throttling_and_server_errors_are_retried(status: int) -> None:
    assert kube.is_transient(kube.ApiError(status, "", ""))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 413, 415, 422])
def test_answers_that_will_not_change_are_not_retried(status: int) -> None:
    assert not kube.is_transient(kube.ApiError(status, "", ""))


@pytest.mark.parametrize(
    ("status", "message"),
    [(413, "Request entity too large: limit is 3145728"),
     (500, "etcdserver: request is too large"),
     (500, "rpc error: code = ResourceExhausted desc = trying to send message larger than max "
           "(2500744 vs. 2097152)")],
)  # fmt: skip
def test_an_object_too_large_to_store_is_not_retried(status: int, message: str) -> None:
    error = kube.ApiError(status, "", message)
    assert error.too_large and not kube.is_transient(error)
    assert lifecycle.pod_rejection("x-pod", 413, message) is not None


def test_connection_errors_and_timeouts_are_retried() -> None:
    assert kube.is_transient(aiohttp.ServerDisconnectedError())
    assert kube.is_transient(TimeoutError())
    assert not kube.is_transient(ValueError())


def test_retries_back_off_up_to_five_minutes() -> None:
    delays = [retry_delay(attempt).total_seconds() for attempt in range(12)]
    assert delays[:4] == [1, 2, 4, 8]
    assert delays == sorted(delays)
    assert delays[-1] == RETRY_MAX_SECONDS == 300
    assert retry_delay(10_000).total_seconds() == 300


def test_field_managers_are_upstreams() -> None:
    assert kube.field_manager(kube.BUILDS) == "shipwright-build-controller"
    for resource in (kube.BUILDRUNS, kube.PODS, kube.SERVICEACCOUNTS, kube.EVENTS):
        assert kube.field_manager(resource) == "shipwright-buildrun-controller"


@pytest.mark.parametrize("status", [400, 403, 422])
def test_a_pod_refused_for_good_ends_the_run_with_the_servers_words(status: int) -> None:
    message = 'Pod "x-pod" is invalid: spec.initContainers[1].name: Invalid value: "step-X"'
    failure = lifecycle.pod_rejection("x-pod", status, message)
    assert failure is not None
    assert failure.reason == Reason.POD_CREATION_FAILED
    assert message in failure.message and '"x-pod"' in failure.message


@pytest.mark.parametrize("status", [404, 409, 429, 500, 503])
def test_a_pod_refusal_worth_retrying_is_no_failure(status: int) -> None:
    assert lifecycle.pod_rejection("x-pod", status, "") is None


def test_an_exceeded_quota_is_waited_out() -> None:
    message = 'pods "x-pod" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1'
    assert lifecycle.quota_exceeded(403, message)
    assert lifecycle.pod_rejection("x-pod", 403, message) is None

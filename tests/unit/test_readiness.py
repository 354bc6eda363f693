"""Refused lists and watches: logged once, not ready, ready again when granted (issue 15)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import pytest

from buildwright import readiness
from buildwright.main import KopfRefusals, RetryForever, kopf_permission

URL = "https://127.0.0.1:6443/apis/shipwright.io/v1beta1/builds?watch=true&resourceVersion=5"


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    readiness.reset()
    yield
    readiness.reset()


def test_a_failing_watch_is_logged_once_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="buildwright"):
        for _ in range(5):
            readiness.watch_failed("list secrets in all namespaces", "forbidden")
        assert not readiness.ready()
        assert readiness.failing() == {"list secrets in all namespaces": "forbidden"}
        readiness.watch_recovered("list secrets in all namespaces")
        readiness.watch_recovered("list secrets in all namespaces")
    assert readiness.ready()
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if m.startswith("cannot list secrets")]) == 1
    assert len([m for m in messages if m.startswith("can list secrets")]) == 1


def test_kopf_permission_names_the_verb_resource_and_scope() -> None:
    assert kopf_permission(URL) == "watch builds.shipwright.io in all namespaces"
    assert kopf_permission("https://h/api/v1/namespaces/ns/secrets?limit=500") == (
        "list secrets in namespace ns"
    )


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf._cogs.clients.watching", level, "", 0, message, None, None)


def test_kopf_refusals_turn_retries_into_readiness() -> None:
    refusals = KopfRefusals(show_debug=False)
    refused = record(logging.ERROR, f"Request attempt #3 failed; will retry: GET {URL} -> "
                     "APIForbiddenError('builds is forbidden')")  # fmt: skip
    assert refusals.filter(refused) is False  # readiness logs it, once
    assert readiness.failing() == {
        "watch builds.shipwright.io in all namespaces": "APIForbiddenError('builds is forbidden')"
    }
    succeeded = record(logging.DEBUG, f"Request attempt #9 succeeded: GET {URL}")
    assert refusals.filter(succeeded) is False
    assert readiness.ready()
    other = record(logging.ERROR, f"Request attempt #2 failed; will retry: GET {URL} -> "
                   "APIServerError('unavailable')")  # fmt: skip
    assert refusals.filter(other) is True and readiness.ready()
    assert refusals.filter(record(logging.DEBUG, "Starting the watch-stream")) is False
    assert refusals.filter(record(logging.INFO, "something else")) is True


def test_kopf_retries_never_run_out() -> None:
    pauses = list(itertools.islice(iter(RetryForever()), 100))
    assert len(pauses) == 100 and max(pauses) == 30
    assert list(itertools.islice(iter(RetryForever()), 2)) == [1, 1]  # re-iterable

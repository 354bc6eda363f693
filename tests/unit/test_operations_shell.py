"""The small shells of running unattended: JSON logs, the probe endpoints, start-up checks."""

from __future__ import annotations

import io
import json
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from buildwright import cli, health, logs
from buildwright import metrics as exported
from buildwright.config import Settings


def test_json_logs_name_the_object_concerned() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.warning("BuildRun %s/%s: %s", "ns", "run-1", "retrying",
                       extra=logs.about("BuildRun", "ns", "run-1"))  # fmt: skip
        logger.info("no object")
        # kopf's per-object lines carry a k8s_ref.
        logger.info("handled", extra={"k8s_ref": {"kind": "Build", "namespace": "ns",
                                                  "name": "b"}})  # fmt: skip
    finally:
        logger.removeHandler(handler)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "BuildRun ns/run-1: retrying"
    assert (first["namespace"], first["kind"], first["name"]) == ("ns", "BuildRun", "run-1")
    assert first["level"] == "WARNING" and first["logger"] == "test.json"
    assert "name" not in second
    assert (third["kind"], third["name"]) == ("Build", "b")


def test_text_stays_the_default_and_other_formats_are_refused() -> None:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        logs.configure(logging.INFO, {})
        assert not isinstance(root.handlers[0].formatter, logs.JsonFormatter)
        logs.configure(logging.INFO, {"BUILDWRIGHT_LOG_FORMAT": "json"})
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
        with pytest.raises(ValueError, match="BUILDWRIGHT_LOG_FORMAT"):
            logs.configure(logging.INFO, {"BUILDWRIGHT_LOG_FORMAT": "yaml"})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


async def test_readyz_reports_every_failing_check_and_healthz_stays_up() -> None:
    health.reset()
    async with TestClient(TestServer(exported.make_app())) as http:
        assert (await http.get("/readyz")).status == 200
        health.set_not_ready("watch/secrets", "forbidden: list secrets")
        health.set_not_ready("startup", "starting")
        answer = await http.get("/readyz")
        assert answer.status == 503
        assert await answer.text() == "startup: starting\nwatch/secrets: forbidden: list secrets\n"
        assert (await http.get("/healthz")).status == 200
        health.set_ready("startup")
        health.set_ready("watch/secrets")
        assert (await http.get("/readyz")).status == 200
        metrics = await http.get("/metrics")
        assert metrics.status == 200 and "build_buildruns_completed_total" in await metrics.text()
    health.reset()


def test_metrics_listen_on_8383_on_loopback_outside_a_cluster() -> None:
    assert exported.listen_address({}) == ("127.0.0.1", 8383)
    assert exported.listen_address({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) == ("0.0.0.0", 8383)
    assert exported.listen_address({"BUILDWRIGHT_METRICS_PORT": "0"})[1] == 0
    with pytest.raises(ValueError, match="BUILDWRIGHT_METRICS_PORT"):
        exported.listen_address({"BUILDWRIGHT_METRICS_PORT": "http"})


def test_an_operator_outside_the_cluster_says_the_webhook_is_unreachable() -> None:
    problem = cli.unreachable_webhook_problem({})
    assert problem is not None
    assert "BUILDWRIGHT_WEBHOOK_URL" in problem and "BUILDWRIGHT_WEBHOOK=off" in problem
    assert cli.unreachable_webhook_problem({"BUILDWRIGHT_WEBHOOK": "off"}) is None
    assert cli.unreachable_webhook_problem(
        {"BUILDWRIGHT_WEBHOOK_URL": "https://10.0.0.5:8443/convert"}
    ) is None
    assert cli.unreachable_webhook_problem({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) is None


@pytest.mark.parametrize(
    ("environ", "said"),
    [({"PROMETHEUS_BR_COMP_DUR_BUCKETS": "fast"}, "PROMETHEUS_BR_COMP_DUR_BUCKETS"),
     ({"BUILD_CONTROLLER_RENEW_DEADLINE": "20s"}, "renew deadline"),
     ({"BUILDWRIGHT_WEBHOOK_DRAIN_SECONDS": "soon"}, "BUILDWRIGHT_WEBHOOK_DRAIN_SECONDS")],
)  # fmt: skip
def test_bad_settings_are_reported_before_start_up(environ: dict[str, str], said: str) -> None:
    Settings.from_env({})
    with pytest.raises(ValueError, match=said):
        Settings.from_env(environ)

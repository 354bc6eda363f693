"""Trigger settings from the environment: defaults in and out of a cluster, refusals."""

from __future__ import annotations

import pytest

from buildwright.config import DEFAULT_TRIGGER_PORT, TriggerConfig, is_loopback

IN_CLUSTER = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}


def test_in_a_cluster_the_receiver_listens_on_every_address_on_8444_over_tls() -> None:
    config = TriggerConfig.from_env(IN_CLUSTER)
    assert (config.host, config.port, config.tls, config.cluster_scope) == (
        "0.0.0.0", DEFAULT_TRIGGER_PORT, True, False,
    )  # fmt: skip
    assert config.enabled and config.poll_interval == 300


def test_outside_a_cluster_loopback_and_a_free_port() -> None:
    config = TriggerConfig.from_env({})
    assert (config.host, config.port) == ("127.0.0.1", 0)


def test_plain_http_only_on_loopback() -> None:
    assert TriggerConfig.from_env({"BUILDWRIGHT_TRIGGER_TLS": "off"}).tls is False
    with pytest.raises(ValueError, match="only on a loopback"):
        TriggerConfig.from_env({**IN_CLUSTER, "BUILDWRIGHT_TRIGGER_TLS": "off"})
    with pytest.raises(ValueError, match="only on a loopback"):
        TriggerConfig.from_env({"BUILDWRIGHT_TRIGGER_TLS": "off",
                                "BUILDWRIGHT_TRIGGER_HOST": "192.0.2.1"})  # fmt: skip


@pytest.mark.parametrize(("env", "message"), [
    ({"BUILDWRIGHT_TRIGGER_SCOPE": "galaxy"}, "must be namespace or cluster"),
    ({"BUILDWRIGHT_TRIGGER_POLL_INTERVAL": "soon"}, "is not a number"),
    ({"BUILDWRIGHT_TRIGGER_POLL_INTERVAL": "0"}, "at least"),
    ({"BUILDWRIGHT_TRIGGER_BODY_LIMIT": "10"}, "at least"),
    ({"BUILDWRIGHT_TRIGGER_CERT_FILE": "/tls.crt"}, "set both"),
])  # fmt: skip
def test_settings_that_cannot_work_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TriggerConfig.from_env(env)


def test_the_rest_of_the_settings() -> None:
    config = TriggerConfig.from_env({
        "BUILDWRIGHT_TRIGGERS": "off", "BUILDWRIGHT_TRIGGER_SCOPE": "cluster",
        "BUILDWRIGHT_TRIGGER_PORT": "9000", "BUILDWRIGHT_TRIGGER_POLL_INTERVAL": "2.5",
        "BUILDWRIGHT_TRIGGER_INSECURE_REGISTRIES": " 127.0.0.1:5000, Registry.local ",
        "BUILDWRIGHT_TRIGGER_CERT_FILE": "/c", "BUILDWRIGHT_TRIGGER_KEY_FILE": "/k",
    })  # fmt: skip
    assert not config.enabled and config.cluster_scope
    assert (config.port, config.poll_interval) == (9000, 2.5)
    assert config.insecure_registries == frozenset({"127.0.0.1:5000", "registry.local"})
    assert (config.cert_file, config.key_file) == ("/c", "/k")


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")

"""The operator's configuration is parsed once, from a mapping, and refuses what cannot work."""

from __future__ import annotations

import pytest

from buildwright.config import DEFAULT_STATUS_COALESCE_SECONDS, ReconcileConfig, Settings


def test_status_coalescing_defaults_to_one_second() -> None:
    assert ReconcileConfig.from_env({}).status_coalesce_seconds == DEFAULT_STATUS_COALESCE_SECONDS
    assert DEFAULT_STATUS_COALESCE_SECONDS == 1.0


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("0.25", 0.25), ("3", 3.0)])
def test_status_coalescing_is_configurable(value: str, seconds: float) -> None:
    config = ReconcileConfig.from_env({"BUILDWRIGHT_STATUS_COALESCE_SECONDS": value})
    assert config.status_coalesce_seconds == seconds


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_status_coalescing_refuses_nonsense(value: str) -> None:
    with pytest.raises(ValueError, match="BUILDWRIGHT_STATUS_COALESCE_SECONDS"):
        ReconcileConfig.from_env({"BUILDWRIGHT_STATUS_COALESCE_SECONDS": value})


def test_node_level_volume_sources_are_off_unless_listed() -> None:
    assert ReconcileConfig.from_env({}).extra_volume_sources == frozenset()
    listed = {"BUILDWRIGHT_EXTRA_VOLUME_SOURCES": "hostPath, nfs,"}
    assert ReconcileConfig.from_env(listed).extra_volume_sources == {"hostPath", "nfs"}


def test_repository_probe_settings() -> None:
    policy = ReconcileConfig.from_env({}).repository_probe
    assert (policy.enabled, policy.allowed_hosts) == (True, None)
    off = ReconcileConfig.from_env({"BUILDWRIGHT_REPOSITORY_PROBE": "off"})
    assert not off.repository_probe.enabled
    hosts = ReconcileConfig.from_env(
        {"BUILDWRIGHT_REPOSITORY_PROBE": "on",
         "BUILDWRIGHT_REPOSITORY_PROBE_HOSTS": "GitHub.com, gitlab.com"}
    )  # fmt: skip
    assert hosts.repository_probe.allowed_hosts == {"github.com", "gitlab.com"}
    with pytest.raises(ValueError, match="BUILDWRIGHT_REPOSITORY_PROBE"):
        ReconcileConfig.from_env({"BUILDWRIGHT_REPOSITORY_PROBE": "sometimes"})


def test_settings_gather_every_part_from_one_mapping() -> None:
    settings = Settings.from_env(
        {"BUILDWRIGHT_STEP_IMAGE": "registry.example/step:1",
         "BUILDWRIGHT_WEBHOOK_PORT": "9443",
         "BUILDWRIGHT_LEADER_ELECTION": "off",
         "BUILDWRIGHT_METRICS_PORT": "0"},
        namespaces=("team-a",),
    )  # fmt: skip
    assert settings.reconcile.step_image == "registry.example/step:1"
    assert settings.webhook.port == 9443
    assert not settings.election.enabled
    assert settings.metrics_address == ("127.0.0.1", 0)
    assert settings.metrics_port_chosen
    assert settings.namespaces == ("team-a",)
    assert not settings.in_cluster


def test_settings_in_a_cluster_listen_on_every_interface() -> None:
    settings = Settings.from_env({"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert settings.in_cluster and settings.metrics_port_chosen
    assert settings.metrics_address[0] == "0.0.0.0"
    assert settings.webhook.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("name", "value"),
    [("BUILDWRIGHT_WEBHOOK_PORT", "https"), ("BUILDWRIGHT_METRICS_PORT", "99999"),
     ("BUILD_CONTROLLER_LEASE_DURATION", "forever")],
)  # fmt: skip
def test_settings_name_the_variable_that_cannot_work(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})

"""The operator's settings from its environment: defaults, and clear errors for bad values."""

from __future__ import annotations

import pytest

from buildwright.handlers.context import DEFAULT_STATUS_COALESCE_SECONDS, Config


def test_status_coalescing_defaults_to_one_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUILDWRIGHT_STATUS_COALESCE_SECONDS", raising=False)
    assert Config.from_env().status_coalesce_seconds == DEFAULT_STATUS_COALESCE_SECONDS == 1.0


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("2.5", 2.5), ("", 1.0)])
def test_status_coalescing_can_be_set(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: float
) -> None:
    monkeypatch.setenv("BUILDWRIGHT_STATUS_COALESCE_SECONDS", value)
    assert Config.from_env().status_coalesce_seconds == seconds


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_a_bad_status_coalescing_value_stops_the_operator_with_its_name(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("BUILDWRIGHT_STATUS_COALESCE_SECONDS", value)
    with pytest.raises(ValueError, match="BUILDWRIGHT_STATUS_COALESCE_SECONDS"):
        Config.from_env()


def test_node_level_volume_sources_are_off_unless_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUILDWRIGHT_EXTRA_VOLUME_SOURCES", raising=False)
    assert Config.from_env().extra_volume_sources == frozenset()
    monkeypatch.setenv("BUILDWRIGHT_EXTRA_VOLUME_SOURCES", "hostPath, nfs,")
    assert Config.from_env().extra_volume_sources == {"hostPath", "nfs"}


def test_repository_probe_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUILDWRIGHT_REPOSITORY_PROBE", raising=False)
    monkeypatch.delenv("BUILDWRIGHT_REPOSITORY_PROBE_HOSTS", raising=False)
    policy = Config.from_env().repository_probe
    assert (policy.enabled, policy.allowed_hosts) == (True, None)
    monkeypatch.setenv("BUILDWRIGHT_REPOSITORY_PROBE", "off")
    assert not Config.from_env().repository_probe.enabled
    monkeypatch.setenv("BUILDWRIGHT_REPOSITORY_PROBE", "on")
    monkeypatch.setenv("BUILDWRIGHT_REPOSITORY_PROBE_HOSTS", "GitHub.com, gitlab.com")
    assert Config.from_env().repository_probe.allowed_hosts == {"github.com", "gitlab.com"}
    monkeypatch.setenv("BUILDWRIGHT_REPOSITORY_PROBE", "sometimes")
    with pytest.raises(ValueError, match="BUILDWRIGHT_REPOSITORY_PROBE"):
        Config.from_env()

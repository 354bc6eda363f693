"""The conversion webhook's pure decisions: configuration, CRD patch idempotence, rotation."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import pytest

from buildwright.webhook.certificates import (
    MAX_CHECK_INTERVAL,
    MIN_CHECK_INTERVAL,
    Certificate,
    certificate_from_secret,
    generate_certificate,
    merged_ca_bundle,
    renewal_time,
    rotation_due,
    seconds_until_check,
)
from buildwright.webhook.config import WebhookConfig
from buildwright.webhook.crds import patch_would_change

UTC = datetime.UTC
START = datetime.datetime(2025, 1, 1, tzinfo=UTC)
END = START + datetime.timedelta(days=90)


def test_rotation_is_due_once_a_third_of_the_lifetime_remains() -> None:
    assert renewal_time(START, END) == START + datetime.timedelta(days=60)
    assert not rotation_due(START, END, START)
    assert not rotation_due(START, END, START + datetime.timedelta(days=59, hours=23))
    assert rotation_due(START, END, START + datetime.timedelta(days=60))
    assert rotation_due(START, END, END + datetime.timedelta(seconds=1))


def test_rotation_is_due_for_a_certificate_not_yet_valid() -> None:
    assert rotation_due(START, END, START - datetime.timedelta(hours=1))


def test_check_interval_is_bounded() -> None:
    assert seconds_until_check(START, END, START) == MAX_CHECK_INTERVAL
    just_before = renewal_time(START, END) - datetime.timedelta(seconds=600)
    assert seconds_until_check(START, END, just_before) == 600
    assert seconds_until_check(START, END, END) == MIN_CHECK_INTERVAL


def test_from_env_defaults_outside_a_cluster() -> None:
    config = WebhookConfig.from_env({})
    assert config == WebhookConfig(
        enabled=True, host="127.0.0.1", port=8443, namespace="buildwright", url=None
    )


def test_from_env_in_cluster_and_overrides() -> None:
    assert WebhookConfig.from_env({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}).host == "0.0.0.0"
    config = WebhookConfig.from_env(
        {
            "BUILDWRIGHT_WEBHOOK": "off",
            "BUILDWRIGHT_WEBHOOK_PORT": "9443",
            "BUILDWRIGHT_NAMESPACE": "shp",
            "BUILDWRIGHT_WEBHOOK_URL": "https://127.0.0.1:9443/convert",
            "BUILDWRIGHT_WEBHOOK_CERT_SECRET": "webhook-tls",
        }
    )
    assert (config.enabled, config.port, config.namespace) == (False, 9443, "shp")
    assert config.url == "https://127.0.0.1:9443/convert"
    assert config.cert_secret == "webhook-tls"
    service = "buildwright-webhook.shp.svc"
    assert config.hostnames == [service, f"{service}.cluster.local", "localhost"]


def test_from_env_rejects_a_bad_port() -> None:
    with pytest.raises(ValueError, match="BUILDWRIGHT_WEBHOOK_PORT"):
        WebhookConfig.from_env({"BUILDWRIGHT_WEBHOOK_PORT": "https"})


def test_crd_patch_uses_the_service_unless_a_url_is_given() -> None:
    service = WebhookConfig(namespace="shp").crd_patch(b"CA")["spec"]["conversion"]["webhook"]
    assert service["clientConfig"]["service"] == {
        "namespace": "shp", "name": "buildwright-webhook", "port": 443, "path": "/convert",
    }  # fmt: skip
    assert service["clientConfig"]["url"] is None
    url = WebhookConfig(url="https://127.0.0.1:1/convert").crd_patch(b"CA")
    client_config = url["spec"]["conversion"]["webhook"]["clientConfig"]
    assert client_config["url"] == "https://127.0.0.1:1/convert"
    assert client_config["service"] is None
    assert base64.b64decode(client_config["caBundle"]) == b"CA"


def test_patch_would_change_only_when_the_crd_differs() -> None:
    patch = WebhookConfig(url="https://127.0.0.1:1/convert").crd_patch(b"CA")
    crd: dict[str, Any] = {
        "metadata": {"name": "builds.shipwright.io"},
        "spec": {
            "group": "shipwright.io",
            "conversion": {
                "strategy": "Webhook",
                "webhook": {
                    "conversionReviewVersions": ["v1"],
                    "clientConfig": {
                        "url": "https://127.0.0.1:1/convert",
                        "caBundle": base64.b64encode(b"CA").decode(),
                    },
                },
            },
        },
    }
    assert not patch_would_change(crd, patch)
    other_ca = WebhookConfig(url="https://127.0.0.1:1/convert").crd_patch(b"CA2")
    assert patch_would_change(crd, other_ca)
    crd["spec"]["conversion"]["webhook"]["clientConfig"]["service"] = {"name": "x"}
    assert patch_would_change(crd, patch), "a stale service reference must be removed"
    assert patch_would_change({"spec": {}}, patch)


def test_merged_ca_bundle_keeps_the_previous_ca_during_rotation() -> None:
    assert merged_ca_bundle(b"NEW\n", None) == b"NEW\n"
    assert merged_ca_bundle(b"NEW\n", b"NEW\n") == b"NEW\n"
    assert merged_ca_bundle(b"NEW\n", b"OLD\n") == b"NEW\nOLD\n"


def test_generated_certificate_lifetime() -> None:
    certificate = generate_certificate(WebhookConfig(), days=30)
    lifetime = certificate.not_after - certificate.not_before
    assert datetime.timedelta(days=30) <= lifetime <= datetime.timedelta(days=30, minutes=10)
    now = datetime.datetime.now(UTC)
    assert not rotation_due(certificate.not_before, certificate.not_after, now)
    assert rotation_due(
        certificate.not_before, certificate.not_after, now + datetime.timedelta(days=21)
    )


def test_certificate_from_secret() -> None:
    generated = generate_certificate(WebhookConfig())

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    secret = {
        "metadata": {"name": "webhook-tls"},
        "data": {
            "tls.crt": b64(generated.cert),
            "tls.key": b64(generated.key),
            "ca.crt": b64(generated.ca),
        },
    }
    assert certificate_from_secret(secret) == generated
    del secret["data"]["ca.crt"]
    assert certificate_from_secret(secret) == Certificate(
        ca=generated.cert, cert=generated.cert, key=generated.key
    )
    del secret["data"]["tls.key"]
    with pytest.raises(ValueError, match=r"webhook-tls has no tls\.key"):
        certificate_from_secret(secret)

"""Where the conversion webhook listens, how the apiserver reaches it (a Service in a cluster,
a URL on a local control plane) and where its certificate comes from; and the CRD patch that
says so (`spec.conversion.webhook.clientConfig` with the CA as `caBundle`)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SERVICE_NAME = "buildwright-webhook"
SERVICE_PORT = 443
DEFAULT_PORT = 8443
DEFAULT_NAMESPACE = "buildwright"
DEFAULT_MANAGED_SECRET = "buildwright-webhook-cert"


# On shutdown the webhook keeps answering this long (closing each connection after its
# answer) while the Service takes the terminating Pod out of its endpoints.
DEFAULT_DRAIN_SECONDS = 3.0
_OFF_VALUES = frozenset({"off", "false", "0", "no", "disabled"})


@dataclass(frozen=True)
class WebhookConfig:
    """Where the webhook listens, how the apiserver reaches it, where its certificate is from."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    namespace: str = DEFAULT_NAMESPACE
    url: str | None = None
    cert_secret: str | None = None
    managed_secret: str | None = DEFAULT_MANAGED_SECRET
    drain_seconds: float = DEFAULT_DRAIN_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookConfig:
        in_cluster = bool(env.get("KUBERNETES_SERVICE_HOST"))
        port_text = env.get("BUILDWRIGHT_WEBHOOK_PORT", "") or str(DEFAULT_PORT)
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(
                f"BUILDWRIGHT_WEBHOOK_PORT must be a port number, got {port_text!r}"
            ) from None
        if not 0 <= port <= 65535:
            raise ValueError(f"BUILDWRIGHT_WEBHOOK_PORT out of range: {port}")
        return cls(
            enabled=env.get("BUILDWRIGHT_WEBHOOK", "on").strip().lower() not in _OFF_VALUES,
            host=env.get("BUILDWRIGHT_WEBHOOK_HOST") or ("0.0.0.0" if in_cluster else "127.0.0.1"),
            port=port,
            namespace=env.get("BUILDWRIGHT_NAMESPACE") or DEFAULT_NAMESPACE,
            url=env.get("BUILDWRIGHT_WEBHOOK_URL") or None,
            cert_secret=env.get("BUILDWRIGHT_WEBHOOK_CERT_SECRET") or None,
            managed_secret=_managed_secret(env.get("BUILDWRIGHT_WEBHOOK_SECRET")),
            drain_seconds=_seconds(env, "BUILDWRIGHT_WEBHOOK_DRAIN_SECONDS", DEFAULT_DRAIN_SECONDS),
        )

    @property
    def hostnames(self) -> list[str]:
        """DNS names the generated certificate is valid for (service form and loopback)."""
        service = f"{SERVICE_NAME}.{self.namespace}.svc"
        return [service, f"{service}.cluster.local", "localhost"]

    @property
    def ip_addresses(self) -> list[str]:
        return ["127.0.0.1"]

    def crd_patch(self, ca_bundle: bytes) -> dict[str, Any]:
        """The merge patch pointing a CRD's conversion at this webhook."""
        if self.url is not None:
            return ca_bundle_patch(ca_bundle, url=self.url)
        return ca_bundle_patch(ca_bundle, service=(self.namespace, SERVICE_NAME, SERVICE_PORT))


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {text!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


def _managed_secret(value: str | None) -> str | None:
    if value is None or not value.strip():
        return DEFAULT_MANAGED_SECRET
    return None if value.strip().lower() in _OFF_VALUES else value.strip()


CONVERT_PATH = "/convert"


def ca_bundle_patch(
    ca_pem: bytes,
    *,
    url: str | None = None,
    service: tuple[str, str, int] | None = None,
) -> dict[str, Any]:
    """The JSON merge patch pointing a CRD's conversion at this webhook.

    Give exactly one of `url` (the full URL including `/convert`, e.g. against a local control
    plane) or `service` = (namespace, name, port) for the in-cluster Service. The other
    reference is set to null so that switching between the two leaves nothing stale behind.
    """
    if (url is None) == (service is None):
        raise ValueError("give exactly one of url or service")
    client_config: dict[str, Any] = {"caBundle": base64.b64encode(ca_pem).decode("ascii")}
    if url is not None:
        client_config.update(url=url, service=None)
    else:
        assert service is not None
        namespace, name, port = service
        client_config.update(
            service={"namespace": namespace, "name": name, "port": port, "path": CONVERT_PATH},
            url=None,
        )
    return {
        "spec": {
            "conversion": {
                "strategy": "Webhook",
                "webhook": {"clientConfig": client_config, "conversionReviewVersions": ["v1"]},
            }
        }
    }

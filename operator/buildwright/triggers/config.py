"""Trigger settings, read once from the environment at start-up.

  BUILDWRIGHT_TRIGGERS=off                 neither receiver nor poller (default on)
  BUILDWRIGHT_TRIGGER_HOST / _PORT         where the receiver listens: 0.0.0.0:8444 in a
                                           cluster, else 127.0.0.1 on a free port (logged)
  BUILDWRIGHT_TRIGGER_TLS=off              plain HTTP; refused unless the host is loopback
  BUILDWRIGHT_TRIGGER_CERT_FILE / _KEY_FILE  the certificate to serve; without them a
                                           self-signed one is made at start (a proxy in
                                           front presents the public certificate)
  BUILDWRIGHT_TRIGGER_SCOPE=namespace|cluster  `/hooks/<namespace>/<provider>` only, or
                                           also `/hooks/<provider>` matching every namespace
  BUILDWRIGHT_TRIGGER_BODY_LIMIT           bytes (1 MiB)
  BUILDWRIGHT_TRIGGER_POLL_INTERVAL        seconds between digest lookups of an image (300)
  BUILDWRIGHT_TRIGGER_INSECURE_REGISTRIES  hosts[:port] polled over plain HTTP / unverified TLS
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from buildwright.core.triggers import DEFAULT_BODY_LIMIT

DEFAULT_PORT = 8444
DEFAULT_POLL_INTERVAL = 300.0
_OFF = frozenset({"off", "false", "0", "no", "disabled"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TriggerConfig:
    enabled: bool = True
    """Serve webhooks and poll images at all."""
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    """0 picks a free port (logged)."""
    tls: bool = True
    """HTTPS; plain HTTP only on a loopback address (local runs and tests)."""
    cert_file: str | None = None
    key_file: str | None = None
    cluster_scope: bool = False
    """Whether `/hooks/<provider>` matches Builds of every namespace the operator serves."""
    body_limit: int = DEFAULT_BODY_LIMIT
    poll_interval: float = DEFAULT_POLL_INTERVAL
    insecure_registries: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TriggerConfig:

        def number(name: str, default: float, minimum: float) -> float:
            text = env.get(name, "").strip()
            try:
                value = float(text) if text else default
            except ValueError:
                raise ValueError(f"{name}={text!r} is not a number") from None
            if value < minimum:
                raise ValueError(f"{name} must be at least {minimum:g}")
            return value

        # Out of a cluster (make run, tests) loopback on a free port unless told otherwise:
        # two operators on one machine do not collide, and nothing listens beyond it.
        in_cluster = bool(env.get("KUBERNETES_SERVICE_HOST"))
        host = env.get("BUILDWRIGHT_TRIGGER_HOST", "").strip() or (
            "0.0.0.0" if in_cluster else "127.0.0.1"
        )
        default_port = DEFAULT_PORT if in_cluster else 0
        tls = env.get("BUILDWRIGHT_TRIGGER_TLS", "on").strip().lower() not in _OFF
        if not tls and not is_loopback(host):
            raise ValueError(
                "BUILDWRIGHT_TRIGGER_TLS=off serves webhook secrets' proofs in clear text: only "
                f"on a loopback BUILDWRIGHT_TRIGGER_HOST, not {host!r}"
            )
        scope = env.get("BUILDWRIGHT_TRIGGER_SCOPE", "namespace").strip().lower()
        if scope not in ("namespace", "cluster"):
            raise ValueError(f"BUILDWRIGHT_TRIGGER_SCOPE={scope!r} must be namespace or cluster")
        cert = env.get("BUILDWRIGHT_TRIGGER_CERT_FILE")
        key = env.get("BUILDWRIGHT_TRIGGER_KEY_FILE")
        if bool(cert) != bool(key):
            raise ValueError("set both BUILDWRIGHT_TRIGGER_CERT_FILE and _KEY_FILE, or neither")
        insecure = env.get("BUILDWRIGHT_TRIGGER_INSECURE_REGISTRIES", "").split(",")
        return cls(
            enabled=env.get("BUILDWRIGHT_TRIGGERS", "on").strip().lower() not in _OFF,
            host=host,
            port=int(number("BUILDWRIGHT_TRIGGER_PORT", default_port, 0)),
            tls=tls,
            cert_file=cert or None,
            key_file=key or None,
            cluster_scope=scope == "cluster",
            body_limit=int(number("BUILDWRIGHT_TRIGGER_BODY_LIMIT", DEFAULT_BODY_LIMIT, 1024)),
            poll_interval=number("BUILDWRIGHT_TRIGGER_POLL_INTERVAL", DEFAULT_POLL_INTERVAL, 0.1),
            insecure_registries=frozenset(h.strip().lower() for h in insecure if h.strip()),
        )

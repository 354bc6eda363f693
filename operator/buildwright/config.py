"""The operator's configuration: parsed once, at start, from the environment the Deployment
sets and the command line's flags, and handed to everything that needs it.

Nothing below reads `os.environ` itself: `Settings.from_env` is the one place, so a setting
that cannot work stops the process before it starts, with the variable's name in the message,
and tests build a `Settings` directly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from buildwright import leader
from buildwright.core.metrics import MetricsSettings
from buildwright.core.triggers import DEFAULT_BODY_LIMIT
from buildwright.core.validation import ProbePolicy
from buildwright.metrics import DEFAULT_PORT as DEFAULT_METRICS_PORT
from buildwright.metrics import PORT_ENV as METRICS_PORT_ENV
from buildwright.metrics import listen_address
from buildwright.webhook.config import WebhookConfig

DEFAULT_STEP_IMAGE = "ghcr.io/buildwright/buildwright:0.1.0"
DEFAULT_STATUS_COALESCE_SECONDS = 1.0


@dataclass(frozen=True)
class ReconcileConfig:
    """What the reconcilers of Builds and BuildRuns are configured with."""

    step_image: str = DEFAULT_STEP_IMAGE
    """Image of our in-Pod step programs (git source, image processing, results)."""

    forbidden_env: tuple[str, ...] | None = None
    """Override of the forbidden environment variable names (`*` suffix = prefix)."""

    status_coalesce_seconds: float = DEFAULT_STATUS_COALESCE_SECONDS
    """How long in-progress status changes of a BuildRun may wait to be written together
    (`core.status_writes.write_deadline`); 0 writes every change at once."""

    extra_volume_sources: frozenset[str] = frozenset()
    """Volume sources Builds and BuildRuns may use in overrides besides the ones the Pod
    Security Standard "restricted" allows (e.g. `hostPath`): trusted clusters only."""

    repository_probe: ProbePolicy = field(default_factory=ProbePolicy)
    """Whether and which repositories `build.shipwright.io/verify.repository` may probe:
    BUILDWRIGHT_REPOSITORY_PROBE=off turns it off, BUILDWRIGHT_REPOSITORY_PROBE_HOSTS (comma
    separated) limits it to those hosts."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ReconcileConfig:
        forbidden = environ.get("FORBIDDEN_ENV_VAR_NAMES")
        coalesce = environ.get("BUILDWRIGHT_STATUS_COALESCE_SECONDS", "")
        try:
            coalesce_seconds = float(coalesce) if coalesce else DEFAULT_STATUS_COALESCE_SECONDS
        except ValueError:
            raise ValueError(
                f"BUILDWRIGHT_STATUS_COALESCE_SECONDS={coalesce!r} is not a number of seconds"
            ) from None
        if coalesce_seconds < 0:
            raise ValueError("BUILDWRIGHT_STATUS_COALESCE_SECONDS must not be negative")
        extra_sources = environ.get("BUILDWRIGHT_EXTRA_VOLUME_SOURCES", "").split(",")
        probe = environ.get("BUILDWRIGHT_REPOSITORY_PROBE", "on").strip().lower()
        if probe not in ("on", "off"):
            raise ValueError(f"BUILDWRIGHT_REPOSITORY_PROBE={probe!r} must be on or off")
        hosts = environ.get("BUILDWRIGHT_REPOSITORY_PROBE_HOSTS", "").split(",")
        allowed = frozenset(h.strip().lower() for h in hosts if h.strip())
        return cls(
            repository_probe=ProbePolicy(enabled=probe == "on", allowed_hosts=allowed or None),
            extra_volume_sources=frozenset(n.strip() for n in extra_sources if n.strip()),
            step_image=environ.get("BUILDWRIGHT_STEP_IMAGE", DEFAULT_STEP_IMAGE),
            status_coalesce_seconds=coalesce_seconds,
            forbidden_env=tuple(n.strip() for n in forbidden.split(",") if n.strip())
            if forbidden
            else None,
        )


DEFAULT_TRIGGER_PORT = 8444
DEFAULT_POLL_INTERVAL = 300.0
_OFF = frozenset({"off", "false", "0", "no", "disabled"})


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TriggerConfig:
    """spec.trigger's webhook receiver and image poller (docs/triggers.md):

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

    enabled: bool = True
    """Serve webhooks and poll images at all."""
    host: str = "0.0.0.0"
    port: int = DEFAULT_TRIGGER_PORT
    """0 picks a free port (logged)."""
    tls: bool = True
    """HTTPS; plain HTTP only on a loopback address (local runs and tests)."""
    cert_file: str | None = None
    key_file: str | None = None
    """The certificate served; without them one is generated, self-signed, at start."""
    cluster_scope: bool = False
    """Whether `/hooks/<provider>` matches Builds of every namespace the operator serves."""
    body_limit: int = DEFAULT_BODY_LIMIT
    """Bodies larger than this many bytes are refused unread (413)."""
    poll_interval: float = DEFAULT_POLL_INTERVAL
    """Seconds between two digest lookups of a watched image."""
    insecure_registries: frozenset[str] = frozenset()
    """Registries (`host[:port]`) polled over plain HTTP or unverified TLS."""

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
        default_port = DEFAULT_TRIGGER_PORT if in_cluster else 0
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


@dataclass(frozen=True)
class Settings:
    """Everything the operator process is configured with."""

    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    """Step image, forbidden env names, status coalescing, volume sources, repository probe."""

    namespaces: tuple[str, ...] = ()
    """The namespaces served (`--namespace`, repeatable); empty serves all of them."""

    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    """The v1alpha1 conversion webhook: listen address, how the apiserver reaches it, its
    certificate."""

    election: leader.ElectionConfig = field(default_factory=leader.ElectionConfig)
    """The leader Lease and its timings."""

    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    """Histogram buckets and the optional labels of Shipwright's metrics."""

    metrics_address: tuple[str, int] = ("127.0.0.1", DEFAULT_METRICS_PORT)
    """Where /metrics, /healthz and /readyz are served."""

    metrics_port_chosen: bool = False
    """Whether the metrics port was set explicitly (or in a cluster): then a taken port is an
    error instead of a reason to pick a free one."""

    in_cluster: bool = False
    """Running in a Pod (the apiserver's Service environment is set)."""

    triggers: TriggerConfig = field(default_factory=TriggerConfig)
    """spec.trigger: the webhook receiver (address, TLS, scope, body limit) and the image
    poller (interval, insecure registries); docs/triggers.md."""

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, namespaces: tuple[str, ...] = ()
    ) -> Settings:
        """Parse every setting; a ValueError names the variable that cannot work."""
        in_cluster = bool(environ.get("KUBERNETES_SERVICE_HOST"))
        return cls(
            reconcile=ReconcileConfig.from_env(environ),
            namespaces=namespaces,
            webhook=WebhookConfig.from_env(environ),
            election=leader.ElectionConfig.from_env(environ),
            metrics=MetricsSettings.from_env(environ),
            metrics_address=listen_address(environ),
            metrics_port_chosen=in_cluster or bool(environ.get(METRICS_PORT_ENV)),
            in_cluster=in_cluster,
            triggers=TriggerConfig.from_env(environ),
        )

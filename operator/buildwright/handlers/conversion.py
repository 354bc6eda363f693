"""Serve the v1alpha1 ↔ v1beta1 conversion webhook from the operator process.

kopf already runs an aiohttp event loop, so the webhook (`buildwright.webhook`) is one more
aiohttp site in it: no second Deployment, no sidecar. At start-up the operator obtains a
serving certificate (generated here, or read from a cert-manager style Secret), starts HTTPS,
and points the four shipwright.io CRDs' `spec.conversion.webhook.clientConfig` at itself with
the CA as `caBundle`. A background task renews the certificate before it expires.

Configuration (environment):
  BUILDWRIGHT_WEBHOOK=off            disable all of this (tests that need no v1alpha1)
  BUILDWRIGHT_WEBHOOK_PORT           listen port, default 8443 (the Service maps 443 to it)
  BUILDWRIGHT_WEBHOOK_HOST           bind address; 0.0.0.0 in a cluster, else 127.0.0.1
  BUILDWRIGHT_WEBHOOK_URL            when set, the CRDs get `clientConfig.url` (local control
                                     plane); otherwise `clientConfig.service`
  BUILDWRIGHT_NAMESPACE              the Service's (and Secret's) namespace, default buildwright
  BUILDWRIGHT_WEBHOOK_CERT_SECRET    read tls.crt/tls.key/ca.crt from this Secret, renewed by
                                     someone else (cert-manager); never written
  BUILDWRIGHT_WEBHOOK_SECRET         the Secret the operator keeps its own certificate in,
                                     default buildwright-webhook-cert; `off` keeps it in memory
  BUILDWRIGHT_WEBHOOK_DRAIN_SECONDS  on shutdown, keep serving this long (default 3), each
                                     answer closing its connection, before stopping

The operator's own certificate is generated once, by the first replica that finds the
Secret empty (writes are conditional on its resourceVersion: of two replicas starting
together, one writes and the other reads what it wrote), reused by every replica and every
restart, and renewed by the leader when a third of its lifetime remains; the others pick the
renewal up from the Secret. The CRDs are patched only when they do not trust the served CA
yet, so a restart writes nothing. Where the Secret cannot be created (its namespace does not
exist, as on a bare local control plane) a certificate is generated in memory, as before.

`WebhookServer` and the module-level functions carry no kopf dependency, so the integration
tests run exactly the start-up path without an operator.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
from aiohttp import web
from cryptography import x509

from buildwright import health
from buildwright import kube as api
from buildwright.kube import Kube
from buildwright.webhook import (
    DRAINING,
    ca_bundle_patch,
    generate_self_signed,
    reload_certificate,
    serve,
)

logger = logging.getLogger("buildwright.webhook")

SERVICE_NAME = "buildwright-webhook"
SERVICE_PORT = 443
DEFAULT_PORT = 8443
DEFAULT_NAMESPACE = "buildwright"
DEFAULT_MANAGED_SECRET = "buildwright-webhook-cert"
HEALTH_CHECK = "webhook"
# On shutdown the webhook keeps answering this long (closing each connection after its
# answer) while the Service takes the terminating Pod out of its endpoints.
DEFAULT_DRAIN_SECONDS = 3.0
CRD_NAMES = (
    "builds.shipwright.io",
    "buildruns.shipwright.io",
    "buildstrategies.shipwright.io",
    "clusterbuildstrategies.shipwright.io",
)
# A generated certificate lives 90 days and is replaced after 60: short enough that a leaked
# key is not useful for long, long enough that rotation is a rare event.
GENERATED_DAYS = 90
# Renew when less than this share of the lifetime remains (cert-manager's default, too).
RENEW_REMAINING_FRACTION = 1 / 3
# Upper bound between checks: a renewed Secret is picked up within this time even when the
# certificate we serve is still far from its renewal point.
MAX_CHECK_INTERVAL = 3600.0
# Lower bound, so that a failing renewal (API down, Secret not yet renewed) is retried without
# spinning.
MIN_CHECK_INTERVAL = 60.0

_OFF_VALUES = frozenset({"off", "false", "0", "no", "disabled"})


# --------------------------------------------------------------------------- configuration


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
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookConfig:
        env = os.environ if environ is None else environ
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


# --------------------------------------------------------------------------- pure decisions


def trusted_patch(crd: Any, patch: dict[str, Any], ca: bytes) -> dict[str, Any]:
    """`patch` with the CRD's present caBundle kept when that bundle already trusts `ca`: a
    restart (same certificate), or a replica starting after a rotation whose bundle still
    holds the previous CA too, then changes nothing."""
    try:
        current = crd["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"]
        bundle = base64.b64decode(current)
    except (KeyError, TypeError, ValueError):
        return patch
    if ca.strip() not in bundle:
        return patch
    kept = copy.deepcopy(patch)
    kept["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] = current
    return kept


def certificate_usable(certificate: Certificate | None, now: datetime.datetime) -> bool:
    """A certificate from our Secret can be served as it is (present, not due for renewal)."""
    return certificate is not None and not rotation_due(
        certificate.not_before, certificate.not_after, now
    )


def patch_would_change(target: Any, patch: Any) -> bool:
    """Whether applying JSON merge `patch` to `target` would change it.

    Used so that a restart with the same certificate (a Secret) writes nothing: each CRD
    update makes every apiserver rebuild the CRD's handlers.
    """
    if not isinstance(patch, dict):
        return bool(target != patch)
    if not isinstance(target, dict):
        return True
    for key, value in patch.items():
        if value is None:
            if key in target:
                return True
        elif key not in target or patch_would_change(target[key], value):
            return True
    return False


def renewal_time(not_before: datetime.datetime, not_after: datetime.datetime) -> datetime.datetime:
    """When a certificate valid from `not_before` to `not_after` should be replaced."""
    return not_after - (not_after - not_before) * RENEW_REMAINING_FRACTION


def rotation_due(
    not_before: datetime.datetime, not_after: datetime.datetime, now: datetime.datetime
) -> bool:
    """True once less than a third of the certificate's lifetime remains (or it is invalid)."""
    return now >= renewal_time(not_before, not_after) or now < not_before


def seconds_until_check(
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    now: datetime.datetime,
    *,
    max_interval: float = MAX_CHECK_INTERVAL,
    min_interval: float = MIN_CHECK_INTERVAL,
) -> float:
    """How long the rotation task sleeps before it looks again."""
    remaining = (renewal_time(not_before, not_after) - now).total_seconds()
    return max(min_interval, min(max_interval, remaining))


def merged_ca_bundle(new_ca: bytes, previous_ca: bytes | None) -> bytes:
    """The caBundle while a new CA takes over: the apiserver must trust the certificate
    served before `reload_certificate` as well as the one served after it."""
    if not previous_ca or previous_ca.strip() == new_ca.strip():
        return new_ca
    return new_ca.rstrip(b"\n") + b"\n" + previous_ca


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Certificate:
    """PEM material: the CA the apiserver trusts, the serving certificate and its key."""

    ca: bytes
    cert: bytes
    key: bytes

    def _x509(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert)

    @property
    def not_before(self) -> datetime.datetime:
        return self._x509().not_valid_before_utc

    @property
    def not_after(self) -> datetime.datetime:
        return self._x509().not_valid_after_utc


def generate_certificate(config: WebhookConfig, days: int = GENERATED_DAYS) -> Certificate:
    ca, cert, key = generate_self_signed(config.hostnames, config.ip_addresses, days)
    return Certificate(ca=ca, cert=cert, key=key)


def secret_data(certificate: Certificate) -> dict[str, str]:
    """The Secret `data` holding `certificate` (cert-manager's keys)."""
    return {
        key: base64.b64encode(value).decode("ascii")
        for key, value in (
            ("tls.crt", certificate.cert),
            ("tls.key", certificate.key),
            ("ca.crt", certificate.ca),
        )
    }


def stored_certificate(secret: Mapping[str, Any] | None) -> Certificate | None:
    """The certificate in our own Secret; None while it is empty or unreadable."""
    if secret is None:
        return None
    try:
        return certificate_from_secret(secret)
    except (ValueError, TypeError):
        return None


def certificate_from_secret(secret: Mapping[str, Any]) -> Certificate:
    """tls.crt/tls.key/ca.crt of a kubernetes.io/tls Secret (cert-manager's layout).

    Without ca.crt the serving certificate must be self-signed and is its own CA.
    """
    data = secret.get("data") or {}
    name = (secret.get("metadata") or {}).get("name", "?")
    missing = [k for k in ("tls.crt", "tls.key") if not data.get(k)]
    if missing:
        raise ValueError(f"Secret {name} has no {' and no '.join(missing)}")
    cert = base64.b64decode(data["tls.crt"])
    key = base64.b64decode(data["tls.key"])
    ca = base64.b64decode(data["ca.crt"]) if data.get("ca.crt") else cert
    return Certificate(ca=ca, cert=cert, key=key)


def _write_private(path: Path, content: bytes) -> None:
    # Write-then-rename so a concurrent TLS handshake never loads half a key.
    partial = path.with_suffix(path.suffix + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.replace(partial, path)


# --------------------------------------------------------------------------- CRDs


async def point_crds_at_webhook(
    kube: Kube, patch: dict[str, Any], *, keep_trusting: bytes | None = None
) -> list[str]:
    """Merge-patch the shipwright.io CRDs that differ from `patch`; the names patched.
    With `keep_trusting`, a CRD whose caBundle already holds that CA keeps its bundle.

    A CRD that is not installed is skipped with a warning: the operator may be started before
    its CRDs, and the next rotation (or restart) patches it.
    """
    patched = []
    for name in CRD_NAMES:
        crd = await kube.get(api.CRDS, None, name)
        if crd is None:
            logger.warning("CRD %s is not installed; its conversion webhook is not set", name)
            continue
        wanted = patch if keep_trusting is None else trusted_patch(crd, patch, keep_trusting)
        if patch_would_change(crd, wanted):
            await kube.merge_patch(api.CRDS, None, name, wanted)
            patched.append(name)
    return patched


# --------------------------------------------------------------------------- the server


class WebhookServer:
    """The HTTPS conversion endpoint, its certificate files and the CRDs pointing at it."""

    def __init__(
        self, config: WebhookConfig, kube: Kube, *, leading: Callable[[], bool] = lambda: True
    ) -> None:
        self.config = config
        self.kube = kube
        # Only the leader renews the operator's own certificate; every replica serves.
        self.leading = leading
        # Where the certificate comes from: "external" (cert-manager's Secret), "managed" (our
        # Secret) or "memory" (generated here, lost on restart).
        self.source = "external" if config.cert_secret else (
            "managed" if config.managed_secret else "memory"
        )
        self.certificate: Certificate | None = None
        self.ca_bundle: bytes | None = None
        self._runner: web.AppRunner | None = None
        self._rotation: asyncio.Task[None] | None = None
        # mkdtemp creates the directory 0700: the key is readable by this user only.
        self._dir = Path(tempfile.mkdtemp(prefix="buildwright-webhook-"))
        self.cert_file = self._dir / "tls.crt"
        self.key_file = self._dir / "tls.key"

    @property
    def port(self) -> int:
        """The port actually bound (differs from the configured one when that was 0)."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the webhook is not serving")
        return int(self._runner.addresses[0][1])

    async def _obtain(
        self, *, renew: bool = False, now: datetime.datetime | None = None
    ) -> Certificate:
        if self.source == "managed":
            moment = now or datetime.datetime.now(datetime.UTC)
            managed = await self._obtain_managed(renew=renew, now=moment)
            if managed is not None:
                return managed
            self.source = "memory"
        if self.config.cert_secret is None:
            return generate_certificate(self.config)
        secret = await self.kube.get(api.SECRETS, self.config.namespace, self.config.cert_secret)
        if secret is None:
            raise ValueError(
                f"webhook certificate Secret {self.config.namespace}/{self.config.cert_secret}"
                " not found"
            )
        return certificate_from_secret(secret)

    async def _obtain_managed(self, *, renew: bool, now: datetime.datetime) -> Certificate | None:
        """The certificate in our Secret, generated and stored first when it is empty (or
        due at `now` and `renew`); None when the Secret cannot be kept (memory fallback)."""
        namespace, name = self.config.namespace, self.config.managed_secret
        assert name is not None
        for _attempt in range(3):
            try:
                secret = await self.kube.get(api.SECRETS, namespace, name)
            except api.ApiError as error:
                if error.status == 403:
                    logger.warning("cannot read Secret %s/%s (%s); certificate kept in memory",
                                   namespace, name, error)  # fmt: skip
                    return None
                raise
            stored = stored_certificate(secret)
            if stored is not None and (certificate_usable(stored, now) or not renew):
                return stored
            fresh = generate_certificate(self.config)
            try:
                if secret is None:
                    await self.kube.create(api.SECRETS, namespace, {
                        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": name, "namespace": namespace},
                        "data": secret_data(fresh),
                    })  # fmt: skip
                else:
                    # Conditional on the resourceVersion read: another replica may be first.
                    await self.kube.replace(
                        api.SECRETS, namespace, name, {**secret, "data": secret_data(fresh)}
                    )
            except api.ApiError as error:
                if error.conflict:
                    continue  # another replica wrote it first: use theirs
                if secret is None and error.status in (403, 404):
                    logger.warning("cannot create Secret %s/%s (%s); certificate kept in memory",
                                   namespace, name, error.reason)  # fmt: skip
                    return None
                raise
            logger.info("webhook certificate %s in Secret %s/%s",
                        "stored" if stored is None else "renewed", namespace, name)  # fmt: skip
            return fresh
        raise RuntimeError(f"Secret {namespace}/{name} kept changing while it was written")

    def _write(self, certificate: Certificate) -> None:
        _write_private(self.cert_file, certificate.cert)
        _write_private(self.key_file, certificate.key)

    async def start(self) -> None:
        """Serve, then patch the CRDs: the apiserver only trusts a server that is up."""
        certificate = await self._obtain()
        self._write(certificate)
        self._runner = await serve(
            self.config.host, self.config.port, str(self.cert_file), str(self.key_file)
        )
        self.certificate = certificate
        # A restart with the certificate the CRDs already trust patches nothing.
        await self._publish(certificate.ca, keep_trusting=certificate.ca)
        logger.info(
            "conversion webhook serving on %s:%d until %s; CRDs point at %s",
            self.config.host,
            self.port,
            certificate.not_after.isoformat(),
            self.config.url or f"service {self.config.namespace}/{SERVICE_NAME}",
        )

    async def _publish(self, ca_bundle: bytes, *, keep_trusting: bytes | None = None) -> None:
        patched = await point_crds_at_webhook(
            self.kube, self.config.crd_patch(ca_bundle), keep_trusting=keep_trusting
        )
        self.ca_bundle = ca_bundle
        if patched:
            logger.info("conversion webhook set in %s", ", ".join(patched))

    async def drain(self, seconds: float) -> None:
        """Keep serving for `seconds`, closing each connection after its answer: meanwhile
        the Service stops sending new connections here (the Pod is terminating), and the
        apiserver's open ones end cleanly instead of breaking under a request."""
        if self._runner is None or seconds <= 0:
            return
        self._runner.app[DRAINING].on = True
        await asyncio.sleep(seconds)

    async def restart(self) -> None:
        """Serve again with the current certificate after `pause` (tests: webhook down)."""
        self._runner = await serve(
            self.config.host, self.config.port, str(self.cert_file), str(self.key_file)
        )

    async def pause(self) -> None:
        """Stop listening but keep the certificate and the CRDs as they are."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def rotate(self, *, now: datetime.datetime | None = None, force: bool = False) -> bool:
        """Replace the certificate when due (a Secret: whenever it changed); True if replaced.

        The CRDs first trust old and new CA, then the server switches, so no request fails
        in between; the old CA leaves the bundle at the next rotation.
        """
        current = self.certificate
        if current is None:
            raise RuntimeError("the webhook has not started")
        moment = now or datetime.datetime.now(datetime.UTC)
        if self.source == "memory":
            if not force and not rotation_due(current.not_before, current.not_after, moment):
                return False
            fresh = generate_certificate(self.config)
        elif self.source == "managed":
            due = force or rotation_due(current.not_before, current.not_after, moment)
            # The leader renews the Secret; the others follow what is stored there.
            fresh = await self._obtain(renew=due and self.leading(), now=moment)
            if fresh == current:
                return False
        else:
            fresh = await self._obtain()
            if fresh == current and not force:
                if rotation_due(current.not_before, current.not_after, moment):
                    logger.warning(
                        "webhook certificate in Secret %s/%s expires %s and was not renewed",
                        self.config.namespace,
                        self.config.cert_secret,
                        current.not_after.isoformat(),
                    )
                return False
        await self._publish(merged_ca_bundle(fresh.ca, current.ca))
        self._write(fresh)
        if self._runner is not None:
            reload_certificate(self._runner, str(self.cert_file), str(self.key_file))
        self.certificate = fresh
        logger.info("webhook certificate renewed; valid until %s", fresh.not_after.isoformat())
        return True

    async def _rotation_loop(self) -> None:
        while True:
            certificate = self.certificate
            assert certificate is not None
            delay = seconds_until_check(
                certificate.not_before,
                certificate.not_after,
                datetime.datetime.now(datetime.UTC),
            )
            await asyncio.sleep(delay)
            try:
                await self.rotate()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Retried after MIN_CHECK_INTERVAL at the latest; the old certificate is
                # still valid for a third of its lifetime.
                logger.exception("renewing the webhook certificate failed")

    def start_rotation(self) -> None:
        self._rotation = asyncio.get_running_loop().create_task(
            self._rotation_loop(), name="buildwright webhook certificate rotation"
        )

    async def stop(self) -> None:
        """Stop rotation and serving; remove the certificate files. The CRDs stay as they
        are: a restarted operator patches them again."""
        if self._rotation is not None:
            self._rotation.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rotation
            self._rotation = None
        await self.pause()
        shutil.rmtree(self._dir, ignore_errors=True)


# --------------------------------------------------------------------------- kopf handlers

_server: WebhookServer | None = None


@kopf.on.startup()
async def start_webhook(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _server
    config = WebhookConfig.from_env()
    if not config.enabled:
        logger.info("conversion webhook disabled (BUILDWRIGHT_WEBHOOK=off)")
        return
    if _server is not None:  # kopf retried this handler after a later failure
        return
    # Imported here: buildwright.main imports the handler modules when it loads them.
    from buildwright.handlers import context
    from buildwright.main import connection_info

    def leading() -> bool:
        try:
            return context.current().leading()
        except RuntimeError:  # the operator's own start-up has not run
            return False

    kube = Kube(connection_info(settings))
    server = WebhookServer(config, kube, leading=leading)
    # Behind the Service, a replica takes conversion requests once it is ready.
    health.set_not_ready(HEALTH_CHECK, "the conversion webhook is not serving yet")
    try:
        await server.start()
    except BaseException:
        await server.stop()
        await kube.close()
        raise
    server.start_rotation()
    health.set_ready(HEALTH_CHECK)
    _server = server


@kopf.on.cleanup()
async def stop_webhook(**_: Any) -> None:
    global _server
    server, _server = _server, None
    if server is not None:
        health.set_not_ready(HEALTH_CHECK, "shutting down")
        await server.drain(server.config.drain_seconds)
        await server.stop()
        await server.kube.close()

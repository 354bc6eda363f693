"""Serving the v1alpha1 ↔ v1beta1 conversion webhook from the operator process.

kopf already runs an aiohttp event loop, so the webhook (`webhook.server`) is one more
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
import contextlib
import datetime
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from buildwright import kube as api
from buildwright.kube import Kube
from buildwright.webhook.certificates import (
    Certificate,
    certificate_from_secret,
    certificate_usable,
    generate_certificate,
    merged_ca_bundle,
    rotation_due,
    seconds_until_check,
    secret_data,
    stored_certificate,
)
from buildwright.webhook.config import SERVICE_NAME, WebhookConfig
from buildwright.webhook.crds import CRD_NAMES, patch_would_change, trusted_patch
from buildwright.webhook.server import (
    DRAINING,
    reload_certificate,
    serve,
)

logger = logging.getLogger("buildwright.webhook")

HEALTH_CHECK = "webhook"


# --------------------------------------------------------------------------- configuration


# --------------------------------------------------------------------------- pure decisions


# --------------------------------------------------------------------------- certificates


def _write_private(path: Path, content: bytes) -> None:
    # Write-then-rename so a concurrent TLS handshake never loads half a key.
    partial = path.with_suffix(path.suffix + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.replace(partial, path)


# --------------------------------------------------------------------------- CRDs


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

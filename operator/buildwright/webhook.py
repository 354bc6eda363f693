"""The conversion webhook: the I/O shell around `buildwright.api.conversion`.

The apiserver posts a `ConversionReview` (apiextensions.k8s.io/v1) to `/convert` whenever an
object is read or written in a version other than the stored one (v1beta1). `handle_review`
is the pure part: any input produces a ConversionReview answer, never an exception, because an
exception would surface to users as an opaque "conversion webhook failed" on every kubectl get.

Also here: an HTTPS server for the app, a self-signed CA + serving certificate, and the
merge patch that points a CRD's `spec.conversion` at the webhook. Patching the CRDs is left
to the operator shell, which owns the API client.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import ssl
from typing import Any

from aiohttp import web
from cryptography import x509

from buildwright import pki
from buildwright.api.conversion import ConversionError, convert

REVIEW_API_VERSION = "apiextensions.k8s.io/v1"
CONVERT_PATH = "/convert"
HEALTH_PATH = "/health"

# A list request converts every object in one review; the default 1 MiB body limit of aiohttp
# would fail `kubectl get` of a few hundred v1alpha1 objects.
MAX_REVIEW_BYTES = 128 * 1024 * 1024
# Above this many objects the conversion runs in a worker thread so that kopf's handlers,
# which share the event loop, keep being served.
INLINE_OBJECT_LIMIT = 50

SSL_CONTEXT: web.AppKey[ssl.SSLContext] = web.AppKey("ssl_context", ssl.SSLContext)


class Draining:
    """Set while the server is about to stop: every answer then closes its connection, so
    the apiserver opens a new one (to another replica) instead of reusing one that is about
    to go away mid-request."""

    def __init__(self) -> None:
        self.on = False


DRAINING: web.AppKey[Draining] = web.AppKey("draining", Draining)


@web.middleware
async def _close_while_draining(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    if request.app[DRAINING].on:
        response.force_close()
    return response


# --------------------------------------------------------------------------- ConversionReview


def _review(uid: str, result: dict[str, Any], converted: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": REVIEW_API_VERSION,
        "kind": "ConversionReview",
        "response": {"uid": uid, "convertedObjects": converted, "result": result},
    }


def failed_review(uid: str, message: str) -> dict[str, Any]:
    """A ConversionReview response reporting `message` as the failure."""
    return _review(uid, {"status": "Failure", "message": message}, [])


def _describe(obj: Any, index: int) -> str:
    if not isinstance(obj, dict):
        return f"object {index}"
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    name = "/".join(str(p) for p in (metadata.get("namespace"), metadata.get("name")) if p)
    return f"object {index} ({obj.get('kind')} {name or '<unnamed>'})"


def handle_review(review: Any) -> dict[str, Any]:
    """Answer a ConversionReview v1: convert every object or report why not.

    Pure and total: a malformed review, a missing uid/objects, an unknown desiredAPIVersion,
    an unknown kind or an object that cannot convert all give `result.status: Failure` with
    a message naming the problem (and the object), never an exception.
    """
    if not isinstance(review, dict):
        return failed_review("", "malformed ConversionReview: the body is not a JSON object")
    request = review.get("request")
    uid = request.get("uid") if isinstance(request, dict) else None
    uid_text = uid if isinstance(uid, str) else ""
    if review.get("kind") not in (None, "ConversionReview"):
        return failed_review(uid_text, f"expected kind ConversionReview, got {review['kind']!r}")
    if review.get("apiVersion") not in (None, REVIEW_API_VERSION):
        return failed_review(
            uid_text,
            f"unsupported ConversionReview apiVersion {review['apiVersion']!r}; "
            f"only {REVIEW_API_VERSION} is served",
        )
    if not isinstance(request, dict):
        return failed_review("", "malformed ConversionReview: missing request")
    if not isinstance(uid, str) or not uid:
        return failed_review("", "malformed ConversionReview: missing request.uid")
    desired = request.get("desiredAPIVersion")
    if not isinstance(desired, str) or not desired:
        return failed_review(uid, "malformed ConversionReview: missing request.desiredAPIVersion")
    objects = request.get("objects")
    if not isinstance(objects, list):
        return failed_review(uid, "malformed ConversionReview: request.objects must be a list")

    converted: list[dict[str, Any]] = []
    for index, obj in enumerate(objects):
        try:
            converted.append(convert(obj, desired))
        except ConversionError as error:
            return failed_review(uid, f"{_describe(obj, index)}: {error}")
        except Exception as error:  # a bug must not take the webhook down with it
            return failed_review(
                uid,
                f"{_describe(obj, index)}: internal error while converting to {desired}: "
                f"{type(error).__name__}: {error}",
            )
    return _review(uid, {"status": "Success"}, converted)


def _object_count(review: Any) -> int:
    request = review.get("request") if isinstance(review, dict) else None
    objects = request.get("objects") if isinstance(request, dict) else None
    return len(objects) if isinstance(objects, list) else 0


async def _convert_endpoint(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        review = json.loads(body)
    except ValueError as error:
        return web.json_response(
            failed_review("", f"malformed ConversionReview: body is not JSON ({error})"),
            status=400,
        )
    if _object_count(review) > INLINE_OBJECT_LIMIT:
        answer = await asyncio.get_running_loop().run_in_executor(None, handle_review, review)
    else:
        answer = handle_review(review)
    return web.json_response(answer)


async def _health_endpoint(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_app() -> web.Application:
    """The webhook application: `POST /convert` and `GET /health`."""
    app = web.Application(client_max_size=MAX_REVIEW_BYTES, middlewares=[_close_while_draining])
    app[DRAINING] = Draining()
    app.router.add_post(CONVERT_PATH, _convert_endpoint)
    app.router.add_get(HEALTH_PATH, _health_endpoint)
    return app


# --------------------------------------------------------------------------- HTTPS


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2+) serving the given certificate chain."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


async def serve(host: str, port: int, cert_file: str, key_file: str) -> web.AppRunner:
    """Serve the webhook over HTTPS; the caller awaits `runner.cleanup()` to stop it.

    `port` 0 picks a free port (see `runner.addresses`). The TLS context is kept in
    `runner.app[SSL_CONTEXT]` so `reload_certificate` can rotate the certificate in place.
    """
    context = server_ssl_context(cert_file, key_file)
    app = make_app()
    app[SSL_CONTEXT] = context
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context)
    await site.start()
    return runner


def reload_certificate(runner: web.AppRunner, cert_file: str, key_file: str) -> None:
    """Serve a new certificate from now on; open connections keep the old one."""
    runner.app[SSL_CONTEXT].load_cert_chain(cert_file, key_file)


def generate_self_signed(
    hostnames: list[str], ip_addresses: list[str], days: int = 365
) -> tuple[bytes, bytes, bytes]:
    """Create a CA and a serving certificate signed by it.

    Returns PEM `(ca_cert, server_cert, server_key)`. The server certificate names every
    hostname and IP address as a subjectAltName. The CA key is discarded: a new pair is
    generated on rotation.
    """
    if not hostnames and not ip_addresses:
        raise ValueError("a serving certificate needs at least one hostname or IP address")
    ca = pki.new_ca("buildwright-webhook-ca", days=days)
    serving = ca.issue(
        hostnames[0] if hostnames else ip_addresses[0],
        days=days,
        server=True,
        dns_names=hostnames,
        ip_addresses=ip_addresses,
    )
    return ca.cert_pem, serving.cert_pem, serving.key_pem


def certificate_not_after(cert_pem: bytes) -> datetime.datetime:
    """When a PEM certificate expires (UTC), to decide on rotation."""
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


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

"""The conversion webhook's HTTPS server: `/convert` and `/health` on an aiohttp app, large
reviews converted in a worker thread, the certificate reloaded in place, and a drain on
shutdown in which each answer closes its connection."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

from aiohttp import web

from buildwright.webhook.config import CONVERT_PATH
from buildwright.webhook.review import failed_review, handle_review

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



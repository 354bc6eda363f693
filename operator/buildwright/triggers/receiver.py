"""The webhook receiver: `POST /hooks/<namespace>/<github|gitlab|generic>` over HTTPS.

Every replica serves it (deliveries are made exactly once by the BuildRuns' names, not by who
answers). The answers:

  413  body over the limit (unread)          404  unknown provider or path
  401  no signature header, or no Build's trigger secret for the repository accepts the
       signature (the same words whether the repository is unknown, the secret differs or
       is missing: an unsigned caller learns nothing about the Builds)
  400  malformed body (before any Build is looked at)
  202  signed: `{"buildRuns": [...], "duplicates": [...], "ignored": ...}`; only now does
       the answer name BuildRuns, to a caller that proved it knows a Build's secret
"""

from __future__ import annotations

import json
import logging
import ssl
import tempfile
from pathlib import Path
from typing import Any

import pydantic
from aiohttp import web

from buildwright import kube, metrics
from buildwright.api.v1beta1 import Build
from buildwright.config import TriggerConfig
from buildwright.core import triggers as decide
from buildwright.handlers.context import Context
from buildwright.triggers import effects
from buildwright.webhook.certificates import generate_self_signed
from buildwright.webhook.server import server_ssl_context

logger = logging.getLogger("buildwright.triggers")

CONTEXT: web.AppKey[Context] = web.AppKey("context", Context)
CONFIG: web.AppKey[TriggerConfig] = web.AppKey("config", TriggerConfig)
NAMESPACES: web.AppKey[tuple[str, ...]] = web.AppKey("namespaces", tuple)


def _answer(status: int, **fields: Any) -> web.Response:
    return web.json_response(fields, status=status)


def _count(provider: str, outcome: str) -> None:
    metrics.current().trigger_deliveries.labels(provider, outcome).inc()


# Build models by (namespace, name), with the resourceVersion they were read at: a delivery
# reads every Build with a trigger in scope, and a model costs ~0.1 ms to make
# (bench/trigger_matching.py), so each Build is parsed once per change, not per delivery.
_models: dict[tuple[str, str], tuple[str, Build]] = {}


def builds_in_scope(ctx: Context, namespace: str | None) -> list[tuple[dict[str, Any], Build]]:
    """The cached Builds with triggers a delivery to this path may concern (valid models)."""
    if namespace is not None:
        bodies = ctx.builds.in_namespace(namespace)
    else:
        bodies = [b for key in ctx.builds.stored_keys() if (b := ctx.builds.get(*key))]
    out = []
    for body in bodies:
        if not (body.get("spec") or {}).get("trigger"):
            continue  # most Builds have no trigger: not worth a model
        meta = body["metadata"]
        key, version = (meta["namespace"], meta["name"]), meta.get("resourceVersion", "")
        cached = _models.get(key)
        if cached is not None and cached[0] == version and version:
            out.append((body, cached[1]))
            continue
        try:
            build = Build.model_validate(body)
        except pydantic.ValidationError:
            continue
        _models[key] = (version, build)
        out.append((body, build))
    if len(_models) > 2 * max(len(ctx.builds), 1):  # forget deleted Builds now and then
        live = set(ctx.builds.stored_keys())
        for key in [k for k in _models if k not in live]:
            del _models[key]
    return out


class _NoSecret(Exception):
    """Why a Build cannot vouch for a delivery (for its Event, never for the caller)."""


async def _secret_for(ctx: Context, body: dict[str, Any], build: Build, provider: str) -> bytes:
    """The Build's webhook secret; raises _NoSecret saying why there is none."""
    trigger = build.spec.trigger
    name = trigger.trigger_secret if trigger else None
    namespace = body["metadata"]["namespace"]
    if not name:
        raise _NoSecret("the Build has GitHub triggers but no spec.trigger.triggerSecret")
    try:
        data = await effects.secret_data(ctx, namespace, name)
    except kube.ApiError as error:
        if error.status == 403:
            logger.error("cannot read trigger Secret %s/%s: %s (grant get on secrets)",
                         namespace, name, error.message[:200])  # fmt: skip
        raise _NoSecret(f"trigger Secret {name} could not be read (HTTP {error.status})") from None
    except kube.InvalidPathSegment:
        raise _NoSecret(f"trigger Secret name {name!r} is not a valid name") from None
    if data is None:
        raise _NoSecret(f"trigger Secret {name} does not exist")
    secret = decide.webhook_secret(data, provider)
    if secret is None:
        keys = ", ".join(decide.SECRET_KEYS[provider])
        raise _NoSecret(f"trigger Secret {name} has none of the keys {keys}")
    return secret


async def handle(ctx: Context, provider: str, namespace: str | None,
                 headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """One delivery: (HTTP status, JSON answer). Every refusal is logged with its reason."""
    if not decide.signature_present(provider, headers):
        refusal = decide.missing_signature(provider)
        _count(provider, "refused_signature")
        logger.info("%s delivery refused: %s", provider, refusal.reason)
        return refusal.status, {"reason": refusal.reason}
    try:
        delivery = decide.PARSERS[provider](headers, body)
    except decide.Refusal as refusal:
        _count(provider, "refused_malformed")
        logger.info("%s delivery refused: %s", provider, refusal.reason)
        return refusal.status, {"reason": refusal.reason}

    accepted: list[tuple[dict[str, Any], Build]] = []
    for build_body, build in builds_in_scope(ctx, namespace):
        if not decide.is_candidate(build, delivery):
            continue
        try:
            secret = await _secret_for(ctx, build_body, build, provider)
        except _NoSecret as missing:
            problem = str(missing)
        else:
            if decide.signature_matches(provider, secret, headers, body):
                accepted.append((build_body, build))
                continue
            problem = "its signature does not match the trigger secret"
        await effects.noted(
            ctx, build_body, decide.EVENT_REFUSED,
            f"{provider} delivery {delivery.delivery_id} refused: {problem}", problem,
            warning=True,
        )  # fmt: skip
    if not accepted:
        _count(provider, "refused_signature")
        logger.info("%s delivery %s refused: %s", provider, delivery.delivery_id,
                    decide.NOT_ACCEPTED)  # fmt: skip
        return 401, {"reason": decide.NOT_ACCEPTED}
    if delivery.ignored:
        _count(provider, "ignored")
        return 202, {"ignored": delivery.ignored, "buildRuns": [], "duplicates": []}

    created, duplicates = [], []
    for build_body, build in accepted:
        whens = decide.matching_whens(build, delivery)
        if not whens:
            await effects.noted(
                ctx, build_body, decide.EVENT_IGNORED,
                f"{delivery.describe} (delivery {delivery.delivery_id}) matches no trigger",
                f"{delivery.event} {delivery.branch}", warning=False,
            )  # fmt: skip
            continue
        run = decide.webhook_buildrun(build, delivery, whens[0])
        name = run["metadata"]["name"]
        if await effects.create_buildrun(ctx, run):
            created.append(name)
            await effects.record_triggered(ctx, build_body, run, whens[0].name, delivery.describe)
        else:
            duplicates.append(name)
    outcome = "triggered" if created else "duplicate" if duplicates else "no_match"
    _count(provider, outcome)
    logger.info("%s delivery %s: %s (created %s, already there %s)", provider,
                delivery.delivery_id, outcome, created, duplicates)  # fmt: skip
    answer: dict[str, Any] = {"buildRuns": created, "duplicates": duplicates}
    if outcome == "no_match":
        answer["ignored"] = f"no trigger of these Builds matches {delivery.describe}"
    return 202, answer


async def _endpoint(request: web.Request) -> web.Response:
    app = request.app
    provider = request.match_info["provider"]
    namespace = request.match_info.get("namespace")
    if provider not in decide.PROVIDERS:
        return _answer(404, reason=f"unknown provider {provider!r}; use github, gitlab, generic")
    served = app[NAMESPACES]
    if namespace is None and not app[CONFIG].cluster_scope:
        return _answer(404, reason="cluster-wide hooks are off; use /hooks/<namespace>/"
                       f"{provider}")  # fmt: skip
    if namespace is not None and served and namespace not in served:
        return _answer(404, reason=f"namespace {namespace!r} is not served here")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        _count(provider, "refused_too_large")
        return _answer(413, reason=f"body over {app[CONFIG].body_limit} bytes")
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        status, answer = await handle(app[CONTEXT], provider, namespace, headers, body)
    except kube.API_ERRORS as error:
        _count(provider, "error")
        logger.warning("%s delivery failed: %s", provider, error)
        if isinstance(error, kube.ApiError) and not error.transient:
            # Only a signed delivery gets this far: it may hear what the apiserver said.
            return _answer(500, reason=f"the Kubernetes API refused: {error.message[:300]}")
        # The provider redelivers on 5xx; the BuildRuns' names make that safe.
        return _answer(503, reason="the Kubernetes API is not available; deliver again later")
    return web.Response(status=status, text=json.dumps(answer), content_type="application/json")


async def _health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_app(ctx: Context, config: TriggerConfig, namespaces: tuple[str, ...] = ()
             ) -> web.Application:  # fmt: skip
    app = web.Application(client_max_size=config.body_limit)
    app[CONTEXT] = ctx
    app[CONFIG] = config
    app[NAMESPACES] = namespaces
    app.router.add_post("/hooks/{namespace}/{provider}", _endpoint)
    app.router.add_post("/hooks/{provider}", _endpoint)
    app.router.add_get("/health", _health)
    return app


def _ssl_context(config: TriggerConfig) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    if config.cert_file and config.key_file:
        return server_ssl_context(config.cert_file, config.key_file)
    _ca, cert, key = generate_self_signed(
        ["buildwright-triggers", "buildwright-triggers.buildwright.svc", "localhost"],
        ["127.0.0.1"],
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        cert_path, key_path = Path(directory, "tls.crt"), Path(directory, "tls.key")
        cert_path.write_bytes(cert)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key)
        return server_ssl_context(str(cert_path), str(key_path))


async def serve(ctx: Context, config: TriggerConfig, namespaces: tuple[str, ...] = ()
                ) -> tuple[web.AppRunner, int]:  # fmt: skip
    """Start the receiver; (runner to clean up, the port it listens on)."""
    runner = web.AppRunner(make_app(ctx, config, namespaces), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, ssl_context=_ssl_context(config))
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else config.port
    scheme = "https" if config.tls else "http"
    logger.info("trigger webhooks on %s://%s:%s/hooks/<namespace>/<github|gitlab|generic>",
                scheme, config.host, port)  # fmt: skip
    return runner, port

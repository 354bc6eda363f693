"""kopf's start-up and clean-up of the conversion webhook (`buildwright.webhook`): serve it on
every replica, renew its certificate on the leader, drain it on shutdown."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from buildwright import health
from buildwright.handlers import context
from buildwright.handlers.login import connection_info
from buildwright.kube import Kube
from buildwright.webhook.serving import HEALTH_CHECK, WebhookServer

logger = logging.getLogger("buildwright.webhook")

_server: WebhookServer | None = None


@kopf.on.startup()
async def start_webhook(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    global _server
    config = memo.settings.webhook
    if not config.enabled:
        logger.info("conversion webhook disabled (BUILDWRIGHT_WEBHOOK=off)")
        return
    if _server is not None:  # kopf retried this handler after a later failure
        return
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

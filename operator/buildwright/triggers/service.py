"""Start and stop what `spec.trigger` needs in one operator process."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from aiohttp import web

from buildwright.config import TriggerConfig
from buildwright.handlers.context import Context
from buildwright.kube import Kube
from buildwright.triggers import poller, receiver

logger = logging.getLogger("buildwright.triggers")


@dataclass
class Triggers:
    runner: web.AppRunner
    port: int
    poller: poller.ImagePoller
    kube: Kube

    async def stop(self) -> None:
        await self.poller.stop()
        await self.runner.cleanup()
        await self.kube.close()


async def start(ctx: Context, receiver_kube: Kube, config: TriggerConfig,
                namespaces: tuple[str, ...] = ()) -> Triggers:  # fmt: skip
    """The receiver on every replica, writing through `receiver_kube` (a client of its own,
    which the leader guard does not stop: a follower that answers a delivery creates its
    BuildRuns too, named so that nothing is made twice); the poller on the leader only,
    writing through the operator's guarded client."""
    receiving = dataclasses.replace(ctx, kube=receiver_kube)
    runner, port = await receiver.serve(receiving, config, namespaces)
    image_poller = poller.ImagePoller(ctx, config, ctx.leading)
    image_poller.start()
    logger.info("image triggers polled every %gs (on the leader)", config.poll_interval)
    return Triggers(runner, port, image_poller, receiver_kube)

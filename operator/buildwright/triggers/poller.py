"""The image poller: looks up the digest of every image a `type: Image` trigger watches, on the
leader only, every poll interval (longer after failures), and starts a BuildRun when it changed.

What was last seen is recorded on the Build (`status.imageDigests`), so a new leader or a
restarted operator goes on from there; the BuildRun of a change is named from the Build, the
image, the number of the change and the new digest (`core.triggers.image_buildrun`), so a
change acted on twice (a write lost in a crash, two leaders for a moment) creates one BuildRun.

Registry credentials are the Build's own docker-config Secrets (`spec.output.pushSecret`, the
OCI source's `pullSecret`), read when a lookup needs them and not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pydantic

from buildwright import kube, metrics
from buildwright.api.v1beta1 import Build
from buildwright.config import TriggerConfig
from buildwright.core import triggers as decide
from buildwright.handlers import common
from buildwright.handlers.context import Context
from buildwright.steps import registry
from buildwright.triggers import effects

logger = logging.getLogger("buildwright.triggers")

TICK_SECONDS = 1.0
LOOKUP_TIMEOUT = 30.0
Key = tuple[str, str, str]  # namespace, Build, image


def lookup_digest(reference: registry.Reference, credentials: tuple[str, str] | None,
                  insecure: bool) -> str:  # fmt: skip
    """The image's manifest digest, '' when it does not exist (blocking: run in a thread)."""
    client = registry.RegistryClient(
        registry=reference.api_host, repository=reference.repository, credentials=credentials,
        insecure=insecure, push=False, timeout=LOOKUP_TIMEOUT,
    )  # fmt: skip
    accept = ", ".join((*registry.MANIFEST_TYPES, *registry.INDEX_TYPES))
    answer = client.request("GET", f"/v2/{reference.repository}/manifests/{reference.reference}",
                            headers={"Accept": accept})  # fmt: skip
    if answer.status == 404:
        return ""
    if answer.status != 200:
        raise registry.RegistryError(
            f"looking up {reference} answered HTTP {answer.status}"
        )
    return registry.sha256_digest(answer.body)


def _pull_secret_names(build: Build) -> list[str]:
    names = [build.spec.output.push_secret]
    source = build.spec.source
    if source is not None and source.oci_artifact is not None:
        names.append(source.oci_artifact.pull_secret)
    return [n for n in dict.fromkeys(names) if n]


class ImagePoller:
    """One per operator process; polls only while `leading()`."""

    def __init__(self, ctx: Context, config: TriggerConfig, leading: Callable[[], bool]) -> None:
        self._ctx = ctx
        self._config = config
        self._leading = leading
        self._due: dict[Key, float] = {}
        self._failures: dict[Key, int] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="trigger image poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            if self._leading():
                try:
                    await self.poll_due()
                except Exception:  # the loop must outlive any one Build's surprise
                    logger.exception("image poll round failed")
            else:
                self._due.clear()  # a new leader looks at everything at once
            await asyncio.sleep(min(TICK_SECONDS, self._config.poll_interval))

    async def poll_due(self) -> None:
        """Look up every watched image whose time has come."""
        now = time.monotonic()
        seen: set[Key] = set()
        for namespace, name in self._ctx.builds.stored_keys():
            body = self._ctx.builds.get(namespace, name)
            if body is None or not (body.get("spec") or {}).get("trigger"):
                continue
            try:
                build = Build.model_validate(body)
            except pydantic.ValidationError:
                continue
            for watched in decide.watched_images(build):
                key = (namespace, name, watched.image)
                seen.add(key)
                if self._due.get(key, 0.0) <= now:
                    await self._poll(key, build, watched)
        for key in set(self._due) - seen:
            self._due.pop(key, None)
            self._failures.pop(key, None)

    async def _credentials(self, build: Build, reference: registry.Reference
                           ) -> tuple[str, str] | None:  # fmt: skip
        namespace = build.metadata["namespace"]
        for name in _pull_secret_names(build):
            try:
                data = await effects.secret_data(self._ctx, namespace, name)
            except (kube.ApiError, kube.InvalidPathSegment):
                continue
            raw = (data or {}).get(".dockerconfigjson")
            if not raw:
                continue
            try:
                config = json.loads(raw)
                found = registry.credentials_for(config, reference.registry)
            except (ValueError, registry.RegistryError):
                continue
            if found is not None:
                return found
        return None

    async def _poll(self, key: Key, build: Build, watched: decide.WatchedImage) -> None:
        namespace, name, image = key
        interval = self._config.poll_interval
        try:
            reference = registry.parse_reference(image)
            credentials = await self._credentials(build, reference)
            insecure = reference.registry.lower() in self._config.insecure_registries
            digest = await asyncio.to_thread(lookup_digest, reference, credentials, insecure)
        except (ValueError, registry.RegistryError) as error:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            self._due[key] = time.monotonic() + decide.poll_delay(interval, failures)
            metrics.current().trigger_image_polls.labels("failed").inc()
            logger.warning("Build %s/%s: cannot look up image %s: %s", namespace, name, image,
                           error)  # fmt: skip
            body = self._ctx.builds.get(namespace, name)
            if failures == 1 and body is not None:
                await common.post_event(
                    self._ctx, body, decide.EVENT_IMAGE_POLL_FAILED,
                    f"cannot look up image {image} for trigger {watched.trigger!r}: {error}",
                    warning=True,
                )  # fmt: skip
            return
        self._failures.pop(key, None)
        try:
            await self._act(build, watched, digest)
        except kube.NotLeading:
            return
        except kube.API_ERRORS as error:
            # Nothing recorded: the next round decides the same and names the same BuildRun.
            logger.warning("Build %s/%s: image trigger for %s: %s", namespace, name, image, error)
            self._due[key] = time.monotonic() + decide.poll_delay(interval, 1)
            return
        self._due[key] = time.monotonic() + interval

    async def _act(self, build: Build, watched: decide.WatchedImage, digest: str) -> None:
        namespace, name = build.metadata["namespace"], build.metadata["name"]
        body = self._ctx.builds.get(namespace, name)
        if body is None:
            return  # deleted meanwhile
        records = decide.recorded_images(body.get("status"))
        previous = records.get(watched.image)
        decision = decide.image_decision(previous, digest)
        polls = metrics.current().trigger_image_polls
        if decision.run and previous is not None:
            run = decide.image_buildrun(build, watched, previous, digest)
            if await effects.create_buildrun(self._ctx, run):
                await effects.record_triggered(
                    self._ctx, body, run, watched.trigger,
                    f"image {watched.image} changed to {digest}",
                )  # fmt: skip
            polls.labels("triggered").inc()
        else:
            polls.labels("baseline" if previous is None else "absent" if not digest
                         else "unchanged").inc()  # fmt: skip
        if decision.record == previous:
            return
        records[watched.image] = decision.record
        status: dict[str, Any] = {
            "imageDigests": decide.image_status(records, decide.watched_images(build))
        }
        try:
            updated = await self._ctx.kube.merge_patch(
                kube.BUILDS, namespace, name, {"status": status}, status=True
            )
        except kube.ApiError as error:
            if error.not_found:
                return
            raise
        self._ctx.builds.put(updated)

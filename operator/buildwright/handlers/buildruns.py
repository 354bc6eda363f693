"""BuildRun reconciliation, in the order Shipwright's BuildRun controller checks things
(https://shipwright.io/docs/build/buildrun/): from a new BuildRun to its Pod, and from the Pod back
to the BuildRun's status. Every step is a read, a call into the pure core, and a write; the
whole function is safe to run any number of times for the same BuildRun. The order and the
reason each failure ends in are in docs/buildrun-lifecycle.md.

One module, over 500 lines: its three parts (a BuildRun without a Pod, with a Pod, after its
end) each arm timers that call `reconcile` again (the wait for a Build, the timeout, the status
window, the TTL), and apart they would import each other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import pydantic

from buildwright import kube, logs, metrics
from buildwright.api.v1beta1 import Build, BuildRun, BuildSpec
from buildwright.core import (
    lifecycle,
    pod,
    podcheck,
    podview,
    preflight,
    resolve,
    retention,
    status,
    status_writes,
    validation,
)
from buildwright.core import metrics as observed
from buildwright.core.reasons import Failure, Reason
from buildwright.core.snapshot import bounded_snapshot
from buildwright.core.status import StatusUpdate
from buildwright.core.validation.common import AnyStrategy
from buildwright.handlers import common
from buildwright.handlers.context import Context, UnwrittenStart

logger = logging.getLogger("buildwright")

GENERATE_SA = ".generate"
# A BuildRun waiting for its Build's validation looks again after this long (then twice as
# long, …): its Build's events wake it, this only covers an event it could not see (the
# Build deleted while the BuildRun was reading it).
WAIT_FOR_BUILD_RECHECK = timedelta(seconds=10)
_background: set[asyncio.Task[None]] = set()


def buildrun_gone(ctx: Context, key: tuple[str, str], uid: str) -> None:
    """A BuildRun was deleted (the BuildRun informer, `buildwright.informer`, reports it):
    forget everything kept for it."""
    ctx.announced.discard(uid)
    ctx.build_waiters.forget(key)
    for purpose in ("timeout", "ttl", "retry", "wait-build"):
        ctx.scheduler.cancel(key, purpose)
    common.succeeded(ctx, key, "retry")
    common.succeeded(ctx, key, "wait-build")
    forget_pending_status(ctx, key)
    ctx.forget_lock(key)


def pod_changed(ctx: Context, key: tuple[str, str], *, urgent: bool = False) -> None:
    """A build Pod changed, ended (`urgent`) or went (the Pod informer reports it): reconcile
    its BuildRun when `core.status_writes.reconcile_on_pod_change` says so."""
    if status_writes.reconcile_on_pod_change(
        ending=urgent, write_due=ctx.status_due.get(key), now=common.now(),
        reconciling=ctx.busy(key),
    ) and ctx.reconcile_queue is not None:  # fmt: skip
        ctx.reconcile_queue.add(key, urgent=urgent)


def reconcile_later(ctx: Context, namespace: str, name: str) -> None:
    """Reconcile in the background (fan-out from another object's event)."""
    task = asyncio.create_task(reconcile(ctx, namespace, name))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def reconcile(ctx: Context, namespace: str, name: str) -> None:
    """Reconcile one BuildRun; only the leader does (a follower keeps its caches warm and
    reconciles everything it knows once it leads)."""
    if not ctx.leading():
        return
    async with ctx.lock((namespace, name)):
        body = ctx.buildruns.get(namespace, name)
        if body is None:
            return
        key = (namespace, name)
        started = time.monotonic()
        result = "success"
        try:
            await _reconcile(ctx, body)
        except kube.NotLeading:
            result = "not_leading"
        except kube.API_ERRORS as error:
            # A 404 is raised only by writes (reads answer None): something was deleted
            # between reading and writing. Gone with the BuildRun: nothing to do (its DELETED
            # event cleans up); else the next attempt sees the world as it is now.
            deleted = isinstance(error, kube.ApiError) and error.not_found
            if deleted and not _exists(ctx, key):
                return
            if kube.is_transient(error) or deleted:
                result = "retry"
                common.retry_later(
                    ctx, key, "retry", "BuildRun", error, lambda: reconcile(ctx, namespace, name)
                )
            else:
                result = "rejected"
                common.log_rejected("BuildRun", key, error)
        except Exception:
            result = "error"
            raise
        else:
            common.succeeded(ctx, key, "retry")
        finally:
            metrics.current().reconcile_duration.labels("BuildRun", result).observe(
                time.monotonic() - started
            )


def _exists(ctx: Context, key: tuple[str, str]) -> bool:
    return ctx.buildruns.get(*key) is not None


async def _reconcile(ctx: Context, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        buildrun = BuildRun.model_validate(body)
    except pydantic.ValidationError as error:
        logger.error(
            "BuildRun %s/%s does not match the schema: %s", namespace, name, error,
            extra=logs.about("BuildRun", namespace, name),
        )  # fmt: skip
        return
    run_status = buildrun.status
    if run_status is not None and run_status.completion_time:
        if _end_event_may_be_missing(ctx, buildrun):
            await announce_end(ctx, buildrun, body)
        await after_completion(ctx, buildrun, just_finished=False)
        return
    if run_status is not None and run_status.executor is not None:
        await follow_pod(ctx, buildrun, run_status.executor.name)
        return
    started = ctx.unwritten_starts.get((namespace, name))
    if started is not None and started.uid == meta.get("uid"):
        await follow_pod(ctx, buildrun, started.pod_name, snapshot=started.snapshot)
        return
    await start(ctx, buildrun)


# --- a BuildRun without a Pod ----------------------------------------------------------------


async def start(ctx: Context, buildrun: BuildRun) -> None:
    """From a BuildRun without a Pod to its Pod, or to the reason it cannot have one. Each
    step returns what it resolved or the `Failure` that ends the run, in the order upstream
    checks them; every end goes through `write_status`."""
    resolved = await resolve_build(ctx, buildrun)
    if resolved is None:
        return  # waits for its Build's validation
    if isinstance(resolved, Failure):
        await end_before_pod(ctx, buildrun, resolved)
        return
    build, build_spec = resolved
    # From here on the run knows what it would build: every outcome, a failure before the
    # Pod too (ServiceAccountNotFound, a missing strategy…), records it in status.buildSpec.
    snapshot = build_spec_snapshot(buildrun, build_spec)
    created = await _create_pod_for(ctx, buildrun, build, build_spec)
    if not isinstance(created, tuple):
        await end_before_pod(ctx, buildrun, created, snapshot=snapshot)
        return
    build_pod, pod_created = created
    meta, pod_name = buildrun.metadata, build_pod["metadata"]["name"]
    if pod_created:
        # Counted by whoever created the Pod: a second run of this handler finds it existing.
        metrics.current().observe(
            observed.pod_created(buildrun.to_wire(), build_spec.strategy.name, build_pod)
        )
    logger.info(
        "BuildRun %s/%s: created Pod %s", meta["namespace"], meta["name"], pod_name,
        extra=logs.about("BuildRun", meta["namespace"], meta["name"]),
    )  # fmt: skip
    # One status write with the snapshot, the executor and the condition the new Pod calls
    # for (a write fewer per BuildRun than writing the executor first). The Pod's name is
    # deterministic: should we crash in between, the next reconcile finds no executor, starts
    # again and takes the existing Pod as its own.
    await follow_pod(ctx, buildrun, pod_name, snapshot=snapshot, build_pod=build_pod)


async def resolve_build(
    ctx: Context, buildrun: BuildRun
) -> tuple[Build | None, BuildSpec] | Failure | None:
    """The Build (None for an embedded spec) and the spec to run, the Failure that ends the
    run, or None while the referenced Build waits for its validation."""
    meta = buildrun.metadata
    namespace, name = meta["namespace"], meta["name"]
    failure = validation.validate_buildrun_request(buildrun, forbidden_env=ctx.config.forbidden_env)
    if failure is not None:
        return failure
    build_name = buildrun.spec.build.name
    if not build_name:
        assert buildrun.spec.build.spec is not None
        return None, buildrun.spec.build.spec
    build_body = await common.cached_get(ctx, ctx.builds, kube.BUILDS, namespace, build_name)
    build = Build.model_validate(build_body) if build_body is not None else None
    outcome = preflight.referenced_build_outcome(build_name, build)
    if outcome == preflight.WAIT:
        # Not validated yet: the Build's own events (registered, or deleted) wake this
        # BuildRun up; a slow re-check covers a deletion seen before the link was made.
        ctx.build_waiters.link((namespace, name), {(namespace, build_name)})
        attempt = ctx.retry_attempts.get(((namespace, name), "wait-build"), 0)
        ctx.retry_attempts[((namespace, name), "wait-build")] = attempt + 1
        ctx.scheduler.at(
            (namespace, name),
            "wait-build",
            common.now() + WAIT_FOR_BUILD_RECHECK * 2 ** min(attempt, 5),
            lambda: reconcile(ctx, namespace, name),
        )
        return None
    ctx.build_waiters.forget((namespace, name))
    ctx.scheduler.cancel((namespace, name), "wait-build")
    common.succeeded(ctx, (namespace, name), "wait-build")
    if isinstance(outcome, Failure):
        return outcome
    assert build is not None
    return build, build.spec


async def _create_pod_for(
    ctx: Context, buildrun: BuildRun, build: Build | None, build_spec: BuildSpec
) -> tuple[dict[str, Any], bool] | Failure | StatusUpdate:
    """The run's Pod and whether this call created it; else the Failure, or the timeout's
    status, that ends the run before it has one."""
    meta = buildrun.metadata
    namespace, name = meta["namespace"], meta["name"]
    # The timeout counts from the BuildRun's creation, also while no Pod can be created yet
    # (a used-up quota, an API that keeps failing): past it, the run ends here.
    try:
        timeout = resolve.effective_timeout_seconds(build_spec, buildrun.spec)
    except ValueError:
        timeout = None  # malformed: rendering the Pod reports it
    if lifecycle.timed_out(buildrun, common.now(), timeout):
        return lifecycle.timeout_status(buildrun, common.now(), timeout)
    deadline = lifecycle.timeout_deadline(buildrun, timeout)
    if deadline is not None:
        ctx.scheduler.at(
            (namespace, name), "timeout", deadline, lambda: reconcile(ctx, namespace, name)
        )
    canceled = lifecycle.canceled_before_start(buildrun)
    if canceled is not None:
        return canceled
    strategy = await resolve_strategy(ctx, buildrun, build, build_spec)
    if isinstance(strategy, Failure):
        return strategy
    if build is not None:
        await label_buildrun(ctx, buildrun, build)
    service_account, docker_secret = await prepare_service_account(ctx, buildrun, build_spec)
    if isinstance(service_account, Failure):
        return service_account
    manifest = await render_pod(
        ctx, buildrun, build, build_spec, strategy, service_account, docker_secret
    )
    if isinstance(manifest, Failure):
        return manifest
    return await create_pod(ctx, namespace, manifest)


async def resolve_strategy(
    ctx: Context, buildrun: BuildRun, build: Build | None, build_spec: BuildSpec
) -> AnyStrategy | Failure:
    """The strategy the spec names, or the Failure of a kind or strategy that does not exist
    (an embedded spec is validated here too, against that strategy)."""
    namespace = buildrun.metadata["namespace"]
    strategy_kind = preflight.strategy_kind(build_spec.strategy.kind)
    failure = preflight.unknown_strategy_kind(strategy_kind)
    if failure is not None:
        return failure
    strategy_body = await common.get_strategy(
        ctx, strategy_kind, namespace, build_spec.strategy.name
    )
    if build is None:
        secrets = validation.referenced_secrets(build_spec)
        facts = validation.BuildFacts(
            existing_secrets=await common.existing_secrets(ctx, namespace, secrets),
            strategy=validation.parse_strategy(strategy_body) if strategy_body else None,
            repository_probe=None,
            forbidden_env=ctx.config.forbidden_env,
            extra_volume_sources=ctx.config.extra_volume_sources,
        )
        failure = validation.validate_embedded_build(build_spec, facts, namespace=namespace)
        if failure is not None:
            return failure
    if strategy_body is None:
        return preflight.strategy_not_found(strategy_kind, build_spec.strategy.name)
    return validation.parse_strategy(strategy_body)


async def render_pod(
    ctx: Context,
    buildrun: BuildRun,
    build: Build | None,
    build_spec: BuildSpec,
    strategy: AnyStrategy,
    service_account: str,
    docker_secret: str | None,
) -> dict[str, Any] | Failure:
    """The Pod manifest, or the Failure that parameters, overrides, the strategy's steps, the
    API server's rules or a missing mounted object make of it."""
    failure = (
        validation.merged_parameter_failure(strategy, build_spec, buildrun.spec)
        or validation.validate_buildrun_overrides(
            buildrun.spec, strategy, ctx.config.extra_volume_sources
        )
        or podcheck.strategy_steps_failure(step.name for step in strategy.spec.steps)
    )
    if failure is not None:
        return failure
    build_meta = build.metadata if build is not None else {}
    manifest = pod.render_pod(
        pod.PodInputs(
            buildrun=buildrun,
            build_name=buildrun.spec.build.name,
            build_generation=build_meta.get("generation"),
            build_spec=build_spec,
            strategy=strategy,
            service_account_name=service_account,
            docker_config_secret=docker_secret,
            step_image=ctx.config.step_image,
            forbidden_env_names=ctx.config.forbidden_env or pod.FORBIDDEN_ENV_VAR_NAMES,
        )
    )
    if isinstance(manifest, Failure):
        return manifest
    # What the API server would refuse, said in terms of the objects users wrote.
    return (
        podcheck.manifest_failure(manifest)
        or await missing_volume_sources(ctx, buildrun.metadata["namespace"], manifest)
        or manifest
    )


def build_spec_snapshot(buildrun: BuildRun, build_spec: BuildSpec) -> dict[str, Any]:
    """status.buildSpec: the effective spec, with long strings cut so that it always fits."""
    effective = resolve.effective_build_spec_for(buildrun, build_spec)
    bounded, cut = bounded_snapshot(effective.to_wire())
    if cut:
        meta = buildrun.metadata
        logger.info(
            "BuildRun %s/%s: status.buildSpec shortened to fit, cut: %s%s",
            meta["namespace"], meta["name"], ", ".join(cut[:10]),
            f" and {len(cut) - 10} more" if len(cut) > 10 else "",
        )  # fmt: skip
    return bounded


async def create_pod(
    ctx: Context, namespace: str, manifest: dict[str, Any]
) -> tuple[dict[str, Any], bool] | Failure:
    """Create the build Pod; one that already exists (same deterministic name) is ours, and
    the flag says whether this call created it. A Pod the API server refuses for good
    (invalid, forbidden) is the PodCreationFailed failure."""
    try:
        created = await ctx.kube.create(kube.PODS, namespace, manifest)
    except kube.ApiError as error:
        if lifecycle.quota_exceeded(error.status, error.message):
            # Quota frees up as other Pods end: retried with backoff, like throttling.
            raise kube.ApiError(429, "ExceededResourceQuota", error.message) from error
        rejection = lifecycle.pod_rejection(
            manifest["metadata"]["name"], 413 if error.too_large else error.status, error.message
        )
        if rejection is not None:
            return rejection
        if not error.conflict:
            raise
        name = manifest["metadata"]["name"]
        existing = ctx.pods.get(namespace, name) or await ctx.kube.get(kube.PODS, namespace, name)
        if existing is None:  # deleted meanwhile: try again later
            raise
        ctx.pods.put(existing)
        return existing, False
    ctx.pods.put(created)
    return created, True


async def label_buildrun(ctx: Context, buildrun: BuildRun, build: Build) -> None:
    """Write the Build labels and ownership the core asks for (nothing when already right)."""
    meta = buildrun.metadata
    patch = preflight.buildrun_metadata_patch({"metadata": meta}, build)
    if patch:
        updated = await ctx.kube.merge_patch(kube.BUILDRUNS, meta["namespace"], meta["name"], patch)
        ctx.buildruns.put(updated)


async def prepare_service_account(
    ctx: Context, buildrun: BuildRun, build_spec: BuildSpec
) -> tuple[str | Failure, str | None]:
    """The service account of the Pod (named, `.generate`d, or the `pipeline`/`default`
    fallback) and the docker-config Secret to mount."""
    meta = buildrun.metadata
    namespace = meta["namespace"]
    push_secret = resolve.effective_output(build_spec.output, buildrun.spec.output).push_secret
    requested = buildrun.spec.service_account
    if requested == GENERATE_SA:
        account = await ctx.kube.get(kube.SERVICEACCOUNTS, namespace, meta["name"])
        if account is None:
            account = pod.generated_service_account(buildrun, push_secret)
            try:
                account = await ctx.kube.create(kube.SERVICEACCOUNTS, namespace, account)
            except kube.ApiError as error:
                if not error.conflict:
                    raise
        return meta["name"], push_secret or await first_docker_secret(ctx, namespace, account)
    if requested:
        account = await common.get_account(ctx, namespace, requested)
        if account is None:
            return Failure(
                Reason.SERVICE_ACCOUNT_NOT_FOUND, f"service account {requested} not found"
            ), None
    else:
        account = await common.get_account(ctx, namespace, "pipeline")
        if account is None:
            account = await common.get_account(ctx, namespace, "default")
        if account is None:
            # Neither exists yet (a brand-new namespace): upstream retries; so do we.
            raise kube.ApiError(
                404, "NotFound", "neither service account pipeline nor default exists"
            )
    if push_secret and not linked(account, push_secret):
        account_name = account["metadata"]["name"]
        # Concurrent BuildRuns of a burst would each link the secret; the first one does.
        async with ctx.lock(common.account_key(namespace, account_name)):
            latest = common.fresh_account(ctx, namespace, account_name)
            if latest is not None and latest[0] is not None:
                account = latest[0]
            if not linked(account, push_secret):
                secrets = [*(account.get("secrets") or []), {"name": push_secret}]
                account = await ctx.kube.merge_patch(
                    kube.SERVICEACCOUNTS, namespace, account_name, {"secrets": secrets}
                )
                common.remember_account(ctx, namespace, account_name, account)
    docker_secret = push_secret or await first_docker_secret(ctx, namespace, account)
    return account["metadata"]["name"], docker_secret


def linked(account: dict[str, Any], secret: str) -> bool:
    return any(s.get("name") == secret for s in account.get("secrets") or [])


async def first_docker_secret(ctx: Context, namespace: str, account: dict[str, Any]) -> str | None:
    """The first kubernetes.io/dockerconfigjson Secret linked to the service account."""
    for ref in [*(account.get("secrets") or []), *(account.get("imagePullSecrets") or [])]:
        name = ref.get("name")
        if isinstance(name, str) and await common.is_docker_config(ctx, namespace, name):
            return name
    return None


async def missing_volume_sources(
    ctx: Context, namespace: str, manifest: dict[str, Any]
) -> Failure | None:
    """VolumeDoesNotExist when a Secret or ConfigMap the Pod mounts is missing."""
    for kind, ref_name in pod.required_volume_objects(manifest):
        if kind == "secrets":
            found = await common.get_secret(ctx, namespace, ref_name)
        else:
            found = await common.get_configmap(ctx, namespace, ref_name)
        if found is None:
            return Failure(Reason.VOLUME_DOES_NOT_EXIST, f'{kind} "{ref_name}" not found')
    return None


async def end_before_pod(
    ctx: Context,
    buildrun: BuildRun,
    ending: Failure | StatusUpdate,
    *,
    snapshot: dict[str, Any] | None = None,
) -> None:
    """End a run that has no Pod: with the Failure (condition False with its reason,
    completionTime now) or the timeout's status, and the build spec `snapshot` when the run
    got that far."""
    if isinstance(ending, Failure):
        ending = lifecycle.failure_status(ending, common.now())
    await write_status(ctx, buildrun, ending, snapshot=snapshot)


# --- a BuildRun with a Pod -------------------------------------------------------------------


def schedule_timeout(ctx: Context, buildrun: BuildRun) -> None:
    """Reconcile again at the timeout, which the operator enforces itself: a Pod's
    activeDeadlineSeconds only starts counting once the Pod has started."""
    deadline = lifecycle.timeout_deadline(buildrun)
    if deadline is None:
        return
    meta = buildrun.metadata
    key = (meta["namespace"], meta["name"])
    ctx.scheduler.at(key, "timeout", deadline, lambda: reconcile(ctx, *key))


async def follow_pod(
    ctx: Context,
    buildrun: BuildRun,
    pod_name: str,
    *,
    snapshot: dict[str, Any] | None = None,
    build_pod: dict[str, Any] | None = None,
) -> None:
    """Derive the BuildRun's status from its Pod; stop the Pod when the core says so
    (cancellation, the operator-enforced timeout, an unrecoverable config error).
    `snapshot` is the build spec still to be written with the first status; `build_pod`
    the Pod when the caller has just created or read it."""
    meta = buildrun.metadata
    namespace = meta["namespace"]
    if build_pod is None:
        build_pod = ctx.pods.get(namespace, pod_name)
    if build_pod is None:
        build_pod = await ctx.kube.get(kube.PODS, namespace, pod_name)
        if build_pod is not None:
            ctx.pods.put(build_pod)
    update = status.status_from_pod(buildrun, build_pod, common.now())
    tail_of = status.log_tail_wanted(buildrun, update)
    if tail_of is not None:
        update = status.with_log_tail(update, await log_tail(ctx, namespace, pod_name, tail_of))
    if update.stop_pod and build_pod is not None and not podview.pod_finished(build_pod):
        await ctx.kube.delete(kube.PODS, namespace, pod_name)
    if not update.terminal:
        schedule_timeout(ctx, buildrun)
    await write_status(ctx, buildrun, update, snapshot=snapshot)


async def log_tail(ctx: Context, namespace: str, pod_name: str, container: str) -> str:
    """The end of a failed step's log, or "" when the node cannot be asked (a node without the
    kubelet API, the Pod already gone): the failure is written either way."""
    try:
        return await ctx.kube.container_log_tail(
            namespace, pod_name, container,
            lines=status.LOG_TAIL_LINES, limit_bytes=status.LOG_TAIL_BYTES,
        )  # fmt: skip
    except kube.API_ERRORS as error:
        logger.info(
            "BuildRun in %s: no log tail of %s/%s for the failure message: %s",
            namespace, pod_name, container, error,
        )  # fmt: skip
        return ""


async def write_status(
    ctx: Context, buildrun: BuildRun, update: Any, *, snapshot: dict[str, Any] | None = None
) -> None:
    """Write what `update` changes (and the build spec `snapshot`, when given), now or, for
    in-progress changes, at the deadline `core.status_writes.write_deadline` sets (a scheduled
    reconcile then writes whatever the Pod says by that time). The end of the run is announced
    with an Event, so `kubectl describe` tells how it ended."""
    meta = buildrun.metadata
    key = (meta["namespace"], meta["name"])
    current_status = buildrun.status.to_wire() if buildrun.status else {}
    patch = status_writes.status_patch(current_status, update)
    if snapshot is not None:
        patch = {**(patch or {}), "buildSpec": snapshot}
    now = common.now()
    if patch is None:
        due = ctx.status_due.get(key)
        if due is not None and due <= now:
            forget_pending_status(ctx, key)
        return
    deadline = status_writes.write_deadline(
        update, due=ctx.status_due.get(key), now=now, window=ctx.config.status_coalesce_seconds
    )
    if deadline is not None:
        if key not in ctx.status_due:
            ctx.status_due[key] = deadline
            ctx.scheduler.at(key, "status", deadline, lambda: reconcile(ctx, *key))
        if snapshot is not None and update.executor is not None:
            ctx.unwritten_starts[key] = UnwrittenStart(
                uid=str(meta.get("uid", "")), pod_name=update.executor.name, snapshot=snapshot
            )
        return
    updated = await ctx.kube.merge_patch(
        kube.BUILDRUNS, meta["namespace"], meta["name"], {"status": patch}, status=True
    )
    forget_pending_status(ctx, key)
    ctx.buildruns.put(updated)
    new = BuildRun.model_validate(updated)
    after = _condition(new)
    if after is not None and after != _condition(buildrun):
        logger.info(
            "BuildRun %s/%s: %s %s: %s",
            meta["namespace"], meta["name"], after.status, after.reason, after.message,
            extra=logs.about("BuildRun", meta["namespace"], meta["name"]),
        )  # fmt: skip
    if status_writes.announced_condition(_condition(buildrun), after) is not None:
        await announce_end(ctx, new, updated)
    if new.status is not None and new.status.completion_time:
        executor = new.status.executor
        ended_now = buildrun.status is None or not buildrun.status.completion_time
        if executor is not None and ended_now:
            # This write ended a run that had a Pod: observed once, by the replica that
            # wrote it.
            build_pod = ctx.pods.get(meta["namespace"], executor.name)
            metrics.current().observe(observed.run_finished(updated, build_pod))
        await after_completion(ctx, new, just_finished=True)


def _end_event_may_be_missing(ctx: Context, buildrun: BuildRun) -> bool:
    """A finished run seen for the first time since start-up: the operator may have stopped
    between its final status write and its Event. Posting again is harmless (same name)."""
    meta = buildrun.metadata
    if meta.get("deletionTimestamp") or meta.get("uid") in ctx.announced:
        return False
    return lifecycle.end_event_missed(buildrun, common.now())


async def announce_end(ctx: Context, buildrun: BuildRun, body: dict[str, Any]) -> None:
    """The run's one end-of-run Event (`Normal Succeeded` or `Warning <reason>`), named
    deterministically so that a repeated attempt (a retry, a restart) cannot post a second."""
    condition = _condition(buildrun)
    uid = str(buildrun.metadata.get("uid", ""))
    if condition is None or condition.status not in ("True", "False") or not uid:
        return
    posted = await common.post_event(
        ctx, body, condition.reason, condition.message, warning=condition.status == "False",
        name=lifecycle.end_event_name(buildrun.metadata["name"], uid),
        at=condition.last_transition_time,
    )  # fmt: skip
    if posted:
        ctx.announced.add(uid)


def forget_pending_status(ctx: Context, key: tuple[str, str]) -> None:
    """Nothing left to write later for this BuildRun (written, finished or deleted)."""
    ctx.status_due.pop(key, None)
    ctx.unwritten_starts.pop(key, None)
    ctx.scheduler.cancel(key, "status")


def _condition(buildrun: BuildRun) -> Any:
    for condition in (buildrun.status.conditions if buildrun.status else None) or []:
        if condition.type == "Succeeded":
            return condition
    return None


# --- after completion ------------------------------------------------------------------------


async def after_completion(ctx: Context, buildrun: BuildRun, *, just_finished: bool) -> None:
    """Apply retention (TTL; limits and cleanup of what the run created when it has just
    finished — not again on every later event of a finished run, which would cost a DELETE
    and a scan of all the Build's runs each time). Builds apply their limits on their own
    events too, which covers runs that finished while the operator was down."""
    meta = buildrun.metadata
    namespace, name = meta["namespace"], meta["name"]
    ctx.scheduler.cancel((namespace, name), "timeout")
    forget_pending_status(ctx, (namespace, name))
    if just_finished and buildrun.spec.service_account == GENERATE_SA:
        await ctx.kube.delete(kube.SERVICEACCOUNTS, namespace, name)
    expiry = retention.ttl_expiry(buildrun)
    if expiry is not None:
        if common.now() >= expiry:
            await ctx.kube.delete(kube.BUILDRUNS, namespace, name)
            return
        ctx.scheduler.at((namespace, name), "ttl", expiry, lambda: reconcile(ctx, namespace, name))
    build_name = buildrun.spec.build.name
    if just_finished and build_name:
        await enforce_limits(ctx, namespace, build_name)


async def enforce_limits(ctx: Context, namespace: str, build_name: str) -> None:
    build_body = ctx.builds.get(namespace, build_name)
    if build_body is None:
        return
    build = Build.model_validate(build_body)
    limits = build.spec.retention
    if limits is None or (limits.succeeded_limit is None and limits.failed_limit is None):
        return
    runs = [
        BuildRun.model_validate(b)
        for b in ctx.buildruns.in_namespace(namespace)
        if (b["metadata"].get("labels") or {}).get("build.shipwright.io/name") == build_name
    ]
    for victim in retention.runs_to_delete(runs, limits.succeeded_limit, limits.failed_limit):
        await ctx.kube.delete(kube.BUILDRUNS, namespace, victim)

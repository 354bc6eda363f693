"""Leader election: the I/O around `core.leader` (read the Lease, write it conditionally).

Every replica watches and caches everything (a hot standby); only the leader reconciles.
`Elector.leading()` is what the handlers ask before they act, and what the API client's
write guard asks before every write, so a leader that could not renew for the renew
deadline stops writing even if a reconcile is half way: it then lets the lease expire, and
the next leader reconciles everything from the objects (level-triggered, so nothing of the
old leader's work needs handing over).

Configuration (environment; `buildwright run` flags override):
  BUILDWRIGHT_LEADER_ELECTION=off      run without a Lease (a single replica)
  BUILDWRIGHT_LEASE_NAMESPACE          where the Lease lives; default BUILDWRIGHT_NAMESPACE,
                                       else the Pod's namespace, else `default`
  BUILDWRIGHT_LEASE_NAME               default buildwright-leader
  BUILDWRIGHT_LEADER_IDENTITY          default the Pod name (a restarted container takes its
                                       own lease back at once), else hostname_uuid
  BUILD_CONTROLLER_LEASE_DURATION, BUILD_CONTROLLER_RENEW_DEADLINE,
  BUILD_CONTROLLER_RETRY_PERIOD        Go durations, as for Shipwright's controller
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from buildwright import kube, metrics, readiness
from buildwright.core import leader as decide

logger = logging.getLogger("buildwright.leader")

DEFAULT_LEASE_NAME = "buildwright-leader"
_OFF_VALUES = frozenset({"off", "false", "0", "no", "disabled"})
_POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class ElectionConfig:
    enabled: bool = True
    namespace: str = "default"
    name: str = DEFAULT_LEASE_NAME
    identity: str = ""
    settings: decide.LeaderSettings = field(default_factory=decide.LeaderSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ElectionConfig:
        namespace = env.get("BUILDWRIGHT_LEASE_NAMESPACE") or env.get("BUILDWRIGHT_NAMESPACE")
        if not namespace and env.get("KUBERNETES_SERVICE_HOST") and _POD_NAMESPACE_FILE.exists():
            namespace = _POD_NAMESPACE_FILE.read_text().strip()
        identity = (
            env.get("BUILDWRIGHT_LEADER_IDENTITY")
            or env.get("POD_NAME")
            or f"{socket.gethostname()}_{uuid.uuid4()}"
        )
        return cls(
            enabled=env.get("BUILDWRIGHT_LEADER_ELECTION", "on").strip().lower() not in _OFF_VALUES,
            namespace=namespace or "default",
            name=env.get("BUILDWRIGHT_LEASE_NAME") or DEFAULT_LEASE_NAME,
            identity=identity,
            settings=decide.LeaderSettings.from_env(env),
        )


def _now() -> datetime:
    return datetime.now(UTC)


class Elector:
    """Acquires and renews the Lease; calls `on_started` / `on_stopped` on each change."""

    def __init__(
        self,
        client: kube.Kube,
        config: ElectionConfig,
        *,
        on_started: Callable[[], None] = lambda: None,
        on_stopped: Callable[[], None] = lambda: None,
    ) -> None:
        self._kube = client
        self.config = config
        self._permission = (
            f"get and update leases.coordination.k8s.io {config.name} in namespace "
            f"{config.namespace}"
        )
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._leading = False
        self._last_renewal: datetime | None = None
        self._observed: decide.LeaseRecord | None = None
        self._observed_at = _now()
        self._task: asyncio.Task[None] | None = None
        metrics.current().leader.set(0)

    def leading(self) -> bool:
        """True while this replica holds the lease and renewed it within the deadline."""
        if not self._leading or self._last_renewal is None:
            return False
        return decide.still_leading(self._last_renewal, _now(), self.config.settings)

    def guard(self, verb: str, resource: kube.Resource) -> None:
        """The API client's write guard: refuse writes unless leading (the Lease itself is
        written by the elector's own client)."""
        if not self.leading():
            raise kube.NotLeading(f"not the leader: {verb} {resource.plural} refused")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="buildwright-leader-election")

    async def stop(self, *, release: bool = True) -> None:
        """Stop electing; a leader releases the lease so the next one starts at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        was_leading = self._leading
        self._set_leading(False)
        if release and was_leading:
            try:
                await self._release()
            except Exception as error:  # the lease then expires by itself
                logger.warning("releasing the leader Lease failed: %s", error)

    async def close(self) -> None:
        await self._kube.close()

    async def _run(self) -> None:
        settings = self.config.settings
        logger.info(
            "leader election: %s competes for Lease %s/%s (lease %ss, renew deadline %ss, "
            "retry %ss)", self.config.identity, self.config.namespace, self.config.name,
            settings.lease_duration.total_seconds(), settings.renew_deadline.total_seconds(),
            settings.retry_period.total_seconds(),
        )  # fmt: skip
        while True:
            try:
                held = await self._try_acquire_or_renew()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # API away, 5xx, timeouts: try again
                held = None
                if isinstance(error, kube.ApiError) and error.status == 403:
                    # Missing RBAC: said once; not ready (never leading) until it is granted.
                    readiness.watch_failed(self._permission, error.message)
                else:
                    logger.warning("leader Lease %s: %s", self.config.name, error)
            else:
                readiness.watch_recovered(self._permission)
            if held:
                self._last_renewal = _now()
                self._set_leading(True)
            elif held is False or not self.leading():
                # Another holder is valid, or we failed to renew for the renew deadline.
                self._set_leading(False)
            period = settings.retry_period.total_seconds()
            if not self._leading:
                period *= 1 + random.random() * (decide.JITTER_FACTOR - 1)
            await asyncio.sleep(period)

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        metrics.current().leader.set(1 if leading else 0)
        metrics.current().leader_transitions.labels("leader" if leading else "follower").inc()
        if leading:
            logger.info("became the leader (Lease %s/%s)", self.config.namespace, self.config.name)
            self._on_started()
        else:
            logger.warning("stopped leading (Lease %s/%s)", self.config.namespace, self.config.name)
            self._on_stopped()

    async def _read(self) -> tuple[dict[str, Any] | None, decide.LeaseRecord | None]:
        lease = await self._kube.get(kube.LEASES, self.config.namespace, self.config.name)
        if lease is None:
            return None, None
        record = decide.LeaseRecord.from_spec(lease.get("spec"))
        if record != self._observed:
            self._observed, self._observed_at = record, _now()
        return lease, record

    async def _try_acquire_or_renew(self) -> bool | None:
        """True: we hold the lease now. False: another holder does (or won the race)."""
        lease, record = await self._read()
        now = _now()
        wanted = decide.next_record(
            record, self._observed_at, self.config.identity, now, self.config.settings
        )
        if wanted is None:
            return False
        try:
            if lease is None:
                await self._kube.create(kube.LEASES, self.config.namespace, {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                    "spec": wanted.to_spec(),
                })  # fmt: skip
            else:
                await self._kube.replace(
                    kube.LEASES, self.config.namespace, self.config.name,
                    {**lease, "spec": wanted.to_spec()},
                )  # fmt: skip
        except kube.ApiError as error:
            if error.conflict:  # somebody else wrote it since we read: they won
                return False
            raise
        self._observed, self._observed_at = wanted, now
        return True

    async def _release(self) -> None:
        lease, record = await self._read()
        if lease is None or record is None or record.holder != self.config.identity:
            return
        body = {**lease, "spec": decide.released(record, _now()).to_spec()}
        await self._kube.replace(kube.LEASES, self.config.namespace, self.config.name, body)
        logger.info("released the leader Lease %s/%s", self.config.namespace, self.config.name)

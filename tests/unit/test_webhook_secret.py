"""The webhook certificate kept in a Secret: filled once, shared, reused, renewed by the
leader only; and a CRD that already trusts the CA is left alone.

The API is an in-memory Secret store with the apiserver's rules (409 on create of an
existing name, 409 on a stale resourceVersion); the HTTPS server is real, on a free port.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from buildwright import kube
from buildwright.webhook.certificates import generate_certificate
from buildwright.webhook.config import WebhookConfig
from buildwright.webhook.crds import trusted_patch
from buildwright.webhook.serving import WebhookServer


class SecretStore:
    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        self.secret = copy.deepcopy(initial)
        self.writes = 0
        self.before_write: Any = None  # called once before the next write (a racing replica)

    async def get(self, resource: kube.Resource, namespace: str, name: str) -> Any:
        if resource is kube.CRDS:
            return None  # no CRDs installed: nothing to patch
        return copy.deepcopy(self.secret)

    def _race(self) -> None:
        hook, self.before_write = self.before_write, None
        if hook is not None:
            hook()

    async def create(self, resource: kube.Resource, namespace: str, body: Any) -> Any:
        self._race()
        if self.secret is not None:
            raise kube.ApiError(409, "AlreadyExists", "exists")
        return self._store(body)

    async def replace(self, resource: kube.Resource, namespace: str, name: str, body: Any) -> Any:
        self._race()
        assert self.secret is not None
        if body["metadata"].get("resourceVersion") != self.secret["metadata"]["resourceVersion"]:
            raise kube.ApiError(409, "Conflict", "modified")
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.writes += 1
        self.secret = copy.deepcopy(body)
        self.secret["metadata"]["resourceVersion"] = str(self.writes)
        return copy.deepcopy(self.secret)


CONFIG = WebhookConfig(host="127.0.0.1", port=0, url="https://127.0.0.1:1/convert")
EMPTY = {"metadata": {"name": "buildwright-webhook-cert", "namespace": "buildwright",
                      "resourceVersion": "0"}, "type": "Opaque"}  # fmt: skip


async def started(store: SecretStore, *, leading: bool = True) -> WebhookServer:
    server = WebhookServer(CONFIG, store, leading=lambda: leading)  # type: ignore[arg-type]
    await server.start()
    return server


async def test_the_first_replica_fills_the_secret_and_the_next_ones_reuse_it() -> None:
    store = SecretStore(EMPTY)
    first = await started(store)
    second = await started(store)
    try:
        assert store.writes == 1
        assert first.certificate == second.certificate
        assert first.source == second.source == "managed"
    finally:
        await first.stop()
        await second.stop()
    restarted = await started(store)
    try:
        assert restarted.certificate == first.certificate and store.writes == 1
    finally:
        await restarted.stop()


async def test_of_two_replicas_filling_it_at_once_the_loser_serves_the_winners() -> None:
    store = SecretStore(EMPTY)
    winner_cert = generate_certificate(CONFIG)

    def other_replica_writes_first() -> None:
        secret = copy.deepcopy(store.secret)
        assert secret is not None
        secret["data"] = {
            "tls.crt": base64.b64encode(winner_cert.cert).decode(),
            "tls.key": base64.b64encode(winner_cert.key).decode(),
            "ca.crt": base64.b64encode(winner_cert.ca).decode(),
        }
        store._store(secret)

    store.before_write = other_replica_writes_first
    loser = await started(store)
    try:
        assert loser.certificate == winner_cert
    finally:
        await loser.stop()


async def test_only_the_leader_renews_and_a_follower_picks_the_renewal_up() -> None:
    store = SecretStore(None)  # no Secret yet: created
    leader = await started(store, leading=True)
    follower = await started(store, leading=False)
    try:
        old = leader.certificate
        assert old is not None and store.writes == 1
        due = old.not_before + (old.not_after - old.not_before) * 0.7
        assert not await follower.rotate(now=due), "a follower does not renew"
        assert store.writes == 1
        assert await leader.rotate(now=due)
        assert store.writes == 2 and leader.certificate != old
        assert await follower.rotate(now=due), "the follower serves the renewed certificate"
        assert follower.certificate == leader.certificate
    finally:
        await leader.stop()
        await follower.stop()


async def test_a_secret_that_cannot_be_created_falls_back_to_memory() -> None:
    class NoNamespace(SecretStore):
        async def create(self, resource: kube.Resource, namespace: str, body: Any) -> Any:
            raise kube.ApiError(404, "NotFound", 'namespaces "buildwright" not found')

    server = await started(NoNamespace(None))
    try:
        assert server.source == "memory" and server.certificate is not None
    finally:
        await server.stop()


def test_a_crd_already_trusting_the_ca_keeps_its_bundle() -> None:
    old, new = generate_certificate(CONFIG), generate_certificate(CONFIG)
    both = base64.b64encode(new.ca + old.ca).decode()
    crd = {"spec": {"conversion": {"webhook": {"clientConfig": {"caBundle": both}}}}}
    patch = CONFIG.crd_patch(new.ca)
    kept = trusted_patch(crd, patch, new.ca)
    assert kept["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] == both
    other = generate_certificate(CONFIG)
    assert trusted_patch(crd, CONFIG.crd_patch(other.ca), other.ca) == CONFIG.crd_patch(other.ca)
    assert trusted_patch({}, patch, new.ca) == patch

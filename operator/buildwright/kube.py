"""The few Kubernetes API calls the operator makes, in one place.

A thin asynchronous JSON client on aiohttp (which kopf already runs on): raw dicts in and out,
one pooled connection set, no model (de)serialisation on the hot path. It is built from the
same `kopf.ConnectionInfo` that kopf logs in with, so both talk to the API as one identity.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import kopf
import orjson
import yarl

from buildwright import metrics

GROUP_VERSION = "shipwright.io/v1beta1"
# Upstream's field managers, so server-side-apply tooling and migrations from Shipwright see
# the owners they expect: Builds are written by the build controller, BuildRuns and what they
# create (Pods, ServiceAccounts, Events) by the buildrun controller.
BUILD_CONTROLLER = "shipwright-build-controller"
BUILDRUN_CONTROLLER = "shipwright-buildrun-controller"


class ApiError(Exception):
    """A non-success answer of the API server."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def too_large(self) -> bool:
        """The object is larger than the API server or etcd stores (413, or a 500 with etcd's
        words: measured on kube-apiserver 1.34 with a Pod of 1.6 MB and of 2.5 MB)."""
        return self.status == 413 or (
            self.status == 500
            and any(words in self.message for words in _TOO_LARGE_WORDS)
        )

    @property
    def transient(self) -> bool:
        """Whether the same request may succeed later: a conflict, throttling, or the server
        unavailable or failing. 400, 403, 404, 422 and the like will not change on retry, nor
        will an object too large to store."""
        if self.too_large:
            return False
        return self.status in (409, 429) or self.status >= 500

    @property
    def invalid(self) -> bool:
        """The request itself was refused (400 Bad Request, 422 Invalid): the same request
        will be refused again, so it is not retried."""
        return self.status in (400, 422)


_TOO_LARGE_WORDS = ("etcdserver: request is too large", "trying to send message larger than max")


# What a reconcile may see fail: answers of the API server and broken connections. Which of
# them to retry is `is_transient`'s decision.
API_ERRORS = (ApiError, aiohttp.ClientError, TimeoutError)


def is_transient(error: BaseException) -> bool:
    """Retry (with backoff) connection errors, timeouts, 409, 429 and 5xx; nothing else."""
    if isinstance(error, ApiError):
        return error.transient
    return isinstance(error, aiohttp.ClientError | TimeoutError)


# Answers as metadata only (`PartialObjectMetadata`): what the operator reads of Secrets, so
# their data never reaches it. Lists answer a PartialObjectMetadataList; watch events carry
# one PartialObjectMetadata each.
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

# The first "event" of every watch: the apiserver accepted it (no object).
OPENED = "OPENED"


class NotLeading(Exception):
    """A write refused because this replica does not lead (any more): another one does the
    work, so the reconcile stops here without retrying."""


# The verbs the leader guard of a client (`Kube.guard_writes`) is asked about.
WRITE_VERBS = frozenset({"create", "update", "patch", "delete"})


class InvalidPathSegment(ValueError):
    """A namespace, name or subresource that no object can have was about to enter a path."""


def _segment(value: str) -> str:
    """`value` as exactly one path segment.

    Everything is percent-escaped (`safe=""`: `/`, `?`, `#` and `%` too), and the values the
    apiserver refuses as names anyway (`.`, `..`, anything with `/` or `%`) are refused here:
    the apiserver decodes `%2F` before it splits a path, so escaping alone would not keep
    `..%2F..%2Fvictim` in its segment. Callers check names first (`core.references`); this
    is the last line.
    """
    if value in (".", "..") or "/" in value or "%" in value:
        raise InvalidPathSegment(f"{value!r} cannot be a path segment of the API")
    return quote(value, safe="")


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API."""

    group_version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{_segment(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{_segment(name)}"
        if sub:
            base += f"/{_segment(sub)}"
        return base


BUILDS = Resource(GROUP_VERSION, "builds")
BUILDRUNS = Resource(GROUP_VERSION, "buildruns")
BUILDSTRATEGIES = Resource(GROUP_VERSION, "buildstrategies")
CLUSTERBUILDSTRATEGIES = Resource(GROUP_VERSION, "clusterbuildstrategies", namespaced=False)
PODS = Resource("v1", "pods")
SECRETS = Resource("v1", "secrets")
CONFIGMAPS = Resource("v1", "configmaps")
SERVICEACCOUNTS = Resource("v1", "serviceaccounts")
EVENTS = Resource("v1", "events")
CRDS = Resource("apiextensions.k8s.io/v1", "customresourcedefinitions", namespaced=False)
LEASES = Resource("coordination.k8s.io/v1", "leases")


def field_manager(resource: Resource) -> str:
    """Who writes objects of this kind (`fieldManager` of every create and patch)."""
    return BUILD_CONTROLLER if resource in (BUILDS, CRDS) else BUILDRUN_CONTROLLER


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context = ssl.create_default_context(
        cafile=str(info.ca_path) if info.ca_path else None,
        cadata=_text(info.ca_data) if info.ca_data else None,
    )
    if info.certificate_path and info.private_key_path:
        context.load_cert_chain(str(info.certificate_path), str(info.private_key_path))
    elif info.certificate_data and info.private_key_data:
        # ssl only loads key material from files; keep them in memory-backed temp files.
        import tempfile

        with (
            tempfile.NamedTemporaryFile("w", suffix=".crt") as cert,
            tempfile.NamedTemporaryFile("w", suffix=".key") as key,
        ):
            cert.write(_text(info.certificate_data))
            key.write(_text(info.private_key_data))
            cert.flush()
            key.flush()
            context.load_cert_chain(cert.name, key.name)
    return context


def _text(data: str | bytes) -> str:
    if isinstance(data, bytes):
        data = data.decode()
    # kubeconfig *-data fields are base64 of PEM; kopf passes them through as given.
    if "-----BEGIN" not in data:
        data = base64.b64decode(data).decode()
    return data


class Kube:
    """An API client bound to one connection; create it once per operator process."""

    # Concurrent requests (one connection each). Every open TLS connection holds ~0.3 MB of
    # buffers; 16 carry several hundred requests/s at the apiserver's latency under load.
    def __init__(self, info: kopf.ConnectionInfo, *, limit: int = 16) -> None:
        self._server = info.server.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "buildwright"}
        if info.token:
            headers["Authorization"] = f"Bearer {info.token}"
        elif info.username and info.password:
            basic = base64.b64encode(f"{info.username}:{info.password}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        context = _ssl_context(info)
        self._session = aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=context, limit=limit),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        # Watches hold their connection for minutes: apart from the request pool.
        self._streams = aiohttp.ClientSession(
            headers=headers, connector=aiohttp.TCPConnector(ssl=context, limit=0)
        )

        self._guard: Callable[[str, Resource], None] | None = None

    def guard_writes(self, guard: Callable[[str, Resource], None] | None) -> None:
        """Call `guard(verb, resource)` before every write; it raises (NotLeading) to refuse.
        A replica that lost its lease must not write a moment later than it knows."""
        self._guard = guard

    async def close(self) -> None:
        await self._session.close()
        await self._streams.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: Resource,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        accept: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> Any:
        url = self._server + path
        if params:
            url += "?" + urlencode(params)
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        if self._guard is not None and verb in WRITE_VERBS:
            self._guard(verb, resource)
        code = "error"
        try:
            async with (session or self._session).request(
                method, yarl.URL(url, encoded=True), data=data, headers=headers
            ) as response:
                code = str(response.status)
                raw = await response.read()
        finally:
            metrics.current().api_requests.labels(verb, resource.plural, code).inc()
        if response.status >= 400:
            try:
                status = orjson.loads(raw)
            except orjson.JSONDecodeError:
                text = raw.decode(errors="replace")
                raise ApiError(response.status, response.reason or "", text[:500]) from None
            raise ApiError(response.status, status.get("reason", ""), status.get("message", ""))
        return orjson.loads(raw) if raw else None

    async def get(
        self, resource: Resource, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist (no object has an empty name: without
        this, the request would go to the kind's collection and answer with a list)."""
        if not name:
            return None
        try:
            result: dict[str, Any] = await self._request(
                "GET", resource.path(namespace, name), verb="get", resource=resource
            )
            return result
        except ApiError as error:
            if error.not_found:
                return None
            raise

    async def container_log_tail(
        self, namespace: str, pod: str, container: str, *, lines: int, limit_bytes: int
    ) -> str:
        """The end of a container's log, read through the apiserver from the node's kubelet."""
        params = {
            "container": container, "tailLines": str(lines), "limitBytes": str(limit_bytes)
        }  # fmt: skip
        url = f"{self._server}{PODS.path(namespace, pod, 'log')}?{urlencode(params)}"
        async with self._session.get(
            yarl.URL(url, encoded=True), timeout=aiohttp.ClientTimeout(total=10)
        ) as response:
            metrics.current().api_requests.labels("get", "pods/log", str(response.status)).inc()
            text = await response.text(errors="replace")
            if response.status >= 400:
                raise ApiError(response.status, response.reason or "", text[:500])
            return text

    async def list_objects(
        self, resource: Resource, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self._request(
            "GET", resource.path(namespace), verb="list", resource=resource, params=params
        )
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def list_page(
        self,
        resource: Resource,
        namespace: str | None,
        params: Mapping[str, str],
        *,
        metadata_only: bool = False,
        informer: bool = False,
    ) -> dict[str, Any]:
        """One page of a list (`limit`/`continue` in `params`), as the API answers it;
        with `metadata_only`, a PartialObjectMetadataList (no spec, data or status). An
        `informer`'s list goes over the watches' connections: never queued behind the
        requests of reconciles (after a restart, thousands of them wait for the pool)."""
        accept = METADATA_LIST if metadata_only else None
        result: dict[str, Any] = await self._request(
            "GET", resource.path(namespace), verb="list", resource=resource, params=params,
            accept=accept, session=self._streams if informer else None,
        )  # fmt: skip
        return result

    async def watch(
        self,
        resource: Resource,
        namespace: str | None,
        params: Mapping[str, str],
        *,
        metadata_only: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of a watch (`watch=true` and its options in `params`) until the server
        ends it, after a first `{"type": OPENED}` once the server accepted it; an error answer
        raises ApiError. With `metadata_only`, each event's object is a PartialObjectMetadata."""
        url = self._server + resource.path(namespace) + "?" + urlencode(params)
        seconds = float(params.get("timeoutSeconds", "300"))
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=seconds + 30)
        headers = {"Accept": METADATA} if metadata_only else None
        async with self._streams.get(
            yarl.URL(url, encoded=True), timeout=timeout, headers=headers
        ) as response:
            metrics.current().api_requests.labels(
                "watch", resource.plural, str(response.status)
            ).inc()
            if response.status >= 400:
                text = await response.text()
                try:
                    status = json.loads(text)
                    raise ApiError(
                        response.status, status.get("reason", ""), status.get("message", "")
                    )
                except json.JSONDecodeError:
                    raise ApiError(response.status, response.reason or "", text[:500]) from None
            yield {"type": OPENED}  # accepted: callers learn it before the first event
            # Split lines ourselves: StreamReader's line reading refuses lines over 128 KB.
            pending = b""
            async for chunk in response.content.iter_any():
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line and not line.isspace():  # (strip() would copy every event)
                        yield orjson.loads(line)

    async def create(
        self,
        resource: Resource,
        namespace: str | None,
        body: dict[str, Any],
        *,
        manager: str | None = None,
    ) -> dict[str, Any]:
        """Create; `manager` overrides the kind's field manager (Events of a Build)."""
        params = {"fieldManager": manager or field_manager(resource)}
        result: dict[str, Any] = await self._request(
            "POST",
            resource.path(namespace),
            verb="create",
            resource=resource,
            body=body,
            params=params,
        )
        return result

    async def replace(
        self, resource: Resource, namespace: str | None, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """PUT the whole object; its `metadata.resourceVersion` makes it conditional (409
        Conflict when the object changed since it was read)."""
        result: dict[str, Any] = await self._request(
            "PUT",
            resource.path(namespace, name),
            verb="update",
            resource=resource,
            body=body,
            params={"fieldManager": field_manager(resource)},
        )
        return result

    async def merge_patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
        *,
        status: bool = False,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "PATCH",
            resource.path(namespace, name, "status" if status else ""),
            verb="patch",
            resource=resource,
            body=patch,
            content_type="application/merge-patch+json",
            params={"fieldManager": field_manager(resource)},
        )
        return result

    async def delete(
        self, resource: Resource, namespace: str | None, name: str, *, background: bool = True
    ) -> bool:
        """Delete; False when it was already gone."""
        body = {"propagationPolicy": "Background" if background else "Foreground"}
        try:
            await self._request(
                "DELETE",
                resource.path(namespace, name),
                verb="delete",
                resource=resource,
                body=body,
            )
            return True
        except ApiError as error:
            if error.not_found:
                return False
            raise

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

from buildwright import metrics

GROUP_VERSION = "shipwright.io/v1beta1"
FIELD_MANAGER = "buildwright"


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


class NotLeading(Exception):
    """A write refused because this replica does not lead (any more): another one does the
    work, so the reconcile stops here without retrying."""


# The verbs the leader guard of a client (`Kube.guard_writes`) is asked about.
WRITE_VERBS = frozenset({"create", "update", "patch", "delete"})

# What a reconcile retries after a delay instead of giving up: answers of the API server
# (conflicts, throttling, unavailability) and broken connections.
TRANSIENT_ERRORS = (ApiError, aiohttp.ClientError, TimeoutError)


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API."""

    group_version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if sub:
            base += f"/{sub}"
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
    ) -> Any:
        url = self._server + path
        if params:
            url += "?" + urlencode(params)
        data = None if body is None else json.dumps(body)
        if self._guard is not None and verb in WRITE_VERBS:
            self._guard(verb, resource)
        code = "error"
        try:
            async with self._session.request(
                method, url, data=data, headers={"Content-Type": content_type}
            ) as response:
                code = str(response.status)
                text = await response.text()
        finally:
            metrics.current().api_requests.labels(verb, resource.plural, code).inc()
        if response.status >= 400:
            try:
                status = json.loads(text)
            except json.JSONDecodeError:
                raise ApiError(response.status, response.reason or "", text[:500]) from None
            raise ApiError(response.status, status.get("reason", ""), status.get("message", ""))
        return json.loads(text) if text else None

    async def get(
        self, resource: Resource, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            result: dict[str, Any] = await self._request(
                "GET", resource.path(namespace, name), verb="get", resource=resource
            )
            return result
        except ApiError as error:
            if error.not_found:
                return None
            raise

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
        self, resource: Resource, namespace: str | None, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """One page of a list (`limit`/`continue` in `params`), as the API answers it."""
        result: dict[str, Any] = await self._request(
            "GET", resource.path(namespace), verb="list", resource=resource, params=params
        )
        return result

    async def watch(
        self, resource: Resource, namespace: str | None, params: Mapping[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of a watch (`watch=true` and its options in `params`) until the server
        ends it; an error answer raises ApiError."""
        url = self._server + resource.path(namespace) + "?" + urlencode(params)
        seconds = float(params.get("timeoutSeconds", "300"))
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=seconds + 30)
        async with self._streams.get(url, timeout=timeout) as response:
            metrics.current().api_requests.labels(
                "watch", resource.plural, str(response.status)
            ).inc()
            if response.status >= 400:
                text = await response.text()
                raise ApiError(response.status, response.reason or "", text[:500])
            # Split lines ourselves: StreamReader's line reading refuses lines over 128 KB.
            pending = b""
            async for chunk in response.content.iter_any():
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)

    async def create(
        self, resource: Resource, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "POST",
            resource.path(namespace),
            verb="create",
            resource=resource,
            body=body,
            params={"fieldManager": FIELD_MANAGER},
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
            params={"fieldManager": FIELD_MANAGER},
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
            params={"fieldManager": FIELD_MANAGER},
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

"""A small client of the OCI distribution API, standard library only.

Just enough for the image-processing step: check for, upload and download blobs, and get and
put manifests, against one repository. Pushes are monolithic (``POST`` then one ``PUT`` with
the whole blob), which every registry supports and which keeps the client simple.

Authentication follows the registry's challenge: a ``401`` with ``WWW-Authenticate: Basic``
is answered with basic auth; ``Bearer realm=…,service=…,scope=…`` with a token fetched from
the realm (with basic auth when credentials exist, anonymously otherwise). Credentials come
from Docker config files (:func:`load_docker_config`, :func:`credentials_for`).

Credentials never appear in messages: errors quote the registry's error codes and messages
and the URL path, and the ``Authorization`` header is added as an *unredirected* header, so a
redirect to blob storage (S3, GCS) does not carry it to another host either.

One module, over 500 lines: the client is one protocol conversation (challenge, token,
blob, manifest), read best in order; the steps import only `RegistryClient`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.client import HTTPMessage, HTTPResponse
from typing import IO, Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io",
                       "registry.hub.docker.com")

DEFAULT_TIMEOUT = 60.0


class RegistryError(Exception):
    """A registry request failed; the message says what and why, never with credentials."""


class AuthenticationError(RegistryError):
    """The registry refused our credentials, or wants some and we have none."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- references ------------------------------------------------------------------------------

_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    """An image reference split into registry host, repository, tag and digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host that serves the API (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the tag if there is one, else the digest."""
        return self.tag or self.digest or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """Parse ``[host[:port]/]path[:tag][@sha256:…]`` the way Docker does.

    The first path component is a registry host when it contains ``.`` or ``:`` or is
    ``localhost``; otherwise the image lives on Docker Hub (``library/`` for single names).
    Without tag and digest the tag is ``latest``.
    """
    rest = text.strip()
    if not rest or any(character.isspace() for character in rest) or "://" in rest:
        raise ValueError(f"invalid image reference {text!r}")
    digest: str | None = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise ValueError(f"invalid digest in image reference {text!r}")
    tag: str | None = None
    last_slash = rest.rfind("/")
    if ":" in rest[last_slash + 1:]:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.match(tag):
            raise ValueError(f"invalid tag in image reference {text!r}")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, remainder
    else:
        registry, repository = DOCKER_HUB, rest
    if registry in _DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in repository:
            repository = f"library/{repository}"
    if not repository or repository != repository.lower() or "//" in repository:
        raise ValueError(f"invalid repository in image reference {text!r}")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry=registry, repository=repository, tag=tag, digest=digest)


# --- credentials -----------------------------------------------------------------------------


def _normalise_host(key: str) -> str:
    """``https://host:5000/v2/`` → ``host:5000``; Docker Hub's spellings → ``docker.io``."""
    host = key.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    return DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


def load_docker_config(path: str) -> dict[str, Any]:
    """A Docker config (``config.json`` or a Secret's ``.dockerconfigjson``) as a dict.

    A missing file gives ``{}``; a file that is not JSON is an error, because silently pushing
    without the credentials the user configured would fail later with a puzzling 401.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise RegistryError(f"cannot read Docker config {path}: {type(error).__name__}") from None
    if not isinstance(loaded, dict):
        raise RegistryError(f"Docker config {path} is not a JSON object")
    return loaded


def credentials_for(config: Mapping[str, Any], registry: str) -> tuple[str, str] | None:
    """Username and password for ``registry`` from a Docker config's ``auths``.

    Keys may be written as bare hosts or URLs; an entry has ``auth`` (base64 of
    ``user:password``) or ``username``/``password``. Credential helpers are not supported:
    a build Pod has none.
    """
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    wanted = _normalise_host(registry)
    for key, entry in auths.items():
        if not isinstance(entry, dict) or _normalise_host(str(key)) != wanted:
            continue
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                decoded = base64.b64decode(encoded, validate=False).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise RegistryError(
                    f"the 'auth' entry for {wanted} in the Docker config is not base64 of "
                    "user:password"
                ) from None
            user, separator, password = decoded.partition(":")
            if not separator:
                raise RegistryError(
                    f"the 'auth' entry for {wanted} in the Docker config has no ':' "
                    "between user and password"
                )
            return user, password
        name, secret = entry.get("username"), entry.get("password")
        if isinstance(name, str) and isinstance(secret, str) and name:
            return name, secret
    return None


# --- HTTP ------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes
    url: str


_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…"`` → ``("bearer", {"realm": …, "service": …})``."""
    scheme, _, params = header.strip().partition(" ")
    values = {
        match.group(1).lower(): (match.group(2) if match.group(2) is not None
                                 else match.group(3)).replace('\\"', '"')
        for match in _CHALLENGE_PARAM.finditer(params)
    }
    return scheme.lower(), values


def _error_detail(body: bytes) -> str:
    """The registry's own explanation (``{"errors": [{"code", "message"}]}``), short."""
    try:
        errors = json.loads(body).get("errors")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(errors, list):
        return ""
    parts = []
    for error in errors[:3]:
        if isinstance(error, dict):
            parts.append(f"{error.get('code', '')}: {error.get('message', '')}".strip(": "))
    return "; ".join(parts)


class _NoRedirectForWrites(urllib.request.HTTPRedirectHandler):
    """Follow redirects for GET/HEAD only; urllib would turn a redirected PUT into a GET."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int,
                         msg: str, headers: HTTPMessage, newurl: str
                         ) -> urllib.request.Request | None:
        if req.get_method() not in ("GET", "HEAD"):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@dataclass
class RegistryClient:
    """Talks to one repository of one registry.

    ``insecure`` allows plain HTTP (and unverified TLS) for this registry, as Shipwright's
    ``output.insecure`` does: HTTPS is tried first and HTTP used when the server does not speak
    TLS. Without it only verified HTTPS is used.
    """

    registry: str
    repository: str
    credentials: tuple[str, str] | None = None
    insecure: bool = False
    push: bool = True
    timeout: float = DEFAULT_TIMEOUT
    _scheme: str | None = field(default=None, repr=False)
    _authorization: str | None = field(default=None, repr=False)
    _opener: urllib.request.OpenerDirector | None = field(default=None, repr=False)

    @classmethod
    def for_reference(cls, reference: Reference, credentials: tuple[str, str] | None,
                      insecure: bool, push: bool = True) -> RegistryClient:
        return cls(registry=reference.api_host, repository=reference.repository,
                   credentials=credentials, insecure=insecure, push=push)

    # -- plumbing ---------------------------------------------------------------------------

    def _get_opener(self) -> urllib.request.OpenerDirector:
        if self._opener is None:
            context = ssl.create_default_context()
            if self.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._opener = urllib.request.build_opener(
                urllib.request.HTTPSHandler(context=context), _NoRedirectForWrites(),
            )
        return self._opener

    def _raw(self, method: str, url: str, data: bytes | IO[bytes] | None = None,
             headers: Mapping[str, str] | None = None,
             authorization: str | None = None) -> Response:
        request = urllib.request.Request(url, data=data, method=method)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        if authorization:
            request.add_unredirected_header("Authorization", authorization)
        try:
            with self._get_opener().open(request, timeout=self.timeout) as answer:
                response: HTTPResponse = answer
                body = b"" if method == "HEAD" else response.read()
                return Response(response.status, response.headers, body, response.geturl())
        except urllib.error.HTTPError as error:
            body = b"" if method == "HEAD" else error.read()
            return Response(error.code, error.headers, body, url)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(
                f"cannot reach registry {self.registry} ({method} {urllib.parse.urlsplit(url).path}"
                f"): {reason}"
            ) from None

    def _base(self) -> str:
        if self._scheme is None:
            self._scheme = self._choose_scheme()
        return f"{self._scheme}://{self.registry}"

    def _choose_scheme(self) -> str:
        try:
            self._raw("GET", f"https://{self.registry}/v2/")
            return "https"
        except RegistryError as error:
            if not self.insecure:
                raise RegistryError(
                    f"{error}; if this registry only speaks plain HTTP, mark the output as "
                    "insecure"
                ) from None
        self._raw("GET", f"http://{self.registry}/v2/")
        return "http"

    def _scopes(self, challenged: str | None) -> list[str]:
        wanted = f"repository:{self.repository}:{'pull,push' if self.push else 'pull'}"
        scopes = [wanted]
        if challenged and challenged != wanted:
            scopes.append(challenged)
        return scopes

    def _authenticate(self, challenge_header: str) -> None:
        scheme, params = parse_challenge(challenge_header)
        if scheme == "basic":
            if self.credentials is None:
                raise AuthenticationError(
                    f"registry {self.registry} requires authentication and no credentials for "
                    "it were found (push secret or Docker config)"
                )
            user, password = self.credentials
            encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._authorization = f"Basic {encoded}"
            return
        if scheme != "bearer" or "realm" not in params:
            raise AuthenticationError(
                f"registry {self.registry} asks for an unsupported authentication scheme "
                f"{scheme!r}"
            )
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        for scope in self._scopes(params.get("scope")):
            query.append(("scope", scope))
        realm = params["realm"]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        basic = None
        if self.credentials is not None:
            user, password = self.credentials
            basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        answer = self._raw("GET", url, authorization=basic)
        if answer.status in (401, 403):
            raise AuthenticationError(
                f"the token service of registry {self.registry} refused the "
                f"{'credentials' if basic else 'anonymous request'} (HTTP {answer.status})"
            )
        if answer.status != 200:
            raise AuthenticationError(
                f"the token service of registry {self.registry} answered HTTP {answer.status}"
            )
        token: object = None
        with contextlib.suppress(ValueError, AttributeError):
            payload = json.loads(answer.body)
            token = payload.get("token") or payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthenticationError(
                f"the token service of registry {self.registry} returned no token"
            )
        self._authorization = f"Bearer {token}"

    def request(self, method: str, path_or_url: str,
                data: bytes | Callable[[], IO[bytes]] | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        """One API request, authenticating once when challenged.

        ``data`` may be a function that opens the body afresh, so a large blob streams from
        disk and can be sent again after a challenge.
        """
        url = path_or_url if "://" in path_or_url else self._base() + path_or_url
        for attempt in range(2):
            body: bytes | IO[bytes] | None
            opened: IO[bytes] | None = None
            if callable(data):
                opened = body = data()
            else:
                body = data
            try:
                answer = self._raw(method, url, body, headers, self._authorization)
            finally:
                if opened is not None:
                    opened.close()
            if answer.status != 401:
                return answer
            challenge = answer.headers.get("WWW-Authenticate", "")
            if attempt == 1 or not challenge:
                break
            self._authenticate(challenge)
        detail = _error_detail(answer.body)
        who = "the configured credentials" if self.credentials else "anonymous access"
        raise AuthenticationError(
            f"registry {self.registry} refused {who} for {self.repository} "
            f"({method} {urllib.parse.urlsplit(url).path}: HTTP 401"
            f"{', ' + detail if detail else ''})"
        )

    def _fail(self, what: str, answer: Response) -> RegistryError:
        detail = _error_detail(answer.body)
        kind = AuthenticationError if answer.status == 403 else RegistryError
        return kind(
            f"{what} in {self.registry}/{self.repository} failed: HTTP {answer.status}"
            f"{' (' + detail + ')' if detail else ''}"
        )

    # -- API --------------------------------------------------------------------------------

    def ping(self) -> None:
        """Check that the registry answers and our credentials (if asked for) work."""
        answer = self.request("GET", "/v2/")
        if answer.status != 200:
            raise self._fail("GET /v2/", answer)

    def blob_exists(self, digest: str) -> bool:
        answer = self.request("HEAD", f"/v2/{self.repository}/blobs/{digest}")
        if answer.status == 200:
            return True
        if answer.status == 404:
            return False
        raise self._fail(f"checking blob {digest}", answer)

    def get_blob(self, digest: str) -> bytes:
        answer = self.request("GET", f"/v2/{self.repository}/blobs/{digest}")
        if answer.status != 200:
            raise self._fail(f"fetching blob {digest}", answer)
        if sha256_digest(answer.body) != digest:
            raise RegistryError(f"blob {digest} from {self.registry} does not match its digest")
        return answer.body

    def upload_blob(self, digest: str, size: int, body: bytes | Callable[[], IO[bytes]]) -> None:
        """Monolithic upload: ``POST`` opens a session, one ``PUT`` sends the blob."""
        started = self.request("POST", f"/v2/{self.repository}/blobs/uploads/",
                               data=b"", headers={"Content-Length": "0"})
        if started.status != 202 or not started.headers.get("Location"):
            raise self._fail(f"starting the upload of blob {digest}", started)
        location = urllib.parse.urljoin(started.url, started.headers["Location"])
        separator = "&" if "?" in location else "?"
        target = f"{location}{separator}digest={urllib.parse.quote(digest)}"
        finished = self.request(
            "PUT", target, data=body,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        if finished.status not in (201, 204):
            raise self._fail(f"uploading blob {digest}", finished)

    def get_manifest(self, reference: str) -> tuple[bytes, str]:
        """The manifest's exact bytes and media type (images and indexes are accepted)."""
        accept = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
        answer = self.request("GET", f"/v2/{self.repository}/manifests/{reference}",
                              headers={"Accept": accept})
        if answer.status == 404:
            raise RegistryError(
                f"image {self.registry}/{self.repository}:{reference} does not exist"
            )
        if answer.status != 200:
            raise self._fail(f"fetching manifest {reference}", answer)
        media_type = answer.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in (*MANIFEST_TYPES, *INDEX_TYPES):
            with contextlib.suppress(ValueError, AttributeError):
                media_type = str(json.loads(answer.body).get("mediaType", media_type))
        if reference.startswith("sha256:") and sha256_digest(answer.body) != reference:
            raise RegistryError(f"manifest {reference} does not match its digest")
        return answer.body, media_type

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> str:
        """Store a manifest under a tag or digest; returns its digest."""
        answer = self.request("PUT", f"/v2/{self.repository}/manifests/{reference}",
                              data=body, headers={"Content-Type": media_type})
        if answer.status not in (200, 201, 202):
            raise self._fail(f"storing manifest {reference}", answer)
        digest = sha256_digest(body)
        reported = answer.headers.get("Docker-Content-Digest")
        if reported and reported != digest:
            raise RegistryError(
                f"registry {self.registry} stored the manifest as {reported}, expected {digest}"
            )
        return digest


def environment_docker_config() -> str:
    """Where the Docker CLI would look: ``$DOCKER_CONFIG/config.json`` or ``~/.docker``."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(
        os.path.expanduser("~"), ".docker"
    )
    return os.path.join(directory, "config.json")

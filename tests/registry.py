"""A real OCI registry for tests: Debian's ``docker-registry`` (distribution 2.8) on loopback.

:class:`LocalRegistry` writes its own config (never the packaged one, which listens on all
interfaces), binds 127.0.0.1 on a free port, stores into a temporary directory and can demand
htpasswd basic auth. :class:`TokenAuthProxy` sits in front of a registry and demands Bearer
tokens from its own token endpoint, so the token flow of clients can be tested without a
separate authorization server.

Use the context managers, or import the pytest fixtures ``registry``, ``registry_auth`` and
``registry_token`` into a test module. Tests are skipped when ``docker-registry`` (or, for
auth, ``htpasswd`` from apache2-utils) is not installed.
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import pytest

from tests.servers import free_port, process_ready

REGISTRY_USERNAME = "pusher"
REGISTRY_PASSWORD = "Registry-pa55word-never-logged"

DOCKER_REGISTRY = shutil.which("docker-registry")
HTPASSWD = shutil.which("htpasswd")


def _status(url: str) -> int | None:
    """HTTP status of a GET, None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return None


def write_htpasswd(path: Path, username: str, password: str) -> None:
    """A bcrypt htpasswd file (the only hash distribution accepts); password via stdin."""
    if HTPASSWD is None:
        raise RuntimeError("htpasswd (apache2-utils) is not installed")
    made = subprocess.run(
        [HTPASSWD, "-iBn", username], input=password, capture_output=True, text=True,
        check=False,
    )
    if made.returncode != 0:
        raise RuntimeError(f"htpasswd failed: {made.stderr}")
    path.write_text(made.stdout)


class LocalRegistry:
    """``docker-registry serve`` on 127.0.0.1; with credentials, htpasswd basic auth."""

    def __init__(self, root: Path, username: str | None = None, password: str | None = None,
                 ready_timeout: float = 20.0) -> None:
        self.root = root
        self.credentials = (username, password) if username and password else None
        self.ready_timeout = ready_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self.log_path = root / "registry.log"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _write_config(self) -> Path:
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        lines = [
            "version: 0.1",
            "log: {level: warn}",
            f"storage: {{filesystem: {{rootdirectory: {json.dumps(str(storage))}}}, "
            "delete: {enabled: true}}",
            f"http: {{addr: 127.0.0.1:{self.port}}}",
        ]
        if self.credentials is not None:
            htpasswd = self.root / "htpasswd"
            write_htpasswd(htpasswd, *self.credentials)
            path = json.dumps(str(htpasswd))
            lines.append(f"auth: {{htpasswd: {{realm: buildwright-tests, path: {path}}}}}")
        config = self.root / "config.yml"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self) -> LocalRegistry:
        if DOCKER_REGISTRY is None:
            raise RuntimeError("docker-registry is not installed")
        self.root.mkdir(parents=True, exist_ok=True)
        for _attempt in range(5):
            self.port = free_port()
            config = self._write_config()
            with open(self.log_path, "ab") as log:
                self._process = subprocess.Popen(
                    [DOCKER_REGISTRY, "serve", str(config)], stdout=log, stderr=log,
                )
            answers = lambda: _status(f"{self.url}/v2/") in (200, 401)  # noqa: E731
            if process_ready(self._process, answers, self.ready_timeout, "docker-registry"):
                return self
            self.stop()  # the port was taken meanwhile, or it never answered
        raise RuntimeError(f"docker-registry did not become ready; see {self.log_path}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- Bearer token front ----------------------------------------------------------------------


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    upstream: str
    credentials: tuple[str, str]
    tokens: set[str]
    token_requests: list[dict[str, list[str]]]


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"",
               headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        for name, value in headers or []:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _token(self) -> None:
        from urllib.parse import parse_qs, urlsplit

        self.server.token_requests.append(parse_qs(urlsplit(self.path).query))
        user, password = self.server.credentials
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self._reply(401, b'{"details":"bad credentials"}')
            return
        token = secrets.token_hex(16)
        self.server.tokens.add(token)
        self._reply(200, json.dumps({"token": token}).encode(),
                    [("Content-Type", "application/json")])

    def _forward(self) -> None:
        if self.path.startswith("/token"):
            self._token()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        authorization = self.headers.get("Authorization", "")
        if authorization.removeprefix("Bearer ") not in self.server.tokens:
            realm = f"http://{self.headers.get('Host')}/token"
            challenge = (f'Bearer realm="{realm}",service="buildwright-tests",'
                         'scope="repository:x:pull"')
            self._reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"token needed"}]}',
                        [("WWW-Authenticate", challenge)])
            return
        connection = http.client.HTTPConnection(self.server.upstream, timeout=30)
        headers = {name: value for name, value in self.headers.items()
                   if name.lower() not in ("authorization", "connection")}
        connection.request(self.command, self.path, body=body, headers=headers)
        answer = connection.getresponse()
        payload = answer.read()
        connection.close()
        passed = [(name, value) for name, value in answer.getheaders()
                  if name.lower() not in ("content-length", "connection", "transfer-encoding")]
        self._reply(answer.status, payload, passed)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward


class TokenAuthProxy:
    """Fronts an open registry and demands Bearer tokens, which ``/token`` hands out for the
    right basic-auth credentials. ``token_requests`` records each token request's query."""

    def __init__(self, upstream: LocalRegistry, username: str, password: str) -> None:
        self.upstream = upstream
        self.credentials = (username, password)
        self.port = 0
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def token_requests(self) -> list[dict[str, list[str]]]:
        return self._server.token_requests if self._server else []

    def start(self) -> TokenAuthProxy:
        server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        server.upstream = self.upstream.host
        server.credentials = self.credentials
        server.tokens = set()
        server.token_requests = []
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="token-proxy",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> TokenAuthProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- pytest fixtures -------------------------------------------------------------------------


def _require(*tools: tuple[str, str | None]) -> None:
    for name, found in tools:
        if found is None:
            pytest.skip(f"{name} is not installed (apt-get install -y docker-registry "
                        "apache2-utils)")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    """An open registry (no auth)."""
    _require(("docker-registry", DOCKER_REGISTRY))
    with LocalRegistry(tmp_path / "registry") as server:
        yield server


@pytest.fixture
def registry_auth(tmp_path: Path) -> Iterator[LocalRegistry]:
    """A registry demanding ``REGISTRY_USERNAME``/``REGISTRY_PASSWORD`` (htpasswd)."""
    _require(("docker-registry", DOCKER_REGISTRY), ("htpasswd", HTPASSWD))
    with LocalRegistry(tmp_path / "registry-auth", REGISTRY_USERNAME,
                       REGISTRY_PASSWORD) as server:
        yield server


@pytest.fixture
def registry_token(registry: LocalRegistry) -> Iterator[TokenAuthProxy]:
    """The open ``registry`` behind a Bearer-token front with the same credentials."""
    with TokenAuthProxy(registry, REGISTRY_USERNAME, REGISTRY_PASSWORD) as proxy:
        yield proxy

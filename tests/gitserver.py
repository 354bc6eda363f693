"""Local Git servers and sample repositories for tests: ``git daemon`` and smart HTTP.

Both servers bind to 127.0.0.1 on a free port and serve every repository below one base
directory, so a test clones ``git://127.0.0.1:PORT/<name>`` or ``http://127.0.0.1:PORT/<name>``.
The HTTP server wraps ``git http-backend`` (CGI) and can demand HTTP basic auth, which is how
tests prove that credentials work and that wrong ones are reported as such.

Use the context managers directly, or import the pytest fixtures (``git_base``,
``sample_repo``, ``git_daemon``, ``git_http``, ``git_http_auth``) into a test module.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

import pytest

from tests.servers import free_port, process_ready

HTTP_USERNAME = "builder"
HTTP_PASSWORD = "s3cr3t-Pa55word-for-tests"

GIT = shutil.which("git") or "git"


def git(*args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None) -> str:
    """Run git for test set-up; fails loudly with git's own output."""
    completed = subprocess.run(
        [GIT, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
        text=True, check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {completed.stderr}")
    return completed.stdout.strip()


# --- repositories ----------------------------------------------------------------------------


@dataclass
class SampleRepo:
    """A repository with known history: ``main`` (default) ← three commits, tag ``v1`` on the
    first, branch ``feature`` one commit off the first, and a ``docs/`` directory."""

    path: Path
    name: str
    commits: dict[str, str] = field(default_factory=dict)
    """``first``/``second``/``third`` (main) and ``feature`` → commit sha."""
    authors: dict[str, str] = field(default_factory=dict)
    timestamps: dict[str, int] = field(default_factory=dict)


def commit(repo: Path, message: str, files: dict[str, str], author: str, when: int) -> str:
    """Write ``files``, commit them as ``author`` at epoch ``when``; returns the sha."""
    for relative, content in files.items():
        target = repo / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git("add", "--all", cwd=repo)
    stamp = f"{when} +0000"
    git(
        "-c", f"user.name={author}", "-c", "user.email=author@example.test",
        "commit", "--quiet", "-m", message, cwd=repo,
        env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp},
    )
    return git("rev-parse", "HEAD", cwd=repo)


def make_sample_repo(base: Path, name: str = "sample", default_branch: str = "main") -> SampleRepo:
    """Create :class:`SampleRepo` ``base/name`` (a non-bare repository servers can serve)."""
    path = base / name
    path.mkdir(parents=True)
    git("init", "--quiet", "--initial-branch", default_branch, cwd=path)
    repo = SampleRepo(path=path, name=name)
    history = [
        ("first", "Alice Author", 1_700_000_000, {"Dockerfile": "FROM scratch\n"}),
        ("second", "Bob Builder", 1_700_000_100, {"docs/README.md": "docs\n"}),
        ("third", "Carol Coder", 1_700_000_200, {"app.txt": "three\n"}),
    ]
    for label, author, when, files in history:
        repo.commits[label] = commit(path, label, files, author, when)
        repo.authors[label] = author
        repo.timestamps[label] = when
        if label == "first":
            git("tag", "v1", cwd=path)
    git("checkout", "--quiet", "-b", "feature", repo.commits["first"], cwd=path)
    repo.commits["feature"] = commit(path, "feature", {"feature.txt": "f\n"}, "Dan Dev",
                                     1_700_000_300)
    repo.authors["feature"] = "Dan Dev"
    repo.timestamps["feature"] = 1_700_000_300
    git("checkout", "--quiet", default_branch, cwd=path)
    return repo


# --- git daemon ------------------------------------------------------------------------------


class GitDaemon:
    """``git daemon`` serving ``base`` on 127.0.0.1; ``export_all=False`` serves only
    repositories containing ``git-daemon-export-ok``."""

    def __init__(self, base: Path, export_all: bool = True, ready_timeout: float = 15.0) -> None:
        self.base = base
        self.export_all = export_all
        self.ready_timeout = ready_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def _answers(self) -> bool:
        probe = subprocess.run(
            [GIT, "ls-remote", self.url("readiness-probe-that-does-not-exist")],
            capture_output=True, text=True, check=False, timeout=10,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
        # A daemon that is up answers even for a missing repository, with a remote error.
        return probe.returncode == 0 or "remote error" in probe.stderr

    def start(self) -> GitDaemon:
        for _attempt in range(5):
            self.port = free_port()
            command = [
                GIT, "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={self.port}",
                f"--base-path={self.base}", "--informative-errors",
            ]
            if self.export_all:
                command.append("--export-all")
            command.append(str(self.base))
            self._process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            if process_ready(self._process, self._answers, self.ready_timeout, "git daemon"):
                return self
            self.stop()  # the port was taken meanwhile, or the daemon never answered
        raise RuntimeError("git daemon did not become ready")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> GitDaemon:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- smart HTTP ------------------------------------------------------------------------------


class _BackendServer(ThreadingHTTPServer):
    daemon_threads = True
    project_root: Path
    credentials: tuple[str, str] | None
    requests_seen: list[tuple[str, str, str]]


class _BackendHandler(BaseHTTPRequestHandler):
    server: _BackendServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean; requests are recorded in requests_seen

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorised_user(self) -> str | None:
        """The authenticated user, ``""`` when no auth is required, None when refused."""
        if self.server.credentials is None:
            return ""
        user, password = self.server.credentials
        expected = base64.b64encode(f"{user}:{password}".encode()).decode()
        return user if self.headers.get("Authorization") == f"Basic {expected}" else None

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        user = self._authorised_user()
        self.server.requests_seen.append(
            (self.command, parts.path, "refused" if user is None else user or "anonymous")
        )
        if user is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="buildwright tests"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self._read_body()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(parts.path),
            "QUERY_STRING": parts.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": user,
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        backend = subprocess.run(
            [GIT, "http-backend"], input=body, env=env, capture_output=True, check=False,
        )
        separator = b"\r\n\r\n" if b"\r\n\r\n" in backend.stdout else b"\n\n"
        head, _, payload = backend.stdout.partition(separator)
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class GitHttpServer:
    """Smart-HTTP Git server for every repository under ``base``; with ``username`` and
    ``password`` every request needs exactly those basic-auth credentials."""

    def __init__(self, base: Path, username: str | None = None,
                 password: str | None = None) -> None:
        self.base = base
        self.credentials = (username, password) if username and password else None
        self.port = 0
        self._server: _BackendServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def requests_seen(self) -> list[tuple[str, str, str]]:
        """(method, path, user or "anonymous"/"refused") for every request served."""
        return self._server.requests_seen if self._server else []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def start(self) -> GitHttpServer:
        server = _BackendServer(("127.0.0.1", 0), _BackendHandler)
        server.project_root = self.base
        server.credentials = self.credentials
        server.requests_seen = []
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="git-http",
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

    def __enter__(self) -> GitHttpServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- pytest fixtures -------------------------------------------------------------------------


@pytest.fixture
def git_base(tmp_path: Path) -> Path:
    """The directory the servers export."""
    base = tmp_path / "served"
    base.mkdir()
    return base


@pytest.fixture
def sample_repo(git_base: Path) -> SampleRepo:
    return make_sample_repo(git_base)


@pytest.fixture
def git_daemon(git_base: Path) -> Iterator[GitDaemon]:
    with GitDaemon(git_base) as daemon:
        yield daemon


@pytest.fixture
def git_http(git_base: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(git_base) as server:
        yield server


@pytest.fixture
def git_http_auth(git_base: Path) -> Iterator[GitHttpServer]:
    """Needs ``HTTP_USERNAME``/``HTTP_PASSWORD``."""
    with GitHttpServer(git_base, HTTP_USERNAME, HTTP_PASSWORD) as server:
        yield server

"""The node agent's kubelet API: what the apiserver calls for `kubectl logs`, exec and attach.

The real kubelet serves HTTPS on its node's address; the apiserver finds it through the Node's
`status.daemonEndpoints.kubeletEndpoint.port` and `InternalIP` address. This server listens on
127.0.0.1 only, with a serving certificate signed by the local cluster's CA, and accepts one
client: the apiserver's kubelet client certificate (signed by the same CA, common name
`KUBELET_CLIENT_USER`). Everything else is refused in the TLS handshake (no certificate, or one
another CA signed) or with 403 (another identity of the cluster CA).

Endpoints:

- `GET /healthz`
- `GET /containerLogs/{namespace}/{pod}/{container}` with the kubelet's query parameters:
  `follow` (stream until the container ends), `tailLines`, `sinceSeconds`, `sinceTime`
  (RFC 3339), `timestamps` (each line prefixed with its time, RFC 3339 with nanoseconds, UTC),
  `limitBytes` and `previous` (containers never restart here, so it is always the kubelet's
  "previous terminated container … not found").
- `POST /exec/{namespace}/{pod}/{container}?command=…&input=1&output=1&error=1` and
  `/attach/…`: upgraded to SPDY/3.1 (`spdy.py`) with the `v4.channel.k8s.io` streams; exec
  runs the command in the running container, attach streams what it writes from then on.

The log lines and their times come from a `LogBackend`, exec from an `ExecBackend` (both the
process executor).

One module, over 500 lines: test tooling; the endpoints (logs with every option, exec,
attach) share the TLS and authentication set-up and the per-container log store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Protocol

from buildwright_localcluster import spdy

log = logging.getLogger(__name__)

KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
FOLLOW_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class KubeletTLS:
    """The serving certificate and key, and the CA whose clients are accepted."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path


# --------------------------------------------------------------------------- log selection


class LogOptionsError(ValueError):
    """A query parameter the kubelet would reject (400)."""


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since_ns: int | None = None  # unix nanoseconds; lines before it are left out
    timestamps: bool = False
    limit_bytes: int | None = None
    previous: bool = False


def _bool(value: str) -> bool:
    if value in ("", "true", "True", "1"):
        return True
    if value in ("false", "False", "0"):
        return False
    raise LogOptionsError(f"invalid boolean {value!r}")


def _int(name: str, value: str, minimum: int) -> int:
    try:
        n = int(value)
    except ValueError as exc:
        raise LogOptionsError(f"{name}: invalid integer {value!r}") from exc
    if n < minimum:
        raise LogOptionsError(f"{name} must be at least {minimum}")
    return n


def parse_rfc3339(value: str) -> int:
    """Unix nanoseconds of an RFC 3339 time (fractions up to nanoseconds)."""
    m = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})", value
    )
    if not m:
        raise LogOptionsError(f"sinceTime: not an RFC 3339 time: {value!r}")
    zone = "+00:00" if m.group(4) in ("Z", "z") else m.group(4)
    base = dt.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{zone}")
    frac = (m.group(3) or "").ljust(9, "0")
    return int(base.timestamp()) * 1_000_000_000 + int(frac or 0)


def format_rfc3339_nano(ns: int) -> str:
    """The kubelet's fixed-width RFC3339Nano, in UTC: 2006-01-02T15:04:05.000000000Z."""
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def parse_log_options(query: str, now_ns: int) -> LogOptions:
    """The kubelet's reading of a containerLogs query string."""
    params = urllib.parse.parse_qs(query, keep_blank_values=True)

    def one(name: str) -> str | None:
        values = params.get(name)
        return values[-1] if values else None

    since_ns: int | None = None
    since_seconds, since_time = one("sinceSeconds"), one("sinceTime")
    if since_seconds is not None and since_time is not None:
        raise LogOptionsError("at most one of sinceTime or sinceSeconds may be specified")
    if since_seconds is not None:
        since_ns = now_ns - _int("sinceSeconds", since_seconds, 1) * 1_000_000_000
    if since_time is not None:
        since_ns = parse_rfc3339(since_time)
    tail = one("tailLines")
    limit = one("limitBytes")
    return LogOptions(
        follow=_bool(one("follow") or "false"),
        tail_lines=None if tail is None else _int("tailLines", tail, 0),
        since_ns=since_ns,
        timestamps=_bool(one("timestamps") or "false"),
        limit_bytes=None if limit is None else _int("limitBytes", limit, 1),
        previous=_bool(one("previous") or "false"),
    )


def select_lines(
    lines: Sequence[tuple[int, bytes]], options: LogOptions, *, first: bool
) -> list[tuple[int, bytes]]:
    """The lines of one read that the options let through: the tail (first read only) of the
    log, then those at or after `since`."""
    chosen = list(lines)
    if first and options.tail_lines is not None:
        chosen = chosen[len(chosen) - options.tail_lines :] if options.tail_lines else []
    if options.since_ns is not None:
        since = options.since_ns
        chosen = [(t, line) for t, line in chosen if t >= since]
    return chosen


def render_lines(lines: Iterable[tuple[int, bytes]], timestamps: bool) -> bytes:
    if not timestamps:
        return b"".join(line for _, line in lines)
    return b"".join(format_rfc3339_nano(t).encode() + b" " + line for t, line in lines)


# --------------------------------------------------------------------------- backend


class ContainerLog(Protocol):
    def read(self, offset: int, index: int) -> tuple[bytes, list[int]]:
        """The log bytes from `offset`, and the start times of the lines from line `index`."""
        ...

    def finished(self) -> bool:
        """True once the container has ended and its whole log is written."""
        ...

    def wait(self, offset: int, timeout: float) -> None:
        """Return when the log grew past `offset`, the container ended, or after `timeout`."""
        ...


class NotFound(Exception):
    """404: no such Pod on this node."""


class BadRequest(Exception):
    """400, with the kubelet's message."""


class LogBackend(Protocol):
    def container_log(self, namespace: str, pod: str, container: str) -> ContainerLog:
        """The container's log; NotFound or BadRequest (not started yet) otherwise."""
        ...


def stream_log(
    source: ContainerLog, options: LogOptions, write: Callable[[bytes], None],
    stopped: Callable[[], bool] = lambda: False,
) -> None:  # fmt: skip
    """Write the container's log as the kubelet would for `options` (see the module doc)."""
    offset = index = 0
    first = True
    remaining = options.limit_bytes
    while True:
        finished = source.finished()  # before reading: then nothing written later is missed
        data, times = source.read(offset, index)
        raw = data.splitlines(keepends=True)
        if raw and not raw[-1].endswith(b"\n") and options.follow and not finished:
            raw.pop()  # a line still being written: wait for its end
        now = time.time_ns()
        entries = [(times[i] if i < len(times) else now, line) for i, line in enumerate(raw)]
        offset += sum(len(line) for line in raw)
        index += len(raw)
        out = render_lines(select_lines(entries, options, first=first), options.timestamps)
        first = False
        if remaining is not None:
            out = out[:remaining]
            remaining -= len(out)
        if out:
            write(out)
        if remaining == 0 or not options.follow or finished or stopped():
            return
        source.wait(offset, FOLLOW_POLL_SECONDS)


# --------------------------------------------------------------------------- the server


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kubelet api: " + format, *args)

    def _identity(self) -> str | None:
        cert = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        subject: Any = (cert or {}).get("subject", ())
        for rdn in subject:
            for attribute in rdn:
                if attribute[0] == "commonName":
                    return str(attribute[1])
        return None

    def _error(self, status: HTTPStatus, message: str) -> None:
        body = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        who = self._identity()
        if who != KUBELET_CLIENT_USER:
            self._error(HTTPStatus.FORBIDDEN, f"Forbidden (user={who})")
            return False
        return True

    def do_GET(self) -> None:
        if not self._authorised():
            return
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        if parts == ["healthz"]:
            body = b"ok"
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if len(parts) == 4 and parts[0] == "containerLogs":
            self._container_logs(parts[1], parts[2], parts[3], url.query)
            return
        handler = self.server.extra_routes.get(parts[0]) if parts else None
        if handler is not None:
            handler(self, parts[1:], url.query)
            return
        self._error(HTTPStatus.NOT_FOUND, "404 page not found")

    do_POST = do_GET

    def _container_logs(self, namespace: str, pod: str, container: str, query: str) -> None:
        try:
            options = parse_log_options(query, time.time_ns())
            source = self.server.backend.container_log(namespace, pod, container)
            if options.previous:
                raise BadRequest(
                    f'previous terminated container "{container}" in pod "{pod}" not found'
                )
        except (LogOptionsError, BadRequest) as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
            return
        except NotFound as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def write(data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            stream_log(source, options, write, stopped=lambda: self.server.stopping)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True


RouteHandler = Callable[[_Handler, list[str], str], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    backend: LogBackend
    extra_routes: dict[str, RouteHandler]
    stopping: bool = False


class KubeletServer:
    """The kubelet HTTPS API on 127.0.0.1 (port 0: any free port; see `port`)."""

    def __init__(
        self,
        tls: KubeletTLS,
        backend: LogBackend,
        *,
        port: int = 0,
        routes: dict[str, RouteHandler] | None = None,
    ) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        context.load_verify_locations(cafile=str(tls.client_ca_file))
        context.verify_mode = ssl.CERT_REQUIRED
        context.set_alpn_protocols(["http/1.1"])
        self._httpd = _Server(("127.0.0.1", port), _Handler, bind_and_activate=True)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.backend = backend
        self._httpd.extra_routes = dict(STREAM_ROUTES if routes is None else routes)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="kubelet-api", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._httpd.stopping = True
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


# --------------------------------------------------------------------------- exec and attach


class ExecBackend(Protocol):
    def exec_in(
        self, namespace: str, pod: str, container: str, command: list[str], stdin: bool
    ) -> subprocess.Popen[bytes]:
        """`command` started in the running container (NotFound or BadRequest otherwise)."""
        ...


STREAM_CREATION_TIMEOUT = 30.0


def _pump_in(stream: spdy.Stream, sink: IO[bytes] | None) -> None:
    while (data := stream.read()) is not None:
        if sink is not None:
            with contextlib.suppress(OSError):
                sink.write(data)
                sink.flush()
    if sink is not None:
        with contextlib.suppress(OSError):
            sink.close()


def _pump_out(source: IO[bytes], stream: spdy.Stream | None) -> None:
    while data := source.read1(65536) if hasattr(source, "read1") else source.read(65536):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.write(data)
    if stream is not None:
        with contextlib.suppress(OSError):
            stream.close()


def serve_stream(handler: _Handler, parts: list[str], query: str, *, attach: bool) -> None:
    """Upgrade to SPDY/3.1 and run exec (or attach) over the v4.channel.k8s.io streams."""
    if len(parts) != 3:
        handler._error(HTTPStatus.NOT_FOUND, "404 page not found")
        return
    namespace, pod, container = parts
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    flag = {
        k: (params.get(k) or ["0"])[-1] in ("1", "true")
        for k in ("input", "output", "error", "tty")
    }
    command = params.get("command") or []
    offered = [
        p.strip() for h in handler.headers.get_all("X-Stream-Protocol-Version") or []
        for p in h.split(",")
    ]  # fmt: skip
    if "spdy/3.1" not in (handler.headers.get("Upgrade") or "").lower():
        handler._error(HTTPStatus.BAD_REQUEST, "Upgrade request required")
        return
    if spdy.STREAM_PROTOCOL_V4 not in offered:
        handler._error(HTTPStatus.FORBIDDEN, f"unable to upgrade: unable to negotiate protocol: "
                                             f"client supports {offered}, server supports "
                                             f"[{spdy.STREAM_PROTOCOL_V4}]")  # fmt: skip
        return
    backend = handler.server.backend
    process: subprocess.Popen[bytes] | None = None
    source: ContainerLog | None = None
    try:
        if attach:
            source = backend.container_log(namespace, pod, container)
            if source.finished():
                raise BadRequest(f"container {container} is not running")
        else:
            if not command:
                raise BadRequest("you must specify at least 1 command")
            exec_backend: ExecBackend = backend  # type: ignore[assignment]
            process = exec_backend.exec_in(namespace, pod, container, command, flag["input"])
    except NotFound as exc:
        handler._error(HTTPStatus.NOT_FOUND, str(exc))
        return
    except BadRequest as exc:
        handler._error(HTTPStatus.BAD_REQUEST, str(exc))
        return
    handler.send_response(HTTPStatus.SWITCHING_PROTOCOLS)
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Upgrade", "SPDY/3.1")
    handler.send_header("X-Stream-Protocol-Version", spdy.STREAM_PROTOCOL_V4)
    handler.end_headers()
    handler.wfile.flush()
    handler.close_connection = True

    streams: dict[str, spdy.Stream] = {}
    arrived = threading.Condition()
    expected = {"error"} | {name for name, wanted in (
        ("stdin", flag["input"]), ("stdout", flag["output"]),
        ("stderr", flag["error"] and not flag["tty"]), ("resize", flag["tty"]),
    ) if wanted}  # fmt: skip

    def on_stream(stream: spdy.Stream) -> None:
        conn.reply(stream)
        with arrived:
            streams[stream.type] = stream
            arrived.notify_all()

    sock = handler.connection
    conn = spdy.Connection(handler.rfile, sock.sendall, on_stream)  # type: ignore[arg-type]
    conn.start()
    try:
        with arrived:
            ok = arrived.wait_for(lambda: expected <= streams.keys() or conn.closed.is_set(),
                                  STREAM_CREATION_TIMEOUT)  # fmt: skip
        if not ok or conn.closed.is_set():
            if process is not None:
                process.kill()
            return
        error = streams["error"]
        if process is not None:
            pumps = [threading.Thread(target=_pump_in, args=(streams["stdin"], process.stdin),
                                      daemon=True)] if flag["input"] else []  # fmt: skip
            assert process.stdout is not None and process.stderr is not None
            pumps += [
                threading.Thread(target=_pump_out, args=(process.stdout, streams.get("stdout")),
                                 daemon=True),
                threading.Thread(target=_pump_out, args=(process.stderr, streams.get("stderr")),
                                 daemon=True),
            ]  # fmt: skip
            for p in pumps:
                p.start()
            code = process.wait()
            for p in pumps[-2:]:
                p.join()
            error.write(spdy.exit_status(128 - code if code < 0 else code, command))
        elif source is not None:
            out = streams.get("stdout")
            if out is not None:
                end, _ = source.read(0, 0)
                follow = LogOptions(follow=True)
                stream_log(_From(source, len(end)), follow, out.write,
                           stopped=conn.closed.is_set)  # fmt: skip
                out.close()
            error.write(spdy.exit_status(0, []))
        error.close()
        conn.goaway()
    except OSError:
        if process is not None:
            process.kill()
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _From:
    """A container log seen from byte `start` on (attach shows what is written from now)."""

    def __init__(self, log: ContainerLog, start: int) -> None:
        self._log = log
        self._start = start

    def read(self, offset: int, index: int) -> tuple[bytes, list[int]]:
        data, _ = self._log.read(self._start + offset, 0)
        return data, []

    def finished(self) -> bool:
        return self._log.finished()

    def wait(self, offset: int, timeout: float) -> None:
        self._log.wait(self._start + offset, timeout)


STREAM_ROUTES: dict[str, RouteHandler] = {
    "exec": lambda h, parts, query: serve_stream(h, parts, query, attach=False),
    "attach": lambda h, parts, query: serve_stream(h, parts, query, attach=True),
}

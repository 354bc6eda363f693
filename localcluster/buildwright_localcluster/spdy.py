"""SPDY/3.1 as the apiserver speaks it to a kubelet for exec and attach: the server side.

The apiserver (its stream translator for WebSocket clients, or a SPDY client proxied through)
upgrades an HTTPS request to `SPDY/3.1` and then opens one stream per channel with a
SYN_STREAM whose `streamtype` header names it (`error`, `stdin`, `stdout`, `stderr`,
`resize`). The kubelet answers each with a SYN_REPLY, writes DATA frames on stdout and stderr,
half-closes them with FIN, and ends by writing the exit status to the error stream as a JSON
`metav1.Status` (the `v4.channel.k8s.io` protocol).

What is here: frame encoding and decoding (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING,
GOAWAY, HEADERS, WINDOW_UPDATE, DATA), header blocks compressed with zlib and SPDY/3's
dictionary (one compression context per direction for the whole connection, as the protocol
requires), and `Connection`, which reads frames in a thread, answers PINGs, and hands streams
to the caller. Flow control is not enforced: Kubernetes' SPDY peer (moby/spdystream) neither
sends nor honours WINDOW_UPDATE.
"""

from __future__ import annotations

import json
import queue
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes used here.
PROTOCOL_ERROR = 1
CANCEL = 5

STREAM_PROTOCOL_V4 = "v4.channel.k8s.io"

# SPDY/3's zlib dictionary for header blocks: length-prefixed header names and values that
# browsers sent, then common status lines, dates and media types.
_DICTIONARY_WORDS = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200_OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
]
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = (
    b"".join(struct.pack(">I", len(w)) + w.replace("_", " ").encode() for w in _DICTIONARY_WORDS)
    + _DICTIONARY_TAIL.encode()
)

Headers = dict[str, list[str]]


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3.1."""


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    data: bytes
    flags: int = 0


@dataclass(frozen=True)
class ControlFrame:
    """A decoded control frame: `type`, `flags` and the fields its type has."""

    type: int
    flags: int = 0
    stream_id: int = 0
    associated_id: int = 0
    priority: int = 0
    headers: Headers = field(default_factory=dict)
    status: int = 0
    ping_id: int = 0
    settings: tuple[tuple[int, int, int], ...] = ()  # (flags, id, value)
    delta: int = 0


Frame = DataFrame | ControlFrame


class HeaderCodec:
    """Header blocks of one direction of one connection (zlib state persists across frames)."""

    def __init__(self) -> None:
        self._compress = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8,
                                          zlib.Z_DEFAULT_STRATEGY, DICTIONARY)  # fmt: skip
        self._decompress = zlib.decompressobj(15, zdict=DICTIONARY)

    def encode(self, headers: Headers) -> bytes:
        block = [struct.pack(">I", len(headers))]
        for name, values in headers.items():
            raw_name = name.lower().encode()
            raw_value = b"\x00".join(v.encode() for v in values)
            block += [struct.pack(">I", len(raw_name)), raw_name,
                      struct.pack(">I", len(raw_value)), raw_value]  # fmt: skip
        data = b"".join(block)
        return self._compress.compress(data) + self._compress.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, compressed: bytes) -> Headers:
        try:
            data = self._decompress.decompress(compressed)
        except zlib.error as exc:
            raise ProtocolError(f"header block: {exc}") from exc
        headers: Headers = {}
        try:
            (count,) = struct.unpack_from(">I", data, 0)
            pos = 4
            for _ in range(count):
                (n,) = struct.unpack_from(">I", data, pos)
                name = data[pos + 4 : pos + 4 + n].decode()
                pos += 4 + n
                (n,) = struct.unpack_from(">I", data, pos)
                value = data[pos + 4 : pos + 4 + n].decode()
                pos += 4 + n
                headers.setdefault(name.lower(), []).extend(value.split("\x00"))
        except (struct.error, UnicodeDecodeError) as exc:
            raise ProtocolError(f"header block: {exc}") from exc
        return headers


def _control(type_: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, type_, (flags << 24) | len(payload)) + payload


def encode_data(stream_id: int, data: bytes, flags: int = 0) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


def encode_syn_stream(codec: HeaderCodec, stream_id: int, headers: Headers, flags: int = 0,
                      associated_id: int = 0, priority: int = 0) -> bytes:  # fmt: skip
    payload = struct.pack(">IIBB", stream_id, associated_id, priority << 5, 0)
    return _control(SYN_STREAM, flags, payload + codec.encode(headers))


def encode_syn_reply(codec: HeaderCodec, stream_id: int, headers: Headers, flags: int = 0) -> bytes:
    return _control(SYN_REPLY, flags, struct.pack(">I", stream_id) + codec.encode(headers))


def encode_rst_stream(stream_id: int, status: int) -> bytes:
    return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def encode_settings(settings: tuple[tuple[int, int, int], ...]) -> bytes:
    body = b"".join(struct.pack(">II", (f << 24) | i, v) for f, i, v in settings)
    return _control(SETTINGS, 0, struct.pack(">I", len(settings)) + body)


def encode_ping(ping_id: int) -> bytes:
    return _control(PING, 0, struct.pack(">I", ping_id))


def encode_goaway(last_stream_id: int, status: int = 0) -> bytes:
    return _control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))


def encode_window_update(stream_id: int, delta: int) -> bytes:
    return _control(WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta))


def _read_exact(reader: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = reader.read(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_frame(reader: BinaryIO, codec: HeaderCodec) -> Frame:
    """The next frame; EOFError at the end of the connection."""
    head = _read_exact(reader, 8)
    first, second = struct.unpack(">II", head)
    flags, length = second >> 24, second & 0xFFFFFF
    payload = _read_exact(reader, length) if length else b""
    if not first & 0x80000000:
        return DataFrame(first & 0x7FFFFFFF, payload, flags)
    version, type_ = (first >> 16) & 0x7FFF, first & 0xFFFF
    if version != VERSION:
        raise ProtocolError(f"SPDY version {version}")
    try:
        if type_ == SYN_STREAM:
            sid, assoc, prio, _slot = struct.unpack_from(">IIBB", payload)
            return ControlFrame(type_, flags, sid & 0x7FFFFFFF, assoc & 0x7FFFFFFF, prio >> 5,
                                headers=codec.decode(payload[10:]))  # fmt: skip
        if type_ in (SYN_REPLY, HEADERS):
            (sid,) = struct.unpack_from(">I", payload)
            return ControlFrame(type_, flags, sid & 0x7FFFFFFF, headers=codec.decode(payload[4:]))
        if type_ == RST_STREAM:
            sid, status = struct.unpack_from(">II", payload)
            return ControlFrame(type_, flags, sid & 0x7FFFFFFF, status=status)
        if type_ == SETTINGS:
            (count,) = struct.unpack_from(">I", payload)
            entries = []
            for i in range(count):
                fid, value = struct.unpack_from(">II", payload, 4 + 8 * i)
                entries.append((fid >> 24, fid & 0xFFFFFF, value))
            return ControlFrame(type_, flags, settings=tuple(entries))
        if type_ == PING:
            return ControlFrame(type_, flags, ping_id=struct.unpack_from(">I", payload)[0])
        if type_ == GOAWAY:
            sid, status = struct.unpack_from(">II", payload)
            return ControlFrame(type_, flags, sid & 0x7FFFFFFF, status=status)
        if type_ == WINDOW_UPDATE:
            sid, delta = struct.unpack_from(">II", payload)
            return ControlFrame(type_, flags, sid & 0x7FFFFFFF, delta=delta & 0x7FFFFFFF)
    except struct.error as exc:
        raise ProtocolError(f"control frame {type_}: {exc}") from exc
    return ControlFrame(type_, flags)  # unknown types are ignored, as the protocol says


# --------------------------------------------------------------------------- exit status


def exit_status(exit_code: int | None, command: list[str], message: str = "") -> bytes:
    """What the kubelet writes to the v4 error stream: Success, or the exit code as a cause."""
    if exit_code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    if exit_code is None:
        return json.dumps({"metadata": {}, "status": "Failure", "message": message}).encode()
    return json.dumps({
        "metadata": {}, "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
                   f"{json.dumps(command)}, exit code {exit_code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }).encode()  # fmt: skip


# --------------------------------------------------------------------------- connection


class Stream:
    """One stream the peer opened: its headers, the data it sends, and our half to write."""

    def __init__(self, conn: Connection, stream_id: int, headers: Headers, closed: bool) -> None:
        self.conn = conn
        self.id = stream_id
        self.headers = headers
        self.incoming: queue.Queue[bytes | None] = queue.Queue()
        if closed:
            self.incoming.put(None)
        self.local_closed = False

    @property
    def type(self) -> str:
        return (self.headers.get("streamtype") or [""])[0]

    def read(self) -> bytes | None:
        """The next data the peer sent; None once it half-closed (or reset) the stream."""
        return self.incoming.get()

    def write(self, data: bytes) -> None:
        for start in range(0, len(data), 0xFFFF):
            self.conn.send(encode_data(self.id, data[start : start + 0xFFFF]))

    def close(self) -> None:
        if not self.local_closed:
            self.local_closed = True
            self.conn.send(encode_data(self.id, b"", FLAG_FIN))


class Connection:
    """The server side of a SPDY/3.1 connection over an upgraded socket."""

    def __init__(self, reader: BinaryIO, write: Callable[[bytes], None],
                 on_stream: Callable[[Stream], None]) -> None:  # fmt: skip
        self._reader = reader
        self._write = write
        self._on_stream = on_stream
        self._lock = threading.Lock()
        self._in_codec = HeaderCodec()
        self._out_codec = HeaderCodec()
        self._streams: dict[int, Stream] = {}
        self._last_stream = 0
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._read_loop, name="spdy-read", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send(self, frame: bytes) -> None:
        with self._lock:
            self._write(frame)

    def reply(self, stream: Stream) -> None:
        with self._lock:
            self._write(encode_syn_reply(self._out_codec, stream.id, {}))

    def goaway(self) -> None:
        self.send(encode_goaway(self._last_stream))

    def _read_loop(self) -> None:
        try:
            while True:
                frame = read_frame(self._reader, self._in_codec)
                if not self._handle(frame):
                    break
        except (EOFError, OSError, ProtocolError, ValueError):
            pass
        finally:
            for stream in list(self._streams.values()):
                stream.incoming.put(None)
            self.closed.set()

    def _handle(self, frame: Frame) -> bool:
        if isinstance(frame, DataFrame):
            stream = self._streams.get(frame.stream_id)
            if stream is not None:
                if frame.data:
                    stream.incoming.put(frame.data)
                if frame.flags & FLAG_FIN:
                    stream.incoming.put(None)
            return True
        if frame.type == SYN_STREAM:
            stream = Stream(self, frame.stream_id, frame.headers, bool(frame.flags & FLAG_FIN))
            self._streams[frame.stream_id] = stream
            self._last_stream = max(self._last_stream, frame.stream_id)
            self._on_stream(stream)
        elif frame.type == PING:
            self.send(encode_ping(frame.ping_id))
        elif frame.type == RST_STREAM:
            stream = self._streams.get(frame.stream_id)
            if stream is not None:
                stream.incoming.put(None)
        elif frame.type == GOAWAY:
            return False
        return True  # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do here

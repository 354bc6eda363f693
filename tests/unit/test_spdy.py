"""SPDY/3.1 framing against frames written out by hand, and a connection's stream handling."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import struct
import threading
import zlib

import pytest

from buildwright_localcluster import spdy


def test_the_dictionary_is_spdy3s() -> None:
    # The 1423 bytes of the SPDY/3 specification's header dictionary.
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == (
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
    )


def block(pairs: list[tuple[bytes, bytes]]) -> bytes:
    raw = struct.pack(">I", len(pairs)) + b"".join(
        struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v for n, v in pairs
    )
    z = zlib.compressobj(zdict=spdy.DICTIONARY)
    return z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH)


def read(data: bytes, codec: spdy.HeaderCodec | None = None) -> spdy.Frame:
    return spdy.read_frame(io.BytesIO(data), codec or spdy.HeaderCodec())


def test_syn_stream_by_hand() -> None:
    headers = block([(b"streamtype", b"stdout"), (b"x-multi", b"a\x00b")])
    payload = b"\x00\x00\x00\x03" + b"\x00\x00\x00\x00" + b"\x60\x00" + headers
    frame = b"\x80\x03\x00\x01\x01" + len(payload).to_bytes(3, "big") + payload
    got = read(frame)
    assert isinstance(got, spdy.ControlFrame)
    assert (got.type, got.flags, got.stream_id, got.priority) == (spdy.SYN_STREAM, 1, 3, 3)
    assert got.headers == {"streamtype": ["stdout"], "x-multi": ["a", "b"]}


def test_data_rst_ping_goaway_settings_window_update_by_hand() -> None:
    assert read(b"\x00\x00\x00\x05\x01\x00\x00\x02hi") == spdy.DataFrame(5, b"hi", spdy.FLAG_FIN)
    rst = read(b"\x80\x03\x00\x03\x00\x00\x00\x08\x00\x00\x00\x07\x00\x00\x00\x05")
    assert isinstance(rst, spdy.ControlFrame)
    assert (rst.type, rst.stream_id, rst.status) == (spdy.RST_STREAM, 7, spdy.CANCEL)
    ping = read(b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x2a")
    assert isinstance(ping, spdy.ControlFrame) and ping.ping_id == 42
    away = read(b"\x80\x03\x00\x07\x00\x00\x00\x08\x00\x00\x00\x09\x00\x00\x00\x00")
    assert isinstance(away, spdy.ControlFrame) and (away.type, away.stream_id) == (7, 9)
    settings = read(b"\x80\x03\x00\x04\x00\x00\x00\x0c\x00\x00\x00\x01"
                    b"\x01\x00\x00\x07\x00\x01\x00\x00")  # fmt: skip
    assert isinstance(settings, spdy.ControlFrame) and settings.settings == ((1, 7, 65536),)
    update = read(b"\x80\x03\x00\x09\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x10\x00")
    assert isinstance(update, spdy.ControlFrame) and update.delta == 4096


def test_encoders_write_what_the_specification_says() -> None:
    assert spdy.encode_ping(42) == b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x2a"
    assert spdy.encode_data(5, b"hi", spdy.FLAG_FIN) == b"\x00\x00\x00\x05\x01\x00\x00\x02hi"
    assert spdy.encode_rst_stream(7, 5) == (
        b"\x80\x03\x00\x03\x00\x00\x00\x08\x00\x00\x00\x07\x00\x00\x00\x05"
    )
    assert (
        spdy.encode_goaway(9) == b"\x80\x03\x00\x07\x00\x00\x00\x08\x00\x00\x00\x09\x00\x00\x00\x00"
    )
    codec = spdy.HeaderCodec()
    reply = spdy.encode_syn_reply(codec, 3, {"a": ["1"]})
    assert reply[:4] == b"\x80\x03\x00\x02" and reply[8:12] == b"\x00\x00\x00\x03"
    plain = zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(reply[12:])
    assert plain == b"\x00\x00\x00\x01\x00\x00\x00\x01a\x00\x00\x00\x011"


def test_header_compression_context_spans_frames() -> None:
    out, inn = spdy.HeaderCodec(), spdy.HeaderCodec()
    for i in range(3):
        frame = spdy.encode_syn_stream(out, 2 * i + 1, {"streamtype": ["stdin"], "n": [str(i)]})
        got = spdy.read_frame(io.BytesIO(frame), inn)
        assert isinstance(got, spdy.ControlFrame) and got.headers["n"] == [str(i)]


def test_wrong_version_is_a_protocol_error() -> None:
    with pytest.raises(spdy.ProtocolError):
        read(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")


def test_exit_status_is_the_kubelets_json() -> None:
    assert json.loads(spdy.exit_status(0, ["true"])) == {"metadata": {}, "status": "Success"}
    failed = json.loads(spdy.exit_status(3, ["sh", "-c", "exit 3"]))
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_a_connection_replies_to_streams_echoes_pings_and_delivers_data() -> None:
    server_sock, client_sock = socket.socketpair()
    streams: list[spdy.Stream] = []
    got_stream = threading.Event()

    def on_stream(stream: spdy.Stream) -> None:
        conn.reply(stream)
        streams.append(stream)
        got_stream.set()

    conn = spdy.Connection(server_sock.makefile("rb"), server_sock.sendall, on_stream)
    conn.start()
    client = spdy.HeaderCodec()
    client_in = spdy.HeaderCodec()
    reader = client_sock.makefile("rb")
    client_sock.sendall(spdy.encode_syn_stream(client, 1, {"streamtype": ["stdin"]}))
    assert got_stream.wait(5)
    reply = spdy.read_frame(reader, client_in)
    assert isinstance(reply, spdy.ControlFrame) and (reply.type, reply.stream_id) == (2, 1)
    client_sock.sendall(spdy.encode_ping(7))
    pong = spdy.read_frame(reader, client_in)
    assert isinstance(pong, spdy.ControlFrame) and pong.ping_id == 7
    client_sock.sendall(spdy.encode_data(1, b"abc") + spdy.encode_data(1, b"", spdy.FLAG_FIN))
    stdin = streams[0]
    assert stdin.type == "stdin" and stdin.read() == b"abc" and stdin.read() is None
    stdin.write(b"out")
    stdin.close()
    assert spdy.read_frame(reader, client_in) == spdy.DataFrame(1, b"out")
    assert spdy.read_frame(reader, client_in) == spdy.DataFrame(1, b"", spdy.FLAG_FIN)
    client_sock.shutdown(socket.SHUT_RDWR)
    assert conn.closed.wait(5)
    reader.close()
    client_sock.close()
    server_sock.close()

"""The kubelet API's reading of containerLogs queries and its choice of lines."""

from __future__ import annotations

import threading

import pytest

from buildwright_localcluster.kubeletapi import (
    LogOptions,
    LogOptionsError,
    format_rfc3339_nano,
    parse_log_options,
    parse_rfc3339,
    select_lines,
    stream_log,
)

S = 1_000_000_000
NOW = 1_700_000_000 * S


def test_rfc3339_nano_is_fixed_width_utc_like_the_kubelet() -> None:
    assert format_rfc3339_nano(1_700_000_000 * S + 5) == "2023-11-14T22:13:20.000000005Z"
    assert format_rfc3339_nano(1_700_000_000 * S) == "2023-11-14T22:13:20.000000000Z"


def test_rfc3339_parses_fractions_and_offsets() -> None:
    assert parse_rfc3339("2023-11-14T22:13:20Z") == 1_700_000_000 * S
    assert parse_rfc3339("2023-11-14T22:13:20.5Z") == 1_700_000_000 * S + S // 2
    assert parse_rfc3339("2023-11-14T23:13:20.000000007+01:00") == 1_700_000_000 * S + 7
    with pytest.raises(LogOptionsError):
        parse_rfc3339("yesterday")


def test_query_parameters() -> None:
    opts = parse_log_options(
        "follow=true&tailLines=3&timestamps=true&limitBytes=10&sinceSeconds=2", NOW
    )
    assert opts == LogOptions(follow=True, tail_lines=3, since_ns=NOW - 2 * S,
                              timestamps=True, limit_bytes=10)  # fmt: skip
    assert parse_log_options("", NOW) == LogOptions()
    assert parse_log_options("previous=true", NOW).previous
    assert parse_log_options("sinceTime=2023-11-14T22:13:20Z", NOW).since_ns == NOW


@pytest.mark.parametrize(
    "query",
    ["tailLines=-1", "limitBytes=0", "sinceSeconds=0", "follow=maybe", "tailLines=x",
     "sinceSeconds=1&sinceTime=2023-11-14T22:13:20Z"],
)  # fmt: skip
def test_rejected_queries(query: str) -> None:
    with pytest.raises(LogOptionsError):
        parse_log_options(query, NOW)


LINES = [(1 * S, b"a\n"), (2 * S, b"b\n"), (3 * S, b"c\n")]


def test_tail_applies_to_the_first_read_only_and_since_to_every_read() -> None:
    assert select_lines(LINES, LogOptions(tail_lines=2), first=True) == LINES[1:]
    assert select_lines(LINES, LogOptions(tail_lines=0), first=True) == []
    assert select_lines(LINES, LogOptions(tail_lines=2), first=False) == LINES
    assert select_lines(LINES, LogOptions(since_ns=2 * S), first=False) == LINES[1:]
    assert select_lines(LINES, LogOptions(tail_lines=2, since_ns=3 * S), first=True) == LINES[2:]


class FakeLog:
    """A container log whose writer the test drives."""

    def __init__(self) -> None:
        self.data = b""
        self.times: list[int] = []
        self.done = False
        self.cond = threading.Condition()

    def append(self, t: int, text: bytes, done: bool = False) -> None:
        with self.cond:
            starts = text.count(b"\n", 0, len(text) - 1) + (
                1 if not self.data or self.data.endswith(b"\n") else 0
            )
            self.times += [t] * starts
            self.data += text
            self.done = done
            self.cond.notify_all()

    def read(self, offset: int, index: int) -> tuple[bytes, list[int]]:
        with self.cond:
            return self.data[offset:], self.times[index:]

    def finished(self) -> bool:
        with self.cond:
            return self.done

    def wait(self, offset: int, timeout: float) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.done or len(self.data) > offset, timeout)


def collect(log: FakeLog, options: LogOptions) -> bytes:
    out: list[bytes] = []
    stream_log(log, options, out.append)
    return b"".join(out)


def test_a_finished_log_with_timestamps_limit_and_a_partial_last_line() -> None:
    log = FakeLog()
    log.append(1 * S, b"one\ntwo\n")
    log.append(2 * S, b"thr", done=True)
    assert collect(log, LogOptions()) == b"one\ntwo\nthr"
    assert collect(log, LogOptions(tail_lines=1)) == b"thr"
    assert collect(log, LogOptions(timestamps=True, tail_lines=2)) == (
        b"1970-01-01T00:00:01.000000000Z two\n1970-01-01T00:00:02.000000000Z thr"
    )
    assert collect(log, LogOptions(limit_bytes=5)) == b"one\nt"


def test_follow_streams_until_the_container_ends() -> None:
    log = FakeLog()
    log.append(1 * S, b"one\npart")
    got: list[bytes] = []
    seen = threading.Event()

    def write(data: bytes) -> None:
        got.append(data)
        seen.set()

    thread = threading.Thread(target=stream_log, args=(log, LogOptions(follow=True), write))
    thread.start()
    assert seen.wait(5)
    assert got == [b"one\n"]  # the line still being written waits for its end
    seen.clear()
    log.append(2 * S, b"ial\n")
    assert seen.wait(5)
    assert got[-1] == b"partial\n"
    assert thread.is_alive()
    log.append(3 * S, b"last\n", done=True)
    thread.join(5)
    assert not thread.is_alive()
    assert b"".join(got) == b"one\npartial\nlast\n"

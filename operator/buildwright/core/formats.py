"""The formats users read as Go and Kubernetes print them, in one place.

- Go `time.Duration` strings, the format of every timeout and TTL in the Shipwright API:
  users write `5m`, `1h30m` or `1.5h`, and the BuildRunTimeout message prints the limit the
  way Go's `Duration.String()` does (`1m0s`, `1h0m0s`). Arithmetic is in integer nanoseconds,
  as in Go, so `0.1s` + `0.2s` style inputs pick up no binary floating-point noise.
- Go's `strconv.Quote` (what `%q` prints), because upstream's messages quote values that way
  and users and scripts match on them. Go works on UTF-8 bytes, Python on code points; they
  differ only on a string Go could not decode: a lone surrogate (U+D800–U+DFFF), which only
  comes out of JSON (`"\\ud800"`) and which Go's JSON decoder, like the apiserver's, turns
  into U+FFFD, as this one does.
- Kubernetes timestamps (`metav1.Time`: RFC 3339, UTC, whole seconds).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_NANOS_PER_UNIT: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}

_COMPONENT = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)")

# Go refuses durations beyond int64 nanoseconds (about 292 years).
_MAX_NANOS = 2**63 - 1


def parse_duration_nanos(text: str) -> int:
    """Parse a Go duration (`300ms`, `-1.5h`, `2h45m`) into integer nanoseconds.

    Raises ValueError for anything Go's `time.ParseDuration` rejects.
    """
    original = text
    if not text:
        raise ValueError('time: invalid duration ""')
    sign = 1
    if text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise ValueError(f"time: invalid duration {original!r}")
    total = 0
    position = 0
    while position < len(text):
        match = _COMPONENT.match(text, position)
        if match is None:
            raise ValueError(f"time: invalid duration {original!r}")
        whole, fraction, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not fraction:
            # "." alone or a bare unit: Go requires at least one digit.
            raise ValueError(f"time: invalid duration {original!r}")
        scale = _NANOS_PER_UNIT[unit]
        nanos = int(whole or "0") * scale
        if fraction:
            nanos += int(fraction) * scale // (10 ** len(fraction))
        total += nanos
        if total > _MAX_NANOS:
            raise ValueError(f"time: invalid duration {original!r}")
        position = match.end()
    return sign * total


def parse_duration(text: str) -> float:
    """Parse a Go duration string into seconds (float)."""
    return parse_duration_nanos(text) / 1_000_000_000


def _fraction(value: int, precision: int) -> tuple[str, int]:
    """Split off `precision` decimal digits of `value` as Go's fmtFrac does: the fraction
    without trailing zeros (and without the dot when it is all zeros), and the rest."""
    digits = []
    printed = False
    for _ in range(precision):
        digit = value % 10
        printed = printed or digit != 0
        if printed:
            digits.append(str(digit))
        value //= 10
    fraction = "." + "".join(reversed(digits)) if printed else ""
    return fraction, value


def format_go_duration_nanos(nanos: int) -> str:
    """Render integer nanoseconds like Go's `time.Duration.String()`."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    value = abs(nanos)
    if value < 1_000_000_000:
        if value < 1_000:
            return f"{sign}{value}ns"
        if value < 1_000_000:
            fraction, whole = _fraction(value, 3)
            return f"{sign}{whole}{fraction}µs"
        fraction, whole = _fraction(value, 6)
        return f"{sign}{whole}{fraction}ms"
    fraction, seconds = _fraction(value, 9)
    text = f"{seconds % 60}{fraction}s"
    minutes = seconds // 60
    if minutes > 0:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours > 0:
            text = f"{hours}h{text}"
    return sign + text


def format_go_duration(seconds: float) -> str:
    """Render seconds like Go's `time.Duration.String()`: `1m0s`, `1h0m0s`, `1.5s`, `500ms`."""
    return format_go_duration_nanos(round(seconds * 1_000_000_000))


# --- Go quoting -----------------------------------------------------------------------------
_SHORT_ESCAPES = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
    "\\": "\\\\", '"': '\\"',
}  # fmt: skip
_REPLACEMENT = "\ufffd"


def _is_print(char: str) -> bool:
    """Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII
    space. Python's str.isprintable excludes the same categories (other, separators)."""
    return char.isprintable()


def go_quote(text: str) -> str:
    """`text` as Go's strconv.Quote returns it: in double quotes, `"` and `\\` escaped, the
    short escapes (`\\a \\b \\f \\n \\r \\t \\v`), other unprintable characters as `\\xNN`
    (below U+0020 and U+007F), `\\uNNNN` (below U+10000) or `\\UNNNNNNNN`; printable
    characters (non-ASCII too) as they are."""
    out = ['"']
    for char in text:
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            char, code = _REPLACEMENT, ord(_REPLACEMENT)
        escape = _SHORT_ESCAPES.get(char)
        if escape is not None:
            out.append(escape)
        elif _is_print(char):
            out.append(char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def rfc3339(moment: datetime) -> str:
    """A Kubernetes timestamp (`metav1.Time`: UTC, whole seconds). Naive times are UTC."""
    return as_utc(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_utc(moment: datetime) -> datetime:
    """An aware datetime; naive ones are taken as UTC (the core never reads the clock)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_time(text: str | None) -> datetime | None:
    """A Kubernetes timestamp as an aware datetime; None when absent or unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return as_utc(moment)

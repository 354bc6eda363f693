"""Go `time.Duration` strings, the format of every timeout and TTL in the Shipwright API.

Users write `5m`, `1h30m` or `1.5h` in Build and BuildRun specs, and the BuildRunTimeout
message prints the limit the way Go's `Duration.String()` does (`1m0s`, `1h0m0s`), so both
directions must match Go exactly. Arithmetic is done in integer nanoseconds, as Go does, so
`0.1s` + `0.2s` style inputs do not pick up binary floating-point noise.
"""

from __future__ import annotations

import re

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

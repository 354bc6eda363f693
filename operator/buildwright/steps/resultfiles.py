"""Result files and the termination message that carries them out of the Pod.

Steps write each result as a small file under ``/tekton/results/<name>`` (the paths strategies
already expect). The last container, ``step-results``, folds them into its termination
message as Tekton does, ``[{"key": name, "value": value, "type": 1}, ...]``, and the operator
reads them back from the Pod status with :func:`parse_termination_message`. Tekton's
entrypoint, which runs in front of every step, adds its own entries to the same message
(``StartedAt``, and ``Reason: Skipped`` for a step it skipped) with type 3, which are not
results.

Kubernetes keeps at most 4096 bytes of a termination message, and a message cut in the middle
is not JSON any more, so :func:`render_termination_message` decides *what* to leave out
instead of letting the kubelet cut blindly. It leaves room for the entrypoint's entries: the
entrypoint fails the step when the message it appends to would grow past 4096 bytes.
Everything here except :func:`write_result` is pure, so the operator's status code can import
it freely.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

KUBERNETES_TERMINATION_MESSAGE_LIMIT = 4096
"""Bytes of a container termination message that Kubernetes keeps."""

ENTRYPOINT_RESERVE = 256
"""Bytes left for the entries the entrypoint appends (its ``StartedAt`` entry is ~70)."""

TERMINATION_MESSAGE_LIMIT = KUBERNETES_TERMINATION_MESSAGE_LIMIT - ENTRYPOINT_RESERVE
"""Bytes of JSON our steps may write into their termination message."""

RESULT_TYPE = 1
"""Tekton's type for task results (other types are its internal bookkeeping)."""

# Results that must survive a crowded termination message, most important first. Anything
# not listed comes after them (alphabetically), and the two free-text results that can be
# arbitrarily long come last, truncated rather than dropped when there is still room.
PRIORITY: tuple[str, ...] = (
    "shp-error-reason",
    "shp-image-digest",
    "shp-image-size",
    "shp-source-default-commit-sha",
    "shp-source-default-image-digest",
    "shp-source-default-source-timestamp",
    "shp-source-default-branch-name",
    "shp-source-default-commit-author",
)
TRUNCATABLE_LAST: tuple[str, ...] = ("shp-error-message", "shp-image-vulnerabilities")

_ELLIPSIS = "..."

RESULT_ERROR_REASON = "shp-error-reason"
RESULT_ERROR_MESSAGE = "shp-error-message"


def write_result(path: str | None, value: str) -> None:
    """Write one result file (no trailing newline); a missing path means "not requested"."""
    if not path:
        return
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(value)


def write_error_results(
    reason: str,
    message: str,
    *,
    reason_file: str | None,
    message_file: str | None,
    termination_log: str | None,
) -> str | None:
    """The error results as result files and, for an init container whose failure stops the
    Pod, also as its own termination message (JSON, the git step's format). Returns why the
    termination message could not be written, if it could not: the result files still carry
    the reason, so callers only warn."""
    write_result(reason_file, reason)
    write_result(message_file, message)
    if not termination_log:
        return None
    errors = {RESULT_ERROR_REASON: reason, RESULT_ERROR_MESSAGE: message}
    report = render_termination_message(errors)
    try:
        with open(termination_log, "w", encoding="utf-8") as handle:
            handle.write(report)
    except OSError as error:
        return f"cannot write {termination_log}: {error}"
    return None


def parse_bool(value: str) -> bool:
    """A step's boolean flag as Shipwright passes it (`true`, `false`, empty)."""
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "t"):
        return True
    if lowered in ("false", "0", "no", "f", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def strip_result_value(raw: str) -> str:
    """Drop the single trailing newline that ``echo > file`` leaves; keep everything else."""
    if raw.endswith("\r\n"):
        return raw[:-2]
    if raw.endswith("\n"):
        return raw[:-1]
    return raw


def _encode(results: Mapping[str, str]) -> str:
    entries = [
        {"key": key, "value": results[key], "type": RESULT_TYPE} for key in sorted(results)
    ]
    return json.dumps(entries, separators=(",", ":"), ensure_ascii=False)


def _size(results: Mapping[str, str]) -> int:
    return len(_encode(results).encode("utf-8"))


def _priority_order(keys: list[str]) -> list[str]:
    first = [key for key in PRIORITY if key in keys]
    last = [key for key in TRUNCATABLE_LAST if key in keys]
    middle = sorted(key for key in keys if key not in PRIORITY and key not in TRUNCATABLE_LAST)
    return first + middle + last


def _shorten(key: str, value: str, length: int) -> str:
    """The first ``length`` characters of a value, cut where the value's format allows."""
    if key == "shp-image-vulnerabilities":
        # `ID:S,ID:S`: only whole entries, so the operator can still parse what is left.
        prefix = value[:length]
        if len(value) > length and value[length] != ",":
            prefix = prefix.rpartition(",")[0]
        return prefix.rstrip(",")
    if length <= len(_ELLIPSIS):
        return ""
    return value[: length - len(_ELLIPSIS)] + _ELLIPSIS


def _longest_fitting(
    chosen: dict[str, str], key: str, value: str, limit: int
) -> str | None:
    """The longest shortened form of ``value`` that keeps the message within ``limit``."""
    low, high, best = 0, len(value) - 1, None
    while low <= high:
        middle = (low + high) // 2
        candidate = _shorten(key, value, middle)
        if _size({**chosen, key: candidate}) <= limit:
            best = candidate
            low = middle + 1
        else:
            high = middle - 1
    return best or None


def select_results(results: Mapping[str, str], limit: int = TERMINATION_MESSAGE_LIMIT) -> dict[
    str, str
]:
    """The results to report when all of them may not fit into ``limit`` bytes of JSON.

    Results are taken in priority order (:data:`PRIORITY`, then others alphabetically, then
    :data:`TRUNCATABLE_LAST`); each one that fits is kept whole, one that does not is dropped
    unless it is in :data:`TRUNCATABLE_LAST`, which is shortened to fit instead.
    """
    if _size(results) <= limit:
        return dict(results)
    chosen: dict[str, str] = {}
    for key in _priority_order(list(results)):
        value = results[key]
        if _size({**chosen, key: value}) <= limit:
            chosen[key] = value
        elif key in TRUNCATABLE_LAST:
            shortened = _longest_fitting(chosen, key, value, limit)
            if shortened is not None:
                chosen[key] = shortened
    return chosen


def render_termination_message(
    results: Mapping[str, str], limit: int = TERMINATION_MESSAGE_LIMIT
) -> str:
    """Tekton-style JSON of ``results`` sorted by key: always valid, at most ``limit`` bytes."""
    return _encode(select_results(results, limit))


def parse_termination_message(text: str) -> dict[str, str]:
    """Results from a termination message; anything that is not such a message gives ``{}``.

    Entries with a non-string key or value are skipped, as are entries whose ``type`` says they
    are not task results; a later duplicate key wins.
    """
    try:
        entries = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}
    if not isinstance(entries, list):
        return {}
    results: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        key, value = entry.get("key"), entry.get("value")
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            continue
        if entry.get("type", RESULT_TYPE) != RESULT_TYPE:
            continue
        results[key] = value
    return results

"""Log output: text for people (the default), or one JSON object a line for log pipelines.

`BUILDWRIGHT_LOG_FORMAT=json` turns every record into an object with `time`, `level`,
`logger` and `message`, plus `namespace`, `kind` and `name` of the object the line is about
when the caller said so with `extra=about(kind, namespace, name)` (kopf's own per-object
lines carry theirs as well). Collectors then filter by object without parsing messages.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

FORMAT_ENV = "BUILDWRIGHT_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_OBJECT = "buildwright_object"


def about(kind: str, namespace: str | None, name: str) -> dict[str, Any]:
    """`extra=` for a log call concerning one object."""
    return {_OBJECT: {"namespace": namespace or "", "kind": kind, "name": name}}


def _kopf_object(record: logging.LogRecord) -> Mapping[str, Any] | None:
    # kopf's ObjectLogger passes the object's reference as `k8s_ref` in extra.
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, Mapping) and ref.get("name"):
        return {
            "namespace": ref.get("namespace") or "",
            "kind": ref.get("kind") or "",
            "name": ref.get("name"),
        }
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (tracebacks included as a field)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        concerned = getattr(record, _OBJECT, None) or _kopf_object(record)
        if isinstance(concerned, Mapping):
            entry.update(concerned)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: int, environ: Mapping[str, str] | None = None) -> None:
    """Set up the root logger as `BUILDWRIGHT_LOG_FORMAT` says (`text` or `json`)."""
    env = os.environ if environ is None else environ
    chosen = (env.get(FORMAT_ENV) or "text").strip().lower()
    if chosen not in ("text", "json"):
        raise ValueError(f"{FORMAT_ENV} must be text or json, got {chosen!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)

"""`status.buildSpec`: the effective Build spec a BuildRun ran with, bounded to fit.

etcd refuses an object larger than about 1.5 MB, and a BuildRun's status is stored with its
spec. A BuildRun whose parameter values already hold a megabyte cannot carry a second copy of
them in its status: the write would fail on every retry and the run would never learn how its
Pod ended. So long strings are cut in the snapshot (and only there; the Pod gets the values
whole), each cut saying how much is missing, until the snapshot is at most SNAPSHOT_MAX_BYTES.
"""

from __future__ import annotations

import json
from typing import Any

#: The largest snapshot written, as compact JSON. Far above what real Builds need (a few KB),
#: far below etcd's limit even with a spec of its own close to it.
SNAPSHOT_MAX_BYTES = 64 * 1024
#: Characters kept of one long string, tried in this order until the snapshot fits.
_KEEP = (1024, 256, 64)
#: What a snapshot keeps when even the shortest strings do not make it fit: the fields the
#: CRD requires, and what `shp buildrun list --wide` shows.
_ESSENTIAL = ("strategy", "output", "source")


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def _cut(value: Any, keep: int, path: str, cut: list[str]) -> Any:
    if isinstance(value, str):
        if len(value) <= keep:
            return value
        cut.append(path)
        return f"{value[:keep]}… [{len(value) - keep} characters cut from the status copy]"
    if isinstance(value, dict):
        return {k: _cut(v, keep, f"{path}.{k}", cut) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v, keep, f"{path}[{i}]", cut) for i, v in enumerate(value)]
    return value


def bounded_snapshot(spec: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The snapshot to write for the effective spec (its wire form), and what was cut: the
    paths of shortened strings, or of fields left out."""
    if _size(spec) <= SNAPSHOT_MAX_BYTES:
        return spec, []
    for keep in _KEEP:
        cut: list[str] = []
        bounded = _cut(spec, keep, "buildSpec", cut)
        if _size(bounded) <= SNAPSHOT_MAX_BYTES:
            return bounded, cut
    left_out = [f"buildSpec.{key}" for key in spec if key not in _ESSENTIAL]
    cut = []
    kept = {k: v for k, v in spec.items() if k in _ESSENTIAL}
    essential = _cut(kept, _KEEP[-1], "buildSpec", cut)
    return essential, [*cut, *left_out]

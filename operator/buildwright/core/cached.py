"""What the operator keeps of the objects it watches: the parts its decisions read.

Every watched object stays in memory for as long as it exists; with thousands of BuildRuns
and their Pods in a cluster, what is kept per object decides the operator's footprint. A
build Pod is about 16 KB of JSON, 40% of it `managedFields` and most of the rest a spec
the operator wrote itself; the status decision (`core.status.status_from_pod`) reads only
the Pod's identity, its container names in order, and its status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Metadata nothing in the operator reads; managedFields is the bulk of it.
_DROPPED_METADATA = ("managedFields",)


def without_bookkeeping(body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` without the apiserver's field-ownership records (shares everything else)."""
    metadata = body.get("metadata")
    if not isinstance(metadata, Mapping) or not any(k in metadata for k in _DROPPED_METADATA):
        return dict(body)
    kept = {k: v for k, v in metadata.items() if k not in _DROPPED_METADATA}
    return {**body, "metadata": kept}


# What status_from_pod reads of a Pod's status; container statuses only by name and state
# (their images, IDs, resources, mounts and users are most of a status's size).
_STATUS_KEYS = ("phase", "conditions", "message", "reason", "startTime")
_CONTAINER_STATUS_KEYS = ("initContainerStatuses", "containerStatuses")


def build_pod_for_status(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a build Pod that its BuildRun's status is derived from: metadata without
    managedFields, the names of its containers in order, and of its status the phase,
    conditions, message, reason, start time and each container's state."""
    spec = _mapping(pod.get("spec"))
    status = _mapping(pod.get("status"))
    slim = without_bookkeeping(pod)
    slim["spec"] = {
        key: [{"name": c.get("name")} for c in spec.get(key) or [] if isinstance(c, Mapping)]
        for key in ("initContainers", "containers")
    }
    kept: dict[str, Any] = {key: status[key] for key in _STATUS_KEYS if key in status}
    for key in _CONTAINER_STATUS_KEYS:
        if key in status:
            kept[key] = [
                {"name": c.get("name"), "state": c.get("state")}
                for c in status.get(key) or []
                if isinstance(c, Mapping)
            ]
    slim["status"] = kept
    return slim


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def secret_summary(secret: Mapping[str, Any]) -> dict[str, Any]:
    """What the operator keeps of a Secret: where it is and its version. It reads Secrets as
    metadata only; should a full Secret ever be passed, its data is dropped here too."""
    meta = _mapping(secret.get("metadata"))
    return {
        "metadata": {
            k: meta[k] for k in ("namespace", "name", "uid", "resourceVersion") if k in meta
        },
    }

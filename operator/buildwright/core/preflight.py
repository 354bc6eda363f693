"""Decisions a BuildRun needs before its Pod can be rendered (docs/buildrun-lifecycle.md):
is its Build usable, is its strategy usable, which labels and owner it carries.

The shell reads the objects; these functions say what they mean, with the exact reasons and
messages users see.
"""

from __future__ import annotations

from typing import Any, Literal

from buildwright.api.v1beta1 import Build
from buildwright.core.reasons import Failure, Reason

GROUP_VERSION = "shipwright.io/v1beta1"
BUILD_STRATEGY = "BuildStrategy"
CLUSTER_BUILD_STRATEGY = "ClusterBuildStrategy"
BUILD_NAME_LABEL = "build.shipwright.io/name"
BUILD_GENERATION_LABEL = "build.shipwright.io/generation"

WAIT: Literal["wait"] = "wait"
"""The Build exists but is not validated yet: its registration will wake the BuildRun."""


def referenced_build_outcome(build_name: str, build: Build | None) -> Failure | str | None:
    """None when the referenced Build can be run, WAIT, or the Failure that ends the run."""
    if build is None:
        return Failure(Reason.BUILD_NOT_FOUND, f'build.shipwright.io "{build_name}" not found')
    registered = (build.status.registered if build.status else None) or ""
    if not registered:
        return WAIT
    if registered != "True":
        reason = build.status.reason if build.status else None
        return Failure(
            Reason.BUILD_REGISTRATION_FAILED,
            f"the Build is not registered correctly, build: {build_name}, "
            f"registered status: {registered}, reason: {reason}",
        )
    return None


def strategy_kind(kind: str | None) -> str:
    """A Build's strategy kind; absent means the namespaced BuildStrategy."""
    return kind or BUILD_STRATEGY


def unknown_strategy_kind(kind: str) -> Failure | None:
    if kind in (BUILD_STRATEGY, CLUSTER_BUILD_STRATEGY):
        return None
    return Failure(Reason.UNKNOWN_STRATEGY_KIND, f"unknown strategy {kind}")


def strategy_not_found(kind: str, name: str) -> Failure:
    """The BuildRun's failure when its strategy is missing: the API's own not-found text.
    An empty name is no name (it is never looked up: the API would answer with a list)."""
    reason = (
        Reason.CLUSTER_BUILD_STRATEGY_NOT_FOUND
        if kind == CLUSTER_BUILD_STRATEGY
        else Reason.BUILD_STRATEGY_NOT_FOUND
    )
    if not name:
        return Failure(reason, f"spec.strategy.name is empty: name the {kind} to build with")
    if kind == CLUSTER_BUILD_STRATEGY:
        return Failure(
            Reason.CLUSTER_BUILD_STRATEGY_NOT_FOUND,
            f'clusterbuildstrategies.shipwright.io "{name}" not found',
        )
    return Failure(
        Reason.BUILD_STRATEGY_NOT_FOUND, f'buildstrategies.shipwright.io "{name}" not found'
    )


def build_owner_reference(build_meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "Build",
        "name": build_meta["name"],
        "uid": build_meta["uid"],
        "controller": True,
        "blockOwnerDeletion": False,
    }


def ownership_patch(
    run: dict[str, Any], build_meta: dict[str, Any], want: bool
) -> dict[str, Any] | None:
    """The merge patch that adds (`atBuildDeletion`) or removes the Build as controller owner
    of a BuildRun, or None when it is right already. Another controller is never displaced."""
    owners = list(run["metadata"].get("ownerReferences") or [])

    def is_build(owner: dict[str, Any]) -> bool:
        return owner.get("kind") == "Build" and owner.get("uid") == build_meta.get("uid")

    has = any(is_build(o) for o in owners)
    if want == has:
        return None
    if want:
        if any(o.get("controller") for o in owners):
            return None
        owners.append(build_owner_reference(build_meta))
    else:
        owners = [o for o in owners if not is_build(o)]
    return {
        "metadata": {
            "ownerReferences": owners,
            "resourceVersion": run["metadata"]["resourceVersion"],
        }
    }


def buildrun_metadata_patch(run: dict[str, Any], build: Build) -> dict[str, Any] | None:
    """The BuildRun's Build labels (retention limits and users select by them) and, with
    `atBuildDeletion`, the Build as its owner: the merge patch, or None when all is right."""
    build_meta = build.metadata
    labels = run["metadata"].get("labels") or {}
    wanted = {
        BUILD_NAME_LABEL: build_meta["name"],
        BUILD_GENERATION_LABEL: str(build_meta.get("generation", "")),
    }
    patch: dict[str, Any] = {}
    if any(labels.get(k) != v for k, v in wanted.items()):
        patch = {"metadata": {"labels": wanted}}
    if "uid" in build_meta:
        want_owner = bool(build.spec.retention and build.spec.retention.at_build_deletion)
        owners = ownership_patch(run, build_meta, want_owner)
        if owners:
            patch.setdefault("metadata", {}).update(owners["metadata"])
    return patch or None

"""Conversion of shipwright.io objects between v1alpha1 and v1beta1, field by field as
Shipwright's own conversion webhook maps them (https://shipwright.io/docs/build/).

The functions work on plain JSON dicts, exactly as the apiserver sends them in a
ConversionReview, so the webhook does not depend on the pydantic models.

How a conversion is organised
-----------------------------
Every spec/status is cut into *groups* of top-level keys that convert together (for example
the Build "source" group holds alpha `source` + `sources` and beta `source`). A group has a
forward function (alpha→beta) and a backward function (beta→alpha). Keys that belong to no
group are copied unchanged.

Lossless round trips
--------------------
Whatever a group's target version cannot express is kept in an annotation on the converted
object, as compact JSON:

``conversion.buildwright.io/v1alpha1-fields``
    on a **v1beta1** object: the v1alpha1 form of every group whose alpha content would not
    come back unchanged (e.g. `spec.strategy.apiVersion`, HTTP `sources`, `builder.credentials`,
    volume descriptions, the extra `corev1.Container` fields of `buildSteps`, `status.failedAt`
    when it differs from `failureDetails.location`).
``conversion.buildwright.io/v1beta1-fields``
    on a **v1alpha1** object: the v1beta1 form of every group v1alpha1 cannot express
    (e.g. `nodeSelector`, `tolerations`, `schedulerName`, `runtimeClassName`,
    `strategy.stepResources`, `output.vulnerabilityScan`/`platforms`, `git.depth`, BuildRun
    `output.insecure`/`timestamp`, `executor.kind` other than TaskRun).

The annotation value maps a section (`spec`, `status`) to `{group: content}`. Converting back
restores a group from the annotation only if that content still converts to exactly what the
object holds now, so an edit made through the other version is never undone by stale data;
the annotation is then removed. An object that loses nothing gets no annotation (and no empty
`annotations: {}`). Both annotation names are reserved: any value they hold on the input is
consumed by the conversion.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from buildwright.api.conversion.build import BUILD_SPEC_GROUPS
from buildwright.api.conversion.buildrun import BUILDRUN_SPEC_GROUPS, BUILDRUN_STATUS_GROUPS
from buildwright.api.conversion.common import (
    ALPHA_FIELDS_ANNOTATION,
    BETA_FIELDS_ANNOTATION,
    BUILD_RUN_DELETION_ANNOTATION,
    DELETION_KEY,
    JSON,
    KINDS,
    V1ALPHA1,
    V1BETA1,
    VERSIONS,
    ConversionError,
    Group,
    Stash,
    as_object,
    convert_section,
)
from buildwright.api.conversion.strategy import STRATEGY_SPEC_GROUPS

__all__ = [
    "ALPHA_FIELDS_ANNOTATION",
    "BETA_FIELDS_ANNOTATION",
    "KINDS",
    "V1ALPHA1",
    "V1BETA1",
    "VERSIONS",
    "ConversionError",
    "build_to_v1alpha1",
    "build_to_v1beta1",
    "buildrun_to_v1alpha1",
    "buildrun_to_v1beta1",
    "convert",
    "strategy_to_v1alpha1",
    "strategy_to_v1beta1",
]

_SECTIONS: dict[str, tuple[tuple[str, tuple[Group, ...]], ...]] = {
    "Build": (("spec", BUILD_SPEC_GROUPS),),
    "BuildRun": (("spec", BUILDRUN_SPEC_GROUPS), ("status", BUILDRUN_STATUS_GROUPS)),
    "BuildStrategy": (("spec", STRATEGY_SPEC_GROUPS),),
    "ClusterBuildStrategy": (("spec", STRATEGY_SPEC_GROUPS),),
}


def load_stash(value: Any) -> dict[str, Any]:
    """Parse a stash annotation; anything unreadable counts as no stash."""
    if not isinstance(value, str):
        return {}
    try:
        loaded = json.loads(value)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def convert_object(obj: Mapping[str, Any], *, to_beta: bool) -> JSON:
    kind = obj.get("kind")
    if kind not in _SECTIONS:
        raise ConversionError("unsupported Kind")
    source_version, target_version = (V1ALPHA1, V1BETA1) if to_beta else (V1BETA1, V1ALPHA1)
    if obj.get("apiVersion") != source_version:
        raise ConversionError(
            f"{kind} has apiVersion {obj.get('apiVersion')!r}, expected {source_version!r}"
        )
    result: JSON = copy.deepcopy(dict(obj))
    result["apiVersion"] = target_version
    metadata = result.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ConversionError(f"{kind} metadata must be an object")
    annotations = metadata.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise ConversionError(f"{kind} metadata.annotations must be an object")
    annotations = dict(annotations or {})
    # Both stash annotations are consumed: the one written for this direction is restored,
    # a leftover one for the other direction is stale by definition.
    restore_key, stash_key = (
        (BETA_FIELDS_ANNOTATION, ALPHA_FIELDS_ANNOTATION)
        if to_beta
        else (ALPHA_FIELDS_ANNOTATION, BETA_FIELDS_ANNOTATION)
    )
    restore = load_stash(annotations.pop(restore_key, None))
    annotations.pop(stash_key, None)

    stash: dict[str, Stash] = {}
    for section_name, groups in _SECTIONS[kind]:
        if section_name not in result:
            continue
        section = result[section_name]
        if not isinstance(section, dict):
            raise ConversionError(f"{kind} {section_name} must be an object")
        section = dict(section)
        lift = kind == "Build" and section_name == "spec"
        if lift and BUILD_RUN_DELETION_ANNOTATION in annotations:
            section[DELETION_KEY] = annotations.pop(BUILD_RUN_DELETION_ANNOTATION)
        converted, lost = convert_section(
            section,
            groups,
            to_beta=to_beta,
            meta=metadata,
            restore=as_object(restore.get(section_name)),
        )
        if lift and DELETION_KEY in converted:
            annotations[BUILD_RUN_DELETION_ANNOTATION] = converted.pop(DELETION_KEY)
        result[section_name] = converted
        if lost:
            stash[section_name] = lost

    if stash:
        annotations[stash_key] = json.dumps(stash, separators=(",", ":"), sort_keys=True)
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    if "metadata" in result or metadata:
        result["metadata"] = metadata
    return result


# --------------------------------------------------------------------------- public API


def build_to_v1beta1(obj: Mapping[str, Any]) -> JSON:
    """Convert a v1alpha1 Build to v1beta1."""
    return convert_kind(obj, "Build", to_beta=True)


def build_to_v1alpha1(obj: Mapping[str, Any]) -> JSON:
    """Convert a v1beta1 Build to v1alpha1."""
    return convert_kind(obj, "Build", to_beta=False)


def buildrun_to_v1beta1(obj: Mapping[str, Any]) -> JSON:
    """Convert a v1alpha1 BuildRun to v1beta1."""
    return convert_kind(obj, "BuildRun", to_beta=True)


def buildrun_to_v1alpha1(obj: Mapping[str, Any]) -> JSON:
    """Convert a v1beta1 BuildRun to v1alpha1."""
    return convert_kind(obj, "BuildRun", to_beta=False)


def strategy_to_v1beta1(obj: Mapping[str, Any]) -> JSON:
    """Convert a v1alpha1 BuildStrategy or ClusterBuildStrategy to v1beta1."""
    return convert_kind(obj, "BuildStrategy", "ClusterBuildStrategy", to_beta=True)


def strategy_to_v1alpha1(obj: Mapping[str, Any]) -> JSON:
    """Convert a v1beta1 BuildStrategy or ClusterBuildStrategy to v1alpha1."""
    return convert_kind(obj, "BuildStrategy", "ClusterBuildStrategy", to_beta=False)


def convert_kind(obj: Mapping[str, Any], *kinds: str, to_beta: bool) -> JSON:
    if obj.get("kind") not in kinds:
        raise ConversionError(f"expected kind {' or '.join(kinds)}, got {obj.get('kind')!r}")
    return convert_object(obj, to_beta=to_beta)


def convert(obj: Mapping[str, Any], desired_api_version: str) -> JSON:
    """Convert a whole object to `desired_api_version`; the input is never modified.

    Raises ConversionError for an unsupported kind, an unknown source or desired version,
    or an object whose metadata/spec/status is not an object.
    """
    if not isinstance(obj, Mapping):
        raise ConversionError("object must be a JSON object")
    if obj.get("kind") not in KINDS:
        raise ConversionError("unsupported Kind")
    if desired_api_version not in VERSIONS:
        raise ConversionError(
            f"unsupported desiredAPIVersion {desired_api_version!r}; "
            f"supported: {', '.join(VERSIONS)}"
        )
    current = obj.get("apiVersion")
    if current not in VERSIONS:
        raise ConversionError(
            f"unsupported apiVersion {current!r} of {obj.get('kind')}; "
            f"supported: {', '.join(VERSIONS)}"
        )
    if current == desired_api_version:
        return copy.deepcopy(dict(obj))
    return convert_object(obj, to_beta=desired_api_version == V1BETA1)

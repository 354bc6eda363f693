"""The build Pod's name, labels, annotations and owner reference, and the service account
generated for a BuildRun that asks for one."""

from __future__ import annotations

import hashlib
from typing import Any

from buildwright.api.v1beta1 import (
    API_VERSION,
    BuildRun,
    BuildStrategy,
    ClusterBuildStrategy,
)
from buildwright.core.contract import (
    LABEL_BUILD_GENERATION,
    LABEL_BUILD_NAME,
    LABEL_BUILDRUN_GENERATION,
    LABEL_BUILDRUN_NAME,
    LABEL_MANAGED_BY,
    MANAGED_BY,
)
from buildwright.core.pod.containers import PodInputs

_EXCLUDED_ANNOTATION_PREFIXES = (
    "clusterbuildstrategy.shipwright.io/",
    "buildstrategy.shipwright.io/",
    "build.shipwright.io/",
    "buildrun.shipwright.io/",
)


_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_POD_NAME_LIMIT = 63
_POD_SUFFIX = "-pod"


def pod_name(buildrun_name: str) -> str:
    """The build Pod's name: `<buildrun>-pod`, or for long names a cut name with a hash of
    the full one so that distinct BuildRuns never share a Pod and the name fits 63 chars."""
    name = f"{buildrun_name}{_POD_SUFFIX}"
    if len(name) <= _POD_NAME_LIMIT:
        return name
    digest = hashlib.sha256(buildrun_name.encode()).hexdigest()[:8]
    keep = _POD_NAME_LIMIT - len(_POD_SUFFIX) - len(digest) - 1
    return f"{buildrun_name[:keep]}-{digest}{_POD_SUFFIX}"


def pod_labels(inputs: PodInputs) -> dict[str, str]:
    metadata = inputs.buildrun.metadata
    labels = {LABEL_BUILDRUN_NAME: str(metadata.get("name", ""))}
    if metadata.get("generation") is not None:
        labels[LABEL_BUILDRUN_GENERATION] = str(metadata["generation"])
    if inputs.build_name is not None:
        labels[LABEL_BUILD_NAME] = inputs.build_name
        if inputs.build_generation is not None:
            labels[LABEL_BUILD_GENERATION] = str(inputs.build_generation)
    strategy = inputs.strategy
    domain = (
        "clusterbuildstrategy.shipwright.io"
        if strategy.kind == "ClusterBuildStrategy"
        else "buildstrategy.shipwright.io"
    )
    labels[f"{domain}/name"] = str(strategy.metadata.get("name", ""))
    if strategy.metadata.get("generation") is not None:
        labels[f"{domain}/generation"] = str(strategy.metadata["generation"])
    labels[LABEL_MANAGED_BY] = MANAGED_BY
    return labels


def pod_annotations(strategy: BuildStrategy | ClusterBuildStrategy) -> dict[str, str]:
    annotations = strategy.metadata.get("annotations") or {}
    return {
        str(key): str(value)
        for key, value in annotations.items()
        if key != _LAST_APPLIED and not str(key).startswith(_EXCLUDED_ANNOTATION_PREFIXES)
    }


def buildrun_owner_reference(buildrun: BuildRun) -> dict[str, Any]:
    """The controller reference from what a BuildRun creates (its Pod, its generated
    ServiceAccount) back to the BuildRun, so both go with it."""
    reference: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "BuildRun",
        "name": buildrun.metadata.get("name", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    if buildrun.metadata.get("uid"):
        reference["uid"] = buildrun.metadata["uid"]
    return reference


def generated_service_account(buildrun: BuildRun, push_secret: str | None) -> dict[str, Any]:
    """The ServiceAccount of `serviceAccount: .generate`: named like the BuildRun,
    owned by it, no token automount, the push secret linked."""
    name = buildrun.metadata["name"]
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": name,
            "namespace": buildrun.metadata["namespace"],
            "labels": {"buildrun.shipwright.io/name": name},
            "ownerReferences": [buildrun_owner_reference(buildrun)],
        },
        "automountServiceAccountToken": False,
        "secrets": [{"name": push_secret}] if push_secret else [],
    }

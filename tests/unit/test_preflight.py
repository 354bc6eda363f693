"""BuildRun preflight decisions: the referenced Build, the strategy, labels and ownership."""

from __future__ import annotations

from typing import Any

from buildwright.api.v1beta1 import Build
from buildwright.core import preflight, reasons
from buildwright.core.reasons import Reason


def _build(status: dict[str, Any] | None = None, **spec: Any) -> Build:
    body: dict[str, Any] = {
        "metadata": {"name": "b", "namespace": "ns", "uid": "u-b", "generation": 3},
        "spec": {"strategy": {"name": "kaniko"}, "output": {"image": "i"}, **spec},
    }
    if status is not None:
        body["status"] = status
    return Build.model_validate(body)


def test_missing_build_is_build_not_found() -> None:
    failure = preflight.referenced_build_outcome("b", None)
    assert failure == reasons.Failure(Reason.BUILD_NOT_FOUND, 'build.shipwright.io "b" not found')


def test_unvalidated_build_makes_the_run_wait() -> None:
    assert preflight.referenced_build_outcome("b", _build()) == preflight.WAIT
    assert preflight.referenced_build_outcome("b", _build({"registered": ""})) == preflight.WAIT


def test_invalid_build_fails_registration_naming_its_reason() -> None:
    build = _build({"registered": "False", "reason": "SpecOutputSecretRefNotFound"})
    assert preflight.referenced_build_outcome("b", build) == reasons.Failure(
        Reason.BUILD_REGISTRATION_FAILED,
        "the Build is not registered correctly, build: b, registered status: False, "
        "reason: SpecOutputSecretRefNotFound",
    )


def test_registered_build_can_run() -> None:
    assert preflight.referenced_build_outcome("b", _build({"registered": "True"})) is None


def test_strategy_kinds() -> None:
    assert preflight.strategy_kind(None) == "BuildStrategy"
    assert preflight.unknown_strategy_kind("ClusterBuildStrategy") is None
    assert preflight.unknown_strategy_kind("Strategy") == reasons.Failure(
        Reason.UNKNOWN_STRATEGY_KIND, "unknown strategy Strategy"
    )
    missing = preflight.strategy_not_found("ClusterBuildStrategy", "k")
    assert missing.reason == Reason.CLUSTER_BUILD_STRATEGY_NOT_FOUND
    assert missing.message == 'clusterbuildstrategies.shipwright.io "k" not found'
    assert preflight.strategy_not_found("BuildStrategy", "k").reason == (
        Reason.BUILD_STRATEGY_NOT_FOUND
    )


def _run(**metadata: Any) -> dict[str, Any]:
    return {"metadata": {"name": "r", "resourceVersion": "5", **metadata}}


def test_metadata_patch_labels_the_run_once() -> None:
    patch = preflight.buildrun_metadata_patch(_run(), _build())
    assert patch == {"metadata": {"labels": {
        "build.shipwright.io/name": "b", "build.shipwright.io/generation": "3"
    }}}  # fmt: skip
    labelled = _run(labels=patch["metadata"]["labels"])
    assert preflight.buildrun_metadata_patch(labelled, _build()) is None


def test_at_build_deletion_adds_and_removes_the_build_as_owner() -> None:
    labels = {"build.shipwright.io/name": "b", "build.shipwright.io/generation": "3"}
    owning = _build(retention={"atBuildDeletion": True})
    patch = preflight.buildrun_metadata_patch(_run(labels=labels), owning)
    assert patch is not None
    owners = patch["metadata"]["ownerReferences"]
    assert [(o["kind"], o["uid"], o["controller"]) for o in owners] == [("Build", "u-b", True)]
    assert patch["metadata"]["resourceVersion"] == "5"
    owned = _run(labels=labels, ownerReferences=owners)
    assert preflight.buildrun_metadata_patch(owned, owning) is None
    removed = preflight.buildrun_metadata_patch(owned, _build())
    assert removed == {"metadata": {"ownerReferences": [], "resourceVersion": "5"}}


def test_another_controller_is_never_displaced() -> None:
    other = {"kind": "Pipeline", "uid": "x", "controller": True}
    run = _run(ownerReferences=[other])
    assert preflight.ownership_patch(run, {"name": "b", "uid": "u-b"}, True) is None

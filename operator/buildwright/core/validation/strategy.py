"""The strategy a Build or BuildRun uses: it exists and is of a known kind, the parameter
values fit its parameters, volume overrides name overridable volumes with allowed sources,
and stepResources name its steps."""

from __future__ import annotations

from collections.abc import Sequence

from buildwright.api.base import Volume
from buildwright.api.v1beta1 import (
    BuildSpec,
    StepResourceOverride,
    StrategyVolume,
)
from buildwright.core import preflight
from buildwright.core.formats import go_quote
from buildwright.core.parameters import validate_parameters
from buildwright.core.reasons import Failure, Reason
from buildwright.core.validation.common import (
    CLUSTER_STRATEGY_KIND,
    NAMESPACED_STRATEGY_KIND,
    AnyStrategy,
    last_failure,
    strategy_kind,
)

# The volume sources a Build or BuildRun may put in place of a strategy volume: those the
# Pod Security Standard "restricted" allows. The others reach into the node (hostPath, and
# the network or block devices the kubelet mounts: nfs, iscsi, rbd, ...) or run code on it
# (gitRepo); an operator setting (`BUILDWRIGHT_EXTRA_VOLUME_SOURCES`) may add some.
SAFE_VOLUME_SOURCES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
})  # fmt: skip


def volume_source_failure(volume: Volume, extra_sources: frozenset[str]) -> Failure | None:
    """VolumeSourceNotAllowed when an override uses a source outside the allowed ones."""
    sources = sorted(k for k in volume.model_dump(by_alias=True, exclude_none=True) if k != "name")
    refused = [s for s in sources if s not in SAFE_VOLUME_SOURCES | extra_sources]
    if not refused:
        return None
    return Failure(
        Reason.VOLUME_SOURCE_NOT_ALLOWED,
        f"Volume {go_quote(volume.name)} uses {', '.join(refused)}, which Builds and BuildRuns"
        f" may not use; allowed: {', '.join(sorted(SAFE_VOLUME_SOURCES | extra_sources))}",
    )


def volumes_failure(
    strategy_volumes: Sequence[StrategyVolume] | None,
    volumes: Sequence[Volume] | None,
    extra_sources: frozenset[str] = frozenset(),
) -> Failure | None:
    """Volumes may only replace strategy volumes marked `overridable: true`, and only with
    the allowed sources (first failure)."""
    by_name = {volume.name: volume for volume in strategy_volumes or ()}
    for volume in volumes or ():
        declared = by_name.get(volume.name)
        if declared is None:
            return Failure(
                Reason.UNDEFINED_VOLUME,
                f"Volume {go_quote(volume.name)} is not defined in the Strategy",
            )
        if not declared.overridable:
            return Failure(
                Reason.VOLUME_NOT_OVERRIDABLE,
                f"Volume {go_quote(volume.name)} is not overridable in the Strategy",
            )
        refused = volume_source_failure(volume, extra_sources)
        if refused is not None:
            return refused
    return None


def step_resources_failure(
    strategy: AnyStrategy, overrides: Sequence[StepResourceOverride] | None
) -> Failure | None:
    """Every stepResources entry must name a strategy step (first failure)."""
    steps = {step.name for step in strategy.spec.steps}
    for override in overrides or ():
        if override.name not in steps:
            return Failure(
                Reason.UNDEFINED_STEP_RESOURCE,
                f"stepResources references step {go_quote(override.name)}"
                " which does not exist in the build strategy",
            )
    return None


def validate_strategy(
    spec: BuildSpec,
    namespace: str,
    strategy: AnyStrategy | None,
    extra_volume_sources: frozenset[str] = frozenset(),
) -> Failure | None:
    """#4 strategy: kind, existence, then parameters, volumes, step resources (last wins)."""
    kind = strategy_kind(spec)
    name = spec.strategy.name
    if kind not in (NAMESPACED_STRATEGY_KIND, CLUSTER_STRATEGY_KIND):
        return Failure(
            Reason.UNKNOWN_BUILD_STRATEGY_KIND,
            f"unknown strategy kind {kind} used, must be one of"
            f" {NAMESPACED_STRATEGY_KIND}, or {CLUSTER_STRATEGY_KIND}",
        )
    if not name:
        return preflight.strategy_not_found(kind, name)
    if strategy is None:
        if kind == NAMESPACED_STRATEGY_KIND:
            return Failure(
                Reason.BUILD_STRATEGY_NOT_FOUND,
                f"buildStrategy {name} does not exist in namespace {namespace}",
            )
        return Failure(
            Reason.CLUSTER_BUILD_STRATEGY_NOT_FOUND, f"clusterBuildStrategy {name} does not exist"
        )
    return last_failure(
        [
            validate_parameters(strategy.spec.parameters, spec.param_values, check_missing=False),
            volumes_failure(strategy.spec.volumes, spec.volumes, extra_volume_sources),
            step_resources_failure(strategy, spec.strategy.step_resources),
        ]
    )

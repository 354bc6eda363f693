"""The strategy's steps as containers: parameters substituted, env merged (Build, BuildRun,
strategy; forbidden names refused), resources and volumes applied, read-only mounts
checked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from buildwright.api.base import EnvVar
from buildwright.api.v1beta1 import (
    Step,
    StrategyVolume,
)
from buildwright.core.contract import (
    STEP_PREFIX,
)
from buildwright.core.pod.containers import (
    FORBIDDEN_ENV_VAR_NAMES,
    PHASE_STRATEGY,
    GenerationError,
    RenderContext,
    aggregate,
    env_wire,
    with_home,
)
from buildwright.core.pod.volumes import VOLUME_OUTPUT_DIRECTORY, common_mounts, volume_mount
from buildwright.core.resolve import (
    OUTPUT_DIRECTORY,
    PARAM_OUTPUT_DIRECTORY,
)
from buildwright.core.substitute import (
    SubstitutionError,
    any_references_parameter,
    substitute_list,
    substitute_string,
)
from buildwright.core.validation import (
    ForbiddenEnvNames,
)

_READ_ONLY_VOLUME_TYPES = ("configMap", "secret", "downwardAPI", "projected")


def is_forbidden_env_name(name: str, patterns: Iterable[str] = FORBIDDEN_ENV_VAR_NAMES) -> bool:
    """Whether `name` is forbidden by `patterns` (exact names, or prefixes ending in `*`)."""
    return name in ForbiddenEnvNames.parse(patterns)


def step_env(ctx: RenderContext, step: Step) -> list[dict[str, Any]]:
    """Strategy env followed by the Build/BuildRun env; clashes and forbidden names fail."""
    forbidden = ctx.inputs.forbidden_env_names
    own = step.env or []
    for var in own:
        if is_forbidden_env_name(var.name, forbidden):
            raise GenerationError(
                f'{PHASE_STRATEGY}BuildStrategy step "{step.name}" defines forbidden '
                f'environment variable "{var.name}"'
            )
    own_names = {var.name for var in own}
    errors: list[str] = []
    added: list[EnvVar] = []
    for var in ctx.spec.env or []:
        if is_forbidden_env_name(var.name, forbidden):
            errors.append(f'environment variable "{var.name}" is forbidden for security reasons')
        elif var.name in own_names:
            errors.append(f'environment variable "{var.name}" already exists')
        else:
            added.append(var)
    if errors:
        raise GenerationError(
            f"{PHASE_STRATEGY}error(s) occurred merging environment variables into "
            f'BuildStrategy "{ctx.spec.strategy.name}" steps: {aggregate(errors)}'
        )
    return [env_wire(var) for var in [*own, *added]]


def reference_texts(step: Step, env: Sequence[dict[str, Any]]) -> list[str]:
    """The fields in which Shipwright looks for parameter references."""
    texts = [*(step.command or []), *(step.args or [])]
    texts += [var["value"] for var in env if isinstance(var.get("value"), str)]
    return texts


def step_resources(ctx: RenderContext, step: Step) -> dict[str, Any] | None:
    for override in ctx.spec.strategy.step_resources or []:
        if override.name == step.name:
            return override.resources.to_wire()
    return step.resources.to_wire() if step.resources is not None else None


def strategy_container(
    ctx: RenderContext, step: Step, volumes: Mapping[str, dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """The container of one strategy step, and whether it uses the output directory."""
    env = step_env(ctx, step)
    texts = reference_texts(step, env)

    # ConfigMap/Secret-backed values reach the step as env vars placed first, so that env
    # values after them may refer to them too.
    injected: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name, parameter in ctx.params.items():
        if parameter.env_sources and any_references_parameter(texts, name):
            for source in parameter.env_sources:
                if source.env_name not in seen:
                    seen.add(source.env_name)
                    injected.append(source.to_env_var())

    uses_output_directory = any_references_parameter(texts, PARAM_OUTPUT_DIRECTORY)
    try:
        container: dict[str, Any] = {"name": f"{STEP_PREFIX}{step.name}"}
        if step.image is not None:
            container["image"] = substitute_string(step.image, ctx.plain)
        if step.command is not None:
            container["command"] = substitute_list(step.command, ctx.expanded)
        if step.args is not None:
            container["args"] = substitute_list(step.args, ctx.expanded)
        if step.working_dir is not None:
            container["workingDir"] = substitute_string(step.working_dir, ctx.plain)
        rendered_env = []
        for var in env:
            if isinstance(var.get("value"), str):
                var = {**var, "value": substitute_string(var["value"], ctx.expanded)}
            rendered_env.append(var)
    except SubstitutionError as error:
        raise GenerationError(f'{PHASE_STRATEGY}step "{step.name}": {error}') from error
    container["env"] = with_home([*injected, *rendered_env])

    resources = step_resources(ctx, step)
    if resources:
        container["resources"] = resources
    if step.image_pull_policy:
        container["imagePullPolicy"] = step.image_pull_policy

    security = dict(step.security_context or {})
    if ctx.strategy_uid_gid is not None:
        security.setdefault("runAsUser", ctx.strategy_uid_gid[0])
        security.setdefault("runAsGroup", ctx.strategy_uid_gid[1])
    if security:
        container["securityContext"] = security

    mounts = common_mounts(ctx, docker_config=True)
    if uses_output_directory:
        mounts.append(volume_mount(VOLUME_OUTPUT_DIRECTORY, OUTPUT_DIRECTORY))
    for mount in step.volume_mounts or []:
        if mount.name not in volumes:
            raise GenerationError(
                f'{PHASE_STRATEGY}volume for the Volume Mount "{mount.name}" is not found'
            )
        mounts.append(mount.to_wire())
    container["volumeMounts"] = mounts
    return container, uses_output_directory


def strategy_volumes(ctx: RenderContext) -> dict[str, dict[str, Any]]:
    """Strategy volumes with overridable ones replaced by the Build's, then the BuildRun's
    (both already merged into the effective spec)."""
    overrides = {volume.name: volume for volume in ctx.spec.volumes or []}
    volumes: dict[str, dict[str, Any]] = {}
    for volume in ctx.inputs.strategy.spec.volumes or []:
        override = overrides.get(volume.name)
        if override is not None and volume.overridable:
            volumes[volume.name] = override.to_wire()
        else:
            volumes[volume.name] = strategy_volume_wire(volume)
    return volumes


def strategy_volume_wire(volume: StrategyVolume) -> dict[str, Any]:
    wire = volume.to_wire()
    wire.pop("overridable", None)
    wire.pop("description", None)
    return wire


def check_read_only_mounts(volumes: Mapping[str, dict[str, Any]], steps: Sequence[Step]) -> None:
    writable = {
        mount.name for step in steps for mount in step.volume_mounts or [] if not mount.read_only
    }
    for name, volume in volumes.items():
        if name in writable and any(kind in volume for kind in _READ_ONLY_VOLUME_TYPES):
            raise GenerationError(f'{PHASE_STRATEGY}volume mount "{name}" must be read only')
